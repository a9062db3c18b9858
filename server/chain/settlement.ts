/**
 * Settlement: turns the chain's `UserOperationEvent`s for our paymaster into ledger charges (SPEC §5.2).
 *
 * The worker reads logs up to `head − confirmations`, from a cursor persisted with the hash of its block. Each
 * event's userOpHash finds the hold it was signed under; the account is charged ceil(actualGasCost × the quote
 * locked at signing) and the rest of the hold is released — reverted operations too, since the paymaster paid
 * for them. A paid userOpHash we never signed is recorded and alerted. If the cursor's block is no longer on
 * the chain, a reorg happened: settlements in the last `reorgWindow` blocks whose block hash changed are undone
 * (`unsettle:<id>` entries) and the range is read again, so an operation that moved to another block settles
 * again, and one that vanished gets its hold back. Every step is idempotent, so a crash anywhere repeats work
 * without repeating money.
 */
import { type Hex, type Log, parseAbiItem } from "viem";
import type { Database, Queryable } from "../db/database";
import type { Logger } from "../http/logging";
import type { Metrics } from "../http/metrics";
import { charge, hold, lockBalance, release, reverseCharge } from "../ledger/ledger";
import { chargeFen } from "../sponsor/pricing";
import type { ChainRuntime } from "./chainRuntime";

export const userOperationEvent = parseAbiItem(
  "event UserOperationEvent(bytes32 indexed userOpHash, address indexed sender, address indexed paymaster, uint256 nonce, bool success, uint256 actualGasCost, uint256 actualGasUsed)",
);

