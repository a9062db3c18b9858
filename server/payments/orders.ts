import { randomBytes } from "node:crypto";
import type { Database, Queryable } from "../platform/db/database";
import { creditTopUp } from "../ledger/ledger";
import { NotFoundError, PaymentConflictError, PaymentInputError } from "./errors";
import type { PaymentGateway, Provider } from "./gateway";

export type OrderStatus = "created" | "pending" | "paid" | "closed";

export type Order = {
  id: string;
  account: string;
  provider: Provider;
  amountFen: bigint;
  status: OrderStatus;
  qrCode: string | null;
  payUrl: string | null;
  gatewayTradeNo: string | null;
  expiresAt: Date;
  paidAt: Date | null;
  closedAt: Date | null;
  refundedFen: bigint;
  idempotencyKey: string | null;
  createdAt: Date;
  updatedAt: Date;
};

export type OrderLimits = { minFen: bigint; maxFen: bigint; ttlSeconds: number };

export type OrdersDeps = {
  db: Database;
  gateways: ReadonlyMap<Provider, PaymentGateway>;
  limits: OrderLimits;
  /** What the payer sees at the gateway. */
  subject?: string;
};

export type CreateOrderInput = { account: string; amountFen: bigint; provider: Provider; idempotencyKey?: string };

export type OrderRow = {
  id: string;
  account: string;
  provider: Provider;
  amount_fen: bigint;
  status: OrderStatus;
  idempotency_key: string | null;
  qr_code: string | null;
  pay_url: string | null;
  gateway_trade_no: string | null;
  expires_at: Date;
  paid_at: Date | null;
  closed_at: Date | null;
  refunded_fen: bigint;
  created_at: Date;
  updated_at: Date;
};

export const ORDER_COLUMNS =
  "id, account, provider, amount_fen, status, idempotency_key, qr_code, pay_url, gateway_trade_no, expires_at, paid_at, closed_at, refunded_fen, created_at, updated_at";

