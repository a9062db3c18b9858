/**
 * Settlement: turns the chain's `UserOperationEvent`s for our paymaster into ledger charges (docs/architecture.md, "A sponsorship").
 *
 * The worker reads logs up to `head − confirmations`, from a cursor persisted with the hash and timestamp of its
 * block. Each event's userOpHash finds the hold it was signed under; the account is charged ceil(actualGasCost ×
 * the quote locked at signing) and the rest of the hold is released — reverted operations too, since the
 * paymaster paid for them. A paid userOpHash we never signed is recorded and alerted.
 *
 * Money rules that hold whatever the chain or the RPC does:
 *   - a landed operation is always charged: one whose hold is gone (or smaller than its cost after a reorg) is
 *     charged from the account's available quota, and what the account did not have is recorded as a shortfall,
 *     alerted and counted;
 *   - holds expire on chain time, in the same pass and under the same lock, only once the cursor's block is past
 *     their validUntil (+ grace): a pass that fails or falls behind releases nothing;
 *   - a reorg undoes settlements whose block changed (`unsettle:<id>` entries) and re-reads the range; the hold
 *     reopens, or merges into a newer open hold for the same nonce;
 *   - one cursor per chain reads the events of every EntryPoint it serves (one eth_getLogs): a reorg is the
 *     chain's, and settlements record their EntryPoint;
 *   - one event or undo that fails for a reason of its own (not an outage) is recorded in settlement_failures,
 *     alerted, retried every pass, and never stops the cursor. An outage (database or RPC) fails the pass, which
 *     the next tick repeats: every step is idempotent, so a crash anywhere repeats work without repeating money.
 */
import { type Address, type Hex, type Log, RpcRequestError, getAbiItem, getAddress, isAddressEqual } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import { type Database, type Queryable, isDatabaseUnavailable } from "../platform/db/database";
import type { Logger } from "../platform/logger";
import type { Metrics } from "../platform/metrics";
import { charge, chargeAvailable, hold, lockBalance, release, reverseCharge } from "../ledger/ledger";
import { findSignedOperation, lockHoldToSettle, markHoldSettled, releaseExpiredHolds, reopenHold } from "./holds";
import { chargeFen } from "./pricing";
import type { ChainRuntime } from "../chain/chainRuntime";
import { ENTRY_POINT_V07 } from "../chain/addresses";

export const userOperationEvent = getAbiItem({ abi: entryPoint07Abi, name: "UserOperationEvent" });

export type UserOperationEventLog = {
  /** The EntryPoint that emitted it (the log's address). */
  entryPoint: Address;
  userOpHash: Hex;
  sender: string;
  nonce: bigint;
  success: boolean;
  actualGasCost: bigint;
  actualGasUsed: bigint;
  blockNumber: bigint;
  blockHash: Hex;
  transactionHash: Hex;
  logIndex: number;
};

export type SettleOutcome =
  | { result: "settled"; settlementId: bigint; chargedFen: bigint; releasedFen: bigint; shortfallFen: bigint; account: string; late: boolean }
  | { result: "duplicate" }
  | { result: "unknown"; settlementId: bigint };


/**
 * Settles one event in `tx`. A second call for the same event does nothing.
 *
 * The charge comes from the hold first. If the operation's own hold is no longer open (it was released, or a
 * reorg moved things around), an open hold for the same (chain, sender, nonce) pays instead — the nonce it was
 * reserved for is now used. What no hold covers is charged from available; what available cannot cover is the
 * shortfall.
 */
