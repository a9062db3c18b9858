/**
 * The admin API's read model: each list reads one table newest first, filtered, one page at a time, and answers
 * rows already in their JSON shape (fen and wei as decimal strings, times as ISO 8601).
 *
 * Pages are keyset pages: `before` is the last item of the previous page (its id), so a row written while an
 * operator pages never shifts or repeats what follows. Tables with a serial id page by id; the others by
 * (created_at, id) — or (updated_at, address) for accounts — read from the cursor's own row.
 */
import { REFUND_COLUMNS, type RefundRow, toRefund } from "../payments/refunds";
import { refundView as publicRefundView } from "../payments/routes";
import type { Queryable } from "../platform/db/database";
import { AppError } from "../platform/errors";
import { ORDER_COLUMNS, type Order, type OrderRow, toOrder } from "../payments/orders";
import type { ledgerKindSchema } from "../schemas/accounts";
import type {
  adminAccountSchema,
  adminActionSchema,
  adminHoldSchema,
  adminLedgerEntrySchema,
  adminOrderSchema,
  holdStatusSchema,
  paymentCallbackSchema,
  reconciliationRunSchema,
  settlementSchema,
  settlementStatusSchema,
} from "../schemas/admin";
import type { providerSchema, refundSchema } from "../schemas/payments";
import type { z } from "zod";

export type Page<T> = { items: T[]; nextBefore: string | null };

export type PageRequest = { limit: number; before?: string };

/** Collects the conditions and parameters of one query; every condition text is a constant of this file. */
class Filter {
  readonly conditions: string[] = [];
  readonly params: unknown[] = [];