export function toOrder(r: OrderRow): Order {
  return {
    id: r.id,
    account: r.account,
    provider: r.provider,
    amountFen: r.amount_fen,
    status: r.status,
    qrCode: r.qr_code,
    payUrl: r.pay_url,
    gatewayTradeNo: r.gateway_trade_no,
    expiresAt: r.expires_at,
    paidAt: r.paid_at,
    closedAt: r.closed_at,
    refundedFen: r.refunded_fen,
    idempotencyKey: r.idempotency_key,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Our out_trade_no: "fp" + 24 hex characters (both gateways accept 6–32 of [0-9A-Za-z_-]). */
export function newOrderId(): string {
  return `fp${randomBytes(12).toString("hex")}`;
}

export async function findOrder(db: Queryable, id: string): Promise<Order | undefined> {
  const { rows } = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1`, [id]);
  return rows[0] && toOrder(rows[0]);
}

export async function getOrder(db: Queryable, id: string): Promise<Order> {
  const order = await findOrder(db, id);
  if (!order) throw new NotFoundError(`no order ${id}`);
  return order;
}

/**
 * Creates a top-up order and the gateway trade behind it. The order row is committed before the gateway is
 * asked, so a crash in between leaves a `created` order that a retry (same idempotency key) or the reconciler
 * finishes; the same idempotency key always returns the same order.
 */
export async function createOrder(deps: OrdersDeps, input: CreateOrderInput): Promise<Order> {
  const account = input.account.toLowerCase();
  const gateway = deps.gateways.get(input.provider);
  if (!gateway) throw new PaymentInputError(`provider ${input.provider} is not enabled`);
  const { minFen, maxFen, ttlSeconds } = deps.limits;
  if (input.amountFen < minFen || input.amountFen > maxFen) {
    throw new PaymentInputError(`amountFen must be between ${minFen} and ${maxFen}: got ${input.amountFen}`);
  }

  let order = await insertOrFindOrder(deps.db, { ...input, account }, ttlSeconds);
  if (order.status !== "created") return order;

  const payment = await gateway.createPayment({
    orderId: order.id,
    amountFen: order.amountFen,
    subject: deps.subject ?? "Gas quota top-up",
    expiresAt: order.expiresAt,
  });
  const { rows } = await deps.db.query<OrderRow>(
    `UPDATE orders SET status = 'pending', qr_code = $2, pay_url = $3, updated_at = now()
      WHERE id = $1 AND status = 'created' RETURNING ${ORDER_COLUMNS}`,
    [order.id, payment.qrCode ?? null, payment.payUrl ?? null],
  );
  // a callback may already have marked it paid: then that newer state is the answer
  order = rows[0] ? toOrder(rows[0]) : await getOrder(deps.db, order.id);
  return order;
}

async function insertOrFindOrder(db: Database, input: CreateOrderInput, ttlSeconds: number): Promise<Order> {
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  const { rows } = await db.query<OrderRow>(
    `INSERT INTO orders (id, account, provider, amount_fen, status, idempotency_key, expires_at)
     VALUES ($1, $2, $3, $4, 'created', $5, $6)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING ${ORDER_COLUMNS}`,
    [newOrderId(), input.account, input.provider, input.amountFen, input.idempotencyKey ?? null, expiresAt],
  );
  if (rows[0]) return toOrder(rows[0]);
  const existing = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1`, [input.idempotencyKey]);
  const row = existing.rows[0]!;
  if (row.account !== input.account || row.provider !== input.provider || row.amount_fen !== input.amountFen) {
    throw new PaymentConflictError("idempotencyKey was already used for an order with other parameters", { orderId: row.id });
  }
  return toOrder(row);
}

export type PaidTrade = { orderId: string; provider: Provider; amountFen: bigint; gatewayTradeNo: string; paidAt?: Date };

export type CreditOutcome = "credited" | "already_credited" | "unknown_order" | "amount_mismatch";

/**
 * Marks the order paid and credits its account, in the caller's transaction, exactly once: the order row is
 * locked, a paid order is left alone, and the ledger's unique (topup, order id) backs that up. A trade whose
 * amount differs from the order's credits nothing.
 */
export async function creditPaidOrder(tx: Queryable, trade: PaidTrade): Promise<{ outcome: CreditOutcome; order?: Order }> {
  const { rows } = await tx.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE`, [trade.orderId]);
  const row = rows[0];
  if (!row || row.provider !== trade.provider) return { outcome: "unknown_order" };
  if (row.status === "paid") return { outcome: "already_credited", order: toOrder(row) };
  if (row.amount_fen !== trade.amountFen) return { outcome: "amount_mismatch", order: toOrder(row) };
  const updated = await tx.query<OrderRow>(
    `UPDATE orders SET status = 'paid', paid_at = COALESCE($2, now()), gateway_trade_no = $3, updated_at = now()
      WHERE id = $1 RETURNING ${ORDER_COLUMNS}`,
    [row.id, trade.paidAt ?? null, trade.gatewayTradeNo],
  );
  await creditTopUp(tx, { account: row.account, orderId: row.id, amountFen: row.amount_fen });
  return { outcome: "credited", order: toOrder(updated.rows[0]!) };
}

/** Marks an unpaid order closed (expired or cancelled at the gateway). */
export async function markOrderClosed(db: Queryable, orderId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE orders SET status = 'closed', closed_at = now(), updated_at = now() WHERE id = $1 AND status IN ('created', 'pending')",
    [orderId],
  );
  return rowCount > 0;
}

/** Orders still waiting for payment that were created before `olderThan`. */
export async function openOrdersBefore(db: Queryable, olderThan: Date, limit: number): Promise<Order[]> {
  const { rows } = await db.query<OrderRow>(
    `SELECT ${ORDER_COLUMNS} FROM orders WHERE status IN ('created', 'pending') AND created_at < $1 ORDER BY created_at LIMIT $2`,
    [olderThan, limit],
  );
  return rows.map(toOrder);
}

/** What has been refunded of an order: raised when a refund is requested, lowered again if the gateway refuses it. */
export async function addRefundedFen(tx: Queryable, orderId: string, deltaFen: bigint): Promise<void> {
  await tx.query("UPDATE orders SET refunded_fen = refunded_fen + $2, updated_at = now() WHERE id = $1", [orderId, deltaFen]);
}
