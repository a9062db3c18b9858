/**
 * Holds: the worst-case charge of a UserOperation, reserved from the account's available quota before its
 * paymasterData leaves the server. Rules (docs/architecture.md, "A sponsorship"):
 *   - one open hold per (chain, EntryPoint, sender, nonce); a repeated request for the same key replaces it and keeps the
 *     larger amount — only one operation with that nonce can ever execute;
 *   - a replacement keeps the hold's validUntil (its signature is signed with it), so re-asking never stretches
 *     how long quota stays reserved;
 *   - at most `maxHolds` open holds per sender, `maxHoldsPerApiKey` of them taken through one API key and
 *     `maxHoldsPerIp` from one client IP, so no single caller can take every hold a sender may have;
 *   - the hold and the operation's locked quote commit before the signature is returned.
 * Reservations are group-committed (server/db/groupCommit.ts): one transaction locks every account of the
 * batch in address order (no deadlocks between batches), decides each request in memory against the locked
 * balances, and writes all holds and ledger entries with a few array statements.
 */
import { randomUUID } from "node:crypto";
import type { Hex } from "viem";
import { type Database, type Queryable, sqlTextArray } from "../platform/db/database";
import { GroupCommitter } from "../platform/db/groupCommit";
import { type BatchEntry, ledgerEntriesSql, lockBalance, release } from "../ledger/ledger";
import { SponsorError } from "./errors";
import type { ApiKey } from "./apiKeys";
import type { SelectedPolicy } from "./context";
import { spendPeriodStart } from "./policy";
import type { Quote } from "./pricing";

export type HoldRequest = {
  chainId: number;
  /** The EntryPoint the operation is for, lower-cased: each has its own nonces, so its own holds. */
  entryPoint: string;
  /** The sender, lower-cased: the account whose quota pays. */
  account: string;
  nonce: bigint;
  amountFen: bigint;
  maxCostWei: bigint;
  validUntil: Date;
  apiKeyId: string | null;
  /** The key's named policy that judged the request; null or absent: its default policy. */
  policyId?: string | null;
  /** The client IP the request came from, if known. */
  clientIp?: string;
  userOpHash: Hex;
  quote: Quote;
  maxHolds: number;
  /** Open holds one API key may hold on this sender (default: maxHolds). */
  maxHoldsPerApiKey?: number;
  /** Open holds one client IP may hold on this sender (default: maxHolds). */
  maxHoldsPerIp?: number;
};

/** The request was signed with another validUntil than the open hold for its nonce keeps: sign again with `validUntil`. */
export class HoldWindowConflict extends Error {
  override name = "HoldWindowConflict";
  constructor(readonly validUntil: Date) {
    super(`the open hold for this nonce is valid until ${validUntil.toISOString()}; sign with that`);
  }
}

export type HoldResult = {
  holdId: string;
  /** What the hold reserves now (the larger of the old and new amounts when it replaced one). */
  heldFen: bigint;
  replaced: boolean;
  /** What this request added to the hold (0 when it replaced a larger one). */
  addedFen: bigint;
  availableFen: bigint;
};

type OpenHold = {
  id: string;
  chainId: number;
  entryPoint: string;
  nonce: string;
  amountFen: bigint;
  revision: number;
  isNew: boolean;
  maxCostWei: bigint;
  validUntil: Date;
  apiKeyId: string | null;
  clientIp: string | null;
  policyId: string | null;
};

/** A sender as holds store it: a lower-case address (the only thing inlined into the batch's first script). */
const ACCOUNT_PATTERN = /^0x[0-9a-f]{40}$/;

