import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import express, { type Request, type Response } from "express";
import {
  buildWechatNotification,
  generateWechatSandbox,
  type PlatformSigner,
  REFUND_SUCCESS,
  signWechatMessage,
  tamperWithCiphertext,
  TRANSACTION_SUCCESS,
  type WechatSandbox,
  createWechatSimulator,
  wechatPlatformSigner,
  wechatSandboxGatewayConfig,
} from "../../../devtools/simulator/wechat";
import type { ProviderSimulator } from "../../../devtools/simulator/types";
import { GatewayError, type IncomingCallback, type PaymentGateway, type VerifiedPaymentNotification, type VerifyCallbackResult } from "../gateway";
import { createWechatGateway } from "./wechat";

type PlatformMode = "certificate" | "publicKey";

let sandbox: WechatSandbox;
/** An RSA key WeChat Pay never issued: signatures made with it must not pass. */
let impostorKey: string;

before(async () => {
  sandbox = await generateWechatSandbox();
  impostorKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
});

for (const mode of ["certificate", "publicKey"] as const) {
  describe(`WeChat Pay gateway against the simulator, platform ${mode === "certificate" ? "certificate" : "public key"}`, () => {
    let env: Sandbox;
    before(async () => {
      env = await startSandbox({ sandbox, mode });
    });
    after(() => env.close());

    it("creates a Native order whose code_url opens the payer page with the amount", async () => {
      const orderId = newOrderId();
      const { qrCode } = await env.gateway.createPayment(order(orderId, 1234n));
      assert.equal(qrCode, `${env.url}/payer/wechat/${orderId}`);
      const page = await fetch(qrCode!);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.match(html, /¥12\.34/);
      assert.match(html, /<button type="submit">Pay<\/button>/);
      assert.match(html, /<button type="submit">Cancel<\/button>/);
    });

    it("pressing Pay sends a notification the gateway verifies as paid, and the trade queries as paid", async () => {
      const orderId = newOrderId();
      const { qrCode } = await env.gateway.createPayment(order(orderId, 1234n));
      const press = await fetch(`${qrCode}/pay`, { method: "POST" });
      assert.equal(press.status, 200);
      await env.simulator.notifier.idle();

      const [callback, ...more] = env.merchant.callbacksFor(orderId);
      assert.equal(more.length, 0);
      assert.ok(callback);
      const notification = assertAccepted(callback.result);
      assert.equal(notification.amountFen, 1234n);
      assert.equal(notification.paid, true);
      assert.equal(notification.gatewayStatus, "SUCCESS");
      assert.equal(notification.gatewayTradeNo, env.simulator.trade(orderId)?.gatewayTradeNo);
      assert.equal(callback.replyStatus, 204);

      const state = await env.gateway.queryTrade(orderId);
      assert.equal(state.status, "paid");
      assert.equal(state.status === "paid" && state.amountFen, 1234n);
    });

    it("repeating createPayment for the same order and amount returns the same code_url", async () => {
      const orderId = newOrderId();
      const first = await env.gateway.createPayment(order(orderId, 500n));
      const second = await env.gateway.createPayment(order(orderId, 500n));
      assert.equal(second.qrCode, first.qrCode);
    });

    it("a pending trade queries as pending, and as closed once closed", async () => {
      const orderId = newOrderId();
      await env.gateway.createPayment(order(orderId, 100n));
      assert.deepEqual(await env.gateway.queryTrade(orderId), { status: "pending" });
      await env.gateway.closeTrade(orderId);
      assert.deepEqual(await env.gateway.queryTrade(orderId), { status: "closed" });
    });

    it("closing an unknown or an already closed trade is not an error", async () => {
      const orderId = newOrderId();
      await env.gateway.closeTrade(orderId);
      await env.gateway.createPayment(order(orderId, 100n));
      await env.gateway.closeTrade(orderId);
      await env.gateway.closeTrade(orderId);
    });

    it("closing a paid trade fails with ORDERPAID, so the caller queries and credits instead", async () => {
      const orderId = await paidOrder(env, 100n);
      await assert.rejects(env.gateway.closeTrade(orderId), (error) => error instanceof GatewayError && error.gatewayCode === "ORDERPAID");
    });

    it("an unknown trade queries as not_found", async () => {
      assert.deepEqual(await env.gateway.queryTrade(newOrderId()), { status: "not_found" });
    });

    it("refunds part, then the rest; a further refund is refused with NOT_ENOUGH; the trade stays paid", async () => {
      const orderId = await paidOrder(env, 1000n);
      const partial = await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 300n, totalFen: 1000n, reason: "unspent" });
      assert.equal(partial.status, "pending");
      const rest = await env.gateway.refund({ orderId, refundId: `${orderId}R2`, amountFen: 700n, totalFen: 1000n });
      assert.equal(rest.status, "pending");
      const over = await env.gateway.refund({ orderId, refundId: `${orderId}R3`, amountFen: 1n, totalFen: 1000n });
      assert.equal(over.status, "failed");
      assert.match(over.status === "failed" ? over.reason : "", /^NOT_ENOUGH/);

      assert.equal((await env.gateway.queryRefund(orderId, `${orderId}R1`)).status, "succeeded");
      assert.equal((await env.gateway.queryRefund(orderId, `${orderId}R2`)).status, "succeeded");
      assert.deepEqual(await env.gateway.queryRefund(orderId, `${orderId}R3`), { status: "not_found" });
      assert.equal((await env.gateway.queryTrade(orderId)).status, "paid");
      assert.equal(env.simulator.trade(orderId)?.refundedFen, 1000n);
    });

    it("repeating a refund with the same refund id refunds once", async () => {
      const orderId = await paidOrder(env, 1000n);
      const request = { orderId, refundId: `${orderId}R1`, amountFen: 400n, totalFen: 1000n };
      const first = await env.gateway.refund(request);
      const again = await env.gateway.refund(request);
      assert.equal(again.status, "succeeded");
      assert.equal(again.status === "succeeded" && again.gatewayRefundNo, first.status === "pending" && first.gatewayRefundNo);
      assert.equal(env.simulator.trade(orderId)?.refundedFen, 400n);
    });

    it("a refund notification is authentic but not a payment, and is acknowledged", async () => {
      const orderId = await paidOrder(env, 1000n);
      await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 1000n, totalFen: 1000n });
      await env.simulator.notifier.idle();
      const refundCallback = env.merchant.callbacks.find((c) => !c.result.ok && c.result.detail.includes("REFUND.SUCCESS"));
      assert.ok(refundCallback);
      assert.equal(!refundCallback.result.ok && refundCallback.result.code, "not_a_payment");
      assert.equal(refundCallback.replyStatus, 204);
    });

    describe("callback verification", () => {
      const signer = () => wechatPlatformSigner(sandbox, mode);

      it("accepts a correctly signed, correctly encrypted notification (the baseline for the rejections below)", async () => {
        const notification = assertAccepted(await env.gateway.verifyCallback(signedCallback(transactionBody(), signer())));
        assert.equal(notification.orderId, "ORDER20240101");
        assert.equal(notification.amountFen, 100n);
      });

      it("rejects a signature made with another key: bad_signature", async () => {
        const forged = signedCallback(transactionBody(), { ...signer(), privateKey: impostorKey });
        assertRejected(await env.gateway.verifyCallback(forged), "bad_signature");
      });

      it("rejects a body changed after signing: bad_signature", async () => {
        const genuine = signedCallback(transactionBody(), signer());
        assertRejected(await env.gateway.verifyCallback({ ...genuine, rawBody: tamperWithCiphertext(genuine.rawBody) }), "bad_signature");
      });

      it("rejects a correctly signed body whose GCM auth tag is wrong: decrypt_failed", async () => {
        const broken = signedCallback(breakGcmTag(transactionBody()), signer());
        assertRejected(await env.gateway.verifyCallback(broken), "decrypt_failed");
      });

      it("rejects a correctly signed notification six minutes old: stale_timestamp", async () => {
        const stale = signedCallback(transactionBody(), signer(), { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
        assertRejected(await env.gateway.verifyCallback(stale), "stale_timestamp");
      });

      it("rejects a serial we do not hold, including the other platform mode's: unknown_certificate", async () => {
        assertRejected(await env.gateway.verifyCallback(signedCallback(transactionBody(), { ...signer(), serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1" })), "unknown_certificate");
        const otherMode = wechatPlatformSigner(sandbox, mode === "certificate" ? "publicKey" : "certificate");
        assertRejected(await env.gateway.verifyCallback(signedCallback(transactionBody(), otherMode)), "unknown_certificate");
      });

      it("rejects another merchant's mchid or appid: merchant_mismatch", async () => {
        assertRejected(await env.gateway.verifyCallback(signedCallback(transactionBody({ mchid: "1900000109" }), signer())), "merchant_mismatch");
        assertRejected(await env.gateway.verifyCallback(signedCallback(transactionBody({ appid: "wxd678efh567hg6787" }), signer())), "merchant_mismatch");
      });

      it("rejects a notification without signature headers: bad_signature", async () => {
        assertRejected(await env.gateway.verifyCallback({ headers: {}, rawBody: transactionBody() }), "bad_signature");
      });

      it("rejects a signed body that is not a notification: bad_request", async () => {
        assertRejected(await env.gateway.verifyCallback(signedCallback("success", signer())), "bad_request");
      });

      it("classifies an authentic refund event as not_a_payment", async () => {
        const body = buildWechatNotification(sandbox.apiV3Key, REFUND_SUCCESS, { mchid: sandbox.mchId, out_refund_no: "R1", refund_status: "SUCCESS" });
        assertRejected(await env.gateway.verifyCallback(signedCallback(body, signer())), "not_a_payment");
      });
    });

    it("a request WeChat refuses with SIGN_ERROR is a gateway failure, not a business answer: no gatewayCode", async () => {
      const config = wechatSandboxGatewayConfig(sandbox, { baseUrl: env.url, notifyUrl: `${env.url}/merchant/wechat/notify`, platformMode: mode });
      const misconfigured = createWechatGateway({ ...config, mchId: "1900000109" });
      await assert.rejects(misconfigured.queryTrade(newOrderId()), (error) => {
        assert.ok(error instanceof GatewayError);
        assert.match(error.message, /HTTP 401 SIGN_ERROR/);
        assert.equal(error.gatewayCode, undefined);
        return true;
      });
    });

    it("throws on an API response signed with another platform key", async () => {
      // The simulator answers under the real serial but signs with a key WeChat Pay never gave us.
      const impostor = await startSandbox({ sandbox, mode, simulatorSandbox: { ...sandbox, platformPrivateKey: impostorKey } });
      try {
        await assert.rejects(impostor.gateway.createPayment(order(newOrderId(), 100n)), (error) => {
          assert.ok(error instanceof GatewayError);
          assert.match(error.message, /rejected: bad_signature/);
          return true;
        });
        await assert.rejects(impostor.gateway.queryTrade(newOrderId()), /bad_signature/);
      } finally {
        await impostor.close();
      }
    });
  });
}

describe("WeChat Pay gateway against a counterfeit WeChat Pay", () => {
  it("throws on a response that is unsigned, names an unknown serial, or was correctly signed six minutes ago", async () => {
    const signer = wechatPlatformSigner(sandbox);
    const genuine = await startCounterfeitWechat((body) => signWechatMessage(body, signer));
    try {
      const gateway = createWechatGateway(wechatSandboxGatewayConfig(sandbox, { baseUrl: genuine.url, notifyUrl: `${genuine.url}/n` }));
      assert.deepEqual(await gateway.queryTrade(newOrderId()), { status: "pending" }, "the same answer correctly signed now is accepted");
    } finally {
      await genuine.close();
    }
    const counterfeits: Record<string, (body: string) => Record<string, string>> = {
      bad_signature: () => ({}),
      unknown_certificate: (body) => signWechatMessage(body, { ...signer, serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1" }),
      stale_timestamp: (body) => signWechatMessage(body, signer, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 }),
    };
    for (const [code, headersFor] of Object.entries(counterfeits)) {
      const counterfeit = await startCounterfeitWechat(headersFor);
      try {
        const gateway = createWechatGateway(wechatSandboxGatewayConfig(sandbox, { baseUrl: counterfeit.url, notifyUrl: `${counterfeit.url}/n` }));
        await assert.rejects(gateway.queryTrade(newOrderId()), new RegExp(`rejected: ${code}`));
      } finally {
        await counterfeit.close();
      }
    }
  });
});

describe("WeChat Pay gateway configuration", () => {
  it("refuses a merchant serial that is not the certificate's, and a private key that is not the certificate's", () => {
    const config = wechatSandboxGatewayConfig(sandbox, { baseUrl: "http://127.0.0.1:9", notifyUrl: "http://127.0.0.1:9/notify" });
    assert.throws(() => createWechatGateway({ ...config, merchantSerialNo: "0123456789ABCDEF" }), /not the merchant certificate's serial/);
    assert.throws(() => createWechatGateway({ ...config, merchantPrivateKey: impostorKey }), /does not belong to merchantCertificate/);
    assert.throws(() => createWechatGateway({ ...config, apiV3Key: "too-short" }), /32 bytes/);
  });

  it("reports an unreachable gateway as a GatewayError without secrets", async () => {
    const config = wechatSandboxGatewayConfig(sandbox, { baseUrl: "http://127.0.0.1:9", notifyUrl: "http://127.0.0.1:9/notify", timeoutMs: 500 });
    await assert.rejects(createWechatGateway(config).queryTrade(newOrderId()), (error) => {
      assert.ok(error instanceof GatewayError);
      assert.match(error.message, /unreachable/);
      assert.ok(!error.message.includes(sandbox.apiV3Key) && !error.message.includes("PRIVATE KEY"));
      return true;
    });
  });

  it("answers WeChat's expected replies: 204 on success, 500 with {code: FAIL} on failure", () => {
    const gateway = createWechatGateway(wechatSandboxGatewayConfig(sandbox, { baseUrl: "http://127.0.0.1:9", notifyUrl: "http://127.0.0.1:9/n" }));
    assert.deepEqual(gateway.successReply(), { status: 204, contentType: "application/json", body: "" });
    const failure = gateway.failureReply("amount mismatch");
    assert.equal(failure.status, 500);
    assert.deepEqual(JSON.parse(failure.body), { code: "FAIL", message: "amount mismatch" });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Harness: simulator and merchant callback endpoint on one local server.

type ReceivedCallback = { result: VerifyCallbackResult; replyStatus: number };
type Sandbox = {
  url: string;
  simulator: ProviderSimulator;
  gateway: PaymentGateway;
  merchant: { callbacks: ReceivedCallback[]; callbacksFor(orderId: string): ReceivedCallback[] };
  close(): Promise<void>;
};

async function startSandbox(options: { sandbox: WechatSandbox; mode: PlatformMode; simulatorSandbox?: WechatSandbox }): Promise<Sandbox> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const simulator = createWechatSimulator({ sandbox: options.simulatorSandbox ?? options.sandbox, publicUrl: url, signWith: options.mode, timeScale: 0.001 });
  const gateway = createWechatGateway(
    wechatSandboxGatewayConfig(options.sandbox, { baseUrl: url, notifyUrl: `${url}/merchant/wechat/notify`, platformMode: options.mode }),
  );
  const callbacks: ReceivedCallback[] = [];
  const app = express();
  app.use(simulator.router);
  app.post("/merchant/wechat/notify", express.text({ type: () => true }), async (req: Request, res: Response) => {
    // What the real callback handler does with the verdict: acknowledge payments and non-payments, refuse the rest.
    const result = await gateway.verifyCallback({ headers: req.headers, rawBody: String(req.body ?? "") });
    const reply = result.ok || result.code === "not_a_payment" ? gateway.successReply() : gateway.failureReply(result.detail);
    callbacks.push({ result, replyStatus: reply.status });
    res.status(reply.status).type(reply.contentType).send(reply.body);
  });
  server.on("request", app);
  return {
    url,
    simulator,
    gateway,
    merchant: {
      callbacks,
      callbacksFor: (orderId) => callbacks.filter((c) => c.result.ok && c.result.kind !== "refund" && c.result.notification.orderId === orderId),
    },
    async close() {
      simulator.notifier.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Answers every request with an unpaid trade, under whatever headers `headersFor` gives the body. */
async function startCounterfeitWechat(headersFor: (body: string) => Record<string, string>): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const orderId = (req.url ?? "").split("/").at(-1)?.split("?")[0] ?? "";
    const body = JSON.stringify({ appid: sandbox.appId, mchid: sandbox.mchId, out_trade_no: orderId, trade_state: "NOTPAY" });
    res.writeHead(200, { "Content-Type": "application/json", ...headersFor(body) }).end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function paidOrder(env: Sandbox, amountFen: bigint): Promise<string> {
  const orderId = newOrderId();
  await env.gateway.createPayment(order(orderId, amountFen));
  await env.simulator.pay(orderId);
  await env.simulator.notifier.idle();
  return orderId;
}

function newOrderId(): string {
  return `T${randomBytes(8).toString("hex")}`;
}

function order(orderId: string, amountFen: bigint) {
  return { orderId, amountFen, subject: "Gas quota top-up", expiresAt: new Date(Date.now() + 15 * 60_000) };
}

// ---------------------------------------------------------------------------------------------------------------
// Crafted notifications.

function transactionBody(overrides: Record<string, unknown> = {}): string {
  return buildWechatNotification(sandbox.apiV3Key, TRANSACTION_SUCCESS, {
    appid: sandbox.appId,
    mchid: sandbox.mchId,
    out_trade_no: "ORDER20240101",
    transaction_id: "4200000000202401010000000001",
    trade_type: "NATIVE",
    trade_state: "SUCCESS",
    success_time: "2024-01-01T12:00:00+08:00",
    amount: { total: 100, payer_total: 100, currency: "CNY", payer_currency: "CNY" },
    ...overrides,
  });
}

function signedCallback(body: string, signer: PlatformSigner, options?: { timestamp?: number }): IncomingCallback {
  const headers = Object.fromEntries(Object.entries(signWechatMessage(body, signer, options)).map(([name, value]) => [name.toLowerCase(), value]));
  return { headers, rawBody: body };
}

/** Flips a bit of the 16-byte GCM tag at the end of the ciphertext. */
function breakGcmTag(body: string): string {
  const notification = JSON.parse(body) as { resource: { ciphertext: string } };
  const sealed = Buffer.from(notification.resource.ciphertext, "base64");
  sealed[sealed.length - 1] = sealed[sealed.length - 1]! ^ 0x01;
  notification.resource.ciphertext = sealed.toString("base64");
  return JSON.stringify(notification);
}

function assertAccepted(result: VerifyCallbackResult): VerifiedPaymentNotification {
  if (!result.ok) assert.fail(`expected acceptance, got ${result.code}: ${result.detail}`);
  if (result.kind === "refund") assert.fail("expected a payment notification, got a refund notification");
  return result.notification;
}

function assertRejected(result: VerifyCallbackResult, code: string): void {
  assert.equal(result.ok, false, "expected a rejection");
  assert.equal(!result.ok && result.code, code, !result.ok ? result.detail : "");
}
