/**
 * Payment callbacks for the benchmarks: pending orders inserted in bulk, their notifications built and signed as the
 * gateways send them (with the simulator's keys; the service reads the merchant side from SANDBOX_DIR, written by
 * writeSandboxDir), and the check that every order was credited exactly once with its amount.
 */
import { type KeyObject, createPrivateKey, randomBytes } from "node:crypto";
import { checkLedger } from "../../server/ledger/ledger";
import type { Provider } from "../../server/payments/gateway";
import { formatBeijingTime } from "../../server/payments/gateways/alipay";
import { newOrderId } from "../../server/payments/orders";
import type { Database } from "../../server/platform/db/database";
import { alipayPaymentFields, signNotification } from "../../devtools/simulator/alipay";
import type { Simulator } from "../../devtools/simulator/server";
import { TRANSACTION_SUCCESS, buildWechatNotification, signWechatMessage, wechatPlatformSigner } from "../../devtools/simulator/wechat";
import type { ExpectedAnswer, PreparedRequest } from "../load/loadGenerator";

export const PROVIDERS: readonly Provider[] = ["alipay", "wechat"];
export const NOTIFY_PATH = (provider: Provider) => `/v1/payments/${provider}/notify`;
/** The gateways' success replies: Alipay's failure reply is also 200, so its body is compared too. */
export const SUCCESS: Record<Provider, ExpectedAnswer> = { alipay: { status: 200, body: "success" }, wechat: { status: 204 } };

/** Amounts vary per order (1.00–500.99 yuan) so that crediting another order's amount would show. */
const MIN_AMOUNT_FEN = 100;
const AMOUNT_SPREAD_FEN = 50_000;
const CHUNK = 5_000;

export type BenchOrder = { provider: Provider; id: string; account: string; amountFen: bigint };

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;
const amountFor = (index: number) => BigInt(MIN_AMOUNT_FEN + ((index * 7_919) % AMOUNT_SPREAD_FEN));

/**
 * Pending orders as createOrder leaves them once the gateway made the trade (a QR payload at the simulator), inserted
 * in bulk: the adapters and the credit path see exactly what they see for an order made through the API.
 */
export async function insertOrders(db: Database, simulator: Simulator, provider: Provider, count: number): Promise<BenchOrder[]> {
  const orders = Array.from({ length: count }, (_, i): BenchOrder => ({ provider, id: newOrderId(), account: newAccount(), amountFen: amountFor(i) }));
  for (let i = 0; i < orders.length; i += CHUNK) {
    const chunk = orders.slice(i, i + CHUNK);
    await db.query(
      `INSERT INTO orders (id, account, provider, amount_fen, status, flow, qr_code, expires_at)
       SELECT id, account, $1, amount_fen, 'pending', 'qr', $2::text || id, now() + interval '2 hours'
         FROM unnest($3::text[], $4::text[], $5::bigint[]) AS t(id, account, amount_fen)`,
      [provider, `${simulator.url}/payer/${provider}/`, chunk.map((o) => o.id), chunk.map((o) => o.account), chunk.map((o) => o.amountFen.toString())],
    );
  }
  return orders;
}

/** The gateways' signing keys, parsed once. */
export type Signers = { alipay: KeyObject; wechat: KeyObject };

export function gatewaySigners(simulator: Simulator): Signers {
  return { alipay: createPrivateKey(simulator.sandbox.alipay.alipayPrivateKey), wechat: createPrivateKey(simulator.sandbox.wechat.platformPrivateKey) };
}

