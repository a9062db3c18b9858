/**
 * The chain tie-out of the daily reconciliation: for one (chain, EntryPoint) and one CST day, the chain's
 * `UserOperationEvent`s for our paymaster against our settlements, each settlement's charge against the price
 * locked at signing and against the ledger, and the paymaster's EntryPoint deposit against the day's events.
 *
 * The chain is the truth: a settlement the chain does not have, an event no settlement records, a cost or a charge
 * that differs, a deposit change the events do not explain, each is a difference. Nothing is changed here: the
 * settlement worker owns settlements, the ledger owns balances; this only reads and reports.
 *
 * A day ties out only once it is final on both sides: the chain's confirmed head (head − the settlement worker's
 * confirmations) is past the day's end, and the settlement cursor has read the day's last block. Before that the
 * result is `not_ready`, which a later run replaces.
 *
 * It sits in reconciliation/, not chain/: it prices charges with the sponsorship's own rule (`chargeFen`), and
 * chain/ sits below the domains.
 */
import { type Address, type BaseError, type PublicClient, getAbiItem } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import type { DatabaseUnavailableError, Queryable } from "../platform/db/database";
import { type Difference, type ScopeResult, dayBounds } from "./difference";
import { chargeFen } from "../sponsorship/pricing";
import type { ChainRuntime, EntryPointRuntime } from "../chain/chainRuntime";

// the three events and balanceOf are the same in EntryPoint v0.7, v0.8 and v0.9 (only internalType annotations differ)
const userOperationEvent = getAbiItem({ abi: entryPoint07Abi, name: "UserOperationEvent" });
const depositedEvent = getAbiItem({ abi: entryPoint07Abi, name: "Deposited" });
const withdrawnEvent = getAbiItem({ abi: entryPoint07Abi, name: "Withdrawn" });
const balanceOfAbi = [getAbiItem({ abi: entryPoint07Abi, name: "balanceOf" })] as const;

export type TieOutChainDayParameters = {
  db: Queryable;
  chain: ChainRuntime;
  /** One of `chain.entryPoints`: the EntryPoint and our paymaster for it. */
  entryPoint: EntryPointRuntime;
};

export type TieOutChainDayReturnType = ScopeResult;

/** A malformed day (RangeError), or an outage: the RPC (viem's errors) or the database did not answer. */
export type TieOutChainDayErrorType = RangeError | BaseError | DatabaseUnavailableError;

/** The scope of a chain tie-out: `chain:<chainId>:<entryPoint lower-case>`. */
export function chainScope(chainId: number, entryPoint: Address): string {
  return `chain:${chainId}:${entryPoint.toLowerCase()}`;
}

/**
 * Ties out `day` (YYYY-MM-DD, China Standard Time) for one EntryPoint of one chain. Throws only on an outage (the
 * RPC or the database does not answer) or a malformed day; a chain without historical state still gets every
 * other check, with the deposit's marked "unavailable" in the figures.
 */