export async function settleEvent(tx: Queryable, chainId: number, event: UserOperationEventLog): Promise<SettleOutcome> {
  const hash = event.userOpHash.toLowerCase();
  const signed = await findSignedOperation(tx, chainId, hash);
  // serialises with reservations and other settlements of the same account
  const balance = signed ? await lockBalance(tx, signed.account) : undefined;
  const { hold: holdRow, late } = signed ? await lockHoldToSettle(tx, chainId, signed) : { hold: undefined, late: false };
  const { rows: inserted } = await tx.query<{ id: bigint }>(
    `INSERT INTO settlements (chain_id, user_op_hash, hold_id, account, nonce, success, actual_gas_cost_wei, actual_gas_used,
                              block_number, block_hash, transaction_hash, log_index, status, entry_point)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'settled', $13)
     ON CONFLICT (chain_id, user_op_hash) WHERE status = 'settled' DO NOTHING
     RETURNING id`,
    [
      chainId,
      hash,
      holdRow?.id ?? signed?.hold_id ?? null,
      event.sender.toLowerCase(),
      event.nonce.toString(),
      event.success,
      event.actualGasCost.toString(),
      event.actualGasUsed.toString(),
      event.blockNumber,
      event.blockHash.toLowerCase(),
      event.transactionHash.toLowerCase(),
      event.logIndex,
      event.entryPoint.toLowerCase(),
    ],
  );
  const settlementId = inserted[0]?.id;
  if (settlementId === undefined) return { result: "duplicate" };
  if (!signed || !balance) return { result: "unknown", settlementId };

  const cost = chargeFen(event.actualGasCost, { fenPerNative: signed.fen_per_native, markupBps: signed.markup_bps });
  const heldFen = holdRow?.amount_fen ?? 0n;
  // the hold is the worst case at the same quote, so cost ≤ hold — unless a reorg re-held less than was released
  const fromHeld = cost < heldFen ? cost : heldFen;
  const beyond = cost - fromHeld;
  const fromAvailable = beyond < balance.availableFen ? beyond : balance.availableFen;
  const shortfall = beyond - fromAvailable;
  const released = heldFen - fromHeld;
  const reference = `settle:${settlementId}`;
  if (fromHeld > 0n) await charge(tx, { account: signed.account, reservationId: reference, amountFen: fromHeld });
  if (fromAvailable > 0n) await chargeAvailable(tx, { account: signed.account, reference: `${reference}:available`, amountFen: fromAvailable });
  if (released > 0n) await release(tx, { account: signed.account, reservationId: reference, amountFen: released });
  if (holdRow) await markHoldSettled(tx, holdRow.id, fromHeld + fromAvailable);
  await tx.query("UPDATE settlements SET charged_fen = $2, released_fen = $3, shortfall_fen = $4 WHERE id = $1", [settlementId, fromHeld + fromAvailable, released, shortfall]);
  return { result: "settled", settlementId, chargedFen: fromHeld + fromAvailable, releasedFen: released, shortfallFen: shortfall, account: signed.account, late };
}

/**
 * Undoes a settlement whose block a reorg replaced: the charge goes back to held, the released rest is held
 * again (as far as the account still has it), and the hold is open once more — the operation may land again,
 * and if it does not, the hold expires as usual. If the server has meanwhile signed a new sponsorship for the same
 * nonce (the nonce was free again on the new chain), that newer open hold absorbs this one: one hold per nonce,
 * the larger amount kept, the rest released, and every signed variant of both points at it.
 */
export async function undoSettlement(tx: Queryable, settlementId: bigint): Promise<boolean> {
  const { rows } = await tx.query<{ hold_id: string | null; account: string; charged_fen: bigint; released_fen: bigint }>(
    "UPDATE settlements SET status = 'reorged', reorged_at = now() WHERE id = $1 AND status = 'settled' RETURNING hold_id, account, charged_fen, released_fen",
    [settlementId],
  );
  const s = rows[0];
  if (!s) return false;
  if (!s.hold_id) return true;
  const balance = await lockBalance(tx, s.account);
  const reference = `unsettle:${settlementId}`;
  if (s.charged_fen > 0n) await reverseCharge(tx, { account: s.account, reference, amountFen: s.charged_fen });
  const reheld = s.released_fen < balance.availableFen ? s.released_fen : balance.availableFen;
  if (reheld > 0n) await hold(tx, { account: s.account, reservationId: reference, amountFen: reheld });
  const amount = s.charged_fen + reheld;

  await reopenHold(tx, { holdId: s.hold_id, account: s.account, amountFen: amount, settlementId });
  return true;
}

