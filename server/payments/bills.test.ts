/**
 * The bill side of the daily reconciliation, on both databases: a bill (as the gateway adapters read it) against
 * real orders, refunds and ledger rows, each difference kind made and found, and the run stored idempotently.
 * End to end with the simulator's real bills: server/reconciliation/month.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { beforeEach, it } from "node:test";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, getBalance } from "../ledger/ledger";
import type { Database } from "../platform/db/database";
import { type ReconciliationScope, reconcileDay } from "../reconciliation/daily";
import { dayBounds } from "../reconciliation/difference";
import { dayReport, formatDayReport } from "../reconciliation/report";
import { differencesOfDay, resultsOfDay } from "../reconciliation/store";
import { reconcileBill } from "./bills";
import type { BillEntry, GatewayBill, Provider } from "./gateway";
import { creditPaidOrder, newOrderId } from "./orders";
import { applyRefundNotification, requestRefund } from "./refunds";

// each test its own day (the suite shares one database): days from 2026-10-01 on
let dayNumber = 0;
let DAY = "2026-10-01";
const nextDay = () => {
  DAY = new Date(Date.UTC(2026, 9, 1 + dayNumber++)).toISOString().slice(0, 10);
};
const at = (hhmm: string) => new Date(`${DAY}T${hhmm}:00+08:00`);
const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

async function order(db: Database, provider: Provider, amountFen: bigint, paidAt?: Date): Promise<{ id: string; account: string; tradeNo: string }> {
  const id = newOrderId();
  const account = newAccount();
  await db.query("INSERT INTO orders (id, account, provider, amount_fen, status, expires_at) VALUES ($1, $2, $3, $4, 'pending', $5)", [id, account, provider, amountFen, at("23:59")]);
  const tradeNo = `T${randomBytes(8).toString("hex")}`;
  if (paidAt) await db.transaction((tx) => creditPaidOrder(tx, { orderId: id, provider, amountFen, gatewayTradeNo: tradeNo, paidAt }));
  return { id, account, tradeNo };
}

async function succeededRefund(db: Database, provider: Provider, orderId: string, amountFen: bigint, succeededAt: Date): Promise<string> {
  const refund = await requestRefund({ db, gateways: new Map() }, { orderId, amountFen });
  await applyRefundNotification(db, provider, { orderId, refundId: refund.id, state: { status: "succeeded", gatewayRefundNo: `R${refund.id}`, succeededAt }, gatewayStatus: "SUCCESS", payload: {} });
  return refund.id;
}

function bill(provider: Provider, entries: BillEntry[]): GatewayBill {
  const payments = entries.filter((e) => e.kind === "payment");
  const refunds = entries.filter((e) => e.kind === "refund");
  return {
    provider,
    date: DAY,
    entries,
    summary: {
      paymentCount: payments.length,
      paymentFen: payments.reduce((t, e) => t + e.amountFen, 0n),
      refundCount: refunds.length,
      refundFen: refunds.reduce((t, e) => t + e.amountFen, 0n),
      feeMilliFen: entries.reduce((t, e) => t + e.feeMilliFen, 0n),
    },
    source: { files: ["test"] },
  };
}

const payment = (o: { id: string; tradeNo: string }, amountFen: bigint, when = at("10:00")): BillEntry => ({
  kind: "payment",
  orderId: o.id,
  gatewayTradeNo: o.tradeNo,
  amountFen,
  feeMilliFen: amountFen * 6n, // 0.6 %
  at: when,
});

describeWithDatabases("reconciling a gateway bill", (getDb) => {
  beforeEach(nextDay);
  it("a day whose bill has every credited order and refund, and nothing else, ties out, with its figures and fees stored", async () => {
    const db = getDb();
    const a = await order(db, "wechat", 1000n, at("09:00"));
    const b = await order(db, "wechat", 2550n, at("23:59"));
    const refundId = await succeededRefund(db, "wechat", a.id, 400n, at("15:00"));
    const result = await reconcileBill(
      db,
      bill("wechat", [
        payment(a, 1000n, at("09:00")),
        payment(b, 2550n, at("23:59")),
        { kind: "refund", orderId: a.id, refundId, gatewayRefundNo: `R${refundId}`, amountFen: 400n, feeMilliFen: -2400n, at: at("15:00") },
      ]),
    );
    assert.deepEqual(result.differences, []);
    assert.equal(result.status, "ties_out");
    assert.equal(result.figures.billPaymentFen, "3550");
    assert.equal(result.figures.creditedFen, "3550");
    assert.equal(result.figures.refundedFen, "400");
    assert.equal(result.figures.feeMilliFen, String(6000n + 15300n - 2400n));
    const { rows } = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM bill_entries WHERE provider = 'wechat' AND bill_date = $1", [DAY]);
    assert.equal(rows[0]!.n, "3");
  });

  it("a payment the bill has and no notification or query credited is credited once, flagged missing_credit, and a second run ties out with the flag kept", async () => {
    const db = getDb();
    const o = await order(db, "alipay", 1234n); // pending: the notification never came
    const scopes: ReconciliationScope[] = [{ scope: "alipay", reconcile: () => reconcileBill(db, bill("alipay", [payment(o, 1234n)])) }];

    const first = await reconcileDay({ db, scopes }, DAY);
    assert.equal(first.runs[0]!.status, "differences");
    assert.equal(first.runs[0]!.differences[0]!.kind, "missing_credit");
    assert.equal((await getBalance(db, o.account)).availableFen, 1234n);
    const paidAt = await db.query<{ paid_at: Date }>("SELECT paid_at FROM orders WHERE id = $1", [o.id]);
    assert.equal(paidAt.rows[0]!.paid_at.getTime(), at("10:00").getTime(), "paid at the bill's time");

    const second = await reconcileDay({ db, scopes }, DAY);
    assert.equal(second.runs[0]!.status, "ties_out");
    assert.equal((await getBalance(db, o.account)).availableFen, 1234n, "credited once");
    const flagged = (await differencesOfDay(db, DAY)).filter((d) => d.reference === o.id);
    assert.equal(flagged.length, 1);
    assert.equal(flagged[0]!.kind, "missing_credit");
    assert.match(flagged[0]!.resolution!, /credited now/);
    const stored = (await resultsOfDay(db, DAY)).find((r) => r.scope === "alipay")!;
    assert.equal(stored.status, "ties_out");
    assert.equal(stored.runs, 2);
    assert.deepEqual((await checkLedger(db)).mismatches, []);
  });

  it("an order we credited that the bill lacks is not_in_bill; an amount off by one fen is amount_mismatch and credits nothing", async () => {
    const db = getDb();
    const credited = await order(db, "wechat", 500n, at("08:00"));
    const unpaid = await order(db, "wechat", 700n);
    const result = await reconcileBill(db, bill("wechat", [payment(unpaid, 701n)]));
    const kinds = result.differences.map((d) => [d.kind, d.reference]);
    assert.deepEqual(kinds.sort(), [
      ["amount_mismatch", unpaid.id],
      ["not_in_bill", credited.id],
    ].sort());
    const mismatch = result.differences.find((d) => d.kind === "amount_mismatch")!;
    assert.equal(mismatch.expected, "700 fen");
    assert.equal(mismatch.actual, "701 fen");
    assert.equal((await getBalance(db, unpaid.account)).availableFen, 0n);
  });

  it("refunds: one made at the gateway that we never asked for, one of ours the bill lacks, one still waiting that the bill shows done", async () => {
    const db = getDb();
    const o = await order(db, "alipay", 3000n, at("07:00"));
    const lacking = await succeededRefund(db, "alipay", o.id, 100n, at("11:00"));
    const waiting = await requestRefund({ db, gateways: new Map() }, { orderId: o.id, amountFen: 200n });
    const result = await reconcileBill(
      db,
      bill("alipay", [
        payment(o, 3000n, at("07:00")),
        { kind: "refund", orderId: o.id, gatewayRefundNo: "2026112022001console", amountFen: 50n, feeMilliFen: 0n, at: at("12:00") },
        { kind: "refund", orderId: o.id, refundId: waiting.id, gatewayRefundNo: "2026112022001waiting", amountFen: 200n, feeMilliFen: 0n, at: at("13:00") },
      ]),
    );
    const byRef = new Map(result.differences.map((d) => [d.reference, d]));
    assert.equal(result.differences.length, 3);
    assert.equal(byRef.get("alipay:2026112022001console")?.kind, "refund_mismatch");
    assert.match(byRef.get("alipay:2026112022001console")!.cause, /never asked for/);
    assert.equal(byRef.get(lacking)?.kind, "refund_mismatch");
    assert.equal(byRef.get(lacking)?.actual, "absent");
    assert.equal(byRef.get(waiting.id)?.resolution, "recorded as succeeded");
    const { rows } = await db.query<{ status: string; succeeded_at: Date }>("SELECT status, succeeded_at FROM refunds WHERE id = $1", [waiting.id]);
    assert.equal(rows[0]!.status, "succeeded");
    assert.equal(rows[0]!.succeeded_at.getTime(), at("13:00").getTime());
  });

  it("a bill payment for an order we never created is unknown_order; a paid order without its top-up entry is ledger_mismatch", async () => {
    const db = getDb();
    const stranger = { id: "fp000000000000000000stranger", tradeNo: "T-stranger" };
    const o = await order(db, "wechat", 900n);
    // a bug that marks an order paid without crediting it: the ledger side of the three-way check catches it
    await db.query("UPDATE orders SET status = 'paid', paid_at = $2 WHERE id = $1", [o.id, at("16:00")]);
    const result = await reconcileBill(db, bill("wechat", [payment(stranger, 100n), payment(o, 900n, at("16:00"))]));
    assert.deepEqual(result.differences.map((d) => d.kind).sort(), ["ledger_mismatch", "unknown_order"]);
    assert.equal(result.differences.find((d) => d.kind === "ledger_mismatch")!.reference, o.id);
  });

  it("a difference no longer found is cleared by the next run; the report says which day ties out and why not", async () => {
    const db = getDb();
    const day = DAY;
    const o = await order(db, "wechat", 600n, new Date(`${day}T12:00:00+08:00`));
    const other = await order(db, "wechat", 800n, new Date(`${day}T13:00:00+08:00`));
    let entries: BillEntry[] = [payment(other, 800n, new Date(`${day}T13:00:00+08:00`))];
    const scopes: ReconciliationScope[] = [{ scope: "wechat", reconcile: () => reconcileBill(db, { ...bill("wechat", entries), date: day }) }];
    await reconcileDay({ db, scopes }, day);
    assert.equal((await differencesOfDay(db, day)).length, 1);
    const before = formatDayReport(dayReport(day, await resultsOfDay(db, day), await differencesOfDay(db, day), ["wechat"]));
    assert.match(before, /not_in_bill/);
    assert.match(before, /RESULT: 1 open difference/);

    entries = [...entries, payment(o, 600n, new Date(`${day}T12:00:00+08:00`))];
    await reconcileDay({ db, scopes }, day);
    assert.equal((await differencesOfDay(db, day)).length, 0);
    assert.equal((await differencesOfDay(db, day, { includeCleared: true }))[0]!.clearedAt instanceof Date, true);
    const after = formatDayReport(dayReport(day, await resultsOfDay(db, day), await differencesOfDay(db, day), ["wechat", "alipay"]));
    assert.match(after, /wechat: ties out/);
    assert.match(after, /alipay: not run yet/);
    assert.match(after, /RESULT: not final yet: alipay/);
  });

  it("an empty bill for a day on which we credited orders is not out yet (not_ready), not a day of not_in_bill differences", async () => {
    const db = getDb();
    await order(db, "alipay", 1_100n, at("10:30"));
    const result = await reconcileBill(db, bill("alipay", []));
    assert.equal(result.status, "not_ready");
    assert.match(result.detail!, /no bill for .* yet, though we credited 1 order/);
    assert.deepEqual(result.differences, []);
  });

  it("WeChat's fund-flow bill must show the trade bill's payments coming in: otherwise fund_flow_mismatch", async () => {
    const db = getDb();
    const o = await order(db, "wechat", 1_000n, at("10:00"));
    const paid = bill("wechat", [payment(o, 1_000n)]);
    const even = await reconcileBill(db, { ...paid, fundFlow: { incomeCount: 1, incomeFen: 1_000n, expenseCount: 0, expenseFen: 0n } });
    assert.equal(even.status, "ties_out");
    assert.equal(even.figures.fundFlowIncomeFen, "1000");
    const short = await reconcileBill(db, { ...paid, fundFlow: { incomeCount: 1, incomeFen: 990n, expenseCount: 0, expenseFen: 0n } });
    assert.deepEqual(short.differences.map((d) => [d.kind, d.expected, d.actual]), [["fund_flow_mismatch", "1000 fen", "990 fen"]]);
  });

  it("a scope that throws (a gateway outage) is stored as failed and the other scopes still run", async () => {
    const db = getDb();
    const day = DAY;
    const scopes: ReconciliationScope[] = [
      { scope: "alipay", reconcile: () => Promise.reject(new Error("alipay is unavailable: it did not answer within 5000 ms")) },
      { scope: "wechat", reconcile: () => reconcileBill(db, { ...bill("wechat", []), date: day }) },
    ];
    const run = await reconcileDay({ db, scopes }, day);
    assert.deepEqual(run.runs.map((r) => r.status), ["failed", "ties_out"]);
    const stored = await resultsOfDay(db, day);
    assert.equal(stored.find((r) => r.scope === "alipay")!.status, "failed");
    assert.match(stored.find((r) => r.scope === "alipay")!.detail!, /did not answer/);
  });
});

it("a day is a calendar day in China Standard Time", () => {
  const { start, end } = dayBounds("2026-11-20");
  assert.equal(start.toISOString(), "2026-11-19T16:00:00.000Z");
  assert.equal(end.toISOString(), "2026-11-20T16:00:00.000Z");
  assert.throws(() => dayBounds("2026-02-30"), /not a calendar day/);
  assert.throws(() => dayBounds("20261120"), /YYYY-MM-DD/);
});