export type UserOperationEventLog = {
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
  | { result: "settled"; settlementId: bigint; chargedFen: bigint; releasedFen: bigint; account: string }
  | { result: "duplicate" }
  | { result: "unknown"; settlementId: bigint }
  | { result: "late"; settlementId: bigint; holdStatus: string };

/** Settles one event in `tx`. A second call for the same event does nothing. */
export async function settleEvent(tx: Queryable, chainId: number, event: UserOperationEventLog): Promise<SettleOutcome> {
  const hash = event.userOpHash.toLowerCase();
  const { rows } = await tx.query<{ hold_id: string; fen_per_native: bigint; markup_bps: number; account: string }>(
    `SELECT so.hold_id, so.fen_per_native, so.markup_bps, h.account
       FROM sponsored_operations so JOIN holds h ON h.id = so.hold_id
      WHERE so.user_op_hash = $1 AND h.chain_id = $2`,
    [hash, chainId],
  );
  const signed = rows[0];
  if (signed) await lockBalance(tx, signed.account); // serialises with holds of the same account
  const holdRow = signed
    ? (await tx.query<{ status: string; amount_fen: bigint }>("SELECT status, amount_fen FROM holds WHERE id = $1 FOR UPDATE", [signed.hold_id])).rows[0]
    : undefined;
  const { rows: inserted } = await tx.query<{ id: bigint }>(
    `INSERT INTO settlements (chain_id, user_op_hash, hold_id, account, nonce, success, actual_gas_cost_wei, actual_gas_used,
                              block_number, block_hash, transaction_hash, log_index, status)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'settled')
     ON CONFLICT (chain_id, user_op_hash) WHERE status = 'settled' DO NOTHING
     RETURNING id`,
    [
      chainId,
      hash,
      signed?.hold_id ?? null,
      event.sender.toLowerCase(),
      event.nonce.toString(),
      event.success,
      event.actualGasCost.toString(),
      event.actualGasUsed.toString(),
      event.blockNumber,
      event.blockHash.toLowerCase(),
      event.transactionHash.toLowerCase(),
      event.logIndex,
    ],
  );
  const settlementId = inserted[0]?.id;
  if (settlementId === undefined) return { result: "duplicate" };
  if (!signed || !holdRow) return { result: "unknown", settlementId };
  if (holdRow.status !== "open") return { result: "late", settlementId, holdStatus: holdRow.status };

  const cost = chargeFen(event.actualGasCost, { fenPerNative: signed.fen_per_native, markupBps: signed.markup_bps });
  // the hold is the worst case at the same quote, so cost ≤ hold; the min only guards against a broken invariant
  const charged = cost < holdRow.amount_fen ? cost : holdRow.amount_fen;
  const released = holdRow.amount_fen - charged;
  const reference = `settle:${settlementId}`;
  if (charged > 0n) await charge(tx, { account: signed.account, reservationId: reference, amountFen: charged });
  if (released > 0n) await release(tx, { account: signed.account, reservationId: reference, amountFen: released });
  await tx.query("UPDATE holds SET status = 'settled', charged_fen = $2, updated_at = now() WHERE id = $1", [signed.hold_id, charged]);
  await tx.query("UPDATE settlements SET charged_fen = $2, released_fen = $3 WHERE id = $1", [settlementId, charged, released]);
  return { result: "settled", settlementId, chargedFen: charged, releasedFen: released, account: signed.account };
}

/**
 * Undoes a settlement whose block a reorg replaced: the charge goes back to held, the released rest is held
 * again (as far as the account still has it), and the hold is open once more — the operation may land again,
 * and if it does not, the hold expires as usual.
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
  await tx.query(
    `UPDATE holds SET status = CASE WHEN $2::bigint > 0 THEN 'open' ELSE 'released' END,
                      amount_fen = CASE WHEN $2::bigint > 0 THEN $2::bigint ELSE amount_fen END,
                      charged_fen = NULL, updated_at = now()
      WHERE id = $1`,
    [s.hold_id, amount],
  );
  return true;
}

export type SettleRunResult = { fromBlock: bigint; toBlock: bigint; settled: number; unknown: number; late: number; reorged: number; lagBlocks: bigint };

/** How far back a reorg is looked for once detected. */
const DEFAULT_REORG_WINDOW = 128n;

/** One pass over a chain: reorg check, then every confirmed block since the cursor. */
export async function settleChain(
  db: Database,
  chain: ChainRuntime,
  options: { log?: Logger; metrics?: Metrics; reorgWindow?: bigint; maxBlocks?: bigint } = {},
): Promise<SettleRunResult> {
  const { client, config } = chain;
  const chainId = config.chainId;
  const label = { chain: String(chainId) };
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const safe = head - BigInt(config.confirmations);
  const range = BigInt(config.logRange);
  const { rows } = await db.query<{ block_number: bigint; block_hash: string }>("SELECT block_number, block_hash FROM chain_cursors WHERE chain_id = $1", [chainId]);
  let cursor = rows[0] ? rows[0].block_number : safe - range < 0n ? -1n : safe - range;
  let reorged = 0;

  if (rows[0] && rows[0].block_number <= head) {
    const block = await client.getBlock({ blockNumber: rows[0].block_number });
    if (block.hash.toLowerCase() !== rows[0].block_hash) {
      const window = options.reorgWindow ?? DEFAULT_REORG_WINDOW;
      const from = cursor - window < 0n ? 0n : cursor - window;
      reorged = await undoReorged(db, chain, from);
      options.log?.warn({ chainId, cursorBlock: cursor.toString(), undone: reorged }, "reorg detected: settlements re-read");
      options.metrics?.reorgs.inc(label, reorged);
      cursor = from - 1n;
    }
  } else if (rows[0]) {
    // the chain is shorter than our cursor (a deep reorg or a reset chain): re-read the window
    const from = head - (options.reorgWindow ?? DEFAULT_REORG_WINDOW);
    reorged = await undoReorged(db, chain, from < 0n ? 0n : from);
    cursor = from < 0n ? -1n : from - 1n;
  }

  const result: SettleRunResult = { fromBlock: cursor + 1n, toBlock: cursor, settled: 0, unknown: 0, late: 0, reorged, lagBlocks: 0n };
  const limit = options.maxBlocks ? cursor + options.maxBlocks : safe;
  const end = limit < safe ? limit : safe;
  while (cursor < end) {
    const fromBlock = cursor + 1n;
    const toBlock = fromBlock + range - 1n < end ? fromBlock + range - 1n : end;
    const [logs, block] = await Promise.all([
      client.getLogs({ address: config.entryPoint, event: userOperationEvent, args: { paymaster: config.paymaster }, fromBlock, toBlock }),
      client.getBlock({ blockNumber: toBlock }),
    ]);
    for (const log of logs) {
      const event = toEvent(log);
      const outcome = await db.transaction((tx) => settleEvent(tx, chainId, event));
      if (outcome.result === "settled") {
        result.settled++;
        options.metrics?.settlements.inc({ ...label, result: event.success ? "success" : "reverted" });
        options.metrics?.chargedFen.inc(label, Number(outcome.chargedFen));
        options.metrics?.releasedFen.inc({ ...label, why: "settled" }, Number(outcome.releasedFen));
        options.log?.info({ chainId, userOpHash: event.userOpHash, chargedFen: outcome.chargedFen.toString(), releasedFen: outcome.releasedFen.toString(), success: event.success }, "operation settled");
      } else if (outcome.result === "unknown") {
        result.unknown++;
        options.metrics?.unknownOperations.inc(label);
        options.log?.error({ chainId, userOpHash: event.userOpHash, sender: event.sender, actualGasCost: event.actualGasCost.toString(), alert: true }, "ALERT: our paymaster paid for an operation we have no hold for");
      } else if (outcome.result === "late") {
        result.late++;
        options.log?.error({ chainId, userOpHash: event.userOpHash, holdStatus: outcome.holdStatus, alert: true }, "ALERT: an operation landed after its hold was closed; not charged");
      }
    }
    await db.query(
      `INSERT INTO chain_cursors (chain_id, block_number, block_hash) VALUES ($1, $2, $3)
       ON CONFLICT (chain_id) DO UPDATE SET block_number = $2, block_hash = $3, updated_at = now()`,
      [chainId, toBlock, block.hash.toLowerCase()],
    );
    cursor = toBlock;
    result.toBlock = toBlock;
  }
  result.lagBlocks = head - cursor;
  options.metrics?.settlementLagBlocks.set(label, Number(result.lagBlocks));
  return result;
}

/** Undoes the settlements at or after `fromBlock` whose block is no longer on the chain. */
async function undoReorged(db: Database, chain: ChainRuntime, fromBlock: bigint): Promise<number> {
  const chainId = chain.config.chainId;
  const { rows } = await db.query<{ id: bigint; block_number: bigint; block_hash: string }>(
    "SELECT id, block_number, block_hash FROM settlements WHERE chain_id = $1 AND status = 'settled' AND block_number >= $2 ORDER BY block_number DESC",
    [chainId, fromBlock],
  );
  const canonical = new Map<bigint, string | null>();
  let undone = 0;
  for (const row of rows) {
    if (!canonical.has(row.block_number)) {
      const block = await chain.client.getBlock({ blockNumber: row.block_number }).catch(() => null);
      canonical.set(row.block_number, block?.hash.toLowerCase() ?? null);
    }
    if (canonical.get(row.block_number) === row.block_hash) continue;
    if (await db.transaction((tx) => undoSettlement(tx, row.id))) undone++;
  }
  return undone;
}

function toEvent(log: Log<bigint, number, false, typeof userOperationEvent>): UserOperationEventLog {
  const args = log.args as { userOpHash: Hex; sender: string; nonce: bigint; success: boolean; actualGasCost: bigint; actualGasUsed: bigint };
  return {
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
