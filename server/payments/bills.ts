/**
 * The gateway side of the daily reconciliation: one gateway's bill for one day against our orders, refunds and
 * ledger. Every payment in the bill must be a credited order of the same amount, and every order credited that day
 * must be in the bill; every refund in the bill must be a refund of ours that succeeded, of the same amount, and
 * the other way round; each of those has exactly its ledger row. The bill's lines (with their fees) are stored.
 *
 * A payment the bill has and our order does not show as paid is credited here, through the same exactly-once path
 * a callback takes, and stays flagged as a `missing_credit`. A refund of ours still waiting for the gateway that
 * the bill shows done is recorded as succeeded. Everything else is only reported: money is never moved on a guess.
 */
import type { Database, Queryable } from "../platform/db/database";
import { untilAborted } from "../reconciliation/abortable";
import { type Difference, type ScopeResult, dayBounds } from "../reconciliation/difference";
import type { BillEntry, GatewayBill, PaymentGateway, Provider } from "./gateway";
import { creditPaidOrder } from "./orders";
import { applyRefundNotification } from "./refunds";

export type BillReconcileDeps = { db: Database; gateway: PaymentGateway };

type PaymentEntry = Extract<BillEntry, { kind: "payment" }>;
type RefundEntry = Extract<BillEntry, { kind: "refund" }>;

type OrderFacts = { id: string; provider: Provider; amount_fen: bigint; status: string; topup_fen: bigint | null };
type RefundFacts = { id: string; order_id: string; provider: Provider; amount_fen: bigint; status: string; refund_fen: bigint | null; reversal_fen: bigint | null };

const ORDER_FACTS = `SELECT o.id, o.provider, o.amount_fen, o.status, l.available_delta_fen AS topup_fen
  FROM orders o LEFT JOIN ledger_entries l ON l.kind = 'topup' AND l.reference = o.id`;
const REFUND_FACTS = `SELECT r.id, r.order_id, o.provider, r.amount_fen, r.status, l.available_delta_fen AS refund_fen, v.available_delta_fen AS reversal_fen
  FROM refunds r JOIN orders o ON o.id = r.order_id
  LEFT JOIN ledger_entries l ON l.kind = 'refund' AND l.reference = r.id
  LEFT JOIN ledger_entries v ON v.kind = 'refund' AND v.reference = 'reversal:' || r.id`;

const fen = (amount: bigint) => `${amount} fen`;

/** Downloads the day's bill from the gateway and reconciles it (`not_ready` while the gateway has not produced it). */
export async function reconcileBillDay(deps: BillReconcileDeps, day: string, signal?: AbortSignal): Promise<ScopeResult> {
  const provider = deps.gateway.provider;
  const download = await untilAborted(deps.gateway.downloadBill(day), signal);
  signal?.throwIfAborted();
  if (download.status === "not_ready") return { scope: provider, day, status: "not_ready", figures: {}, differences: [], detail: download.detail };
  return reconcileBill(deps.db, download.bill);
}

