/**
 * The payments API end to end: the real service and database, the real gateway SDKs, the gateway simulator.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type DatabaseKind, testedDatabaseKinds } from "../../devtools/testing/databases";
import { checkLedger, getBalance, hold } from "../ledger/ledger";
import { signNotification } from "../../devtools/simulator/alipay";
import { TRANSACTION_SUCCESS, buildWechatNotification, signWechatMessage, tamperWithCiphertext, wechatPlatformSigner } from "../../devtools/simulator/wechat";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { formatBeijingTime, formatYuan } from "./gateways/alipay";
import type { Provider } from "./gateway";
import { reconcileOnce } from "./reconcile";

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

async function createOrder(stack: Stack, provider: Provider, amountFen = 1000, account = newAccount()) {
  const res = await stack.request("POST", "/v1/orders", { account, amountFen, provider });
  assert.equal(res.status, 201, res.text);
  return res.body as { id: string; account: string; status: string; qrCode?: string; payUrl?: string; amountFen: string };
}

async function orderStatus(stack: Stack, id: string): Promise<string> {
  return (await stack.request("GET", `/v1/orders/${id}`)).body.status;
}

async function callbacksOf(stack: Stack, orderId: string): Promise<{ outcome: string; verified: boolean }[]> {
  const { rows } = await stack.db.query<{ outcome: string; verified: boolean }>("SELECT outcome, verified FROM payment_callbacks WHERE order_id = $1 ORDER BY id", [orderId]);
  return rows;
}

async function lastCallback(stack: Stack): Promise<{ outcome: string; verified: boolean; order_id: string | null; detail: string | null }> {
  const { rows } = await stack.db.query<{ outcome: string; verified: boolean; order_id: string | null; detail: string | null }>(
    "SELECT outcome, verified, order_id, detail FROM payment_callbacks ORDER BY id DESC LIMIT 1",
  );
  return rows[0]!;
}

for (const kind of testedDatabaseKinds() as DatabaseKind[]) {
  describe(`payments [${kind}]`, () => {
    let stack: Stack;
    before(async () => {
      stack = await startPaymentsStack(kind);
    });
    after(async () => {
      await stack?.close();
    });

    describe("top-up orders", () => {
      for (const provider of ["alipay", "wechat"] as const) {
        it(`${provider}: order → pay on the payer page → notification → credited once`, async () => {
          const order = await createOrder(stack, provider, 1234);
          assert.equal(order.status, "pending");
          assert.match(order.qrCode!, new RegExp(`^${stack.simulator.url}/payer/${provider}/${order.id}$`));

          const page = await payOnPayerPage(provider, order.qrCode!);
          assert.match(page, /12\.34/, "the payer page shows the amount in yuan");

          await eventually(async () => (await orderStatus(stack, order.id)) === "paid", 10_000, "the order to be paid");
          const balance = await getBalance(stack.db, order.account);
          assert.equal(balance.availableFen, 1234n);
          const account = await stack.request("GET", `/v1/accounts/${order.account}`);
          assert.equal(account.body.availableFen, "1234");
          assert.deepEqual(
            account.body.entries.map((e: { kind: string; orderId?: string }) => [e.kind, e.orderId]),
            [["topup", order.id]],
          );
          assert.deepEqual(await callbacksOf(stack, order.id), [{ outcome: "credited", verified: true }]);
        });
      }

      it("alipay page pay returns a URL that leads to the payer page", async () => {
        const pageStack = await startPaymentsStack(kind, { alipayCheckout: "page" });
        try {
          const order = await createOrder(pageStack, "alipay", 500);
          assert.ok(order.payUrl?.startsWith(`${pageStack.simulator.url}/alipay/gateway.do?`), order.payUrl);
          const cashier = await fetch(order.payUrl!);
          assert.equal(cashier.status, 200);
          assert.match(await cashier.text(), /5\.00/);
        } finally {
          await pageStack.close();
        }
      });

      it("the same idempotencyKey returns the same order; other parameters with it are a conflict", async () => {
        const account = newAccount();
        const body = { account, amountFen: 800, provider: "wechat", idempotencyKey: `key-${account}` };
        const first = await stack.request("POST", "/v1/orders", body);
        const second = await stack.request("POST", "/v1/orders", body);
        assert.equal(first.status, 201);
        assert.deepEqual(second.body, first.body);
        const conflict = await stack.request("POST", "/v1/orders", { ...body, amountFen: 900 });
        assert.equal(conflict.status, 409);
        assert.equal(conflict.headers.get("content-type"), "application/problem+json; charset=utf-8");
        assert.match(conflict.body.detail, /idempotencyKey was already used/);
      });

      it("bad input is refused with 400 naming the problem", async () => {
        const cases: [unknown, RegExp][] = [
          [{ account: "0x123", amountFen: 1000, provider: "alipay" }, /account: must be a 0x-prefixed 20-byte hex address/],
          [{ account: "0x52908400098527886E0F7030069857D2E4169EE7".replace("E7", "e7"), amountFen: 1000, provider: "alipay" }, /checksum/],
          [{ account: newAccount(), amountFen: 10.5, provider: "alipay" }, /amountFen/],
          [{ account: newAccount(), amountFen: 99, provider: "alipay" }, /between 100 and 500000/],
          [{ account: newAccount(), amountFen: 500_001, provider: "alipay" }, /between 100 and 500000/],
          [{ account: newAccount(), amountFen: 1000, provider: "paypal" }, /provider/],
          [{ account: newAccount(), amountFen: 1000, provider: "alipay", extra: 1 }, /extra|unrecognized/i],
          [{ amountFen: 1000, provider: "alipay" }, /account/],
        ];
        for (const [body, message] of cases) {
          const res = await stack.request("POST", "/v1/orders", body);
          assert.equal(res.status, 400, `${JSON.stringify(body)} → ${res.text}`);
          assert.match(res.body.detail, message);
        }
        const notJson = await stack.request("POST", "/v1/orders", "{not json", { "content-type": "application/json" });
        assert.equal(notJson.status, 400);
        assert.equal(notJson.body.type, "invalid_json");
        assert.equal((await stack.request("GET", "/v1/orders/nope")).status, 400);
        assert.equal((await stack.request("GET", `/v1/orders/fp${"0".repeat(24)}`)).status, 404);
      });
    });

    describe("callbacks that must credit nothing", () => {
      async function alipayNotification(orderId: string, amountFen: bigint, overrides: Record<string, string> = {}, key?: string) {
        const fields = {
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
          receipt_amount: formatYuan(amountFen),
          buyer_pay_amount: formatYuan(amountFen),
          trade_status: "TRADE_SUCCESS",
          gmt_payment: formatBeijingTime(new Date()),
          ...overrides,
        };
        return signNotification(fields, key ?? stack.simulator.sandbox.alipay.alipayPrivateKey);
      }
      const postAlipay = (fields: Record<string, string>) =>
        stack.request("POST", "/v1/payments/alipay/notify", new URLSearchParams(fields).toString(), { "content-type": "application/x-www-form-urlencoded" });

      function wechatBody(orderId: string, amountFen: number, overrides: Record<string, unknown> = {}) {
        const sandbox = stack.simulator.sandbox.wechat;
        return buildWechatNotification(sandbox.apiV3Key, TRANSACTION_SUCCESS, {
          appid: sandbox.appId,
          mchid: sandbox.mchId,
          out_trade_no: orderId,
          transaction_id: `4200${randomBytes(10).toString("hex")}`,
          trade_type: "NATIVE",
          trade_state: "SUCCESS",
          trade_state_desc: "支付成功",
          bank_type: "OTHERS",
          success_time: new Date().toISOString(),
          payer: { openid: "o-test" },
          amount: { total: amountFen, payer_total: amountFen, currency: "CNY", payer_currency: "CNY" },
          ...overrides,
        });
      }
      const postWechat = (body: string, headers: Record<string, string>) =>
        stack.request("POST", "/v1/payments/wechat/notify", body, { "content-type": "application/json", ...headers });
      const signer = () => wechatPlatformSigner(stack.simulator.sandbox.wechat);

      async function assertNothingCredited(order: { id: string; account: string }, outcome: string) {
        const stored = await lastCallback(stack);
        assert.equal(stored.outcome, outcome, stored.detail ?? "");
        assert.equal(await orderStatus(stack, order.id), "pending");
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 0n);
      }

      it("alipay: a forged signature is rejected with 'fail' and stored as bad_signature", async () => {
        const order = await createOrder(stack, "alipay");
        const forger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
        const res = await postAlipay(await alipayNotification(order.id, 1000n, {}, forger));
        assert.equal(res.text, "fail");
        await assertNothingCredited(order, "bad_signature");
        assert.equal((await lastCallback(stack)).verified, false);
      });

      it("alipay: an amount changed after signing is rejected as bad_signature", async () => {
        const order = await createOrder(stack, "alipay");
        const fields = await alipayNotification(order.id, 1n);
        const res = await postAlipay({ ...fields, total_amount: "10.00", receipt_amount: "10.00", buyer_pay_amount: "10.00" });
        assert.equal(res.text, "fail");
        await assertNothingCredited(order, "bad_signature");
      });

      it("alipay: a genuine notification of another amount is rejected as amount_mismatch", async () => {
        const order = await createOrder(stack, "alipay");
        assert.equal((await postAlipay(await alipayNotification(order.id, 1n))).text, "fail");
        await assertNothingCredited(order, "amount_mismatch");
      });

      it("alipay: another app_id is rejected as merchant_mismatch", async () => {
        const order = await createOrder(stack, "alipay");
        assert.equal((await postAlipay(await alipayNotification(order.id, 1000n, { app_id: "2021000000000000" }))).text, "fail");
        await assertNothingCredited(order, "merchant_mismatch");
      });

      it("alipay: an unknown order is rejected as unknown_order", async () => {
        const order = await createOrder(stack, "alipay");
        const res = await postAlipay(await alipayNotification(`fp${randomBytes(12).toString("hex")}`, 1000n));
        assert.equal(res.text, "fail");
        await assertNothingCredited(order, "unknown_order");
      });

      it("a replayed notification of one order credits that order once and never another", async () => {
        const paid = await createOrder(stack, "alipay");
        const pending = await createOrder(stack, "alipay", 1000, paid.account);
        const notification = await alipayNotification(paid.id, 1000n);
        for (let i = 0; i < 3; i++) assert.equal((await postAlipay(notification)).text, "success");
        assert.equal((await getBalance(stack.db, paid.account)).availableFen, 1000n);
        assert.equal(await orderStatus(stack, pending.id), "pending");
        assert.deepEqual((await callbacksOf(stack, paid.id)).map((c) => c.outcome), ["credited", "already_credited", "already_credited"]);
      });

      it("wechat: a forged signature is rejected with 401 FAIL and stored as bad_signature", async () => {
        const order = await createOrder(stack, "wechat");
        const body = wechatBody(order.id, 1000);
        const forger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
        const res = await postWechat(body, signWechatMessage(body, { privateKey: forger, serial: signer().serial }));
        assert.ok(res.status >= 400);
        assert.equal(res.body.code, "FAIL");
        await assertNothingCredited(order, "bad_signature");
      });

      it("wechat: a body changed after signing is rejected as bad_signature", async () => {
        const order = await createOrder(stack, "wechat");
        const body = wechatBody(order.id, 1000);
        const headers = signWechatMessage(body, signer());
        await postWechat(tamperWithCiphertext(body), headers);
        await assertNothingCredited(order, "bad_signature");
      });

      it("wechat: a broken GCM tag under a valid signature is rejected as decrypt_failed", async () => {
        const order = await createOrder(stack, "wechat");
        const broken = tamperWithCiphertext(wechatBody(order.id, 1000));
        await postWechat(broken, signWechatMessage(broken, signer()));
        await assertNothingCredited(order, "decrypt_failed");
      });

      it("wechat: a correctly signed but 6-minute-old notification is rejected as stale_timestamp", async () => {
        const order = await createOrder(stack, "wechat");
        const body = wechatBody(order.id, 1000);
        await postWechat(body, signWechatMessage(body, signer(), { timestamp: Math.floor(Date.now() / 1000) - 360 }));
        await assertNothingCredited(order, "stale_timestamp");
      });

      it("wechat: another mchid is rejected as merchant_mismatch", async () => {
        const order = await createOrder(stack, "wechat");
        const body = wechatBody(order.id, 1000, { mchid: "1999999999" });
        await postWechat(body, signWechatMessage(body, signer()));
        await assertNothingCredited(order, "merchant_mismatch");
      });

      it("wechat: another amount and an unknown order are rejected", async () => {
        const order = await createOrder(stack, "wechat");
        const wrongAmount = wechatBody(order.id, 999);
        await postWechat(wrongAmount, signWechatMessage(wrongAmount, signer()));
        await assertNothingCredited(order, "amount_mismatch");
        const unknown = wechatBody(`fp${randomBytes(12).toString("hex")}`, 1000);
        await postWechat(unknown, signWechatMessage(unknown, signer()));
        await assertNothingCredited(order, "unknown_order");
      });

      it("the ledger stays consistent after all of the above", async () => {
        assert.deepEqual((await checkLedger(stack.db)).mismatches, []);
      });
    });

    describe("reconciliation", () => {
      const reconcile = () => reconcileOnce({ db: stack.db, gateways: stack.service.gateways }, { afterMs: 0 });

      for (const provider of ["alipay", "wechat"] as const) {
        it(`${provider}: a dropped notification is caught up by the reconciler, which credits the order once`, async () => {
          stack.simulator[provider].notifier.setFaults({ dropAll: true });
          try {
            const order = await createOrder(stack, provider);
            await payOnPayerPage(provider, order.qrCode!);
            await new Promise((r) => setTimeout(r, 100));
            assert.equal(await orderStatus(stack, order.id), "pending", "no notification arrived");
            const report = await reconcile();
            assert.ok(report.credited >= 1, JSON.stringify(report));
            assert.equal(await orderStatus(stack, order.id), "paid");
            assert.equal((await getBalance(stack.db, order.account)).availableFen, 1000n);
            await reconcile();
            assert.equal((await getBalance(stack.db, order.account)).availableFen, 1000n, "a second pass credits nothing more");
          } finally {
            stack.simulator[provider].notifier.setFaults({});
          }
        });

        it(`${provider}: an expired unpaid order is closed at the gateway and here`, async () => {
          const order = await createOrder(stack, provider);
          await fetch(order.qrCode!); // the payer scanned, then walked away
          await stack.db.query("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1", [order.id]);
          await reconcile();
          assert.equal(await orderStatus(stack, order.id), "closed");
          assert.notEqual(stack.simulator[provider].trade(order.id)?.status, "pending");
          assert.notEqual(stack.simulator[provider].trade(order.id)?.status, "paid");
        });
      }

      it("a payment that races the close is credited, not closed", async () => {
        stack.simulator.wechat.notifier.setFaults({ dropAll: true });
        try {
          const order = await createOrder(stack, "wechat");
          await payOnPayerPage("wechat", order.qrCode!);
          await stack.db.query("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1", [order.id]);
          await reconcile();
          assert.equal(await orderStatus(stack, order.id), "paid");
        } finally {
          stack.simulator.wechat.notifier.setFaults({});
        }
      });
    });

    describe("gateway outage", () => {
      it("order creation answers 503 at once while a gateway is down, and the circuit opens after repeated failures", async () => {
        const outage = await startPaymentsStack(kind);
        try {
          await outage.simulator.close(); // the gateways go dark
          const started = Date.now();
          const answers = [];
          for (let i = 0; i < 8; i++) answers.push(await outage.request("POST", "/v1/orders", { account: newAccount(), amountFen: 1000, provider: "wechat" }));
          assert.ok(Date.now() - started < 5_000, "no request waited for the gateway timeout");
          for (const res of answers) {
            assert.equal(res.status, 503, res.text);
            assert.equal(res.body.type, "gateway_unavailable");
            assert.match(res.body.detail, /wechat is unavailable/);
          }
          assert.match(answers.at(-1)!.body.detail, /circuit is open/);
          assert.equal((await outage.request("GET", "/healthz")).status, 200, "the API itself stays up");
          const { rows } = await outage.db.query<{ status: string }>("SELECT status FROM orders");
          assert.ok(rows.length > 0 && rows.every((r) => r.status === "created"), "the orders wait, stored, for a retry or the reconciler");
        } finally {
          await outage.close();
        }
      });
    });

    describe("refunds", () => {
      async function paidOrder(provider: Provider, amountFen = 1000) {
        const order = await createOrder(stack, provider, amountFen);
        await payOnPayerPage(provider, order.qrCode!);
        await eventually(async () => (await orderStatus(stack, order.id)) === "paid", 10_000, "payment");
        return order;
      }

      for (const provider of ["alipay", "wechat"] as const) {
        it(`${provider}: a partial then a full refund debit the ledger first and complete at the gateway`, async () => {
          const order = await paidOrder(provider);
          const partial = await stack.request("POST", "/v1/refunds", { orderId: order.id, amountFen: 300 }, admin);
          assert.equal(partial.status, 201, partial.text);
          assert.equal(partial.body.amountFen, "300");
          assert.equal((await getBalance(stack.db, order.account)).availableFen, 700n, "debited before the gateway confirms");
          // Alipay confirms at once; WeChat answers PROCESSING and the reconciler polls the refund to completion
          await reconcileOnce({ db: stack.db, gateways: stack.service.gateways }, { afterMs: 0 });
          const tracked = await stack.request("GET", `/v1/refunds/${partial.body.id}`, undefined, admin);
          assert.equal(tracked.body.status, "succeeded");

          const rest = await stack.request("POST", "/v1/refunds", { orderId: order.id }, admin);
          assert.equal(rest.status, 201, rest.text);
          assert.equal(rest.body.amountFen, "700");
          assert.equal((await getBalance(stack.db, order.account)).availableFen, 0n);
          assert.equal(stack.simulator[provider].trade(order.id)?.refundedFen, 1000n);
          assert.equal((await stack.request("GET", `/v1/orders/${order.id}`)).body.refundedFen, "1000");

          const nothing = await stack.request("POST", "/v1/refunds", { orderId: order.id }, admin);
          assert.equal(nothing.status, 409);
          assert.match(nothing.body.detail, /nothing left to refund/);
        });
      }

      it("a refund larger than the unspent balance is refused with a clear error, and nothing moves", async () => {
        const order = await paidOrder("wechat");
        // 600 fen of the quota is reserved for a sponsored operation
        await stack.db.transaction((tx) => hold(tx, { account: order.account, reservationId: `r-${order.id}`, amountFen: 600n }));
        const res = await stack.request("POST", "/v1/refunds", { orderId: order.id, amountFen: 500 }, admin);
        assert.equal(res.status, 409);
        assert.match(res.body.detail, /exceeds the account's unspent \(available\) balance of 400 fen/);
        assert.equal(res.body.availableFen, "400");
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 400n);
        const tooMuch = await stack.request("POST", "/v1/refunds", { orderId: order.id, amountFen: 1001 }, admin);
        assert.match(tooMuch.body.detail, /exceeds the 1000 fen of this order not yet refunded/);
        const unspent = await stack.request("POST", "/v1/refunds", { orderId: order.id }, admin);
        assert.equal(unspent.body.amountFen, "400", "without an amount, the unspent part is refunded");
      });

      it("the same idempotencyKey refunds once", async () => {
        const order = await paidOrder("alipay");
        const body = { orderId: order.id, amountFen: 100, idempotencyKey: `rk-${order.id}` };
        const [a, b] = await Promise.all([stack.request("POST", "/v1/refunds", body, admin), stack.request("POST", "/v1/refunds", body, admin)]);
        assert.equal(a.body.id, b.body.id);
        assert.equal((await getBalance(stack.db, order.account)).availableFen, 900n);
      });

      it("refunds need the admin token", async () => {
        const res = await stack.request("POST", "/v1/refunds", { orderId: `fp${"1".repeat(24)}` });
        assert.equal(res.status, 401);
        const wrong = await stack.request("POST", "/v1/refunds", { orderId: `fp${"1".repeat(24)}` }, { authorization: "Bearer nope" });
        assert.equal(wrong.status, 401);
      });

      it("an unpaid order cannot be refunded", async () => {
        const order = await createOrder(stack, "alipay");
        const res = await stack.request("POST", "/v1/refunds", { orderId: order.id }, admin);
        assert.equal(res.status, 409);
        assert.match(res.body.detail, /pending, not paid/);
      });

      it("the ledger check is clean at the end", async () => {
        assert.deepEqual((await checkLedger(stack.db)).mismatches, []);
      });
    });
  });
}