/** Decides and writes one batch of hold requests in the transaction `tx`. */
export async function reserveHolds(tx: Queryable, requests: readonly HoldRequest[]): Promise<Array<HoldResult | SponsorError | HoldWindowConflict>> {
  const accounts = [...new Set(requests.map((r) => r.account))].sort();
  const balances = new Map<string, bigint>();
  const open = new Map<string, OpenHold[]>();
  // lock the batch's accounts (in address order: batches never deadlock), then read their open holds. Two
  // statements on purpose: under READ COMMITTED a statement that waited for a lock still reads with the snapshot
  // it started with, so holds committed by the batch that held the lock are only visible to the next statement.
  // One round trip for both (and the transaction's BEGIN): a script, each statement with its own snapshot.
  const list = sqlTextArray(accounts, ACCOUNT_PATTERN);
  const [locked, existing] = (await tx.script(
    `SELECT address, available_fen FROM accounts WHERE address = ANY(${list}) ORDER BY address FOR UPDATE;
     SELECT id, chain_id, entry_point, account, nonce, amount_fen, revision, max_cost_wei::text AS max_cost_wei, valid_until, api_key_id, client_ip
       FROM holds WHERE status = 'open' AND account = ANY(${list})`,
  )) as [
    Array<{ address: string; available_fen: bigint }>,
    Array<{
      id: string;
      chain_id: bigint;
      entry_point: string;
      account: string;
      nonce: string;
      amount_fen: bigint;
      revision: number;
      max_cost_wei: string;
      valid_until: Date;
      api_key_id: string | null;
      client_ip: string | null;
    }>,
  ];
  for (const row of locked) balances.set(row.address, BigInt(row.available_fen));
  for (const h of existing) {
    const list = open.get(h.account) ?? [];
    list.push({
      id: h.id,
      chainId: Number(h.chain_id),
      entryPoint: h.entry_point,
      nonce: h.nonce,
      amountFen: BigInt(h.amount_fen),
      revision: h.revision,
      isNew: false,
      maxCostWei: BigInt(h.max_cost_wei),
      validUntil: new Date(h.valid_until),
      apiKeyId: h.api_key_id,
      clientIp: h.client_ip,
      policyId: null,
    });
    open.set(h.account, list);
  }

  const results: Array<HoldResult | SponsorError | HoldWindowConflict> = [];
  const entries: BatchEntry[] = [];
  const touched = new Map<string, { hold: OpenHold; request: HoldRequest }>();
  const operations: Array<{ request: HoldRequest; holdId: string }> = [];

  for (const request of requests) {
    const available = balances.get(request.account) ?? 0n;
    const holds = open.get(request.account) ?? [];
    const nonce = request.nonce.toString();
    const same = holds.find((h) => h.chainId === request.chainId && h.entryPoint === request.entryPoint && h.nonce === nonce);
    const increase = same ? (request.amountFen > same.amountFen ? request.amountFen - same.amountFen : 0n) : request.amountFen;
    if (!same) {
      const full = capReached(holds, request);
      if (full) {
        results.push(full);
        continue;
      }
    }
    // the hold must cover every signature it backs, and re-asking must never stretch it: a request signed with a
    // later window is answered with the hold's (the sponsor signs again); an earlier one is covered already
    if (same && request.validUntil > same.validUntil) {
      results.push(new HoldWindowConflict(same.validUntil));
      continue;
    }
    if (increase > available) {
      results.push(
        new SponsorError(
          "insufficient_quota",
          `account ${request.account} has ${available} fen available; this operation needs a hold of ${increase} fen (its worst-case cost)`,
          { availableFen: available.toString(), requiredFen: increase.toString() },
        ),
      );
      continue;
    }
    const hold: OpenHold = same ?? {
      id: `h_${randomUUID()}`,
      chainId: request.chainId,
      entryPoint: request.entryPoint,
      nonce,
      amountFen: 0n,
      revision: 0,
      isNew: true,
      maxCostWei: 0n,
      validUntil: request.validUntil,
      apiKeyId: request.apiKeyId,
      clientIp: request.clientIp ?? null,
      policyId: request.policyId ?? null,
    };
    if (!same) {
      holds.push(hold);
      open.set(request.account, holds);
    }
    if (increase > 0n) {
      hold.revision++;
      hold.amountFen += increase;
      entries.push({ account: request.account, kind: "hold", availableDeltaFen: -increase, heldDeltaFen: increase, reference: `hold:${hold.id}:${hold.revision}` });
      balances.set(request.account, available - increase);
    }
    if (request.maxCostWei > hold.maxCostWei) hold.maxCostWei = request.maxCostWei;
    if (request.validUntil > hold.validUntil) hold.validUntil = request.validUntil;
    touched.set(hold.id, { hold, request });
    operations.push({ request, holdId: hold.id });
    results.push({ holdId: hold.id, heldFen: hold.amountFen, replaced: !!same, addedFen: increase, availableFen: available - increase });
  }

  if (operations.length === 0) return results;
  const held = [...touched.values()];
  // one statement for the holds (new and raised), the signed operations and the ledger: one round trip
  const ledger = ledgerEntriesSql(20, entries);
  await tx.query(
    `WITH incoming AS (
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::numeric[], $8::int[], $9::timestamptz[], $10::boolean[], $17::text[], $18::text[], $19::text[])
         AS t(id, chain_id, account, nonce, api_key_id, amount_fen, max_cost_wei, revision, valid_until, is_new, client_ip, policy_id, entry_point)
     ), created AS (
       INSERT INTO holds (id, chain_id, entry_point, account, nonce, api_key_id, client_ip, policy_id, status, amount_fen, max_cost_wei, revision, valid_until)
       SELECT id, chain_id, entry_point, account, nonce, api_key_id, client_ip, policy_id, 'open', amount_fen, max_cost_wei, revision, valid_until FROM incoming WHERE is_new
     ), raised AS (
       UPDATE holds h SET amount_fen = i.amount_fen, max_cost_wei = i.max_cost_wei, revision = i.revision, valid_until = i.valid_until, updated_at = now()
         FROM incoming i WHERE NOT i.is_new AND h.id = i.id
     ), signed AS (
       INSERT INTO sponsored_operations (user_op_hash, hold_id, fen_per_native, markup_bps, max_charge_fen, valid_until)
       SELECT * FROM unnest($11::text[], $12::text[], $13::bigint[], $14::int[], $15::bigint[], $16::timestamptz[])
       ON CONFLICT (user_op_hash) DO NOTHING
     ), ${ledger.sql}
     SELECT count(*) FROM entry`,
    [
      held.map((t) => t.hold.id),
      held.map((t) => t.request.chainId),
      held.map((t) => t.request.account),
      held.map((t) => t.hold.nonce),
      held.map((t) => t.hold.apiKeyId),
      held.map((t) => t.hold.amountFen.toString()),
      held.map((t) => t.hold.maxCostWei.toString()),
      held.map((t) => t.hold.revision),
      held.map((t) => t.hold.validUntil.toISOString()),
      held.map((t) => t.hold.isNew),
      operations.map((o) => o.request.userOpHash.toLowerCase()),
      operations.map((o) => o.holdId),
      operations.map((o) => o.request.quote.fenPerNative.toString()),
      operations.map((o) => o.request.quote.markupBps),
      operations.map((o) => o.request.amountFen.toString()),
      operations.map((o) => o.request.validUntil.toISOString()),
      held.map((t) => t.hold.clientIp),
      held.map((t) => t.hold.policyId),
      held.map((t) => t.hold.entryPoint),
      ...ledger.params,
    ],
  );
  return results;
}