/** Reconciles a bill that has been read (the bill's day and provider say which orders and refunds it covers). */
export async function reconcileBill(db: Database, bill: GatewayBill): Promise<ScopeResult> {
  const { provider, date: day } = bill;
  const { start, end } = dayBounds(day);
  const differences: Difference[] = [];
  const payments = bill.entries.filter((e): e is PaymentEntry => e.kind === "payment");
  const refunds = bill.entries.filter((e): e is RefundEntry => e.kind === "refund");

  // ---- payments: bill → orders, then orders credited that day → bill
  const paidThatDay = await db.query<OrderFacts>(`${ORDER_FACTS} WHERE o.provider = $1 AND o.status = 'paid' AND o.paid_at >= $2 AND o.paid_at < $3`, [provider, start, end]);
  const orders = new Map(paidThatDay.rows.map((o) => [o.id, o]));
  const succeededThatDay = await db.query<RefundFacts>(
    `${REFUND_FACTS} WHERE o.provider = $1 AND r.status = 'succeeded' AND COALESCE(r.succeeded_at, r.updated_at) >= $2 AND COALESCE(r.succeeded_at, r.updated_at) < $3`,
    [provider, start, end],
  );
  const ours = new Map(succeededThatDay.rows.map((r) => [r.id, r]));
  if (bill.entries.length === 0 && (orders.size > 0 || ours.size > 0)) {
    // "no bill for that day" is also what a gateway answers while the bill is late: a day on which we credited
    // orders has one, so it is not out yet (a later run retries; the last-day gauge shows it falling behind)
    return {
      scope: provider,
      day,
      status: "not_ready",
      figures: { creditedOrders: String(orders.size), succeededRefunds: String(ours.size) },
      differences: [],
      detail: `${provider} has no bill for ${day} yet, though we credited ${orders.size} order(s) and ${ours.size} refund(s) that day`,
    };
  }
  await storeBillEntries(db, bill);
  const inBill = new Set<string>();
  let creditedNowFen = 0n;
  for (const payment of payments) {
    inBill.add(payment.orderId);
    const order = orders.get(payment.orderId) ?? (await orderFacts(db, payment.orderId));
    const found = await checkPayment(db, provider, payment, order);
    if (found.some((d) => d.kind === "missing_credit")) creditedNowFen += payment.amountFen;
    differences.push(...found);
  }
  for (const order of orders.values()) {
    if (!inBill.has(order.id)) {
      differences.push({
        kind: "not_in_bill",
        reference: order.id,
        expected: `paid, ${fen(order.amount_fen)}`,
        actual: "absent",
        cause: `we credited order ${order.id} (${fen(order.amount_fen)}) but ${provider}'s bill for ${day} has no payment for it`,
      });
    }
    differences.push(...ledgerOfOrder(order));
  }

  // ---- refunds: bill → refunds, then refunds that succeeded that day → bill
  const refundsInBill = new Set<string>();
  for (const entry of refunds) {
    if (entry.refundId) refundsInBill.add(entry.refundId);
    const refund = entry.refundId ? (ours.get(entry.refundId) ?? (await refundFacts(db, entry.refundId))) : undefined;
    differences.push(...(await checkRefund(db, provider, entry, refund)));
  }
  for (const refund of ours.values()) {
    if (!refundsInBill.has(refund.id)) {
      differences.push({
        kind: "refund_mismatch",
        reference: refund.id,
        expected: `succeeded, ${fen(refund.amount_fen)}`,
        actual: "absent",
        cause: `refund ${refund.id} of order ${refund.order_id} succeeded by our records but ${provider}'s bill for ${day} does not list it`,
      });
    }
    differences.push(...ledgerOfRefund(refund));
  }

  const sum = (entries: readonly BillEntry[], pick: (e: BillEntry) => bigint) => entries.reduce((total, e) => total + pick(e), 0n);
  const figures: Record<string, string> = {
    billPayments: String(payments.length),
    billPaymentFen: String(sum(payments, (e) => e.amountFen)),
    creditedOrders: String(orders.size),
    creditedFen: String([...orders.values()].reduce((t, o) => t + o.amount_fen, 0n)),
    creditedNowFen: String(creditedNowFen),
    billRefunds: String(refunds.length),
    billRefundFen: String(sum(refunds, (e) => e.amountFen)),
    succeededRefunds: String(ours.size),
    refundedFen: String([...ours.values()].reduce((t, r) => t + r.amount_fen, 0n)),
    feeMilliFen: String(sum(bill.entries, (e) => e.feeMilliFen)),
  };
  if (bill.fundFlow) {
    figures.fundFlowIncomeFen = String(bill.fundFlow.incomeFen);
    figures.fundFlowExpenseFen = String(bill.fundFlow.expenseFen);
    differences.push(...checkFundFlow(bill));
  }
  return { scope: provider, day, status: differences.length === 0 ? "ties_out" : "differences", figures, differences };
}

async function orderFacts(db: Queryable, orderId: string): Promise<OrderFacts | undefined> {
  const { rows } = await db.query<OrderFacts>(`${ORDER_FACTS} WHERE o.id = $1`, [orderId]);
  return rows[0];
}

async function refundFacts(db: Queryable, refundId: string): Promise<RefundFacts | undefined> {
  const { rows } = await db.query<RefundFacts>(`${REFUND_FACTS} WHERE r.id = $1`, [refundId]);
  return rows[0];
}

async function checkPayment(db: Database, provider: Provider, payment: PaymentEntry, order: OrderFacts | undefined): Promise<Difference[]> {
  const reference = payment.orderId;
  if (!order || order.provider !== provider) {
    return [
      {
        kind: "unknown_order",
        reference,
        expected: "absent",
        actual: `paid, ${fen(payment.amountFen)} (${payment.gatewayTradeNo})`,
        cause: `${provider}'s bill has a payment for order ${reference}, which we never created${order ? ` for ${provider}` : ""}: nothing can be credited`,
      },
    ];
  }
  if (order.amount_fen !== payment.amountFen) {
    return [
      {
        kind: "amount_mismatch",
        reference,
        expected: fen(order.amount_fen),
        actual: fen(payment.amountFen),
        cause: `order ${reference} is for ${fen(order.amount_fen)} but ${provider}'s bill says ${fen(payment.amountFen)} was paid${order.status === "paid" ? "" : " (not credited)"}`,
      },
    ];
  }
  if (order.status === "paid") return [];
  const { outcome } = await db.transaction((tx) =>
    creditPaidOrder(tx, { orderId: order.id, provider, amountFen: payment.amountFen, gatewayTradeNo: payment.gatewayTradeNo, paidAt: payment.at }),
  );
  return [
    {
      kind: "missing_credit",
      reference,
      expected: order.status,
      actual: `paid, ${fen(payment.amountFen)} (${payment.gatewayTradeNo})`,
      cause: `${provider}'s bill shows order ${reference} paid, but no notification or query had credited it (order was ${order.status})`,
      resolution: outcome === "credited" ? "credited now, through the exactly-once path" : "credited meanwhile by a notification or query",
    },
  ];
}

