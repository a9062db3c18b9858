/**
 * The ledger: the only code that changes balances. Every change is one append-only entry; the cached
 * balances in `accounts` change in the same statement, and (kind, reference) is unique, so applying the same
 * entry twice changes nothing. Callers pass the transaction they are in, so a balance change commits or rolls
 * back together with the state change that caused it (an order becoming paid, a refund being requested).
 *
 * Amounts are integer fen (bigint). Database CHECKs keep both balances ≥ 0.
 */
import { type Queryable, sqlState } from "../platform/db/database";
import { AppError } from "../platform/errors";

export type LedgerKind = "topup" | "hold" | "release" | "charge" | "refund" | "adjust";

export type Balance = { account: string; availableFen: bigint; heldFen: bigint };

export type LedgerEntry = {
  id: bigint;
  account: string;
  kind: LedgerKind;
  availableDeltaFen: bigint;
  heldDeltaFen: bigint;
  reference: string;
  memo: string | null;
  createdAt: Date;
};

/** The entry would make a balance negative. */
export class InsufficientBalanceError extends AppError {
  override name = "InsufficientBalanceError";
  constructor(
    readonly account: string,
    readonly balance: "available" | "held",
    readonly requiredFen: bigint,
  ) {
    super(409, "insufficient_balance", `account ${account} has too little ${balance} balance for ${requiredFen} fen`);
  }
}

/** An entry no ledger can take (a zero amount, an unknown kind): 400 when it came from a request. */
export class LedgerInputError extends AppError {
  override name = "LedgerInputError";
  constructor(message: string) {
    super(400, "invalid_request", message);
  }
}

export type AppliedEntry = { applied: boolean; balance: Balance };

type EntryInput = {
  account: string;
  kind: LedgerKind;
  availableDeltaFen: bigint;
  heldDeltaFen: bigint;
  reference: string;
  memo?: string;
};

function normalizeAccount(account: string): string {
  const lower = account.toLowerCase();
  if (!/^0x[0-9a-f]{40}$/.test(lower)) throw new LedgerInputError(`not an account address: ${account}`);
  return lower;
}

function positive(amountFen: bigint, what: string): bigint {
  if (typeof amountFen !== "bigint" || amountFen <= 0n) throw new LedgerInputError(`${what} must be a positive number of fen`);
  return amountFen;
}

async function readBalance(tx: Queryable, account: string): Promise<Balance> {
  const { rows } = await tx.query<{ available_fen: bigint; held_fen: bigint }>(
    "SELECT available_fen, held_fen FROM accounts WHERE address = $1",
    [account],
  );
  return { account, availableFen: rows[0]?.available_fen ?? 0n, heldFen: rows[0]?.held_fen ?? 0n };
}

/**
 * Appends the entry and moves the cached balances, or does nothing if an entry with the same (kind, reference)
 * exists. A balance that would go negative throws InsufficientBalanceError (and, on PostgreSQL, aborts the
 * transaction: callers check first when they want to answer instead).
 */
async function applyEntry(tx: Queryable, input: EntryInput): Promise<AppliedEntry> {
  const account = normalizeAccount(input.account);
  if (!input.reference) throw new LedgerInputError("a ledger entry needs a reference");
  await tx.query("INSERT INTO accounts (address) VALUES ($1) ON CONFLICT (address) DO NOTHING", [account]);
  try {
    const { rows } = await tx.query<{ available_fen: bigint; held_fen: bigint }>(
      `WITH entry AS (
         INSERT INTO ledger_entries (account, kind, available_delta_fen, held_delta_fen, reference, memo)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT ON CONSTRAINT ledger_entry_once DO NOTHING
         RETURNING available_delta_fen, held_delta_fen
       )
       UPDATE accounts
          SET available_fen = available_fen + entry.available_delta_fen,
              held_fen = held_fen + entry.held_delta_fen,
              updated_at = now()
         FROM entry
        WHERE address = $1
       RETURNING available_fen, held_fen`,
      [account, input.kind, input.availableDeltaFen, input.heldDeltaFen, input.reference, input.memo ?? null],
    );
    const row = rows[0];
    if (!row) return { applied: false, balance: await readBalance(tx, account) };
    return { applied: true, balance: { account, availableFen: row.available_fen, heldFen: row.held_fen } };
  } catch (error) {
    const { code, constraint } = sqlState(error);
    if (code === "23514" && (constraint === "available_not_negative" || constraint === "held_not_negative")) {
      const which = constraint === "available_not_negative" ? "available" : "held";
      const delta = which === "available" ? input.availableDeltaFen : input.heldDeltaFen;
      throw new InsufficientBalanceError(account, which, -delta);
    }
    throw error;
  }
}