export type SettleRunResult = {
  fromBlock: bigint;
  toBlock: bigint;
  settled: number;
  unknown: number;
  late: number;
  reorged: number;
  /** Events or undos recorded in settlement_failures this pass (the cursor went on). */
  failed: number;
  /** Earlier failures that succeeded this pass. */
  recovered: number;
  /** Holds released because the chain is past their validUntil + grace. */
  expired: number;
  lagBlocks: bigint;
};

export type SettleOptions = {
  log?: Logger;
  metrics?: Metrics;
  reorgWindow?: bigint;
  maxBlocks?: bigint;
  /** Seconds of chain time after validUntil before an unused hold is released (HOLD_GRACE_SECONDS). */
  holdGraceSeconds?: number;
  /** Aborts when the advisory lock's connection drops: stop at the next step, another instance may take over. */
  signal?: AbortSignal;
};

/** How far back a reorg is looked for once detected. */
const DEFAULT_REORG_WINDOW = 128n;

/**
 * One pass over a chain: reorg check, earlier failures retried, every confirmed block since the cursor, then the
 * holds that chain time has expired. Throws on an outage (nothing is released then); the caller retries.
 */
export async function settleChain(db: Database, chain: ChainRuntime, options: SettleOptions = {}): Promise<SettleRunResult> {
  const { client, config } = chain;
  const chainId = config.chainId;
  const label = { chain: String(chainId) };
  const step = () => options.signal?.throwIfAborted();
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const safe = head - BigInt(config.confirmations);
  const { rows } = await db.query<{ block_number: bigint; block_hash: string }>("SELECT block_number, block_hash FROM chain_cursors WHERE chain_id = $1", [chainId]);
  let cursor = rows[0] ? rows[0].block_number : safe - BigInt(config.logRange) < 0n ? -1n : safe - BigInt(config.logRange);
  const result: SettleRunResult = { fromBlock: cursor + 1n, toBlock: cursor, settled: 0, unknown: 0, late: 0, reorged: 0, failed: 0, recovered: 0, expired: 0, lagBlocks: 0n };

  if (rows[0]) {
    const stored = rows[0];
    const block = stored.block_number <= head ? await client.getBlock({ blockNumber: stored.block_number }) : undefined;
    if (!block || block.hash.toLowerCase() !== stored.block_hash) {
      // the cursor's block is gone (a reorg) or beyond the head (a deep reorg, a reset chain): re-read the window
      const window = options.reorgWindow ?? DEFAULT_REORG_WINDOW;
      const top = stored.block_number <= head ? cursor : head;
      const from = top - window < 0n ? 0n : top - window;
      await undoReorged(db, chain, from, result, options);
      options.log?.warn({ chainId, cursorBlock: cursor.toString(), undone: result.reorged }, "reorg detected: settlements re-read");
      options.metrics?.reorgs.inc(label, result.reorged);
      cursor = from - 1n;
      await storeCursor(db, chain, cursor);
      result.fromBlock = cursor + 1n;
      result.toBlock = cursor;
    }
  }
  step();
  await retryFailures(db, chain, result, options);

  const limit = options.maxBlocks ? cursor + options.maxBlocks : safe;
  const end = limit < safe ? limit : safe;
  let range = BigInt(config.logRange);
  while (cursor < end) {
    step();
    const fromBlock = cursor + 1n;
    const toBlock = fromBlock + range - 1n < end ? fromBlock + range - 1n : end;
    let logs: Awaited<ReturnType<typeof readEvents>>;
    // the range's last header is read before its logs: if a reorg slips in between, the stored hash is the old
    // fork's and the next pass sees it is gone, so the range is read again (the other order could hide it)
    const header = await chain.client.getBlock({ blockNumber: toBlock });
    try {
      logs = await readEvents(chain, fromBlock, toBlock);
    } catch (error) {
      // an RPC that refuses the range (too many blocks or results) answers with an error object: read less
      if (range > 1n && isRpcRefusal(error)) {
        range = (toBlock - fromBlock + 1n) / 2n || 1n;
        options.log?.warn({ chainId, fromBlock: fromBlock.toString(), toBlock: toBlock.toString(), nextRange: range.toString(), err: shortMessage(error) }, "eth_getLogs refused the range; reading fewer blocks");
        continue;
      }
      throw error;
    }
    for (const log of logs) await settleOne(db, chain, toEvent(log), result, options);
    await storeCursor(db, chain, toBlock, header);
    cursor = toBlock;
    result.toBlock = toBlock;
  }
  result.lagBlocks = head - cursor;
  options.metrics?.settlementLagBlocks.set(label, Number(result.lagBlocks));

  step();
  const { rows: at } = await db.query<{ block_timestamp: Date | null }>("SELECT block_timestamp FROM chain_cursors WHERE chain_id = $1", [chainId]);
  const chainTime = at[0]?.block_timestamp;
  if (chainTime) {
    options.metrics?.settlementCursorAgeSeconds.set(label, Math.max(0, Math.round((Date.now() - chainTime.getTime()) / 1000)));
    result.expired = await releaseExpiredHolds(db, { chainId, chainTime, graceSeconds: options.holdGraceSeconds ?? 0 });
    if (result.expired > 0) options.log?.info({ chainId, released: result.expired, chainTime: chainTime.toISOString() }, "expired holds released");
  }
  return result;
}