async function checkRefund(db: Database, provider: Provider, entry: RefundEntry, refund: RefundFacts | undefined): Promise<Difference[]> {
  const reference = entry.refundId ?? `${provider}:${entry.gatewayRefundNo}`;
  const actual = `refunded, ${fen(entry.amountFen)} (${entry.gatewayRefundNo})`;
  if (!refund || refund.order_id !== entry.orderId || refund.provider !== provider) {
    return [
      {
        kind: "refund_mismatch",
        reference,
        expected: "absent",
        actual,
        cause: `${provider} refunded ${fen(entry.amountFen)} of order ${entry.orderId} that we never asked for (e.g. from the merchant console): the account's quota was not debited`,
      },
    ];
  }
  if (refund.amount_fen !== entry.amountFen) {
    return [
      {
        kind: "refund_mismatch",
        reference,
        expected: `${refund.status}, ${fen(refund.amount_fen)}`,
        actual,
        cause: `refund ${refund.id} is for ${fen(refund.amount_fen)} but ${provider}'s bill says ${fen(entry.amountFen)} went back`,
      },
    ];
  }
  if (refund.status === "succeeded") return [];
  if (refund.status === "failed") {
    return [
      {
        kind: "refund_mismatch",
        reference,
        expected: "failed (quota given back)",
        actual,
        cause: `refund ${refund.id} was recorded as refused and its quota given back, but ${provider}'s bill shows the money went back: the account has both`,
      },
    ];
  }
  // still waiting for the gateway: the bill is the gateway's own word that it is done
  const applied = await applyRefundNotification(db, provider, {
    orderId: entry.orderId,
    refundId: refund.id,
    state: { status: "succeeded", gatewayRefundNo: entry.gatewayRefundNo, succeededAt: entry.at },
    gatewayStatus: "BILL",
    amountFen: entry.amountFen,
    payload: { source: "bill" },
  });
  return [
    {
      kind: "refund_mismatch",
      reference,
      expected: "requested",
      actual,
      cause: `refund ${refund.id} was still waiting for ${provider}, whose bill shows it done`,
      resolution: applied.outcome === "refund_updated" ? "recorded as succeeded" : "recorded meanwhile",
    },
  ];
}

function ledgerOfOrder(order: OrderFacts): Difference[] {
  if (order.topup_fen === order.amount_fen) return [];
  return [
    {
      kind: "ledger_mismatch",
      reference: order.id,
      expected: `topup ${fen(order.amount_fen)}`,
      actual: order.topup_fen === null ? "no topup entry" : `topup ${fen(order.topup_fen)}`,
      cause: `paid order ${order.id} does not have exactly one top-up ledger entry of its amount`,
    },
  ];
}

function ledgerOfRefund(refund: RefundFacts): Difference[] {
  if (refund.refund_fen === -refund.amount_fen && refund.reversal_fen === null) return [];
  return [
    {
      kind: "ledger_mismatch",
      reference: refund.id,
      expected: `refund −${fen(refund.amount_fen)}, no reversal`,
      actual: `${refund.refund_fen === null ? "no refund entry" : `refund ${fen(refund.refund_fen)}`}${refund.reversal_fen === null ? "" : `, reversal ${fen(refund.reversal_fen)}`}`,
      cause: `succeeded refund ${refund.id} does not have exactly its refund ledger entry`,
    },
  ];
}

/** WeChat: what came into the basic account by payments that day is what the trade bill says was paid. */
function checkFundFlow(bill: GatewayBill): Difference[] {
  const flow = bill.fundFlow!;
  if (flow.incomeFen === bill.summary.paymentFen) return [];
  return [
    {
      kind: "fund_flow_mismatch",
      reference: "income",
      expected: fen(bill.summary.paymentFen),
      actual: fen(flow.incomeFen),
      cause: `the trade bill's payments (${fen(bill.summary.paymentFen)}) are not what the fund-flow bill shows coming in (${fen(flow.incomeFen)})`,
    },
  ];
}

const ENTRY_BATCH = 500;

/** Keeps the bill's lines (and fees), replacing what an earlier read of the same day stored. */
async function storeBillEntries(db: Database, bill: GatewayBill): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query("DELETE FROM bill_entries WHERE provider = $1 AND bill_date = $2", [bill.provider, bill.date]);
    for (let i = 0; i < bill.entries.length; i += ENTRY_BATCH) {
      const batch = bill.entries.slice(i, i + ENTRY_BATCH);
      const params: unknown[] = [];
      const values = batch.map((e) => {
        params.push(bill.provider, bill.date, e.kind, e.kind === "payment" ? e.gatewayTradeNo : e.gatewayRefundNo, e.orderId, e.kind === "refund" ? (e.refundId ?? null) : null, e.amountFen, e.feeMilliFen, e.at);
        const n = params.length;
        return `(${Array.from({ length: 9 }, (_, k) => `$${n - 8 + k}`).join(", ")})`;
      });
      // a bill lists a trade once; ON CONFLICT keeps a repeated line from failing the whole run
      await tx.query(
        `INSERT INTO bill_entries (provider, bill_date, kind, gateway_no, order_id, refund_id, amount_fen, fee_millifen, at) VALUES ${values.join(", ")}
         ON CONFLICT DO NOTHING`,
        params,
      );
    }
  });
}