export async function tieOutChainDay(deps: TieOutChainDayParameters, day: string): Promise<TieOutChainDayReturnType> {
  const { db, chain, entryPoint } = deps;
  const client = chain.client;
  const chainId = chain.config.chainId;
  const scope = chainScope(chainId, entryPoint.address);
  const { start, end } = dayBounds(day);
  const startSeconds = BigInt(start.getTime() / 1000);
  const endSeconds = BigInt(end.getTime() / 1000);
  const notReady = (detail: string, figures: Record<string, string> = {}): ScopeResult => ({ scope, day, status: "not_ready", figures, differences: [], detail });

  // 1. the day's blocks, once the chain is final past its end and the settlement worker has read them
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const confirmed = head - BigInt(chain.config.confirmations);
  const timestamps = new Map<bigint, bigint>();
  const timestampOf = async (blockNumber: bigint) => {
    let t = timestamps.get(blockNumber);
    if (t === undefined) {
      t = (await client.getBlock({ blockNumber })).timestamp;
      timestamps.set(blockNumber, t);
    }
    return t;
  };
  if (confirmed < 0n || (await timestampOf(confirmed)) < endSeconds) {
    const at = confirmed < 0n ? "none yet" : `block ${confirmed} at ${isoOf(await timestampOf(confirmed))}`;
    return notReady(`the chain's confirmed head (${at}, ${chain.config.confirmations} confirmations) has not passed the day's end ${end.toISOString()}`, {
      confirmedHead: String(confirmed),
    });
  }
  const fromBlock = await firstBlockAtOrAfter(timestampOf, startSeconds, 0n, confirmed);
  const toBlock = (await firstBlockAtOrAfter(timestampOf, endSeconds, fromBlock, confirmed)) - 1n;
  const range = { fromBlock: String(fromBlock), toBlock: String(toBlock) };

  const { rows: cursors } = await db.query<{ block_number: bigint }>("SELECT block_number FROM chain_cursors WHERE chain_id = $1", [chainId]);
  const cursor = cursors[0]?.block_number;
  if (cursor === undefined || cursor < toBlock) {
    return notReady(
      cursor === undefined
        ? `the settlement worker has not read this chain yet; the day ends at block ${toBlock}`
        : `the settlement cursor is at block ${cursor}, before the day's last block ${toBlock}`,
      { ...range, settlementCursor: cursor === undefined ? "none" : String(cursor) },
    );
  }

  // 2. both sides: the chain's events for our paymaster, our settlements in the same blocks
  const logs = toBlock >= fromBlock ? await readDayLogs(client, entryPoint, fromBlock, toBlock, BigInt(chain.config.logRange)) : [];
  const settlements = await readSettlements(db, chainId, entryPoint.address, fromBlock, toBlock);

  const differences: Difference[] = [];
  const events = new Map<string, OperationLog>();
  for (const log of logs) if (log.kind === "operation") events.set(log.userOpHash, log);
  let chainGasCost = 0n;
  for (const e of events.values()) chainGasCost += e.actualGasCost;
  let settledGasCost = 0n;
  let expectedCharge = 0n;
  let charged = 0n;
  let shortfall = 0n;
  let ledgerCharge = 0n;
  let unknown = 0;

  for (const s of settlements) {
    const recordedCost = BigInt(s.actual_gas_cost_wei);
    settledGasCost += recordedCost;
    charged += s.charged_fen;
    shortfall += s.shortfall_fen;
    ledgerCharge += BigInt(s.ledger_charge_fen);
    const event = events.get(s.user_op_hash);
    if (!event || event.blockHash !== s.block_hash) {
      differences.push({
        kind: "settlement_not_on_chain",
        reference: s.user_op_hash,
        expected: `block ${s.block_number} ${s.block_hash}`,
        actual: event ? `block ${event.blockNumber} ${event.blockHash}` : "absent",
        cause: event
          ? "the operation is on the chain in another block than the settlement records (a reorg the settlement worker has not undone)"
          : "the chain has no UserOperationEvent for this settlement in its block (reorged away, or never there)",
      });
      continue;
    }
    if (recordedCost !== event.actualGasCost) {
      differences.push({
        kind: "cost_mismatch",
        reference: s.user_op_hash,
        expected: `${recordedCost} wei`,
        actual: `${event.actualGasCost} wei`,
        cause: "the settlement's actualGasCost is not the event's",
      });
    }
    // what settlement charges: ceil(the chain's actualGasCost × the quote locked at signing), not capped by the hold
    // or max_charge_fen — what the account could not pay is the shortfall; an operation we never signed charges no one
    const quote = s.fen_per_native === null || s.markup_bps === null ? undefined : { fenPerNative: s.fen_per_native, markupBps: s.markup_bps };
    if (!quote) unknown++;
    const expected = quote ? chargeFen(event.actualGasCost, quote) : 0n;
    expectedCharge += expected;
    if (s.charged_fen + s.shortfall_fen !== expected) {
      differences.push({
        kind: "charge_mismatch",
        reference: s.user_op_hash,
        expected: `${expected} fen`,
        actual: `${s.charged_fen} fen charged + ${s.shortfall_fen} fen shortfall`,
        cause: quote
          ? `the charge is not ceil(${event.actualGasCost} wei × ${quote.fenPerNative} fen/native × (1 + ${quote.markupBps} bps)) at the price locked at signing`
          : "an operation we never signed was charged",
      });
    }
    if (BigInt(s.ledger_charge_fen) !== s.charged_fen) {
      differences.push({
        kind: "ledger_mismatch",
        reference: s.user_op_hash,
        expected: `${s.charged_fen} fen`,
        actual: `${s.ledger_charge_fen} fen`,
        cause: `the ledger's charge entries (settle:${s.id}, settle:${s.id}:available) are not the settlement's charged_fen`,
      });
    }
  }

  const recorded = new Set(settlements.map((s) => s.user_op_hash));
  const unsettled = [...events.values()].filter((e) => !recorded.has(e.userOpHash));
  const elsewhere = await settledElsewhere(db, chainId, entryPoint.address, unsettled.map((e) => e.userOpHash));
  for (const e of unsettled) {
    const other = elsewhere.get(e.userOpHash);
    differences.push({
      kind: "unsettled_operation",
      reference: e.userOpHash,
      expected: other ? `settled at block ${other.block_number} ${other.block_hash}` : "absent",
      actual: `${e.actualGasCost} wei at block ${e.blockNumber} (${e.transactionHash})`,
      cause: other
        ? "our paymaster paid for this operation in this day's blocks; its settlement records another block (a reorg the settlement worker has not followed)"
        : "our paymaster paid for this operation and no settlement records it",
    });
  }

  // 3. the deposit: its change over the day against the day's events
  const deposit = await replayDeposit(client, entryPoint, logs, fromBlock, toBlock);
  const figures: Record<string, string> = {
    ...range,
    settlementCursor: String(cursor),
    chainOperations: String(events.size),
    chainGasCostWei: String(chainGasCost),
    settledOperations: String(settlements.length),
    settledGasCostWei: String(settledGasCost),
    unknownOperations: String(unknown),
    expectedChargeFen: String(expectedCharge),
    chargedFen: String(charged),
    shortfallFen: String(shortfall),
    ledgerChargeFen: String(ledgerCharge),
    withdrawalsWei: String(deposit.withdrawals),
  };
  let detail: string | undefined;
  if (deposit.unavailable !== undefined) {
    figures.depositCheck = "unavailable";
    figures.depositCheckDetail = deposit.unavailable;
    detail = `deposit check unavailable: ${deposit.unavailable}`;
  } else {
    const { start, end, deposits, withdrawals, unexplained } = deposit;
    const replayed = start + deposits - withdrawals - chainGasCost;
    figures.depositStartWei = String(start);
    figures.depositEndWei = String(end);
    figures.depositsWei = String(deposits);
    figures.depositReplayedEndWei = String(replayed);
    // unexplained changes before a deposit are found at its block; the rest shows at the end
    const gaps = [...unexplained];
    const tail = end - (replayed + unexplained.reduce((sum, u) => sum + u.wei, 0n));
    if (tail !== 0n) gaps.push({ beforeBlock: toBlock + 1n, wei: tail });
    figures.depositCheck = gaps.length === 0 ? "ties_out" : "mismatch";
    if (gaps.length > 0) {
      differences.push({
        kind: "deposit_mismatch",
        reference: "deposit",
        expected: `${replayed} wei`,
        actual: `${end} wei`,
        cause:
          `the deposit went from ${start} to ${end} wei; the day's events (deposits ${deposits}, withdrawals ${withdrawals}, gas ${chainGasCost}) explain ${replayed}; ` +
          `unexplained: ${gaps.map((g) => `${g.wei > 0n ? "+" : ""}${g.wei} wei before block ${g.beforeBlock}`).join(", ")}`,
      });
    }
  }
  return { scope, day, status: differences.length === 0 ? "ties_out" : "differences", figures, differences, ...(detail ? { detail } : {}) };
}

