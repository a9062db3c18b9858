/**
 * A simulated month of top-ups and refunds through the real service, the real gateway SDKs and the simulator, on
 * both databases; then each day is reconciled against the bills the simulator produces in the gateways' real
 * formats (Alipay's zip of GBK CSV, WeChat Pay's gzipped trade and fund-flow bills with their SHA1). The month ties
 * out; a day with injected differences (a payment never notified nor answered for, an amount off by one fen, a
 * refund made in the merchant console) shows each one, and the missing credit is credited exactly once.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type DatabaseKind, testedDatabaseKinds } from "../../devtools/testing/databases";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { checkLedger, getBalance } from "../ledger/ledger";
import type { Provider } from "../payments/gateway";
import { reconcileDay } from "./daily";
import { dayOf } from "./difference";
import { formatDayReport } from "./report";
import { readDayReport } from "./routes";

const MONTH = Array.from({ length: 30 }, (_, i) => new Date(Date.UTC(2026, 9, 1 + i)).toISOString().slice(0, 10)); // 2026-10-01 … 10-30
const INJECTED_DAY = "2026-10-31";
const PROVIDERS: Provider[] = ["alipay", "wechat"];
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

for (const kind of testedDatabaseKinds() as DatabaseKind[]) {
  describe(`a simulated month reconciled against the gateways' bills [${kind}]`, () => {
    let stack: Stack;
    let simNow = new Date();
    before(async () => {
      stack = await startPaymentsStack(kind, { clock: () => simNow });
    });
    after(async () => {
      await stack?.close();
    });

    const at = (day: string, hhmm: string) => new Date(`${day}T${hhmm}:00+08:00`);
    const scopes = () => ({ db: stack.db, scopes: stack.service.reconciliation.scopes });

    async function paidOrder(provider: Provider, amountFen: number): Promise<{ id: string; account: string }> {
      const res = await stack.request("POST", "/v1/orders", { account: newAccount(), amountFen, provider });
      assert.equal(res.status, 201, res.text);
      await payOnPayerPage(provider, res.body.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${res.body.id}`)).body.status === "paid", 10_000, `order ${res.body.id} credited`);
      return { id: res.body.id, account: res.body.account };
    }

    async function refund(orderId: string, amountFen: number): Promise<string> {
      const res = await stack.request("POST", "/v1/refunds", { orderId, amountFen }, admin);
      assert.equal(res.status, 201, res.text);
      await eventually(async () => (await stack.request("GET", `/v1/refunds/${res.body.id}`, undefined, admin)).body.status === "succeeded", 10_000, `refund ${res.body.id} succeeded`);
      return res.body.id;
    }

    it("thirty days of payments and refunds on both gateways reconcile with zero differences", async () => {
      let expectedFen = 0n;
      for (const [i, day] of MONTH.entries()) {
        for (const provider of PROVIDERS) {
          simNow = at(day, provider === "alipay" ? "09:15" : "21:40");
          const amount = 1_000 + i * 37 + (provider === "wechat" ? 5 : 0);
          const order = await paidOrder(provider, amount);
          expectedFen += BigInt(amount);
          if (i % 5 === 2) {
            simNow = at(day, "23:10");
            await refund(order.id, 300);
          }
        }
      }
      // the bills come out the next morning
      simNow = at("2026-10-31", "10:00");
      const tiedOut: string[] = [];
      for (const day of MONTH) {
        const run = await reconcileDay(scopes(), day);
        for (const r of run.runs) {
          assert.equal(r.status, "ties_out", `${r.scope} ${day}: ${JSON.stringify(r.differences)} ${"detail" in r ? (r.detail ?? "") : ""}`);
          tiedOut.push(`${r.scope} ${day}`);
        }
      }
      assert.equal(tiedOut.length, MONTH.length * PROVIDERS.length);
      const { rows } = await stack.db.query<{ fen: string; n: string }>(
        "SELECT COALESCE(sum(amount_fen), 0)::text AS fen, count(*)::text AS n FROM bill_entries WHERE kind = 'payment' AND bill_date BETWEEN $1 AND $2",
        [MONTH[0], MONTH.at(-1)],
      );
      assert.equal(rows[0]!.n, String(MONTH.length * PROVIDERS.length), "every payment is in a bill");
      assert.equal(BigInt(rows[0]!.fen), expectedFen);
      const report = await readDayReport(stack.db, MONTH[2]!, ["alipay", "wechat"]);
      assert.equal(report.tiesOut, true, formatDayReport(report));
    });

    it("a day with a silent payment, an amount off by one fen and a console refund shows each difference; the missing credit is credited once", async () => {
      simNow = at(INJECTED_DAY, "10:00");
      const normal = await paidOrder("alipay", 2_000);
      const offByOne = await paidOrder("alipay", 3_000);
      await stack.simulator.alipay.injectBillFault({ kind: "amount_off_by_one_fen", orderId: offByOne.id });

      const silentOrder = await stack.request("POST", "/v1/orders", { account: newAccount(), amountFen: 4_000, provider: "wechat" });
      assert.equal(silentOrder.status, 201, silentOrder.text);
      await stack.simulator.wechat.injectBillFault({ kind: "silent_payment", orderId: silentOrder.body.id });
      const consoleRefunded = await paidOrder("wechat", 5_000);
      simNow = at(INJECTED_DAY, "18:00");
      await stack.simulator.wechat.injectBillFault({ kind: "console_refund", orderId: consoleRefunded.id, amountFen: 1_200n });
      assert.equal((await stack.request("GET", `/v1/orders/${silentOrder.body.id}`)).body.status, "pending", "nothing told us of the silent payment");

      simNow = at("2026-11-01", "10:00");
      await reconcileDay(scopes(), INJECTED_DAY);
      const report = await readDayReport(stack.db, INJECTED_DAY, ["alipay", "wechat"]);
      const text = formatDayReport(report);
      console.log(`\n${text}\n`); // the sample report of the README
      // a console refund has no refund id of ours: it is named by the gateway's refund number
      const found = report.differences.map((d) => `${d.scope} ${d.kind} ${d.kind === "refund_mismatch" ? "(the gateway's refund number)" : d.reference}`).sort();
      assert.deepEqual(found, [`alipay amount_mismatch ${offByOne.id}`, `wechat missing_credit ${silentOrder.body.id}`, "wechat refund_mismatch (the gateway's refund number)"].sort(), text);
      const consoleRefund = report.differences.find((d) => d.kind === "refund_mismatch")!;
      assert.match(consoleRefund.cause, new RegExp(`1200 fen of order ${consoleRefunded.id}`));
      const ours = await stack.db.query("SELECT 1 FROM refunds WHERE id = $1", [consoleRefund.reference]);
      assert.equal(ours.rows.length, 0, "no refund of ours");
      assert.equal(report.tiesOut, false);
      const missing = report.differences.find((d) => d.kind === "missing_credit")!;
      assert.match(missing.resolution ?? "", /credited now/);
      assert.equal((await getBalance(stack.db, silentOrder.body.account)).availableFen, 4_000n);
      assert.equal((await getBalance(stack.db, normal.account)).availableFen, 2_000n);
      assert.equal(report.differences.find((d) => d.kind === "amount_mismatch")!.actual, "3001 fen");
      assert.match(report.differences.find((d) => d.kind === "refund_mismatch")!.cause, /never asked for/);

      // a second run finds the same open differences, credits nothing again, and keeps the resolved one flagged
      await reconcileDay(scopes(), INJECTED_DAY);
      const again = await readDayReport(stack.db, INJECTED_DAY, ["alipay", "wechat"]);
      assert.deepEqual(again.differences.map((d) => `${d.scope} ${d.kind} ${d.reference}`).sort(), report.differences.map((d) => `${d.scope} ${d.kind} ${d.reference}`).sort());
      assert.equal((await getBalance(stack.db, silentOrder.body.account)).availableFen, 4_000n, "credited once");
      assert.equal(again.results.find((r) => r.scope === "wechat")!.runs, 2);
      assert.deepEqual((await checkLedger(stack.db)).mismatches, []);
    });

    it("today's bill is not out yet: the day is not_ready, and the admin API refuses a day that is not over", async () => {
      simNow = new Date();
      const today = dayOf(new Date());
      const run = await reconcileDay(scopes(), today);
      assert.deepEqual(run.runs.map((r) => r.status), ["not_ready", "not_ready"]);
      const res = await stack.request("POST", `/admin/reconciliation/days/${today}/run`, {}, admin);
      assert.equal(res.status, 400);
      assert.match(res.body.detail, /not over yet/);
    });

    it("the admin API runs a day and answers its report; the metrics show the open differences", async () => {
      const res = await stack.request("POST", `/admin/reconciliation/days/${INJECTED_DAY}/run`, { scopes: ["alipay"] }, admin);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.tiesOut, false);
      assert.match(res.body.text, /alipay: 1 difference/);
      const bad = await stack.request("POST", `/admin/reconciliation/days/${INJECTED_DAY}/run`, { scopes: ["paypal"] }, admin);
      assert.equal(bad.status, 400);
      assert.match(bad.body.detail, /paypal is not reconciled here/);
      const days = await stack.request("GET", "/admin/reconciliation/days?limit=3", undefined, admin);
      assert.equal(days.status, 200);
      assert.ok(days.body.days.some((d: { day: string; tiesOut: boolean }) => d.day === INJECTED_DAY && !d.tiesOut), JSON.stringify(days.body.days.map((d: { day: string }) => d.day)));
      const metrics = await (await fetch(`${stack.url}/metrics`)).text();
      assert.match(metrics, /fiat_paymaster_reconciliation_differences\{scope="alipay",kind="amount_mismatch"\} 1/);
      assert.match(metrics, /fiat_paymaster_reconciliation_differences\{scope="wechat",kind="refund_mismatch"\} 1/);
      assert.match(metrics, /fiat_paymaster_reconciliation_differences\{scope="wechat",kind="missing_credit"\} 0/);
      assert.match(metrics, /fiat_paymaster_reconciliation_ties_out\{scope="alipay"\} 0/);
    });
  });
}