  param(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  /** Adds `sql(placeholder)` when `value` is given. */
  when(value: unknown, sql: (p: string) => string): this {
    if (value !== undefined) this.conditions.push(sql(this.param(value)));
    return this;
  }

  get where(): string {
    return this.conditions.length ? `WHERE ${this.conditions.join(" AND ")}` : "";
  }
}

/** Fetches limit + 1 rows: the extra one only says whether there is a next page. */
function toPage<R, T>(rows: R[], limit: number, view: (row: R) => T, cursor: (row: R) => string): Page<T> {
  const items = rows.slice(0, limit);
  return { items: items.map(view), nextBefore: rows.length > limit ? cursor(items[items.length - 1]!) : null };
}

/** A `before` naming a row that does not exist is a mistake of the caller, not an empty page. */
async function requireCursorRow(db: Queryable, sql: string, before: string, what: string): Promise<void> {
  const { rows } = await db.query(sql, [before]);
  if (rows.length === 0) throw new AppError(400, "invalid_request", `before: no ${what} ${before}`);
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

// ---- Orders, callbacks, refunds ----------------------------------------------------------------------------

const orderView = (o: Order): AdminOrder => ({
  id: o.id,
  account: o.account,
  provider: o.provider,
  amountFen: o.amountFen.toString(),
  status: o.status,
  refundedFen: o.refundedFen.toString(),
  gatewayTradeNo: o.gatewayTradeNo,
  idempotencyKey: o.idempotencyKey,
  qrCode: o.qrCode,
  payUrl: o.payUrl,
  expiresAt: o.expiresAt.toISOString(),
  paidAt: iso(o.paidAt),
  closedAt: iso(o.closedAt),
  createdAt: o.createdAt.toISOString(),
  updatedAt: o.updatedAt.toISOString(),
});
export type AdminOrder = z.input<typeof adminOrderSchema>;

export async function listOrders(db: Queryable, f: PageRequest & { status?: string; provider?: string; account?: string }): Promise<Page<AdminOrder>> {
  if (f.before) await requireCursorRow(db, "SELECT 1 FROM orders WHERE id = $1", f.before, "order");
  const q = new Filter()
    .when(f.status, (p) => `status = ${p}`)
    .when(f.provider, (p) => `provider = ${p}`)
    .when(f.account, (p) => `account = ${p}`)
    .when(f.before, (p) => `(created_at, id) < (SELECT created_at, id FROM orders WHERE id = ${p})`);
  const { rows } = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders ${q.where} ORDER BY created_at DESC, id DESC LIMIT ${q.param(f.limit + 1)}`, q.params);
  return toPage(rows, f.limit, (r) => orderView(toOrder(r)), (r) => r.id);
}

export async function findOrder(db: Queryable, id: string): Promise<AdminOrder | undefined> {
  const { rows } = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1`, [id]);
  return rows[0] && orderView(toOrder(rows[0]));
}

type CallbackRow = {
  id: bigint;
  provider: z.infer<typeof providerSchema>;
  order_id: string | null;
  outcome: AdminCallback["outcome"];
  verified: boolean;
  detail: string | null;
  received_at: Date;
  payload?: unknown;
  headers?: Record<string, unknown>;
  raw_body?: string;
};

const callbackView = (r: CallbackRow): AdminCallback => ({
  id: r.id.toString(),
  provider: r.provider,
  orderId: r.order_id,
  outcome: r.outcome,
  verified: r.verified,
  detail: r.detail,
  receivedAt: r.received_at.toISOString(),
  ...(r.raw_body !== undefined ? { payload: r.payload ?? null, headers: r.headers, rawBody: r.raw_body } : {}),
});
export type AdminCallback = z.input<typeof paymentCallbackSchema>;

/** What the signature covers and what was decoded from it: only with `raw` (it carries payer details). */
const callbackColumns = (raw: boolean) => `id, provider, order_id, outcome, verified, detail, received_at${raw ? ", payload, headers, raw_body" : ""}`;

/** Every callback stored for the order, oldest first (the story of its payment). */
export async function callbacksOfOrder(db: Queryable, orderId: string, raw: boolean): Promise<AdminCallback[]> {
  const { rows } = await db.query<CallbackRow>(`SELECT ${callbackColumns(raw)} FROM payment_callbacks WHERE order_id = $1 ORDER BY id`, [orderId]);
  return rows.map(callbackView);
}

export async function listCallbacks(
  db: Queryable,
  f: PageRequest & { provider?: string; outcome?: string; verified?: boolean; orderId?: string; raw: boolean },
): Promise<Page<AdminCallback>> {
  const q = new Filter()
    .when(f.provider, (p) => `provider = ${p}`)
    .when(f.outcome, (p) => `outcome = ${p}`)
    .when(f.verified, (p) => `verified = ${p}`)
    .when(f.orderId, (p) => `order_id = ${p}`)
    .when(f.before, (p) => `id < ${p}`);
  const { rows } = await db.query<CallbackRow>(`SELECT ${callbackColumns(f.raw)} FROM payment_callbacks ${q.where} ORDER BY id DESC LIMIT ${q.param(f.limit + 1)}`, q.params);
  return toPage(rows, f.limit, callbackView, (r) => r.id.toString());
}

/** An admin's view of a refund is the refund API's own. */
const refundView = (row: RefundRow): AdminRefund => publicRefundView(toRefund(row));
export type AdminRefund = z.input<typeof refundSchema>;

export async function refundsOfOrder(db: Queryable, orderId: string): Promise<AdminRefund[]> {
  const { rows } = await db.query<RefundRow>(`SELECT ${REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY created_at, id`, [orderId]);
  return rows.map(refundView);
}

export async function listRefunds(db: Queryable, f: PageRequest & { status?: string; account?: string; orderId?: string }): Promise<Page<AdminRefund>> {
  if (f.before) await requireCursorRow(db, "SELECT 1 FROM refunds WHERE id = $1", f.before, "refund");
  const q = new Filter()
    .when(f.status, (p) => `status = ${p}`)
    .when(f.account, (p) => `account = ${p}`)
    .when(f.orderId, (p) => `order_id = ${p}`)
    .when(f.before, (p) => `(created_at, id) < (SELECT created_at, id FROM refunds WHERE id = ${p})`);
  const { rows } = await db.query<RefundRow>(`SELECT ${REFUND_COLUMNS} FROM refunds ${q.where} ORDER BY created_at DESC, id DESC LIMIT ${q.param(f.limit + 1)}`, q.params);
  return toPage(rows, f.limit, refundView, (r) => r.id);
}

// ---- Accounts and the ledger -------------------------------------------------------------------------------

type AccountRow = { address: string; available_fen: bigint; held_fen: bigint; created_at: Date; updated_at: Date };

const accountView = (r: AccountRow): AdminAccount => ({
  account: r.address,
  availableFen: r.available_fen.toString(),
  heldFen: r.held_fen.toString(),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});
export type AdminAccount = z.input<typeof adminAccountSchema>;

/** Most recently active first: updated_at moves with every balance change. */
export async function listAccounts(db: Queryable, f: PageRequest): Promise<Page<AdminAccount>> {
  if (f.before) await requireCursorRow(db, "SELECT 1 FROM accounts WHERE address = $1", f.before, "account");
  const q = new Filter().when(f.before, (p) => `(updated_at, address) < (SELECT updated_at, address FROM accounts WHERE address = ${p})`);
  const { rows } = await db.query<AccountRow>(
    `SELECT address, available_fen, held_fen, created_at, updated_at FROM accounts ${q.where} ORDER BY updated_at DESC, address DESC LIMIT ${q.param(f.limit + 1)}`,
    q.params,
  );
  return toPage(rows, f.limit, accountView, (r) => r.address);
}

export async function findAccount(db: Queryable, address: string): Promise<AdminAccount | undefined> {
  const { rows } = await db.query<AccountRow>("SELECT address, available_fen, held_fen, created_at, updated_at FROM accounts WHERE address = $1", [address]);
  return rows[0] && accountView(rows[0]);
}

type EntryRow = { id: bigint; kind: z.infer<typeof ledgerKindSchema>; available_delta_fen: bigint; held_delta_fen: bigint; reference: string; memo: string | null; created_at: Date };

const entryView = (r: EntryRow): AdminLedgerEntry => ({
  id: r.id.toString(),
  kind: r.kind,
  availableDeltaFen: r.available_delta_fen.toString(),
  heldDeltaFen: r.held_delta_fen.toString(),
  reference: r.reference,
  memo: r.memo,
  createdAt: r.created_at.toISOString(),
});
export type AdminLedgerEntry = z.input<typeof adminLedgerEntrySchema>;

export async function listLedgerEntries(db: Queryable, f: PageRequest & { account: string; kind?: string }): Promise<Page<AdminLedgerEntry>> {
  const q = new Filter()
    .when(f.account, (p) => `account = ${p}`)
    .when(f.kind, (p) => `kind = ${p}`)
    .when(f.before, (p) => `id < ${p}`);
  const { rows } = await db.query<EntryRow>(
    `SELECT id, kind, available_delta_fen, held_delta_fen, reference, memo, created_at FROM ledger_entries ${q.where} ORDER BY id DESC LIMIT ${q.param(f.limit + 1)}`,
    q.params,
  );
  return toPage(rows, f.limit, entryView, (r) => r.id.toString());
}

// ---- Holds and settlements ---------------------------------------------------------------------------------

type HoldRow = {
  id: string;
  chain_id: bigint;
  account: string;
  nonce: string;
  api_key_id: string | null;
  status: z.infer<typeof holdStatusSchema>;
  amount_fen: bigint;
  max_cost_wei: string;
  revision: number;
  valid_until: Date;
  charged_fen: bigint | null;
  created_at: Date;
  updated_at: Date;
};

const holdView = (r: HoldRow): AdminHold => ({
  id: r.id,
  chainId: Number(r.chain_id),
  account: r.account,
  nonce: r.nonce,
  apiKeyId: r.api_key_id,
  status: r.status,
  amountFen: r.amount_fen.toString(),
  maxCostWei: r.max_cost_wei,
  revision: r.revision,
  validUntil: r.valid_until.toISOString(),
  chargedFen: r.charged_fen === null ? null : r.charged_fen.toString(),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});
export type AdminHold = z.input<typeof adminHoldSchema>;

export async function listHolds(db: Queryable, f: PageRequest & { status?: string; account?: string; chainId?: number }): Promise<Page<AdminHold>> {
  if (f.before) await requireCursorRow(db, "SELECT 1 FROM holds WHERE id = $1", f.before, "hold");
  const q = new Filter()
    .when(f.status, (p) => `status = ${p}`)
    .when(f.account, (p) => `account = ${p}`)
    .when(f.chainId, (p) => `chain_id = ${p}`)
    .when(f.before, (p) => `(created_at, id) < (SELECT created_at, id FROM holds WHERE id = ${p})`);
  const { rows } = await db.query<HoldRow>(
    `SELECT id, chain_id, account, nonce, api_key_id, status, amount_fen, max_cost_wei::text AS max_cost_wei, revision, valid_until, charged_fen, created_at, updated_at
       FROM holds ${q.where} ORDER BY created_at DESC, id DESC LIMIT ${q.param(f.limit + 1)}`,
    q.params,
  );
  return toPage(rows, f.limit, holdView, (r) => r.id);
}

type SettlementRow = {
  id: bigint;
  chain_id: bigint;
  user_op_hash: string;
  hold_id: string | null;
  account: string;
  nonce: string;
  success: boolean;
  actual_gas_cost_wei: string;
  actual_gas_used: string;
  charged_fen: bigint;
  released_fen: bigint;
  shortfall_fen: bigint;
  block_number: bigint;
  block_hash: string;
  transaction_hash: string;
  log_index: number;
  status: z.infer<typeof settlementStatusSchema>;
  created_at: Date;
  reorged_at: Date | null;
};

const settlementView = (r: SettlementRow): AdminSettlement => ({
  id: r.id.toString(),
  chainId: Number(r.chain_id),
  userOpHash: r.user_op_hash,
  holdId: r.hold_id,
  unknown: r.hold_id === null,
  account: r.account,
  nonce: r.nonce,
  success: r.success,
  actualGasCostWei: r.actual_gas_cost_wei,
  actualGasUsed: r.actual_gas_used,
  chargedFen: r.charged_fen.toString(),
  releasedFen: r.released_fen.toString(),
  shortfallFen: r.shortfall_fen.toString(),
  blockNumber: r.block_number.toString(),
  blockHash: r.block_hash,
  transactionHash: r.transaction_hash,
  logIndex: r.log_index,
  status: r.status,
  createdAt: r.created_at.toISOString(),
  reorgedAt: iso(r.reorged_at),
});
export type AdminSettlement = z.input<typeof settlementSchema>;

export async function listSettlements(
  db: Queryable,
  f: PageRequest & { chainId?: number; status?: string; unknown?: boolean; account?: string },
): Promise<Page<AdminSettlement>> {
  const q = new Filter()
    .when(f.chainId, (p) => `chain_id = ${p}`)
    .when(f.status, (p) => `status = ${p}`)
    .when(f.account, (p) => `account = ${p}`)
    .when(f.before, (p) => `id < ${p}`);
  if (f.unknown !== undefined) q.conditions.push(f.unknown ? "hold_id IS NULL" : "hold_id IS NOT NULL");
  const { rows } = await db.query<SettlementRow>(
    `SELECT id, chain_id, user_op_hash, hold_id, account, nonce, success, actual_gas_cost_wei::text AS actual_gas_cost_wei,
            actual_gas_used::text AS actual_gas_used, charged_fen, released_fen, shortfall_fen, block_number, block_hash, transaction_hash,
            log_index, status, created_at, reorged_at
       FROM settlements ${q.where} ORDER BY id DESC LIMIT ${q.param(f.limit + 1)}`,
    q.params,
  );
  return toPage(rows, f.limit, settlementView, (r) => r.id.toString());
}

// ---- Reconciliation runs and admin actions -----------------------------------------------------------------

type RunRow = {
  id: bigint;
  started_at: Date;
  finished_at: Date;
  checked: number;
  credited: number;
  closed: number;
  refunds_settled: number;
  errors: number;
  detail: unknown;
};

const runView = (r: RunRow): AdminReconciliationRun => ({
  id: r.id.toString(),
  startedAt: r.started_at.toISOString(),
  finishedAt: r.finished_at.toISOString(),
  checked: r.checked,
  credited: r.credited,
  closed: r.closed,
  refundsSettled: r.refunds_settled,
  errors: r.errors,
  detail: r.detail ?? null,
});
export type AdminReconciliationRun = z.input<typeof reconciliationRunSchema>;

export async function listReconciliationRuns(db: Queryable, f: PageRequest): Promise<Page<AdminReconciliationRun>> {
  const q = new Filter().when(f.before, (p) => `id < ${p}`);
  const { rows } = await db.query<RunRow>(
    `SELECT id, started_at, finished_at, checked, credited, closed, refunds_settled, errors, detail FROM reconciliation_runs ${q.where} ORDER BY id DESC LIMIT ${q.param(f.limit + 1)}`,
    q.params,
  );
  return toPage(rows, f.limit, runView, (r) => r.id.toString());
}

type ActionRow = { id: bigint; action: string; detail: Record<string, unknown>; request_id: string | null; ip: string | null; created_at: Date };

const actionView = (r: ActionRow): AdminAction => ({
  id: r.id.toString(),
  action: r.action,
  detail: r.detail,
  requestId: r.request_id,
  ip: r.ip,
  createdAt: r.created_at.toISOString(),
});
export type AdminAction = z.input<typeof adminActionSchema>;

export async function listAdminActions(db: Queryable, f: PageRequest & { action?: string }): Promise<Page<AdminAction>> {
  const q = new Filter().when(f.action, (p) => `action = ${p}`).when(f.before, (p) => `id < ${p}`);
  const { rows } = await db.query<ActionRow>(
    `SELECT id, action, detail, request_id, ip, created_at FROM admin_actions ${q.where} ORDER BY id DESC LIMIT ${q.param(f.limit + 1)}`,
    q.params,
  );
  return toPage(rows, f.limit, actionView, (r) => r.id.toString());
}

/** Appends one audit row in `tx` (the transaction of the action it records). */
export async function recordAdminAction(
  tx: Queryable,
  a: { action: string; detail: Record<string, unknown>; requestId?: string; ip?: string },
): Promise<AdminAction> {
  const { rows } = await tx.query<ActionRow>(
    "INSERT INTO admin_actions (action, detail, request_id, ip) VALUES ($1, $2, $3, $4) RETURNING id, action, detail, request_id, ip, created_at",
    [a.action, JSON.stringify(a.detail), a.requestId ?? null, a.ip ?? null],
  );
  return actionView(rows[0]!);
}