/**
 * Our paymasters' UserOperationEvents in the range, from every EntryPoint the chain serves, in one eth_getLogs:
 * the event is the same in v0.7, v0.8 and v0.9. A log counts only when its EntryPoint is the one its paymaster
 * serves (a paymaster validates for its own EntryPoint only, so nothing else can occur; checked anyway).
 */
async function readEvents(chain: ChainRuntime, fromBlock: bigint, toBlock: bigint) {
  const logs = await chain.client.getLogs({
    address: chain.entryPoints.map((ep) => ep.address),
    event: userOperationEvent,
    args: { paymaster: chain.entryPoints.map((ep) => ep.paymaster) },
    fromBlock,
    toBlock,
  });
  return logs.filter((log) => {
    const ep = chain.entryPoint(log.address);
    return ep !== undefined && log.args.paymaster !== undefined && isAddressEqual(log.args.paymaster, ep.paymaster);
  });
}

/** Stores the cursor at `blockNumber` with its hash and timestamp (the chain time holds expire by). */
async function storeCursor(db: Database, chain: ChainRuntime, at: bigint, header?: { hash: Hex; timestamp: bigint }): Promise<void> {
  // before the first block: the genesis block carries no UserOperationEvent
  const blockNumber = at < 0n ? 0n : at;
  const block = header ?? (await chain.client.getBlock({ blockNumber }));
  await db.query(
    `INSERT INTO chain_cursors (chain_id, block_number, block_hash, block_timestamp) VALUES ($1, $2, $3, $4)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = $2, block_hash = $3, block_timestamp = $4, updated_at = now()`,
    [chain.config.chainId, blockNumber, block.hash.toLowerCase(), new Date(Number(block.timestamp) * 1000).toISOString()],
  );
}