type OperationLog = { kind: "operation"; userOpHash: string; actualGasCost: bigint; blockNumber: bigint; blockHash: string; transactionHash: string; logIndex: number };
type DepositLog = { kind: "deposit"; totalDeposit: bigint; blockNumber: bigint; logIndex: number };
type WithdrawalLog = { kind: "withdrawal"; amount: bigint; blockNumber: bigint; logIndex: number };
type DayLog = OperationLog | DepositLog | WithdrawalLog;

/**
 * The lowest block in [lo, hi] whose timestamp is ≥ `t`, or hi + 1 if none; block timestamps never decrease.
 */
async function firstBlockAtOrAfter(timestampOf: (n: bigint) => Promise<bigint>, t: bigint, lo: bigint, hi: bigint): Promise<bigint> {
  let low = lo;
  let high = hi + 1n;
  while (low < high) {
    const mid = (low + high) / 2n;
    if ((await timestampOf(mid)) >= t) high = mid;
    else low = mid + 1n;
  }
  return low;
}

/** Our paymaster's operations, deposits and withdrawals on the EntryPoint in the blocks, in log order. */
async function readDayLogs(client: PublicClient, entryPoint: EntryPointRuntime, fromBlock: bigint, toBlock: bigint, chunk: bigint): Promise<DayLog[]> {
  const out: DayLog[] = [];
  const step = chunk > 0n ? chunk : 1_000n;
  for (let from = fromBlock; from <= toBlock; from += step) {
    const to = from + step - 1n < toBlock ? from + step - 1n : toBlock;
    const range = { address: entryPoint.address, fromBlock: from, toBlock: to, strict: true } as const;
    const [operations, deposited, withdrawn] = await Promise.all([
      client.getLogs({ ...range, event: userOperationEvent, args: { paymaster: entryPoint.paymaster } }),
      client.getLogs({ ...range, event: depositedEvent, args: { account: entryPoint.paymaster } }),
      client.getLogs({ ...range, event: withdrawnEvent, args: { account: entryPoint.paymaster } }),
    ]);
    for (const log of operations) {
      out.push({
        kind: "operation",
        userOpHash: log.args.userOpHash.toLowerCase(),
        actualGasCost: log.args.actualGasCost,
        blockNumber: log.blockNumber,
        blockHash: log.blockHash.toLowerCase(),
        transactionHash: log.transactionHash.toLowerCase(),
        logIndex: log.logIndex,
      });
    }
    for (const log of deposited) out.push({ kind: "deposit", totalDeposit: log.args.totalDeposit, blockNumber: log.blockNumber, logIndex: log.logIndex });
    for (const log of withdrawn) out.push({ kind: "withdrawal", amount: log.args.amount, blockNumber: log.blockNumber, logIndex: log.logIndex });
  }
  return out.sort((a, b) => (a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1));
}

