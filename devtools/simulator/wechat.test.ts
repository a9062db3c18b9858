import assert from "node:assert/strict";
import { createHash, createPrivateKey, createPublicKey, createVerify, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import express, { type Request, type Response } from "express";
import WxPay from "wechatpay-node-v3";
import { GatewayError, type PaymentGateway, type VerifyCallbackResult } from "../../server/payments/gateway";
import { createWechatGateway } from "../../server/payments/gateways/wechat";
import type { SimulatorClock } from "./types";
import { createWechatSimulator, generateWechatSandbox, type WechatProviderSimulator, type WechatSandbox, wechatSandboxGatewayConfig } from "./wechat";

let sandbox: WechatSandbox;
let env: Sandbox;
/** The simulator's business clock (trades, payments, bill days): the real clock unless a test sets it. */
let businessNow: Date | undefined;

before(async () => {
  sandbox = await generateWechatSandbox();
  env = await startSandbox(sandbox);
});
after(() => env.close());
beforeEach(() => {
  businessNow = undefined;
  env.simulator.notifier.setFaults({});
  env.merchant.failNext = 0;
});

describe("WeChat sandbox identity", () => {
  it("issues X.509 certificates carrying the advertised serials, and a public key that is the platform certificate's", () => {
    const merchant = new X509Certificate(sandbox.merchantCertificate);
    const platform = new X509Certificate(sandbox.platformCertificate);
    assert.equal(merchant.serialNumber, sandbox.merchantSerialNo);
    assert.equal(platform.serialNumber, sandbox.platformSerialNo);
    assert.ok(merchant.checkPrivateKey(createPrivateKey(sandbox.merchantPrivateKey)));
    assert.ok(createPublicKey(sandbox.platformPublicKey).equals(platform.publicKey));
    assert.match(sandbox.platformPublicKeyId, /^PUB_KEY_ID_\d+$/);
    assert.equal(Buffer.byteLength(sandbox.apiV3Key), 32);
    assert.match(sandbox.mchId, /^\d{10}$/);
  });
});

describe("WeChat simulator: merchant authentication", () => {
  it("refuses a request signed with a key other than the merchant's: 401 SIGN_ERROR", async () => {
    const impostorKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
    const client = sdkClient({ privateKey: Buffer.from(impostorKey) });
    const output = await client.transactions_native(nativeOrder(newOrderId()));
    assert.equal(output.status, 401);
    assert.equal(output.error.code, "SIGN_ERROR");
  });

  it("refuses a correctly signed request naming another mchid: 401 SIGN_ERROR", async () => {
    const output = await sdkClient({ mchid: "1900000109" }).query({ out_trade_no: newOrderId() });
    assert.equal(output.status, 401);
    assert.equal(output.error.code, "SIGN_ERROR");
  });

  it("accepts the real client's signature on GET and POST", async () => {
    const client = sdkClient({});
    const orderId = newOrderId();
    assert.equal((await client.transactions_native(nativeOrder(orderId))).status, 200);
    assert.equal((await client.query({ out_trade_no: orderId })).status, 200);
  });

  it("refuses an unsigned request with 401 SIGN_ERROR, and (as WeChat) does not sign that refusal", async () => {
    const response = await fetch(`${env.url}/v3/pay/transactions/out-trade-no/${newOrderId()}?mchid=${sandbox.mchId}`);
    const body = await response.text();
    assert.equal(response.status, 401);
    assert.equal(JSON.parse(body).code, "SIGN_ERROR");
    assert.equal(response.headers.get("wechatpay-serial"), null);
    assert.equal(response.headers.get("wechatpay-signature"), null);
  });

  it("signs a correctly signed request's answer with the platform key, or with the public key when the request names its id", async () => {
    const answerTo = async (requestSerial?: string) => {
      const output = await sdkClient({ requestSerial }).query({ out_trade_no: newOrderId() });
      assert.equal(output.status, 404);
      return lastAnswer!;
    };
    const byCertificate = await answerTo();
    assert.equal(byCertificate.serial, sandbox.platformSerialNo);
    assert.ok(createVerify("RSA-SHA256").update(byCertificate.signed).verify(sandbox.platformCertificate, byCertificate.signature, "base64"));
    const byPublicKey = await answerTo(sandbox.platformPublicKeyId);
    assert.equal(byPublicKey.serial, sandbox.platformPublicKeyId);
    assert.ok(createVerify("RSA-SHA256").update(byPublicKey.signed).verify(sandbox.platformPublicKey, byPublicKey.signature, "base64"));
  });
});

describe("WeChat simulator: order book", () => {
  it("answers a repeated order with ORDERPAID once paid and ORDER_CLOSED once closed", async () => {
    const paid = newOrderId();
    await env.gateway.createPayment(order(paid, 100n));
    await env.simulator.pay(paid);
    await assert.rejects(env.gateway.createPayment(order(paid, 100n)), gatewayCode("ORDERPAID"));

    const closed = newOrderId();
    await env.gateway.createPayment(order(closed, 100n));
    await env.gateway.closeTrade(closed);
    await assert.rejects(env.gateway.createPayment(order(closed, 100n)), gatewayCode("ORDER_CLOSED"));
    await env.simulator.notifier.idle();
  });

  it("refuses the same out_trade_no with another amount: OUT_TRADE_NO_USED", async () => {
    const orderId = newOrderId();
    await env.gateway.createPayment(order(orderId, 100n));
    await assert.rejects(env.gateway.createPayment(order(orderId, 200n)), gatewayCode("OUT_TRADE_NO_USED"));
  });

  it("closes an unpaid trade once its time_expire passes, and it can no longer be paid", async () => {
    const orderId = newOrderId();
    // time_expire has whole seconds: expire on the next second boundary at least 100 ms away.
    const expiresAt = new Date(Math.ceil((Date.now() + 100) / 1000) * 1000);
    await env.gateway.createPayment({ ...order(orderId, 100n), expiresAt });
    assert.deepEqual(await env.gateway.queryTrade(orderId), { status: "pending" });
    await sleep(expiresAt.getTime() - Date.now() + 20);
    assert.deepEqual(await env.gateway.queryTrade(orderId), { status: "closed" });
    await assert.rejects(env.simulator.pay(orderId), /closed: it cannot be paid/);
  });

  it("Cancel on the payer page leaves the trade NOTPAY, sends nothing, and the payer can still pay it", async () => {
    const orderId = newOrderId();
    const { qrCode } = await env.gateway.createPayment(order(orderId, 100n));
    const press = await fetch(`${qrCode}/cancel`, { method: "POST" });
    assert.equal(press.status, 200);
    assert.deepEqual(await env.gateway.queryTrade(orderId), { status: "pending" });
    assert.equal(env.simulator.notifier.deliveries().some((d) => d.key.includes(orderId)), false);
    const again = await fetch(`${qrCode}/pay`, { method: "POST" });
    assert.equal(again.status, 200);
    await env.simulator.notifier.idle();
    assert.equal((await env.gateway.queryTrade(orderId)).status, "paid");
  });

  it("a cancelled trade closes only when the merchant closes it or time_expire passes", async () => {
    const orderId = newOrderId();
    await env.gateway.createPayment(order(orderId, 100n));
    await env.simulator.cancel(orderId);
    assert.equal(env.simulator.trade(orderId)?.status, "pending");
    await env.gateway.closeTrade(orderId);
    assert.equal(env.simulator.trade(orderId)?.status, "closed");
  });

  it("refuses an over-refund with 400 INVALID_REQUEST, and a refund above the available balance with 403 NOT_ENOUGH", async () => {
    const orderId = newOrderId();
    await env.gateway.createPayment(order(orderId, 100n));
    await env.simulator.pay(orderId);
    const refund = (outRefundNo: string, amount: number) =>
      sdkClient({}).refunds({ out_trade_no: orderId, out_refund_no: outRefundNo, amount: { refund: amount, total: 100, currency: "CNY" } });
    const over = await refund(`${orderId}R0`, 101);
    assert.deepEqual([over.status, over.error.code], [400, "INVALID_REQUEST"]);
    env.simulator.setAvailableBalance(50n);
    try {
      const short = await refund(`${orderId}R1`, 60);
      assert.deepEqual([short.status, short.error.code], [403, "NOT_ENOUGH"]);
      env.simulator.setAvailableBalance(60n);
      const retried = await refund(`${orderId}R1`, 60);
      assert.equal(retried.status, 200);
      assert.equal(env.simulator.availableBalance(), 0n);
    } finally {
      env.simulator.setAvailableBalance(undefined);
    }
    await env.simulator.notifier.idle();
  });
});

describe("WeChat simulator: controls over HTTP", () => {
  it("sets the next refunds' outcome and the merchant's available balance", async () => {
    const put = (path: string, body: object) => fetch(`${env.url}${path}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal((await put("/sim/wechat/balance", { availableFen: "42" })).status, 200);
    assert.equal(env.simulator.availableBalance(), 42n);
    assert.equal((await put("/sim/wechat/balance", { availableFen: 1.5 })).status, 400);
    assert.equal((await put("/sim/wechat/balance", { availableFen: null })).status, 200);
    assert.equal(env.simulator.availableBalance(), undefined);
    assert.equal((await put("/sim/wechat/refund-outcome", { outcome: "BOGUS" })).status, 400);
    assert.equal((await put("/sim/wechat/refund-outcome", { outcome: "CLOSED" })).status, 200);
    const orderId = newOrderId();
    await env.gateway.createPayment(order(orderId, 100n));
    await env.simulator.pay(orderId);
    await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 100n, totalFen: 100n });
    assert.equal((await env.gateway.queryRefund(orderId, `${orderId}R1`)).status, "failed");
    assert.equal((await put("/sim/wechat/refund-outcome", { outcome: "SUCCESS" })).status, 200);
    await env.simulator.notifier.idle();
  });
});

describe("WeChat simulator: bills", () => {
  const sdk = () => sdkClient({});
  const atBeijing = (text: string) => new Date(`${text}+08:00`);

  it("answers STATEMENT_CREATING for a day not over, NO_STATEMENT_EXIST for a day without trades, by the business clock", async () => {
    businessNow = atBeijing("2026-04-10T23:59:59");
    const today = await sdk().tradebill({ bill_date: "2026-04-10", bill_type: "ALL", tar_type: "GZIP" });
    assert.deepEqual([today.status, today.error.code], [400, "STATEMENT_CREATING"]);
    businessNow = atBeijing("2026-04-11T00:00:00");
    const none = await sdk().fundflowbill({ bill_date: "2026-04-10", account_type: "BASIC", tar_type: "GZIP" });
    assert.deepEqual([none.status, none.error.code], [400, "NO_STATEMENT_EXIST"]);
  });

  it("serves the trade bill as WeChat writes it: gzip, SHA1 of the file in hash_value, backquoted fields, summary rows", async () => {
    businessNow = atBeijing("2026-04-12T08:30:00");
    const orderId = newOrderId();
    await env.gateway.createPayment({ ...order(orderId, 1234n), expiresAt: new Date(businessNow.getTime() + 60_000) });
    await env.simulator.pay(orderId);
    businessNow = atBeijing("2026-04-12T20:00:00");
    await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 34n, totalFen: 1234n });
    await env.simulator.notifier.idle();
    businessNow = atBeijing("2026-04-13T10:00:00");

    const applied = await sdk().tradebill({ bill_date: "2026-04-12", bill_type: "ALL", tar_type: "GZIP" });
    assert.equal(applied.status, 200);
    assert.equal(applied.data.hash_type, "SHA1");
    assert.match(applied.data.download_url, /\/v3\/billdownload\/file\?token=\w+$/);
    const unsigned = await fetch(applied.data.download_url);
    assert.equal(unsigned.status, 401, "the download needs the merchant's signature like any call");
    const file = await sdk().downloadBill(`https://api.mch.weixin.qq.com${new URL(applied.data.download_url).pathname}${new URL(applied.data.download_url).search}`);
    assert.equal(file.status, 200);
    const bytes = gunzipSync(file.data as Buffer);
    assert.equal(createHash("sha1").update(bytes).digest("hex"), applied.data.hash_value);
    const lines = bytes.toString("utf8").trimEnd().split("\r\n");
    const tradeNo = env.simulator.trade(orderId)!.gatewayTradeNo;
    assert.equal(lines[0], "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注");
    assert.match(lines[1]!, new RegExp(`^\`2026-04-12 08:30:00,\`${sandbox.appId},\`${sandbox.mchId},\`0,\`,\`${tradeNo},\`${orderId},\`o\\w+,\`NATIVE,\`SUCCESS,\`OTHERS,\`CNY,\`12\\.34,\`0\\.00,\`0,\`0,\`0\\.00,\`0\\.00,\`,\`,\`Gas quota top-up,\`,\`0\\.07404,\`0\\.60%,\`12\\.34,\`0\\.00,\`$`));
    assert.match(lines[2]!, new RegExp(`^\`2026-04-12 20:00:00,.*,\`REFUND,.*,\`0\\.00,\`0\\.00,\`50\\d{27},\`${orderId}R1,\`0\\.34,\`0\\.00,\`ORIGINAL,\`SUCCESS,.*,\`-0\\.00204,`));
    assert.equal(lines[3], "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额");
    assert.equal(lines[4], "`2,`12.34,`0.34,`0.00,`0.07200,`12.34,`0.34");
    assert.equal(lines.length, 5);
  });
});

describe("WeChat simulator: notifications", () => {
  it("retries an unacknowledged notification on WeChat's schedule until the merchant answers 204", async () => {
    env.merchant.failNext = 2;
    const orderId = await payNewOrder();
    await env.simulator.notifier.idle();
    assert.deepEqual(delivery(orderId), { attempts: 3, acknowledged: true });
    const replies = env.merchant.callbacksFor(orderId).map((c) => c.replyStatus);
    assert.deepEqual(replies, [500, 500, 204]);
  });

  it("duplicate fault: each attempt arrives twice, both authentic", async () => {
    env.simulator.notifier.setFaults({ duplicate: 1 });
    const orderId = await payNewOrder();
    await env.simulator.notifier.idle();
    const callbacks = env.merchant.callbacksFor(orderId);
    assert.equal(callbacks.length, 2);
    assert.ok(callbacks.every((c) => c.result.ok));
    assert.deepEqual(delivery(orderId), { attempts: 1, acknowledged: true });
  });

  it("dropAttempts fault: the first attempts never arrive and a retry delivers", async () => {
    env.simulator.notifier.setFaults({ dropAttempts: 2 });
    const orderId = await payNewOrder();
    await env.simulator.notifier.idle();
    assert.equal(env.merchant.callbacksFor(orderId).length, 1);
    assert.deepEqual(delivery(orderId), { attempts: 3, acknowledged: true });
  });

  it("dropAll fault: nothing arrives, and only a query learns of the payment", async () => {
    env.simulator.notifier.setFaults({ dropAll: true });
    const orderId = await payNewOrder();
    await env.simulator.notifier.idle();
    assert.equal(env.merchant.callbacksFor(orderId).length, 0);
    assert.equal((await env.gateway.queryTrade(orderId)).status, "paid");
  });

  it("tamper fault: a tampered copy is rejected (bad_signature) and the genuine one accepted", async () => {
    env.simulator.notifier.setFaults({ tamper: true });
    const before = env.merchant.callbacks.length;
    const orderId = await payNewOrder();
    await env.simulator.notifier.idle();
    const results = env.merchant.callbacks.slice(before).map((c) => c.result);
    assert.equal(results.length, 2);
    assert.ok(results.some((r) => !r.ok && r.code === "bad_signature"));
    assert.ok(results.some((r) => r.ok && r.kind !== "refund" && r.notification.orderId === orderId));
  });

  it("reorder fault: notifications held in the window all arrive", async () => {
    env.simulator.notifier.setFaults({ reorderWindowMs: 30 });
    const orderIds = [await payNewOrder(), await payNewOrder(), await payNewOrder()];
    await env.simulator.notifier.idle();
    for (const orderId of orderIds) assert.equal(env.merchant.callbacksFor(orderId).length, 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Harness: simulator and a merchant callback endpoint (verifying with the real gateway) on one local server.

type ReceivedCallback = { result: VerifyCallbackResult; replyStatus: number };
type Sandbox = {
  url: string;
  simulator: WechatProviderSimulator;
  gateway: PaymentGateway;
  merchant: { callbacks: ReceivedCallback[]; failNext: number; callbacksFor(orderId: string): ReceivedCallback[] };
  close(): Promise<void>;
};

async function startSandbox(sandbox: WechatSandbox): Promise<Sandbox> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clock: SimulatorClock = () => businessNow ?? new Date();
  const simulator = createWechatSimulator({ sandbox, publicUrl: url, timeScale: 0.001, clock });
  const gateway = createWechatGateway(wechatSandboxGatewayConfig(sandbox, { baseUrl: url, notifyUrl: `${url}/merchant/wechat/notify` }));
  const merchant: Sandbox["merchant"] = {
    callbacks: [],
    failNext: 0,
    callbacksFor: (orderId) => merchant.callbacks.filter((c) => c.result.ok && c.result.kind !== "refund" && c.result.notification.orderId === orderId),
  };
  const app = express();
  app.use(simulator.router);
  app.post("/merchant/wechat/notify", express.text({ type: () => true }), async (req: Request, res: Response) => {
    const result = await gateway.verifyCallback({ headers: req.headers, rawBody: String(req.body ?? "") });
    const busy = result.ok && merchant.failNext > 0;
    if (busy) merchant.failNext--;
    const reply = result.ok && !busy ? gateway.successReply() : gateway.failureReply(busy ? "busy" : result.ok ? "" : result.detail);
    merchant.callbacks.push({ result, replyStatus: reply.status });
    res.status(reply.status).type(reply.contentType).send(reply.body);
  });
  server.on("request", app);
  return {
    url,
    simulator,
    gateway,
    merchant,
    async close() {
      simulator.notifier.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The real client, straight, with a plain fetch transport: to see what the simulator says to it. */
/** The last answer sdkClient received: its Wechatpay-Serial, -Signature and the string signed. */
let lastAnswer: { serial: string | null; signature: string; signed: string } | undefined;

function sdkClient(overrides: { mchid?: string; privateKey?: Buffer; requestSerial?: string }): WxPay {
  const client = new WxPay({
    appid: sandbox.appId,
    mchid: overrides.mchid ?? sandbox.mchId,
    serial_no: sandbox.merchantSerialNo,
    publicKey: Buffer.from(sandbox.merchantCertificate),
    privateKey: overrides.privateKey ?? Buffer.from(sandbox.merchantPrivateKey),
  });
  const send = async (method: string, sdkUrl: string, headers: Record<string, string>, body?: string) => {
    const { pathname, search } = new URL(sdkUrl);
    const sent = overrides.requestSerial ? { ...headers, "Wechatpay-Serial": overrides.requestSerial } : headers;
    const response = await fetch(`${env.url}${pathname}${search}`, { method, headers: sent, body });
    if (pathname.startsWith("/v3/billdownload/")) return { status: response.status, data: Buffer.from(await response.arrayBuffer()) };
    const text = await response.text();
    const h = (name: string) => response.headers.get(name);
    lastAnswer = { serial: h("wechatpay-serial"), signature: h("wechatpay-signature") ?? "", signed: `${h("wechatpay-timestamp")}\n${h("wechatpay-nonce")}\n${text}\n` };
    const data = text ? JSON.parse(text) : undefined;
    return response.ok ? { status: response.status, data } : { status: response.status, error: data };
  };
  client.createHttp({
    get: (url, headers) => send("GET", url, headers),
    post: (url, params, headers) => send("POST", url, headers, JSON.stringify(params)),
    upload: () => Promise.reject(new Error("not used")),
  });
  return client;
}

function nativeOrder(orderId: string) {
  return { description: "Gas quota top-up", out_trade_no: orderId, notify_url: `${env.url}/merchant/wechat/notify`, amount: { total: 100, currency: "CNY" } };
}

async function payNewOrder(): Promise<string> {
  const orderId = newOrderId();
  await env.gateway.createPayment(order(orderId, 100n));
  await env.simulator.pay(orderId);
  return orderId;
}

function delivery(orderId: string): { attempts: number; acknowledged: boolean } | undefined {
  const record = env.simulator.notifier.deliveries().find((d) => d.key === `TRANSACTION.SUCCESS:${orderId}`);
  return record && { attempts: record.attempts, acknowledged: record.acknowledged };
}

function gatewayCode(code: string) {
  return (error: unknown) => error instanceof GatewayError && error.gatewayCode === code;
}

function newOrderId(): string {
  return `S${randomBytes(8).toString("hex")}`;
}

function order(orderId: string, amountFen: bigint) {
  return { orderId, amountFen, subject: "Gas quota top-up", expiresAt: new Date(Date.now() + 15 * 60_000) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
