import { randomBytes } from "node:crypto";
import type { Database, Queryable } from "../platform/db/database";
import { creditTopUps } from "../ledger/ledger";
import { NotFoundError, PaymentConflictError, PaymentInputError } from "./errors";
import { GatewayError, type JsapiPayParams, PROVIDER_FLOWS, type PaymentFlow, type PaymentGateway, type Provider } from "./gateway";

export type OrderStatus = "created" | "pending" | "paid" | "closed";

export type Order = {
  id: string;
  account: string;
  provider: Provider;
  amountFen: bigint;
  status: OrderStatus;
  /** How it is paid. */
  flow: PaymentFlow;
  qrCode: string | null;
  payUrl: string | null;
  /** jsapi, once the payer's openid is known and the trade exists. */
  jsapiParams: JsapiPayParams | null;
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

export type CreateOrderInput = {
  account: string;
  amountFen: bigint;
  provider: Provider;
  /** Default: the gateway's defaultFlow. */
  flow?: PaymentFlow;
  idempotencyKey?: string;
  /** The creating client's IP (WeChat Pay H5 needs it). */
  clientIp?: string;
};

export type OrderRow = {
  id: string;
  account: string;
  provider: Provider;
  amount_fen: bigint;
  status: OrderStatus;
  idempotency_key: string | null;
  flow: PaymentFlow | null;
  qr_code: string | null;
  pay_url: string | null;
  pay_params: JsapiPayParams | null;
  gateway_trade_no: string | null;
  expires_at: Date;
  paid_at: Date | null;
  closed_at: Date | null;
  refunded_fen: bigint;
  created_at: Date;
  updated_at: Date;
};

export const ORDER_COLUMNS =
  "id, account, provider, amount_fen, status, idempotency_key, flow, qr_code, pay_url, pay_params, gateway_trade_no, expires_at, paid_at, closed_at, refunded_fen, created_at, updated_at";

export function toOrder(r: OrderRow): Order {
  return {
    id: r.id,
    account: r.account,
    provider: r.provider,
    amountFen: r.amount_fen,
    status: r.status,
    // orders made before flows existed were paid the default way of the time: a QR code, or Alipay page pay's URL
    flow: r.flow ?? (r.pay_url ? "page" : "qr"),
    qrCode: r.qr_code,
    payUrl: r.pay_url,
    jsapiParams: r.pay_params,
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

/** The flow an order is paid with: the one asked for, checked against what the gateway has and the merchant enabled. */
export function chooseFlow(gateway: PaymentGateway, asked: PaymentFlow | undefined): PaymentFlow {
  if (asked === undefined) return gateway.defaultFlow;
  if (!PROVIDER_FLOWS[gateway.provider].includes(asked)) {
    throw new PaymentInputError(`flow ${asked} does not exist for ${gateway.provider}: it has ${PROVIDER_FLOWS[gateway.provider].join(", ")}`);
  }
  if (!gateway.flows.includes(asked)) {
    throw new PaymentInputError(`flow ${asked} is not enabled for ${gateway.provider} on this server: enabled are ${gateway.flows.join(", ")}`);
  }
  return asked;
}

/**
 * Creates a top-up order and the gateway trade behind it. The order row is committed before the gateway is
 * asked, so a crash in between leaves a `created` order that a retry (same idempotency key) or the reconciler
 * finishes; the same idempotency key always returns the same order. A jsapi order stays `created` until the
 * payer's openid is known (completeJsapiOrder): WeChat makes a JSAPI trade for one payer only.
 */
export async function createOrder(deps: OrdersDeps, input: CreateOrderInput): Promise<Order> {
  const account = input.account.toLowerCase();
  const gateway = deps.gateways.get(input.provider);
  if (!gateway) throw new PaymentInputError(`provider ${input.provider} is not enabled`);
  const flow = chooseFlow(gateway, input.flow);
  if (flow === "h5" && !input.clientIp) throw new PaymentInputError("flow h5 needs the client's IP address, and this request has none");
  const { minFen, maxFen, ttlSeconds } = deps.limits;
  if (input.amountFen < minFen || input.amountFen > maxFen) {
    throw new PaymentInputError(`amountFen must be between ${minFen} and ${maxFen}: got ${input.amountFen}`);
  }

  const order = await insertOrFindOrder(deps.db, { ...input, account, flow }, ttlSeconds, gateway.defaultFlow);
  if (order.status === "pending" && flow === "h5") return refreshH5Url(deps, gateway, order, input.clientIp);
  if (order.status !== "created" || flow === "jsapi") return order;
  return startTrade(deps, gateway, order, { clientIp: input.clientIp });
}

/**
 * An h5_url lives 5 minutes, the trade until it expires: a retried create of a pending H5 order (the payer asking
 * to pay again) asks WeChat again with the same parameters, which answers the trade's current h5_url. A business
 * refusal (paid or closed meanwhile) leaves the order as it is: the notification or the reconciler settles it.
 */
async function refreshH5Url(deps: OrdersDeps, gateway: PaymentGateway, order: Order, clientIp: string | undefined): Promise<Order> {
  let payUrl: string | undefined;
  try {
    payUrl = (await gateway.createPayment({ orderId: order.id, amountFen: order.amountFen, subject: deps.subject ?? "Gas quota top-up", expiresAt: order.expiresAt, flow: "h5", payer: { clientIp } })).payUrl;
  } catch (error) {
    if (error instanceof GatewayError && error.gatewayCode !== undefined) return order;
    throw error;
  }
  if (!payUrl) return order;
  const { rows } = await deps.db.query<OrderRow>(
    `UPDATE orders SET pay_url = $2, updated_at = now() WHERE id = $1 AND status = 'pending' RETURNING ${ORDER_COLUMNS}`,
    [order.id, payUrl],
  );
  return rows[0] ? toOrder(rows[0]) : await getOrder(deps.db, order.id);
}

/** The payer's openid is known (WeChat OAuth): the JSAPI trade is made for them and the order becomes `pending`. */
export async function completeJsapiOrder(deps: OrdersDeps, order: Order, openId: string): Promise<Order> {
  const gateway = deps.gateways.get(order.provider);
  if (!gateway || order.flow !== "jsapi") throw new PaymentInputError(`order ${order.id} is not a WeChat Pay JSAPI order`);
  if (order.status !== "created") return order;
  await deps.db.query("UPDATE orders SET payer_openid = $2, updated_at = now() WHERE id = $1 AND status = 'created'", [order.id, openId]);
  return startTrade(deps, gateway, order, { openId });
}

async function startTrade(deps: OrdersDeps, gateway: PaymentGateway, order: Order, payer: GatewayPayer): Promise<Order> {
  const payment = await gateway.createPayment({
    orderId: order.id,
    amountFen: order.amountFen,
    subject: deps.subject ?? "Gas quota top-up",
    expiresAt: order.expiresAt,
    flow: order.flow,
    payer,
  });
  const { rows } = await deps.db.query<OrderRow>(
    `UPDATE orders SET status = 'pending', qr_code = $2, pay_url = $3, pay_params = $4, updated_at = now()
      WHERE id = $1 AND status = 'created' RETURNING ${ORDER_COLUMNS}`,
    [order.id, payment.qrCode ?? null, payment.payUrl ?? null, payment.jsapiParams ? JSON.stringify(payment.jsapiParams) : null],
  );
  // a callback may already have marked it paid: then that newer state is the answer
  return rows[0] ? toOrder(rows[0]) : await getOrder(deps.db, order.id);
}

type GatewayPayer = NonNullable<Parameters<PaymentGateway["createPayment"]>[0]["payer"]>;

async function insertOrFindOrder(db: Database, input: CreateOrderInput & { flow: PaymentFlow }, ttlSeconds: number, defaultFlow: PaymentFlow): Promise<Order> {
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  const { rows } = await db.query<OrderRow>(
    `INSERT INTO orders (id, account, provider, amount_fen, status, idempotency_key, flow, expires_at)
     VALUES ($1, $2, $3, $4, 'created', $5, $6, $7)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING ${ORDER_COLUMNS}`,
    [newOrderId(), input.account, input.provider, input.amountFen, input.idempotencyKey ?? null, input.flow, expiresAt],
  );
  if (rows[0]) return toOrder(rows[0]);
  const existing = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1`, [input.idempotencyKey]);
  const row = existing.rows[0]!;
  if (row.account !== input.account || row.provider !== input.provider || row.amount_fen !== input.amountFen) {
    throw new PaymentConflictError("idempotencyKey was already used for an order with other parameters", { orderId: row.id });
  }
  // one order is one gateway trade, made for one flow: another flow is another order (and another key)
  const existingFlow = row.flow ?? defaultFlow;
  if (existingFlow !== input.flow) {
    throw new PaymentConflictError(
      `idempotencyKey was already used for an order paid by flow ${existingFlow}, not ${input.flow}: one order is one gateway trade; to pay another way, create a new order with a new idempotencyKey`,
      { orderId: row.id, flow: existingFlow },
    );
  }
  return toOrder(row);
}

export type PaidTrade = { orderId: string; provider: Provider; amountFen: bigint; gatewayTradeNo: string; paidAt?: Date };

export type CreditOutcome = "credited" | "already_credited" | "unknown_order" | "amount_mismatch";

/** What a credit is decided on: the locked order's owner, amount and state. */
export type CreditedOrder = Pick<Order, "id" | "account" | "provider" | "amountFen" | "status">;

export type CreditResult = { outcome: CreditOutcome; order?: CreditedOrder };

/**
 * Marks the order paid and credits its account, in the caller's transaction, exactly once: the order row is
 * locked, a paid order is left alone, and the ledger's unique (topup, order id) backs that up. A trade whose
 * amount differs from the order's credits nothing.
 */
export async function creditPaidOrder(tx: Queryable, trade: PaidTrade): Promise<CreditResult> {
  return (await creditPaidOrders(tx, [trade]))[0]!;
}

/**
 * creditPaidOrder for many trades in a few statements (callbacks group-commit their credits): the orders are locked
 * in id order (batches never deadlock), each trade is decided against its locked order as creditPaidOrder decides it
 * — in the order given, so a second trade for an order the batch pays is `already_credited` — and the paid orders
 * and their ledger entries are written together. Results are in the order of `trades`.
 */
export async function creditPaidOrders(tx: Queryable, trades: readonly PaidTrade[]): Promise<CreditResult[]> {
  const ids = [...new Set(trades.map((t) => t.orderId))];
  const { rows } = await tx.query<{ id: string; account: string; provider: Provider; amount_fen: bigint; status: OrderStatus }>(
    "SELECT id, account, provider, amount_fen, status FROM orders WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
    [ids],
  );
  const locked = new Map(rows.map((r): [string, CreditedOrder] => [r.id, { id: r.id, account: r.account, provider: r.provider, amountFen: r.amount_fen, status: r.status }]));
  const paying = new Map<string, { order: CreditedOrder; trade: PaidTrade }>();
  const results = trades.map((trade): CreditResult => {
    const order = locked.get(trade.orderId);
    if (!order || order.provider !== trade.provider) return { outcome: "unknown_order" };
    if (order.status === "paid") return { outcome: "already_credited", order };
    if (order.amountFen !== trade.amountFen) return { outcome: "amount_mismatch", order };
    // a later trade for this order, in this batch, finds it paid
    locked.set(order.id, { ...order, status: "paid" });
    paying.set(order.id, { order, trade });
    return { outcome: "credited", order: locked.get(order.id) };
  });
  if (paying.size === 0) return results;

  const payments = [...paying.values()];
  await tx.query(
    `UPDATE orders SET status = 'paid', paid_at = COALESCE(t.notified_paid_at, now()), gateway_trade_no = t.trade_no, updated_at = now()
       FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS t(order_id, notified_paid_at, trade_no)
      WHERE id = t.order_id`,
    [payments.map((p) => p.order.id), payments.map((p) => p.trade.paidAt?.toISOString() ?? null), payments.map((p) => p.trade.gatewayTradeNo)],
  );
  await creditTopUps(
    tx,
    payments.map(({ order }) => ({ account: order.account, orderId: order.id, amountFen: order.amountFen })),
  );
  return results;
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