/** Credits a paid top-up order; the order id makes it happen once. */
export function creditTopUp(tx: Queryable, p: { account: string; orderId: string; amountFen: bigint }): Promise<AppliedEntry> {
  return applyEntry(tx, { account: p.account, kind: "topup", availableDeltaFen: positive(p.amountFen, "a top-up"), heldDeltaFen: 0n, reference: p.orderId });
}

/** Moves `amountFen` from available to held for a reservation. */
export function hold(tx: Queryable, p: { account: string; reservationId: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a hold");
  return applyEntry(tx, { account: p.account, kind: "hold", availableDeltaFen: -amount, heldDeltaFen: amount, reference: p.reservationId });
}

/** Gives held funds of a reservation back to available. */
export function release(tx: Queryable, p: { account: string; reservationId: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a release");
  return applyEntry(tx, { account: p.account, kind: "release", availableDeltaFen: amount, heldDeltaFen: -amount, reference: p.reservationId });
}

/** Consumes held funds of a reservation (the actual cost of a sponsored operation). */
export function charge(tx: Queryable, p: { account: string; reservationId: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a charge");
  return applyEntry(tx, { account: p.account, kind: "charge", availableDeltaFen: 0n, heldDeltaFen: -amount, reference: p.reservationId });
}

/**
 * Charges available funds directly, without a hold: an operation that landed after its hold was released, or whose
 * cost rose above its hold after a reorg. The caller charges at most what is available (and records the rest as a
 * shortfall): a CHECK keeps available ≥ 0.
 */
export function chargeAvailable(tx: Queryable, p: { account: string; reference: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a charge");
  return applyEntry(tx, { account: p.account, kind: "charge", availableDeltaFen: -amount, heldDeltaFen: 0n, reference: p.reference });
}

/** Debits available funds being refunded to the payer. */
export function debitRefund(tx: Queryable, p: { account: string; refundId: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a refund");
  return applyEntry(tx, { account: p.account, kind: "refund", availableDeltaFen: -amount, heldDeltaFen: 0n, reference: p.refundId });
}

/**
 * Gives back the funds of a refund the gateway refused. A separate reference (`reversal:<refundId>`) keeps the
 * original debit and its reversal both on the ledger.
 */
export function reverseRefund(tx: Queryable, p: { account: string; refundId: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a refund reversal");
  return applyEntry(tx, { account: p.account, kind: "refund", availableDeltaFen: amount, heldDeltaFen: 0n, reference: `reversal:${p.refundId}` });
}

/**
 * An operator's manual correction (positive or negative), with the reason recorded.
 */
export function adjust(tx: Queryable, p: { account: string; adjustmentId: string; amountFen: bigint; reason: string }): Promise<AppliedEntry> {
  if (typeof p.amountFen !== "bigint" || p.amountFen === 0n) throw new LedgerInputError("an adjustment must be a non-zero number of fen");
  if (!p.reason?.trim()) throw new LedgerInputError("an adjustment needs a reason");
  return applyEntry(tx, { account: p.account, kind: "adjust", availableDeltaFen: p.amountFen, heldDeltaFen: 0n, reference: p.adjustmentId, memo: p.reason.trim() });
}

export async function getBalance(db: Queryable, account: string): Promise<Balance> {
  return readBalance(db, normalizeAccount(account));
}

/** Locks the account row for the rest of the transaction and returns its balance (zero if it has none). */
export async function lockBalance(tx: Queryable, account: string): Promise<Balance> {
  const address = normalizeAccount(account);
  await tx.query("INSERT INTO accounts (address) VALUES ($1) ON CONFLICT (address) DO NOTHING", [address]);
  const { rows } = await tx.query<{ available_fen: bigint; held_fen: bigint }>(
    "SELECT available_fen, held_fen FROM accounts WHERE address = $1 FOR UPDATE",
    [address],
  );
  return { account: address, availableFen: rows[0]!.available_fen, heldFen: rows[0]!.held_fen };
}

export async function recentEntries(db: Queryable, account: string, limit = 50): Promise<LedgerEntry[]> {
  const { rows } = await db.query<{
    id: bigint;
    account: string;
    kind: LedgerKind;
    available_delta_fen: bigint;
    held_delta_fen: bigint;
    reference: string;
    memo: string | null;
    created_at: Date;
  }>(
    `SELECT id, account, kind, available_delta_fen, held_delta_fen, reference, memo, created_at
       FROM ledger_entries WHERE account = $1 ORDER BY id DESC LIMIT $2`,
    [normalizeAccount(account), limit],
  );
  return rows.map((r) => ({
    id: r.id,
    account: r.account,
    kind: r.kind,
    availableDeltaFen: r.available_delta_fen,
    heldDeltaFen: r.held_delta_fen,
    reference: r.reference,
    memo: r.memo,
    createdAt: r.created_at,
  }));
}

export type LedgerMismatch = {
  account: string;
  cachedAvailableFen: bigint;
  ledgerAvailableFen: bigint;
  cachedHeldFen: bigint;
  ledgerHeldFen: bigint;
};

export type LedgerCheck = { accounts: number; entries: number; mismatches: LedgerMismatch[] };

/** Recomputes every balance from the entries and lists the accounts whose cached balances differ. */
export async function checkLedger(db: Queryable): Promise<LedgerCheck> {
  const { rows } = await db.query<{
    address: string;
    available_fen: bigint;
    held_fen: bigint;
    ledger_available: bigint;
    ledger_held: bigint;
    entries: bigint;
  }>(
    `SELECT a.address, a.available_fen, a.held_fen,
            COALESCE(e.available, 0)::bigint AS ledger_available,
            COALESCE(e.held, 0)::bigint AS ledger_held,
            COALESCE(e.entries, 0)::bigint AS entries
       FROM accounts a
       FULL OUTER JOIN (
         SELECT account, SUM(available_delta_fen) AS available, SUM(held_delta_fen) AS held, COUNT(*) AS entries
           FROM ledger_entries GROUP BY account
       ) e ON e.account = a.address`,
  );
  const mismatches: LedgerMismatch[] = [];
  let entries = 0n;
  for (const r of rows) {
    entries += r.entries;
    if (r.address === null || r.available_fen !== r.ledger_available || r.held_fen !== r.ledger_held) {
      mismatches.push({
        account: r.address,
        cachedAvailableFen: r.available_fen ?? 0n,
        ledgerAvailableFen: r.ledger_available,
        cachedHeldFen: r.held_fen ?? 0n,
        ledgerHeldFen: r.ledger_held,
      });
    }
  }
  return { accounts: rows.length, entries: Number(entries), mismatches };
}

/** One entry of a batch; the caller has locked the accounts (lockAccounts) and checked the balances it moves. */
export type BatchEntry = { account: string; kind: "topup" | "hold" | "release" | "charge"; availableDeltaFen: bigint; heldDeltaFen: bigint; reference: string };

/**
 * The ledger part of a batch statement: CTEs `entry` (the entries inserted; an entry whose (kind, reference)
 * exists is skipped) and `moved` (each account's balances moved by exactly the entries written), reading the
 * entries from the parameters `$first` … `$first+4`. A statement that writes other rows too appends this to its
 * WITH list, so the whole batch is one round trip; `applyEntries` is the statement of its own.
 */
export function ledgerEntriesSql(first: number, entries: readonly BatchEntry[]): { sql: string; params: unknown[] } {
  for (const e of entries) {
    normalizeAccount(e.account);
    if (!e.reference) throw new LedgerInputError("a ledger entry needs a reference");
  }
  const [a, k, av, h, r] = [first, first + 1, first + 2, first + 3, first + 4];
  return {
    sql: `entry AS (
       INSERT INTO ledger_entries (account, kind, available_delta_fen, held_delta_fen, reference)
       SELECT * FROM unnest($${a}::text[], $${k}::text[], $${av}::bigint[], $${h}::bigint[], $${r}::text[])
       ON CONFLICT ON CONSTRAINT ledger_entry_once DO NOTHING
       RETURNING account, kind, reference, available_delta_fen, held_delta_fen
     ), moved AS (
       UPDATE accounts a
          SET available_fen = a.available_fen + d.available, held_fen = a.held_fen + d.held, updated_at = now()
         FROM (SELECT account, SUM(available_delta_fen)::bigint AS available, SUM(held_delta_fen)::bigint AS held
                 FROM entry GROUP BY account) d
        WHERE a.address = d.account
     )`,
    params: [
      entries.map((e) => e.account.toLowerCase()),
      entries.map((e) => e.kind),
      entries.map((e) => e.availableDeltaFen.toString()),
      entries.map((e) => e.heldDeltaFen.toString()),
      entries.map((e) => e.reference),
    ],
  };
}

/**
 * Appends many entries in one statement (ledgerEntriesSql; the hot paths group-commit: sponsorship its holds,
 * payment callbacks their credits). Entries whose (kind, reference) exists are skipped, and balances move by exactly
 * the entries written, as in applyEntry. Every account must have its row. Returns the `kind:reference` of the
 * entries written.
 */
export async function applyEntries(tx: Queryable, entries: readonly BatchEntry[]): Promise<Set<string>> {
  if (entries.length === 0) return new Set();
  const ledger = ledgerEntriesSql(1, entries);
  const { rows } = await tx.query<{ kind: string; reference: string }>(`WITH ${ledger.sql} SELECT kind, reference FROM entry`, ledger.params);
  return new Set(rows.map((r) => `${r.kind}:${r.reference}`));
}

/**
 * Creates the accounts that have no row yet and locks every one, in address order: two batches that share accounts
 * take them in the same order, so they never deadlock (the hold reservations lock theirs in that order too).
 */
export async function lockAccounts(tx: Queryable, accounts: readonly string[]): Promise<void> {
  const addresses = [...new Set(accounts.map(normalizeAccount))].sort();
  if (addresses.length === 0) return;
  // one statement: rows this statement creates are new and ours alone; the others are locked by the SELECT
  await tx.query(
    `WITH created AS (INSERT INTO accounts (address) SELECT unnest($1::text[]) ON CONFLICT (address) DO NOTHING)
     SELECT address FROM accounts WHERE address = ANY($1::text[]) ORDER BY address FOR UPDATE`,
    [addresses],
  );
}

/**
 * Credits many paid top-up orders at once (callbacks group-commit their credits): the same entry creditTopUp
 * writes for each — kind topup, the order id as reference, so an order is credited once however often it is
 * applied — with the accounts created and locked first. Returns the order ids credited now.
 */
export async function creditTopUps(tx: Queryable, credits: ReadonlyArray<{ account: string; orderId: string; amountFen: bigint }>): Promise<Set<string>> {
  const entries = credits.map(
    (c): BatchEntry => ({ account: normalizeAccount(c.account), kind: "topup", availableDeltaFen: positive(c.amountFen, "a top-up"), heldDeltaFen: 0n, reference: c.orderId }),
  );
  await lockAccounts(tx, entries.map((e) => e.account));
  const written = await applyEntries(tx, entries);
  return new Set(entries.filter((e) => written.has(`topup:${e.reference}`)).map((e) => e.reference));
}

/**
 * Undoes a charge whose operation a reorg took off the chain: the funds go back to held, under the reference
 * `unsettle:<settlement id>`, so the charge and its reversal both stay on the ledger.
 */
export function reverseCharge(tx: Queryable, p: { account: string; reference: string; amountFen: bigint }): Promise<AppliedEntry> {
  const amount = positive(p.amountFen, "a charge reversal");
  return applyEntry(tx, { account: p.account, kind: "charge", availableDeltaFen: 0n, heldDeltaFen: amount, reference: p.reference });
}