/** Settles one event, counting and logging the outcome; a failure of its own is recorded and does not stop the pass. */
async function settleOne(db: Database, chain: ChainRuntime, event: UserOperationEventLog, result: SettleRunResult, options: SettleOptions): Promise<boolean> {
  const chainId = chain.config.chainId;
  const label = { chain: String(chainId) };
  let outcome: SettleOutcome;
  try {
    outcome = await db.transaction((tx) => settleEvent(tx, chainId, event));
  } catch (error) {
    if (isOutage(error)) throw error;
    await recordFailure(db, { chainId, kind: "settle", userOpHash: event.userOpHash.toLowerCase(), event, error });
    result.failed++;
    options.metrics?.settlementFailures.inc({ ...label, kind: "settle" });
    options.log?.error(
      { chainId, userOpHash: event.userOpHash, blockNumber: event.blockNumber.toString(), err: shortMessage(error), alert: true },
      "ALERT: an operation could not be settled; recorded in settlement_failures, retried every pass, its hold kept",
    );
    return false;
  }
  if (outcome.result === "settled") {
    result.settled++;
    if (outcome.late) result.late++;
    options.metrics?.settlements.inc({ ...label, result: outcome.late ? "late" : event.success ? "success" : "reverted" });
    options.metrics?.chargedFen.inc(label, Number(outcome.chargedFen));
    options.metrics?.releasedFen.inc({ ...label, why: "settled" }, Number(outcome.releasedFen));
    options.log?.info(
      { chainId, userOpHash: event.userOpHash, chargedFen: outcome.chargedFen.toString(), releasedFen: outcome.releasedFen.toString(), success: event.success },
      "operation settled",
    );
    if (outcome.shortfallFen > 0n) {
      options.metrics?.shortfallFen.inc(label, Number(outcome.shortfallFen));
      options.log?.error(
        { chainId, userOpHash: event.userOpHash, account: outcome.account, chargedFen: outcome.chargedFen.toString(), shortfallFen: outcome.shortfallFen.toString(), alert: true },
        "ALERT: an operation cost more than its account had held and available; the shortfall is recorded",
      );
    } else if (outcome.late) {
      options.log?.warn({ chainId, userOpHash: event.userOpHash, chargedFen: outcome.chargedFen.toString() }, "an operation landed after its hold was closed; charged from the account");
    }
  } else if (outcome.result === "unknown") {
    result.unknown++;
    options.metrics?.unknownOperations.inc(label);
    options.log?.error(
      { chainId, userOpHash: event.userOpHash, sender: event.sender, actualGasCost: event.actualGasCost.toString(), alert: true },
      "ALERT: our paymaster paid for an operation we have no hold for",
    );
  }
  return true;
}

/** Undoes the settlements at or after `fromBlock` whose block is no longer on the chain. */
async function undoReorged(db: Database, chain: ChainRuntime, fromBlock: bigint, result: SettleRunResult, options: SettleOptions): Promise<void> {
  const chainId = chain.config.chainId;
  const { rows } = await db.query<{ id: bigint; block_number: bigint; block_hash: string }>(
    "SELECT id, block_number, block_hash FROM settlements WHERE chain_id = $1 AND status = 'settled' AND block_number >= $2 ORDER BY block_number DESC",
    [chainId, fromBlock],
  );
  const canonical = new Map<bigint, string | null>();
  for (const row of rows) {
    if (!canonical.has(row.block_number)) canonical.set(row.block_number, await canonicalHash(chain, row.block_number));
    if (canonical.get(row.block_number) === row.block_hash) continue;
    if (await undoOne(db, chainId, row.id, result, options)) result.reorged++;
  }
}

async function undoOne(db: Database, chainId: number, settlementId: bigint, result: SettleRunResult, options: SettleOptions): Promise<boolean> {
  try {
    return await db.transaction((tx) => undoSettlement(tx, settlementId));
  } catch (error) {
    if (isOutage(error)) throw error;
    await recordFailure(db, { chainId, kind: "undo", settlementId, error });
    result.failed++;
    options.metrics?.settlementFailures.inc({ chain: String(chainId), kind: "undo" });
    options.log?.error(
      { chainId, settlementId: settlementId.toString(), err: shortMessage(error), alert: true },
      "ALERT: a settlement a reorg removed could not be undone; recorded in settlement_failures and retried every pass",
    );
    return false;
  }
}

/** The hash of block `n` on the chain now, or null if it has none. An RPC failure throws (an outage). */
async function canonicalHash(chain: ChainRuntime, blockNumber: bigint): Promise<string | null> {
  try {
    return (await chain.client.getBlock({ blockNumber })).hash.toLowerCase();
  } catch (error) {
    if (error instanceof Error && /BlockNotFound|could not be found/i.test(error.name + error.message)) return null;
    throw error;
  }
}