/** The cap a new hold would go over (sender, API key on the sender, client IP on the sender), if any. */
function capReached(holds: ReadonlyArray<Pick<OpenHold, "apiKeyId" | "clientIp">>, request: Pick<HoldRequest, "account" | "apiKeyId" | "clientIp" | "maxHolds" | "maxHoldsPerApiKey" | "maxHoldsPerIp">): SponsorError | undefined {
  if (holds.length >= request.maxHolds) {
    return new SponsorError("too_many_holds", `sender ${request.account} already has ${holds.length} operations awaiting settlement (at most ${request.maxHolds}); wait for them to land or expire`, {
      scope: "sender",
      openHolds: holds.length,
      maxHolds: request.maxHolds,
    });
  }
  const perKey = request.maxHoldsPerApiKey ?? request.maxHolds;
  const byKey = request.apiKeyId === null ? 0 : holds.filter((h) => h.apiKeyId === request.apiKeyId).length;
  if (byKey >= perKey) {
    return new SponsorError("too_many_holds", `this API key already has ${byKey} operations of sender ${request.account} awaiting settlement (at most ${perKey} per sender and key); wait for them to land or expire`, {
      scope: "apiKey",
      openHolds: byKey,
      maxHolds: perKey,
    });
  }
  const perIp = request.maxHoldsPerIp ?? request.maxHolds;
  const byIp = request.clientIp === undefined ? 0 : holds.filter((h) => h.clientIp === request.clientIp).length;
  if (byIp >= perIp) {
    return new SponsorError("too_many_holds", `your address already has ${byIp} operations of sender ${request.account} awaiting settlement (at most ${perIp} per sender and client); wait for them to land or expire`, {
      scope: "ip",
      openHolds: byIp,
      maxHolds: perIp,
    });
  }
  return undefined;
}