type DepositReplay =
  | { unavailable: string; withdrawals: bigint }
  | { unavailable?: undefined; start: bigint; end: bigint; deposits: bigint; withdrawals: bigint; unexplained: { beforeBlock: bigint; wei: bigint }[] };

/**
 * The deposit at the block before the range and at its last block, and the day's events replayed in log order:
 * an operation takes its actualGasCost, a withdrawal its amount. `Deposited` carries the new total, not the amount,
 * so a deposit's amount is its total less the balance just before it — read at the block before the deposit's (a
 * change no event explains would otherwise pass for part of the deposit) and replayed from there. A read that fails
 * (an RPC without historical state) makes the check unavailable; withdrawals are known from their events alone.
 */
async function replayDeposit(client: PublicClient, entryPoint: EntryPointRuntime, logs: DayLog[], fromBlock: bigint, toBlock: bigint): Promise<DepositReplay> {
  let withdrawals = 0n;
  for (const log of logs) if (log.kind === "withdrawal") withdrawals += log.amount;
  const balances = new Map<bigint, bigint>();
  const balanceAt = async (blockNumber: bigint) => {
    // nothing is deposited before the genesis block
    if (blockNumber < 0n) return 0n;
    let balance = balances.get(blockNumber);
    if (balance === undefined) {
      balance = await client.readContract({ address: entryPoint.address, abi: balanceOfAbi, functionName: "balanceOf", args: [entryPoint.paymaster], blockNumber });
      balances.set(blockNumber, balance);
    }
    return balance;
  };
  try {
    const start = await balanceAt(fromBlock - 1n);
    const end = await balanceAt(toBlock >= fromBlock ? toBlock : fromBlock - 1n);
    let running = start;
    let deposits = 0n;
    let block = fromBlock - 1n;
    let checked = fromBlock - 1n;
    const unexplained: { beforeBlock: bigint; wei: bigint }[] = [];
    const depositBlocks = new Set(logs.filter((l) => l.kind === "deposit").map((l) => l.blockNumber));
    for (const log of logs) {
      if (log.blockNumber !== block) {
        block = log.blockNumber;
        // the balance at the start of a block with a deposit, read, against the replay (logs are in order)
        if (depositBlocks.has(block) && checked < block - 1n) {
          const read = await balanceAt(block - 1n);
          checked = block - 1n;
          if (read !== running) unexplained.push({ beforeBlock: block, wei: read - running });
          running = read;
        }
      }
      if (log.kind === "operation") running -= log.actualGasCost;
      else if (log.kind === "withdrawal") running -= log.amount;
      else {
        deposits += log.totalDeposit - running;
        running = log.totalDeposit;
      }
    }
    return { start, end, deposits, withdrawals, unexplained };
  } catch (error) {
    return { unavailable: `the RPC could not read the deposit at a past block (${shortMessage(error)})`, withdrawals };
  }
}