/** A trade_status_sync notification with the fields Alipay sends for a paid precreated trade. */
function alipayNotification(simulator: Simulator, key: KeyObject, order: BenchOrder): PreparedRequest {
  const { appId, sellerId } = simulator.sandbox.alipay;
  const now = new Date();
  const fields = alipayPaymentFields({
    appId,
    sellerId,
    orderId: order.id,
    tradeNo: `2026${randomBytes(10).toString("hex")}`,
    subject: "Gas quota top-up",
    amountFen: order.amountFen,
    createdAt: now,
    paidAt: now,
  });
  const signed = signNotification({ ...fields, notify_time: formatBeijingTime(now) }, key);
  return { headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" }, body: new URLSearchParams(signed).toString() };
}

/** A TRANSACTION.SUCCESS notification: the transaction AES-256-GCM-encrypted, the body signed by the platform key. */
function wechatNotification(simulator: Simulator, key: KeyObject, order: BenchOrder): PreparedRequest {
  const sandbox = simulator.sandbox.wechat;
  const total = Number(order.amountFen);
  const body = buildWechatNotification(sandbox.apiV3Key, TRANSACTION_SUCCESS, {
    appid: sandbox.appId,
    mchid: sandbox.mchId,
    out_trade_no: order.id,
    transaction_id: `4200${randomBytes(12).toString("hex")}`,
    trade_type: "NATIVE",
    trade_state: "SUCCESS",
    trade_state_desc: "支付成功",
    bank_type: "OTHERS",
    success_time: new Date().toISOString(),
    payer: { openid: `o-${randomBytes(8).toString("hex")}` },
    amount: { total, payer_total: total, currency: "CNY", payer_currency: "CNY" },
  });
  const signature = signWechatMessage(body, { ...wechatPlatformSigner(sandbox), privateKey: key });
  return { headers: { ...signature, "content-type": "application/json" }, body };
}

/** Each order's notification, signed; `addressed` adds its notify path, the gateway's success reply and the order id as tag. */
export function notificationsFor(simulator: Simulator, signers: Signers, orders: readonly BenchOrder[], options: { addressed?: boolean } = {}): PreparedRequest[] {
  return orders.map((o) => {
    const notification = o.provider === "alipay" ? alipayNotification(simulator, signers.alipay, o) : wechatNotification(simulator, signers.wechat, o);
    return options.addressed ? { ...notification, path: NOTIFY_PATH(o.provider), expected: SUCCESS[o.provider], tag: o.id } : notification;
  });
}

export type OutcomeCheck = {
  orders: number;
  paid: number;
  creditedOnceWithItsAmount: number;
  balancesEqualToOrder: number;
  /** Orders whose stored callbacks are one `credited` and the expected already_credited duplicates, nothing else. */
  callbacksStoredAsExpected: number;
  /** already_credited callbacks stored for these orders. */
  duplicatesStored: number;
  topUpEntries: number;
  /** Top-up entries expected besides the orders' (the senders' funding). */
  otherTopUps: number;
  ledger: { accounts: number; entries: number; mismatches: number };
  /** How many already_credited callbacks each order must have (`"any"`: redeliveries make it vary). */
  duplicatesPerOrder: number | "any";
};

export type CheckOutcomeOptions = { duplicatesPerOrder: number | "any"; otherTopUps?: number };

/** Every order's facts in one query: its status, its top-up entries, its account's balance, its stored callbacks. */
export async function checkOutcome(db: Database, orders: readonly BenchOrder[], options: CheckOutcomeOptions): Promise<OutcomeCheck> {
  const duplicates = options.duplicatesPerOrder === "any" ? null : options.duplicatesPerOrder;
  const { rows } = await db.query<{ paid: bigint; credited_once: bigint; balances: bigint; callbacks: bigint; duplicates: bigint | null }>(
    `SELECT count(*) FILTER (WHERE o.status = 'paid') AS paid,
            count(*) FILTER (WHERE t.entries = 1 AND t.credited = o.amount_fen AND t.account = o.account) AS credited_once,
            count(*) FILTER (WHERE a.available_fen = o.amount_fen AND a.held_fen = 0) AS balances,
            count(*) FILTER (WHERE c.credited = 1 AND c.total = 1 + c.duplicates AND ($2::bigint IS NULL OR c.duplicates = $2::bigint)) AS callbacks,
            sum(c.duplicates) AS duplicates
       FROM orders o
       LEFT JOIN (SELECT reference, count(*) AS entries, sum(available_delta_fen) AS credited, min(account) AS account
                    FROM ledger_entries WHERE kind = 'topup' GROUP BY reference) t ON t.reference = o.id
       LEFT JOIN accounts a ON a.address = o.account
       LEFT JOIN (SELECT order_id, count(*) FILTER (WHERE outcome = 'credited') AS credited,
                         count(*) FILTER (WHERE outcome = 'already_credited') AS duplicates, count(*) AS total
                    FROM payment_callbacks WHERE verified GROUP BY order_id) c ON c.order_id = o.id
      WHERE o.id = ANY($1)`,
    [orders.map((o) => o.id), duplicates],
  );
  const topUps = await db.query<{ count: bigint }>("SELECT count(*) AS count FROM ledger_entries WHERE kind = 'topup'");
  const ledger = await checkLedger(db);
  const row = rows[0]!;
  return {
    orders: orders.length,
    paid: Number(row.paid),
    creditedOnceWithItsAmount: Number(row.credited_once),
    balancesEqualToOrder: Number(row.balances),
    callbacksStoredAsExpected: Number(row.callbacks),
    duplicatesStored: Number(row.duplicates ?? 0),
    topUpEntries: Number(topUps.rows[0]!.count),
    otherTopUps: options.otherTopUps ?? 0,
    ledger: { accounts: ledger.accounts, entries: ledger.entries, mismatches: ledger.mismatches.length },
    duplicatesPerOrder: options.duplicatesPerOrder,
  };
}

export function outcomeProblems(check: OutcomeCheck): string[] {
  const expect = (what: string, actual: number, wanted: number) => (actual === wanted ? [] : [`${what}: ${actual} of ${wanted}`]);
  const callbacks =
    check.duplicatesPerOrder === "any"
      ? "orders with exactly one credited callback stored (and nothing but already_credited duplicates besides)"
      : check.duplicatesPerOrder === 1
        ? "orders with one credited and one already_credited callback stored"
        : `orders with one credited and ${check.duplicatesPerOrder} already_credited callbacks stored`;
  return [
    ...expect("orders paid", check.paid, check.orders),
    ...expect("orders with exactly one top-up entry of their amount, to their account", check.creditedOnceWithItsAmount, check.orders),
    ...expect("accounts whose balance is their order's amount", check.balancesEqualToOrder, check.orders),
    ...expect(callbacks, check.callbacksStoredAsExpected, check.orders),
    ...expect("top-up entries in the ledger", check.topUpEntries, check.orders + check.otherTopUps),
    ...expect("checkLedger mismatches", check.ledger.mismatches, 0),
  ];
}