/**
 * What the reservation would certainly refuse for this sender and nonce now, read without locks: too many open
 * holds, or no quota for even the smallest hold (1 fen) when no open hold for the nonce covers a replacement. The
 * stub call's early answer, so a wallet learns before estimating what the final call would refuse; the final call
 * decides again under lock.
 */
export async function previewHoldRefusal(db: Queryable, request: Pick<HoldRequest, "chainId" | "entryPoint" | "account" | "nonce" | "apiKeyId" | "clientIp" | "maxHolds" | "maxHoldsPerApiKey" | "maxHoldsPerIp">): Promise<SponsorError | undefined> {
  const [{ rows: balance }, { rows: open }] = await Promise.all([
    db.query<{ available_fen: bigint }>("SELECT available_fen FROM accounts WHERE address = $1", [request.account]),
    db.query<{ chain_id: bigint; entry_point: string; nonce: string; api_key_id: string | null; client_ip: string | null }>(
      "SELECT chain_id, entry_point, nonce, api_key_id, client_ip FROM holds WHERE status = 'open' AND account = $1",
      [request.account],
    ),
  ]);
  if (open.some((h) => Number(h.chain_id) === request.chainId && h.entry_point === request.entryPoint && h.nonce === request.nonce.toString())) return undefined;
  const holds = open.map((h) => ({ apiKeyId: h.api_key_id, clientIp: h.client_ip }));
  const full = capReached(holds, request);
  if (full) return full;
  const available = balance[0]?.available_fen ?? 0n;
  if (available < 1n) {
    return new SponsorError("insufficient_quota", `account ${request.account} has ${available} fen available; every sponsored operation holds at least 1 fen (its worst-case cost) — top up first`, {
      availableFen: available.toString(),
      requiredFen: "1",
    });
  }
  return undefined;
}

/** Group-commits hold requests on `db`. */
export function createHoldReserver(db: Database, options: { maxBatch?: number; maxConcurrent?: number } = {}) {
  const committer = new GroupCommitter<HoldRequest, HoldResult>((batch) => db.transaction((tx) => reserveHolds(tx, batch)), {
    maxBatch: options.maxBatch ?? 256,
    // two transactions in flight keep the disk busy while the next batch gathers; more only shrinks batches
    // (more statements per hold) without more commits per second — measured with npm run bench:sponsorship
    maxConcurrent: options.maxConcurrent ?? (db.kind === "pglite" ? 1 : 2),
  });
  return { reserve: (request: HoldRequest) => committer.submit(request), stats: () => committer.stats(), drain: () => committer.drain() };
}
export type HoldReserver = ReturnType<typeof createHoldReserver>;

/**
 * Releases the open holds of `chainId` whose validUntil is more than `graceSeconds` before `chainTime`: the
 * timestamp of the newest confirmed block the settlement worker has read. Chain time, not the server's clock,
 * because the EntryPoint accepts a signature while block.timestamp ≤ validUntil: only once settlement has read a
 * block past that time can no later block carry the operation, and every earlier block has been settled. Holds
 * whose operation failed to settle (an open settlement_failures row) stay until it is resolved. Returns how many
 * were released.
 */
