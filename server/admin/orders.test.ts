/**
 * The admin API's view of top-ups, against the real service, the real gateway SDKs and the gateway simulator:
 * orders and their filters, an order's callbacks with what verification made of them, refunds, and the
 * reconciler's runs.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { testedDatabaseKinds } from "../../devtools/testing/databases";
import { formatBeijingTime, formatYuan } from "../payments/gateways/alipay";
import type { Provider } from "../payments/gateway";
import { reconcileLocked } from "../payments/reconcile";
import { signNotification } from "../../devtools/simulator/alipay";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { type AdminClient, adminClient } from "../../devtools/testing/adminClient";

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;

for (const kind of testedDatabaseKinds()) {
  describe(`the admin API: orders, callbacks, refunds, reconciliation [${kind}]`, () => {
    let stack: Stack;
    let admin: AdminClient;
    before(async () => {
      stack = await startPaymentsStack(kind);
      admin = adminClient(stack.url, ADMIN_TOKEN);
    });
    after(async () => {
      await stack?.close();
    });

    async function createOrder(provider: Provider, amountFen: number, account = newAccount()): Promise<{ id: string; account: string; qrCode: string }> {
      const res = await stack.request("POST", "/v1/orders", { account, amountFen, provider });
      assert.equal(res.status, 201, res.text);
      return res.body;
    }

    async function pay(provider: Provider, order: { id: string; qrCode: string }): Promise<void> {
      await payOnPayerPage(provider, order.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${order.id}`)).body.status === "paid", 10_000, "the order to be paid");
    }

    /** A notification of `orderId` signed with Alipay's key (or `key`), as the gateway would send it. */
    function alipayNotification(orderId: string, amountFen: bigint, key?: string): Record<string, string> {
      return signNotification(
        {
          notify_time: formatBeijingTime(new Date()),
          notify_type: "trade_status_sync",
          notify_id: randomBytes(16).toString("hex"),
          app_id: stack.simulator.sandbox.alipay.appId,
          seller_id: stack.simulator.sandbox.alipay.sellerId,
          charset: "utf-8",
          version: "1.0",
          trade_no: `2026${randomBytes(8).toString("hex")}`,
          out_trade_no: orderId,
          total_amount: formatYuan(amountFen),
          trade_status: "TRADE_SUCCESS",
          gmt_payment: formatBeijingTime(new Date()),
        },
        key ?? stack.simulator.sandbox.alipay.alipayPrivateKey,
      );
    }
    const postAlipay = (fields: Record<string, string>) =>
      stack.request("POST", "/v1/payments/alipay/notify", new URLSearchParams(fields).toString(), { "content-type": "application/x-www-form-urlencoded" });

    it("GET /admin/orders lists orders newest first, filtered by status, provider and account, and pages", async () => {
      const account = newAccount();
      const first = await createOrder("alipay", 1_000, account);
      const second = await createOrder("wechat", 2_000, account);
      const third = await createOrder("alipay", 3_000, account);
      await pay("wechat", second);

      const ids = async (query: string) => {
        const res = await admin.get(`/admin/orders?${query}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.items.map((o: { id: string }) => o.id);
      };
      assert.deepEqual(await ids(`account=${account}`), [third.id, second.id, first.id]);
      assert.deepEqual(await ids(`account=${account}&status=paid`), [second.id]);
      assert.deepEqual(await ids(`account=${account}&status=pending`), [third.id, first.id]);
      assert.deepEqual(await ids(`account=${account}&provider=alipay`), [third.id, first.id]);
      assert.deepEqual(await ids(`account=${account}&provider=wechat&status=pending`), []);

      const page1 = await admin.get(`/admin/orders?account=${account}&limit=2`);
      assert.equal(page1.body.nextBefore, second.id);
      const page2 = await admin.get(`/admin/orders?account=${account}&limit=2&before=${page1.body.nextBefore}`);
      assert.deepEqual(page2.body.items.map((o: { id: string }) => o.id), [first.id]);
      assert.equal(page2.body.nextBefore, null);

      const [paid] = (await admin.get(`/admin/orders?account=${account}&status=paid`)).body.items;
      assert.equal(paid.provider, "wechat");
      assert.equal(paid.amountFen, "2000");
      assert.equal(paid.refundedFen, "0");
      assert.equal(typeof paid.gatewayTradeNo, "string");
      assert.ok(Date.parse(paid.paidAt) > 0);
      assert.equal(paid.closedAt, null);
      assert.equal(paid.account, account);
    });

    it("GET /admin/orders/:id shows the order and each callback with its verification result; the raw body only with ?raw=1", async () => {
      const order = await createOrder("alipay", 1_000);
      // an authentic notification of another amount, then the real payment
      assert.equal((await postAlipay(alipayNotification(order.id, 1n))).text, "fail");
      await pay("alipay", order);

      const res = await admin.get(`/admin/orders/${order.id}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.order.id, order.id);
      assert.equal(res.body.order.status, "paid");
      assert.deepEqual(res.body.refunds, []);
      const callbacks = res.body.callbacks as { outcome: string; verified: boolean; detail: string | null; provider: string; orderId: string; receivedAt: string }[];
      assert.deepEqual(
        callbacks.map((c) => [c.provider, c.orderId, c.outcome, c.verified]),
        [
          ["alipay", order.id, "amount_mismatch", true],
          ["alipay", order.id, "credited", true],
        ],
      );
      assert.match(callbacks[0]!.detail!, /notified 1 fen, order is 1000 fen/);
      for (const c of callbacks) assert.ok(!("rawBody" in c) && !("headers" in c) && !("payload" in c), "nothing raw by default");

      const raw = await admin.get(`/admin/orders/${order.id}?raw=1`);
      const [mismatch, credited] = raw.body.callbacks;
      assert.match(mismatch.rawBody, new RegExp(`out_trade_no=${order.id}`));
      assert.match(mismatch.rawBody, /total_amount=0\.01/);
      assert.equal(mismatch.headers["content-type"], "application/x-www-form-urlencoded");
      assert.equal(typeof credited.payload, "object");
    });

    it("a forged callback is listed by GET /admin/callbacks as unverified, with no order", async () => {
      const order = await createOrder("alipay", 1_000);
      const forger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
      assert.equal((await postAlipay(alipayNotification(order.id, 1_000n, forger))).text, "fail");
      const res = await admin.get("/admin/callbacks?provider=alipay&verified=0&limit=1");
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const [forged] = res.body.items;
      assert.deepEqual([forged.outcome, forged.verified, forged.orderId], ["bad_signature", false, null]);
      const raw = await admin.get(`/admin/callbacks?verified=0&limit=1&raw=1`);
      assert.match(raw.body.items[0].rawBody, new RegExp(order.id), "the raw body shows which order the forger named");
      assert.deepEqual((await admin.get(`/admin/orders/${order.id}`)).body.callbacks, [], "an unverified callback is attached to no order");
      const byOutcome = await admin.get("/admin/callbacks?outcome=bad_signature&limit=500");
      assert.ok(byOutcome.body.items.every((c: { outcome: string }) => c.outcome === "bad_signature"));
      assert.ok(byOutcome.body.items.some((c: { id: string }) => c.id === forged.id));
    });

    it("a refund started with POST /v1/refunds shows on its order and in GET /admin/refunds by status and account", async () => {
      const account = newAccount();
      const alipay = await createOrder("alipay", 1_000, account);
      const wechat = await createOrder("wechat", 1_000, account);
      await pay("alipay", alipay);
      await pay("wechat", wechat);
      const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const started = await stack.request("POST", "/v1/refunds", { orderId: alipay.id, amountFen: 300 }, auth);
      const startedW = await stack.request("POST", "/v1/refunds", { orderId: wechat.id, amountFen: 400 }, auth);
      assert.equal(started.status, 201, started.text);
      assert.equal(startedW.status, 201, startedW.text);
      // WeChat answers PROCESSING and its REFUND.SUCCESS notification follows: compare once both are final
      const settled = async (id: string) => {
        await eventually(async () => (await stack.request("GET", `/v1/refunds/${id}`, undefined, auth)).body.status !== "requested", 10_000, `refund ${id} final`);
        return stack.request("GET", `/v1/refunds/${id}`, undefined, auth);
      };
      const a = await settled(started.body.id);
      const w = await settled(startedW.body.id);
      assert.equal(w.body.status, "succeeded", "the notification completed the WeChat refund");

      const detail = await admin.get(`/admin/orders/${alipay.id}`);
      assert.equal(detail.body.order.refundedFen, "300");
      assert.deepEqual(detail.body.refunds, [a.body]);

      const list = await admin.get(`/admin/refunds?account=${account}`);
      assert.deepEqual(list.body.items.map((r: { id: string }) => r.id), [w.body.id, a.body.id]);
      for (const refund of [a.body, w.body]) {
        const byStatus = await admin.get(`/admin/refunds?account=${account}&status=${refund.status}`);
        assert.ok(byStatus.body.items.some((r: { id: string }) => r.id === refund.id), `${refund.id} is listed as ${refund.status}`);
        assert.ok(byStatus.body.items.every((r: { status: string }) => r.status === refund.status));
      }
      const byOrder = await admin.get(`/admin/refunds?orderId=${wechat.id}`);
      assert.deepEqual(byOrder.body.items, [w.body]);
      const paged = await admin.get(`/admin/refunds?account=${account}&limit=1`);
      assert.equal(paged.body.nextBefore, w.body.id);
      const next = await admin.get(`/admin/refunds?account=${account}&limit=1&before=${paged.body.nextBefore}`);
      assert.deepEqual(next.body, { items: [a.body], nextBefore: null });
    });

    it("GET /admin/reconciliation-runs lists the reconciler's runs newest first", async () => {
      await createOrder("alipay", 1_000); // left unpaid: the reconciler checks it
      const deps = { db: stack.db, gateways: stack.service.gateways };
      const first = await reconcileLocked(deps, { afterMs: 0 });
      const second = await reconcileLocked(deps, { afterMs: 0 });
      assert.ok(first && second && first.checked > 0);
      const res = await admin.get("/admin/reconciliation-runs?limit=1");
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const [latest] = res.body.items;
      assert.equal(latest.checked, second.checked);
      assert.equal(latest.credited, second.credited);
      assert.equal(latest.errors, second.errors.length);
      assert.deepEqual(latest.detail, { errors: second.errors });
      assert.ok(Date.parse(latest.finishedAt) >= Date.parse(latest.startedAt));
      const older = await admin.get(`/admin/reconciliation-runs?limit=1&before=${res.body.nextBefore}`);
      assert.equal(older.body.items[0].checked, first.checked);
      assert.ok(BigInt(older.body.items[0].id) < BigInt(latest.id));
    });
  });
}