type SettlementRow = {
  id: bigint;
  user_op_hash: string;
  actual_gas_cost_wei: string;
  charged_fen: bigint;
  shortfall_fen: bigint;
  block_number: bigint;
  block_hash: string;
  fen_per_native: bigint | null;
  markup_bps: number | null;
  ledger_charge_fen: string;
};

/**
 * The settled rows of the EntryPoint in the blocks, each with the quote it was signed under (as settlement finds
 * it: the sponsored operation whose hold is on this chain) and what its ledger charge entries took.
 */
async function readSettlements(db: Queryable, chainId: number, entryPoint: Address, fromBlock: bigint, toBlock: bigint): Promise<SettlementRow[]> {
  const { rows } = await db.query<SettlementRow>(
    `SELECT s.id, s.user_op_hash, s.actual_gas_cost_wei::text AS actual_gas_cost_wei, s.charged_fen, s.shortfall_fen, s.block_number, s.block_hash,
            so.fen_per_native, so.markup_bps,
            (SELECT COALESCE(SUM(-(l.available_delta_fen + l.held_delta_fen)), 0)::text FROM ledger_entries l
              WHERE l.kind = 'charge' AND l.reference IN ('settle:' || s.id, 'settle:' || s.id || ':available')) AS ledger_charge_fen
       FROM settlements s
       LEFT JOIN (sponsored_operations so JOIN holds h ON h.id = so.hold_id) ON so.user_op_hash = s.user_op_hash AND h.chain_id = s.chain_id
      WHERE s.chain_id = $1 AND s.entry_point = $2 AND s.status = 'settled' AND s.block_number BETWEEN $3 AND $4
      ORDER BY s.block_number, s.log_index`,
    [chainId, entryPoint.toLowerCase(), fromBlock, toBlock],
  );
  return rows;
}

/** Settled rows for these operations outside the day's blocks (to say where an unsettled event's settlement went). */
async function settledElsewhere(db: Queryable, chainId: number, entryPoint: Address, hashes: string[]): Promise<Map<string, { block_number: bigint; block_hash: string }>> {
  if (hashes.length === 0) return new Map();
  const { rows } = await db.query<{ user_op_hash: string; block_number: bigint; block_hash: string }>(
    "SELECT user_op_hash, block_number, block_hash FROM settlements WHERE chain_id = $1 AND entry_point = $2 AND status = 'settled' AND user_op_hash = ANY($3::text[])",
    [chainId, entryPoint.toLowerCase(), hashes],
  );
  return new Map(rows.map((r) => [r.user_op_hash, r]));
}

function isoOf(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString();
}

/** viem's short message and, for an RPC error, what the node said ("missing trie node"). */
function shortMessage(error: unknown): string {
  type Described = { shortMessage?: string; message?: string; details?: string; cause?: unknown };
  const e = error as Described;
  const text = (e?.shortMessage ?? e?.message ?? String(error)).split("\n")[0]!;
  // viem wraps the RPC's answer (readContract → eth_call → the node's error): the innermost details are the node's words
  let details: string | undefined;
  for (let c: Described | undefined = e; c; c = c.cause as Described | undefined) if (typeof c.details === "string" && c.details) details = c.details;
  const said = details && !text.includes(details) ? `: ${details}` : "";
  return `${text}${said}`.slice(0, 300);
}