export async function releaseExpiredHolds(db: Database, options: { chainId: number; chainTime: Date; graceSeconds: number; limit?: number }): Promise<number> {
  const cutoff = new Date(options.chainTime.getTime() - options.graceSeconds * 1000).toISOString();
  const { rows } = await db.query<{ id: string }>(
    `SELECT h.id FROM holds h
      WHERE h.status = 'open' AND h.chain_id = $1 AND h.valid_until < $2
        AND NOT EXISTS (SELECT 1 FROM sponsored_operations so JOIN settlement_failures f ON f.user_op_hash = so.user_op_hash AND f.chain_id = h.chain_id
                         WHERE so.hold_id = h.id AND f.resolved_at IS NULL)
      ORDER BY h.valid_until LIMIT $3`,
    [options.chainId, cutoff, options.limit ?? 500],
  );
  let released = 0;
  for (const { id } of rows) {
    if (await releaseHold(db, id, "valid_until < $2", [cutoff])) released++;
  }
  return released;
}

/**
 * Releases one open hold in its own transaction if `condition` still holds: the account first, then the hold —
 * the order reservations lock them in — and the release entry per revision, so a hold a reorg reopened releases
 * again rather than silently not.
 */
async function releaseHold(db: Database, id: string, condition: string, params: unknown[]): Promise<boolean> {
  return db.transaction(async (tx) => {
    const { rows: found } = await tx.query<{ account: string }>("SELECT account FROM holds WHERE id = $1", [id]);
    if (!found[0]) return false;
    await lockBalance(tx, found[0].account);
    const { rows: held } = await tx.query<{ account: string; amount_fen: bigint; revision: number }>(
      `UPDATE holds SET status = 'released', updated_at = now() WHERE id = $1 AND status = 'open' AND ${condition} RETURNING account, amount_fen, revision`,
      [id, ...params],
    );
    const hold = held[0];
    if (!hold) return false;
    const { applied } = await release(tx, { account: hold.account, reservationId: `expire:${id}:${hold.revision}`, amountFen: hold.amount_fen });
    if (!applied) throw new Error(`hold ${id} revision ${hold.revision} was released before: its release entry exists`);
    return true;
  });
}

/**
 * Holds of chains this server no longer settles (removed from CHAINS) would stay open for good: once their
 * validUntil is `olderThanSeconds` behind the server's clock — far beyond any signature's window — they are
 * released. Returns how many.
 */
export async function releaseOrphanedHolds(db: Database, options: { configuredChainIds: number[]; olderThanSeconds: number; now?: Date }): Promise<number> {
  const cutoff = new Date((options.now ?? new Date()).getTime() - options.olderThanSeconds * 1000).toISOString();
  const { rows } = await db.query<{ id: string }>(
    "SELECT id FROM holds WHERE status = 'open' AND NOT (chain_id = ANY($1::bigint[])) AND valid_until < $2 ORDER BY valid_until LIMIT 500",
    [options.configuredChainIds, cutoff],
  );
  let released = 0;
  for (const { id } of rows) {
    if (await releaseHold(db, id, "valid_until < $2 AND NOT (chain_id = ANY($3::bigint[]))", [cutoff, options.configuredChainIds])) released++;
  }
  return released;
}

export type HoldView = {
  id: string;
  chainId: number;
  nonce: string;
  status: "open" | "settled" | "released" | "merged";
  amountFen: bigint;
  chargedFen: bigint | null;
  validUntil: Date;
  createdAt: Date;
};

export async function listHolds(db: Queryable, account: string, options: { status?: "open"; limit?: number } = {}): Promise<HoldView[]> {
  const { rows } = await db.query<{ id: string; chain_id: bigint; nonce: string; status: HoldView["status"]; amount_fen: bigint; charged_fen: bigint | null; valid_until: Date; created_at: Date }>(
    `SELECT id, chain_id, nonce, status, amount_fen, charged_fen, valid_until, created_at FROM holds
      WHERE account = $1 ${options.status ? "AND status = 'open'" : ""} ORDER BY created_at DESC LIMIT $2`,
    [account.toLowerCase(), options.limit ?? 20],
  );
  return rows.map((r) => ({ id: r.id, chainId: Number(r.chain_id), nonce: r.nonce, status: r.status, amountFen: r.amount_fen, chargedFen: r.charged_fen, validUntil: r.valid_until, createdAt: r.created_at }));
}

