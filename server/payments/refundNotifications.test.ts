/**
 * Refund notifications through the real service, on both databases: verified like payment notifications, they
 * update the refund at once (the polling reconciler is off in these stacks), never credit anything and never count
 * as bad callbacks. WeChat Pay: REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED; Alipay: a partial refund's
 * notification (refund_fee, gmt_refund, out_biz_no) and a full refund's TRADE_CLOSED.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { signNotification } from "../../devtools/simulator/alipay";
import { type WechatEvent, buildWechatNotification, signWechatMessage, wechatPlatformSigner } from "../../devtools/simulator/wechat";
import { type DatabaseKind, testedDatabaseKinds } from "../../devtools/testing/databases";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { checkLedger, getBalance } from "../ledger/ledger";
import { formatBeijingTime, formatYuan } from "./gateways/alipay";
import { toWechatTime } from "./gateways/wechat";
import type { Provider } from "./gateway";
import { requestRefund } from "./refunds";

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

for (const kind of testedDatabaseKinds() as DatabaseKind[]) {
  describe(`refund notifications [${kind}]`, () => {
    let stack: Stack;
    before(async () => {
      // unverified callbacks are rate-limited per IP: refund notifications must never count against it
      stack = await startPaymentsStack(kind, { unverifiedCallbacksPerIpPerMinute: 1 });
    });
    after(async () => {
      await stack?.close();
    });

    async function paidOrder(provider: Provider, amountFen: number): Promise<{ id: string; account: string; tradeNo: string }> {
      const res = await stack.request("POST", "/v1/orders", { account: newAccount(), amountFen, provider });
      assert.equal(res.status, 201, res.text);
      await payOnPayerPage(provider, res.body.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${res.body.id}`)).body.status === "paid", 10_000, "credited");
      const { rows } = await stack.db.query<{ gateway_trade_no: string }>("SELECT gateway_trade_no FROM orders WHERE id = $1", [res.body.id]);
      return { id: res.body.id, account: res.body.account, tradeNo: rows[0]!.gateway_trade_no };
    }

    /** A refund recorded (and debited) that the gateway has not been asked about: only a notification can move it. */
    const waitingRefund = (orderId: string, amountFen: bigint) => requestRefund({ db: stack.db, gateways: new Map() }, { orderId, amountFen });

    async function refundRow(id: string) {
      const res = await stack.request("GET", `/v1/refunds/${id}`, undefined, admin);
      assert.equal(res.status, 200, res.text);
      return res.body as { status: string; gatewayStatus: string | null; succeededAt: string | null; gatewayRefundNo: string | null };
    }

    async function lastCallback(): Promise<{ outcome: string; verified: boolean; order_id: string | null; detail: string | null }> {
      const { rows } = await stack.db.query<{ outcome: string; verified: boolean; order_id: string | null; detail: string | null }>(
        "SELECT outcome, verified, order_id, detail FROM payment_callbacks ORDER BY id DESC LIMIT 1",
      );
      return rows[0]!;
    }

    describe("WeChat Pay", () => {
      function refundNotification(event: WechatEvent, fields: { orderId: string; tradeNo: string; refundId: string; totalFen: number; refundFen: number; status: string }) {
        const sandbox = stack.simulator.sandbox.wechat;
        const body = buildWechatNotification(sandbox.apiV3Key, event, {
          mchid: sandbox.mchId,
          out_trade_no: fields.orderId,
          transaction_id: fields.tradeNo,
          out_refund_no: fields.refundId,
          refund_id: `50${randomBytes(12).toString("hex")}`,
          refund_status: fields.status,
          ...(fields.status === "SUCCESS" ? { success_time: toWechatTime(new Date()) } : {}),
          user_received_account: "支付用户零钱",
          amount: { total: fields.totalFen, refund: fields.refundFen, payer_total: fields.totalFen, payer_refund: fields.refundFen },
        });
        return stack.request("POST", "/v1/payments/wechat/notify", body, { "content-type": "application/json", ...signWechatMessage(body, wechatPlatformSigner(sandbox)) });
      }

      it("a refund WeChat answers PROCESSING is succeeded by its REFUND.SUCCESS notification, with no polling", async () => {
        const order = await paidOrder("wechat", 2_000);
        const res = await stack.request("POST", "/v1/refunds", { orderId: order.id, amountFen: 700 }, admin);
        assert.equal(res.status, 201, res.text);
        await eventually(async () => (await refundRow(res.body.id)).status === "succeeded", 10_000, "the notification succeeded the refund");
        const refund = await refundRow(res.body.id);
        assert.ok(refund.succeededAt, "when the money went back");
        assert.match(refund.gatewayRefundNo ?? "", /^50/);
        const { rows } = await stack.db.query<{ outcome: string; verified: boolean }>("SELECT outcome, verified FROM payment_callbacks WHERE order_id = $1 ORDER BY id", [order.id]);
        assert.deepEqual(rows.at(-1), { outcome: "refund_updated", verified: true });
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 1_300n, "debited once, nothing credited");
      });

      it("REFUND.ABNORMAL keeps the refund requested, marked ABNORMAL; REFUND.CLOSED fails it and gives the quota back", async () => {
        const order = await paidOrder("wechat", 3_000);
        const refund = await waitingRefund(order.id, 1_000n);
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 2_000n);

        const abnormal = await refundNotification({ eventType: "REFUND.ABNORMAL", summary: "退款异常", originalType: "refund" }, {
          orderId: order.id,
          tradeNo: order.tradeNo,
          refundId: refund.id,
          totalFen: 3_000,
          refundFen: 1_000,
          status: "ABNORMAL",
        });
        assert.equal(abnormal.status, 204, abnormal.text);
        const marked = await refundRow(refund.id);
        assert.deepEqual([marked.status, marked.gatewayStatus, marked.succeededAt], ["requested", "ABNORMAL", null]);
        assert.equal((await lastCallback()).outcome, "refund_updated");

        const closed = await refundNotification({ eventType: "REFUND.CLOSED", summary: "退款关闭", originalType: "refund" }, {
          orderId: order.id,
          tradeNo: order.tradeNo,
          refundId: refund.id,
          totalFen: 3_000,
          refundFen: 1_000,
          status: "CLOSED",
        });
        assert.equal(closed.status, 204, closed.text);
        assert.equal((await refundRow(refund.id)).status, "failed");
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 3_000n, "the quota is given back");
        assert.deepEqual((await checkLedger(stack.db)).mismatches, []);
      });

      it("a notification for a refund we never asked for is acknowledged and kept, and changes nothing", async () => {
        const order = await paidOrder("wechat", 1_500);
        const res = await refundNotification({ eventType: "REFUND.SUCCESS", summary: "退款成功", originalType: "refund" }, {
          orderId: order.id,
          tradeNo: order.tradeNo,
          refundId: "console-refund-0001",
          totalFen: 1_500,
          refundFen: 500,
          status: "SUCCESS",
        });
        assert.equal(res.status, 204);
        const stored = await lastCallback();
        assert.deepEqual([stored.outcome, stored.verified, stored.order_id], ["refund_unknown", true, order.id]);
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 1_500n);
      });
    });

    describe("Alipay", () => {
      function refundFields(order: { id: string; tradeNo: string }, p: { totalFen: bigint; refundedFen: bigint; refundId: string; closed: boolean }) {
        const sandbox = stack.simulator.sandbox.alipay;
        const now = formatBeijingTime(new Date());
        return signNotification(
          {
            notify_time: now,
            notify_type: "trade_status_sync",
            notify_id: randomBytes(16).toString("hex"),
            app_id: sandbox.appId,
            seller_id: sandbox.sellerId,
            charset: "utf-8",
            version: "1.0",
            trade_no: order.tradeNo,
            out_trade_no: order.id,
            out_biz_no: p.refundId,
            total_amount: formatYuan(p.totalFen),
            receipt_amount: formatYuan(p.totalFen),
            trade_status: p.closed ? "TRADE_CLOSED" : "TRADE_SUCCESS",
            refund_fee: formatYuan(p.refundedFen),
            gmt_refund: now,
            ...(p.closed ? { gmt_close: now } : {}),
          },
          sandbox.alipayPrivateKey,
        );
      }
      const post = (fields: Record<string, string>) =>
        stack.request("POST", "/v1/payments/alipay/notify", new URLSearchParams(fields).toString(), { "content-type": "application/x-www-form-urlencoded" });

      it("a partial refund's notification (refund_fee, gmt_refund) succeeds the refund at once and credits nothing", async () => {
        const order = await paidOrder("alipay", 2_500);
        const refund = await waitingRefund(order.id, 500n);
        const res = await post(refundFields(order, { totalFen: 2_500n, refundedFen: 500n, refundId: refund.id, closed: false }));
        assert.equal(res.text, "success");
        const row = await refundRow(refund.id);
        assert.equal(row.status, "succeeded");
        assert.ok(row.succeededAt);
        const stored = await lastCallback();
        assert.deepEqual([stored.outcome, stored.verified], ["refund_updated", true]);
        assert.equal((await stack.request("GET", `/v1/orders/${order.id}`)).body.status, "paid");
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 2_000n, "debited once, nothing credited");
      });

      it("a full refund's TRADE_CLOSED succeeds the refund; repeated, it is acknowledged as already final", async () => {
        const order = await paidOrder("alipay", 1_800);
        const refund = await waitingRefund(order.id, 1_800n);
        const fields = refundFields(order, { totalFen: 1_800n, refundedFen: 1_800n, refundId: refund.id, closed: true });
        assert.equal((await post(fields)).text, "success");
        assert.equal((await refundRow(refund.id)).status, "succeeded");
        assert.equal((await post(fields)).text, "success");
        assert.equal((await lastCallback()).outcome, "refund_already_final");
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 0n);
      });

      it("refund notifications never count as bad callbacks: many from one IP are all answered", async () => {
        const order = await paidOrder("alipay", 3_000);
        for (let i = 0; i < 3; i++) {
          const res = await post(refundFields(order, { totalFen: 3_000n, refundedFen: 100n, refundId: `not-ours-${i}`, closed: false }));
          assert.equal(res.status, 200);
          assert.equal(res.text, "success");
          assert.equal((await lastCallback()).outcome, "refund_unknown");
        }
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 3_000n);
      });
    });
  });
}