/** Retries the chain's open settlement_failures: events whose block is still canonical settle, undos run again. */
async function retryFailures(db: Database, chain: ChainRuntime, result: SettleRunResult, options: SettleOptions): Promise<void> {
  const chainId = chain.config.chainId;
  const { rows } = await db.query<{ id: bigint; kind: "settle" | "undo"; settlement_id: bigint | null; event: Record<string, string | number | boolean> | null }>(
    "SELECT id, kind, settlement_id, event FROM settlement_failures WHERE chain_id = $1 AND resolved_at IS NULL ORDER BY id LIMIT 100",
    [chainId],
  );
  for (const row of rows) {
    let resolution: string | undefined;
    if (row.kind === "undo" && row.settlement_id !== null) {
      if (await undoOne(db, chainId, row.settlement_id, result, options)) result.reorged++;
      const { rows: s } = await db.query<{ status: string }>("SELECT status FROM settlements WHERE id = $1", [row.settlement_id]);
      if (s[0]?.status !== "settled") resolution = "undone";
    } else if (row.kind === "settle" && row.event) {
      const event = fromJson(row.event);
      if ((await canonicalHash(chain, event.blockNumber)) !== event.blockHash.toLowerCase()) resolution = "block no longer on the chain";
      else if (await settleOne(db, chain, event, result, options)) resolution = "settled";
    }
    if (resolution) {
      result.recovered++;
      await db.query("UPDATE settlement_failures SET resolved_at = now(), resolution = $2, updated_at = now() WHERE id = $1", [row.id, resolution]);
      options.log?.info({ chainId, failureId: row.id.toString(), resolution }, "settlement failure resolved");
    }
  }
}

async function recordFailure(
  db: Database,
  p: { chainId: number; kind: "settle" | "undo"; userOpHash?: string; settlementId?: bigint; event?: UserOperationEventLog; error: unknown },
): Promise<void> {
  await db.query(
    `INSERT INTO settlement_failures (chain_id, kind, user_op_hash, settlement_id, event, error) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (chain_id, kind, COALESCE(user_op_hash, ''), COALESCE(settlement_id, 0)) WHERE resolved_at IS NULL
     DO UPDATE SET attempts = settlement_failures.attempts + 1, error = EXCLUDED.error, updated_at = now()`,
    [p.chainId, p.kind, p.userOpHash ?? null, p.settlementId ?? null, p.event ? JSON.stringify(p.event, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) : null, shortMessage(p.error)],
  );
}

/** A database or RPC outage fails the whole pass (retried next tick); anything else is this row's own problem. */
function isOutage(error: unknown): boolean {
  return isDatabaseUnavailable(error) || (error instanceof Error && error.name === "AbortError");
}

/** The RPC answered with a JSON-RPC error (it refused the request), as opposed to not answering at all. */
function isRpcRefusal(error: unknown): boolean {
  return error instanceof Error && "walk" in error && typeof error.walk === "function" && error.walk((e: unknown) => e instanceof RpcRequestError) instanceof RpcRequestError;
}

function shortMessage(error: unknown): string {
  const e = error as { shortMessage?: string; message?: string };
  return (e?.shortMessage ?? e?.message ?? String(error)).split("\n")[0]!.slice(0, 500);
}

function toEvent(log: Log<bigint, number, false, typeof userOperationEvent>): UserOperationEventLog {
  const args = log.args as { userOpHash: Hex; sender: string; nonce: bigint; success: boolean; actualGasCost: bigint; actualGasUsed: bigint };
  return {
    entryPoint: getAddress(log.address),
    userOpHash: args.userOpHash,
    sender: args.sender,
    nonce: args.nonce,
    success: args.success,
    actualGasCost: args.actualGasCost,
    actualGasUsed: args.actualGasUsed,
    blockNumber: log.blockNumber,
    blockHash: log.blockHash,
    transactionHash: log.transactionHash,
    logIndex: log.logIndex,
  };
}

function fromJson(e: Record<string, string | number | boolean>): UserOperationEventLog {
  return {
    // failures recorded before other EntryPoints were served are v0.7's
    entryPoint: typeof e.entryPoint === "string" ? getAddress(e.entryPoint) : ENTRY_POINT_V07,
    userOpHash: e.userOpHash as Hex,
    sender: String(e.sender),
    nonce: BigInt(e.nonce as string),
    success: e.success === true,
    actualGasCost: BigInt(e.actualGasCost as string),
    actualGasUsed: BigInt(e.actualGasUsed as string),
    blockNumber: BigInt(e.blockNumber as string),
    blockHash: e.blockHash as Hex,
    transactionHash: e.transactionHash as Hex,
    logIndex: Number(e.logIndex),
  };
}