/**
 * Sum of the worst-case cost of open holds on a chain's EntryPoint, in wei: what that EntryPoint's paymaster deposit
 * must cover.
 */
export async function outstandingHoldsWei(db: Queryable, chainId: number, entryPoint: string): Promise<bigint> {
  const { rows } = await db.query<{ total: string }>(
    "SELECT COALESCE(SUM(max_cost_wei), 0)::text AS total FROM holds WHERE status = 'open' AND chain_id = $1 AND entry_point = $2",
    [chainId, entryPoint.toLowerCase()],
  );
  return BigInt(rows[0]!.total);
}

/** The open holds on a chain's EntryPoint. */
export async function countOpenHolds(db: Queryable, chainId: number, entryPoint: string): Promise<number> {
  const { rows } = await db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM holds WHERE status = 'open' AND chain_id = $1 AND entry_point = $2", [
    chainId,
    entryPoint.toLowerCase(),
  ]);
  return Number(rows[0]!.n);
}

/** What a key's policy (`policyId` null: its default) has spent since `since`: settled charges and open holds. */
export async function spentSince(db: Queryable, p: { apiKeyId: string; policyId?: string | null; account?: string; since: Date }): Promise<bigint> {
  const { rows } = await db.query<{ total: bigint }>(
    `SELECT COALESCE(SUM(CASE WHEN status = 'settled' THEN charged_fen WHEN status = 'open' THEN amount_fen ELSE 0 END), 0)::bigint AS total
       FROM holds WHERE api_key_id = $1 AND policy_id IS NOT DISTINCT FROM $2 AND created_at >= $3 ${p.account ? "AND account = $4" : ""}`,
    [p.apiKeyId, p.policyId ?? null, p.since.toISOString(), ...(p.account ? [p.account.toLowerCase()] : [])],
  );
  return rows[0]!.total;
}

/** What was signed for a userOpHash on a chain: its hold, the quote it was priced at, the sender and nonce. */
export type SignedOperation = { hold_id: string; fen_per_native: bigint; markup_bps: number; account: string; nonce: string; entry_point: string };

export async function findSignedOperation(tx: Queryable, chainId: number, userOpHash: string): Promise<SignedOperation | undefined> {
  const { rows } = await tx.query<SignedOperation>(
    `SELECT so.hold_id, so.fen_per_native, so.markup_bps, h.account, h.nonce, h.entry_point
       FROM sponsored_operations so JOIN holds h ON h.id = so.hold_id
      WHERE so.user_op_hash = $1 AND h.chain_id = $2`,
    [userOpHash, chainId],
  );
  return rows[0];
}

export type HoldToSettle = { id: string; status: string; amount_fen: bigint };

/**
 * Locks the hold a landed operation is charged from: its own if still open; otherwise (`late`) an open hold for
 * the same (chain, EntryPoint, sender, nonce) — the nonce it was reserved for is now used — or none.
 */
export async function lockHoldToSettle(tx: Queryable, chainId: number, signed: SignedOperation): Promise<{ hold: HoldToSettle | undefined; late: boolean }> {
  const own = (await tx.query<HoldToSettle>("SELECT id, status, amount_fen FROM holds WHERE id = $1 FOR UPDATE", [signed.hold_id])).rows[0];
  if (own?.status === "open") return { hold: own, late: false };
  const other = await tx.query<HoldToSettle>(
    "SELECT id, status, amount_fen FROM holds WHERE chain_id = $1 AND entry_point = $2 AND account = $3 AND nonce = $4 AND status = 'open' FOR UPDATE",
    [chainId, signed.entry_point, signed.account, signed.nonce],
  );
  return { hold: other.rows[0], late: true };
}

export async function markHoldSettled(tx: Queryable, holdId: string, chargedFen: bigint): Promise<void> {
  await tx.query("UPDATE holds SET status = 'settled', charged_fen = $2, updated_at = now() WHERE id = $1", [holdId, chargedFen]);
}

/**
 * A reorg undid the settlement of `holdId`, whose charge and released rest (`amountFen`, as far as the account
 * still has it) the caller has held again: the hold is open once more — unless the server has meanwhile signed a
 * new sponsorship for the same nonce, whose open hold then absorbs this one (one hold per nonce, the larger amount
 * kept, the rest released, every signed variant of both pointing at it).
 */
export async function reopenHold(tx: Queryable, p: { holdId: string; account: string; amountFen: bigint; settlementId: bigint }): Promise<void> {
  const { rows: mine } = await tx.query<{ chain_id: bigint; entry_point: string; nonce: string; max_cost_wei: string; valid_until: Date }>(
    "SELECT chain_id, entry_point, nonce, max_cost_wei::text AS max_cost_wei, valid_until FROM holds WHERE id = $1 FOR UPDATE",
    [p.holdId],
  );
  const old = mine[0]!;
  const { rows: newer } = await tx.query<{ id: string; amount_fen: bigint }>(
    "SELECT id, amount_fen FROM holds WHERE chain_id = $1 AND entry_point = $2 AND account = $3 AND nonce = $4 AND status = 'open' AND id <> $5 FOR UPDATE",
    [old.chain_id, old.entry_point, p.account, old.nonce, p.holdId],
  );
  const open = newer[0];
  if (open) {
    const keep = p.amountFen > open.amount_fen ? p.amountFen : open.amount_fen;
    const excess = p.amountFen + open.amount_fen - keep;
    if (excess > 0n) await release(tx, { account: p.account, reservationId: `merge:${p.settlementId}`, amountFen: excess });
    await tx.query(
      `UPDATE holds SET amount_fen = $2, max_cost_wei = GREATEST(max_cost_wei, $3::numeric), valid_until = GREATEST(valid_until, $4::timestamptz), updated_at = now()
        WHERE id = $1`,
      [open.id, keep, old.max_cost_wei, old.valid_until.toISOString()],
    );
    await tx.query("UPDATE holds SET status = 'merged', merged_into = $2, charged_fen = NULL, updated_at = now() WHERE id = $1", [p.holdId, open.id]);
    await tx.query("UPDATE sponsored_operations SET hold_id = $2 WHERE hold_id = $1", [p.holdId, open.id]);
    return;
  }
  // a new revision: a later expiry of the reopened hold writes its own release entry (expire:<id>:<revision>)
  await tx.query(
    `UPDATE holds SET status = CASE WHEN $2::bigint > 0 THEN 'open' ELSE 'released' END,
                      amount_fen = CASE WHEN $2::bigint > 0 THEN $2::bigint ELSE amount_fen END,
                      revision = revision + 1, charged_fen = NULL, updated_at = now()
      WHERE id = $1`,
    [p.holdId, p.amountFen],
  );
}

/** What an API key has spent on a sender, and in all, in the periods of its policy's spend limits (0 without one). */
export async function spentInPolicyPeriods(db: Queryable, apiKey: ApiKey, policy: SelectedPolicy, sender: string, at: Date): Promise<{ sender: bigint; global: bigint }> {
  const { senderSpendLimit, globalSpendLimit } = policy.rules;
  const [senderSpent, globalSpent] = await Promise.all([
    senderSpendLimit ? spentSince(db, { apiKeyId: apiKey.id, policyId: policy.id, account: sender, since: spendPeriodStart(at, senderSpendLimit.periodSeconds) }) : 0n,
    globalSpendLimit ? spentSince(db, { apiKeyId: apiKey.id, policyId: policy.id, since: spendPeriodStart(at, globalSpendLimit.periodSeconds) }) : 0n,
  ]);
  return { sender: senderSpent, global: globalSpent };
}
