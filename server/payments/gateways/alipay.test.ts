import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, createSign } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { AlipaySdk } from "alipay-sdk";
import express from "express";
import {
  ALIPAY_GATEWAY_PATH,
  type AlipaySandbox,
  type AlipaySimulator,
  alipayPaymentFields,
  createAlipaySimulator,
  generateAlipaySandbox,
  signNotification,
} from "../../../devtools/simulator/alipay";
import {
  type AlipayGatewayConfig,
  createAlipayGateway,
  formatBeijingTime,
  formatYuan,
  parseBeijingTime,
  parseYuan,
} from "./alipay";
import { GatewayError, type GatewayOrder, type IncomingCallback, type PaymentGateway } from "../gateway";

/** The Alipay adapter, through the real alipay-sdk, against the simulator over HTTP. */

type Received = IncomingCallback & { form: Record<string, string> };
type RunningSimulator = { simulator: AlipaySimulator; url: string; close: () => Promise<void> };

let sandbox: AlipaySandbox;
/** Keys nobody in this test trusts: a forger's Alipay key, a stranger's merchant key. */
let stranger: AlipaySandbox;
let alipay: RunningSimulator;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let gateway: PaymentGateway;
let clockOffsetMs = 0;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  sandbox = generateAlipaySandbox();
  stranger = generateAlipaySandbox();
  receiver = await startReceiver();
  alipay = await startSimulator(sandbox, () => new Date(Date.now() + clockOffsetMs));
  gateway = createAlipayGateway(configFor(sandbox, alipay));
  stops.push(receiver.close, alipay.close);
});

after(async () => {
  await Promise.all(stops.map((stop) => stop()));
});

describe("Alipay gateway: checkout", () => {
  it("QR checkout: the precreate qr_code opens a payer page with the amount; paying notifies, and verifyCallback accepts the exact amount", async () => {
    const order = newOrder(1234n);
    const created = await gateway.createPayment(order);
    assert.equal(created.qrCode, `${alipay.url}/payer/alipay/${order.orderId}`);
    assert.match(await (await fetch(created.qrCode!)).text(), /¥12\.34/);

    await payOnPayerPage(created.qrCode!);
    const result = await gateway.verifyCallback(await notificationFor(order.orderId));

    assert.ok(result.ok && result.kind !== "refund", result.ok ? "a refund notification" : result.detail);
    assert.equal(result.notification.orderId, order.orderId);
    assert.equal(result.notification.amountFen, 1234n);
    assert.equal(result.notification.paid, true);
    assert.equal(result.notification.gatewayStatus, "TRADE_SUCCESS");
    assert.equal(result.notification.gatewayTradeNo, alipay.simulator.trade(order.orderId)?.gatewayTradeNo);
    assert.ok(result.notification.paidAt instanceof Date);
  });

  it("page checkout: the payUrl leads the browser to the payer page; after paying, queryTrade shows the payment", async () => {
    const pageGateway = createAlipayGateway({ ...configFor(sandbox, alipay), checkout: "page", returnUrl: "http://shop.example/paid" });
    const order = newOrder(880n);
    const { payUrl } = await pageGateway.createPayment(order);
    assert.ok(payUrl);
    assert.ok(payUrl.startsWith(`${alipay.url}${ALIPAY_GATEWAY_PATH}?`));

    const cashier = await fetch(payUrl);
    assert.equal(cashier.url, `${alipay.url}/payer/alipay/${order.orderId}`);
    assert.match(await cashier.text(), /¥8\.80/);
    await payOnPayerPage(cashier.url);

    const state = await pageGateway.queryTrade(order.orderId);
    assert.equal(state.status, "paid");
    assert.equal(state.status === "paid" && state.amountFen, 880n);
    const result = await gateway.verifyCallback(await notificationFor(order.orderId));
    assert.ok(result.ok && result.kind !== "refund" && result.notification.amountFen === 880n);
  });

  it("creating the same order twice gives the same QR code", async () => {
    const order = newOrder(500n);
    assert.deepEqual(await gateway.createPayment(order), await gateway.createPayment(order));
  });

  it("creating an already paid order fails with ACQ.TRADE_HAS_SUCCESS", async () => {
    const order = await paidOrder(100n);
    await assert.rejects(gateway.createPayment(order), gatewayError("ACQ.TRADE_HAS_SUCCESS"));
  });
});

describe("Alipay gateway: query and close", () => {
  it("queryTrade is not_found until the payer opens the QR code, then pending, then paid", async () => {
    const order = newOrder(300n);
    const { qrCode } = await gateway.createPayment(order);
    assert.deepEqual(await gateway.queryTrade(order.orderId), { status: "not_found" });
    await fetch(qrCode!);
    assert.deepEqual(await gateway.queryTrade(order.orderId), { status: "pending" });
    await alipay.simulator.pay(order.orderId);
    const paid = await gateway.queryTrade(order.orderId);
    assert.equal(paid.status, "paid");
    assert.equal(paid.status === "paid" && paid.gatewayTradeNo, alipay.simulator.trade(order.orderId)?.gatewayTradeNo);
  });

  it("closeTrade closes a pending trade; closing it again, or an unknown trade, is fine", async () => {
    const order = newOrder(300n);
    const { qrCode } = await gateway.createPayment(order);
    await fetch(qrCode!);
    await gateway.closeTrade(order.orderId);
    assert.deepEqual(await gateway.queryTrade(order.orderId), { status: "closed" });
    await gateway.closeTrade(order.orderId);
    await gateway.closeTrade(newOrder(1n).orderId);
  });

  it("closeTrade on a trade nobody scanned yet succeeds and the QR code can no longer be paid", async () => {
    const order = newOrder(300n);
    await gateway.createPayment(order);
    await gateway.closeTrade(order.orderId);
    await assert.rejects(alipay.simulator.pay(order.orderId), /closed/);
  });

  it("closeTrade refuses to close a paid trade", async () => {
    const order = await paidOrder(300n);
    await assert.rejects(gateway.closeTrade(order.orderId), /already paid/);
  });

  it("queryTrade refuses a signed answer naming another seller_id", async () => {
    // the documented query answer has no seller_id (the simulator sends none): a stand-in gateway that adds one
    const reply = JSON.stringify({ code: "10000", msg: "Success", trade_no: "2026010122001", out_trade_no: "x1", trade_status: "TRADE_SUCCESS", total_amount: "1.00", seller_id: "2088000000000099" });
    const sign = createSign("RSA-SHA256").update(reply).sign(sandbox.alipayPrivateKey, "base64");
    const standIn = await listen((_req, res) => void res.setHeader("content-type", "application/json").end(`{"alipay_trade_query_response":${reply},"sign":"${sign}"}`));
    stops.push(standIn.close);
    const queried = createAlipayGateway({ ...configFor(sandbox, alipay), gatewayUrl: `${standIn.url}${ALIPAY_GATEWAY_PATH}` });
    await assert.rejects(queried.queryTrade("x1"), (error: unknown) => error instanceof GatewayError && error.gatewayCode === "SELLER_MISMATCH");
  });

  it("a trade past its expiry reads as closed and can no longer be paid", async () => {
    const order = newOrder(300n, new Date(Date.now() + 10 * 60_000));
    const { qrCode } = await gateway.createPayment(order);
    await fetch(qrCode!);
    try {
      clockOffsetMs = 10 * 60_000;
      assert.deepEqual(await gateway.queryTrade(order.orderId), { status: "closed" });
      await assert.rejects(alipay.simulator.pay(order.orderId), /closed/);
    } finally {
      clockOffsetMs = 0;
    }
  });
});

describe("Alipay gateway: refunds", () => {
  it("refunds in parts and in full; a repeat with the same refundId changes nothing; queryRefund confirms", async () => {
    const order = await paidOrder(1000n);
    const refund = (refundId: string, amountFen: bigint) => gateway.refund({ orderId: order.orderId, refundId, amountFen, totalFen: 1000n });

    const first = await refund("part-1", 400n);
    assert.equal(first.status, "succeeded");
    assert.ok(first.status === "succeeded" && first.succeededAt instanceof Date, "succeededAt from gmt_refund_pay");
    assert.deepEqual(await refund("part-1", 400n), first);
    assert.equal(alipay.simulator.trade(order.orderId)?.refundedFen, 400n);
    assert.equal((await refund("rest", 600n)).status, "succeeded");

    assert.deepEqual(await gateway.queryRefund(order.orderId, "part-1"), first);
    assert.deepEqual(await gateway.queryRefund(order.orderId, "never-asked"), { status: "not_found" });
    assert.equal(alipay.simulator.trade(order.orderId)?.refundedFen, 1000n);
  });

  it("a refund beyond what was paid fails with the gateway's reason", async () => {
    const order = await paidOrder(500n);
    const state = await gateway.refund({ orderId: order.orderId, refundId: "too-much", amountFen: 501n, totalFen: 500n });
    assert.equal(state.status, "failed");
    assert.match(state.status === "failed" ? state.reason : "", /ACQ\.REFUND_AMT_NOT_EQUAL_TOTAL/);
    assert.equal(alipay.simulator.trade(order.orderId)?.refundedFen, 0n);
  });

  it("a refund the merchant's balance cannot cover stays pending (ACQ.SELLER_BALANCE_NOT_ENOUGH); retried with the same refundId once the balance covers it, it succeeds", async () => {
    const order = await paidOrder(800n);
    const request = { orderId: order.orderId, refundId: "short-balance", amountFen: 500n, totalFen: 800n };
    try {
      alipay.simulator.setMerchantBalance(100n);
      assert.deepEqual(await gateway.refund(request), { status: "pending", gatewayStatus: "ACQ.SELLER_BALANCE_NOT_ENOUGH" });
      assert.deepEqual(await gateway.queryRefund(order.orderId, "short-balance"), { status: "not_found" });
      alipay.simulator.setMerchantBalance(10_000n);
      const retried = await gateway.refund(request);
      assert.equal(retried.status, "succeeded");
      assert.equal(alipay.simulator.trade(order.orderId)?.refundedFen, 500n);
    } finally {
      alipay.simulator.setMerchantBalance(undefined);
    }
  });

  it("queryRefund for an unknown trade is not_found", async () => {
    assert.deepEqual(await gateway.queryRefund(newOrder(1n).orderId, "r"), { status: "not_found" });
  });
});

describe("Alipay gateway: callback verification", () => {
  it("rejects a notification signed with another Alipay key (bad_signature)", async () => {
    const forger = await startSimulator({ ...sandbox, alipayPrivateKey: stranger.alipayPrivateKey, alipayPublicKey: stranger.alipayPublicKey });
    stops.push(forger.close);
    const order = newOrder(100n);
    // The forger's own client trusts it, so the trade can be created there.
    await createAlipayGateway(configFor({ ...sandbox, alipayPublicKey: stranger.alipayPublicKey }, forger)).createPayment(order);
    await forger.simulator.pay(order.orderId);
    await forger.simulator.notifier.idle();

    const result = await gateway.verifyCallback(receiver.forOrder(order.orderId)[0]!);
    assert.deepEqual(pick(result), { ok: false, code: "bad_signature" });
  });

  it("rejects a notification whose amount was changed after signing (bad_signature)", async () => {
    const order = newOrder(200n);
    await gateway.createPayment(order);
    alipay.simulator.notifier.setFaults({ tamper: true });
    try {
      await alipay.simulator.pay(order.orderId);
      await alipay.simulator.notifier.idle();
    } finally {
      alipay.simulator.notifier.setFaults({});
    }
    const copies = receiver.forOrder(order.orderId);
    const tampered = copies.find((copy) => copy.form.total_amount !== "2.00")!;
    const genuine = copies.find((copy) => copy.form.total_amount === "2.00")!;
    assert.deepEqual(pick(await gateway.verifyCallback(tampered)), { ok: false, code: "bad_signature" });
    assert.deepEqual(pick(await gateway.verifyCallback(genuine)), { ok: true });
  });

  it("rejects a genuine Alipay notification for another app_id (merchant_mismatch)", async () => {
    const otherApp = { ...sandbox, appId: "2021000000000042" };
    const other = await startSimulator(otherApp);
    stops.push(other.close);
    const order = newOrder(100n);
    await createAlipayGateway(configFor(otherApp, other)).createPayment(order);
    await other.simulator.pay(order.orderId);
    await other.simulator.notifier.idle();

    const result = await gateway.verifyCallback(receiver.forOrder(order.orderId)[0]!);
    assert.deepEqual(pick(result), { ok: false, code: "merchant_mismatch" });
  });

  it("rejects a notification without sign, or downgraded to sign_type RSA (bad_signature)", async () => {
    const genuine = await notificationFor((await paidOrder(100n)).orderId);
    const unsigned = withForm(genuine, (form) => delete form.sign);
    const downgraded = withForm(genuine, (form) => (form.sign_type = "RSA"));
    assert.deepEqual(pick(await gateway.verifyCallback(unsigned)), { ok: false, code: "bad_signature" });
    assert.deepEqual(pick(await gateway.verifyCallback(downgraded)), { ok: false, code: "bad_signature" });
  });

  it("accepts exactly the signatures alipay-sdk's checkNotifySignV2 accepts (sign_type signed or not, present or not; empty values; raw %-escapes)", async () => {
    const sdk = new AlipaySdk({ appId: sandbox.appId, privateKey: sandbox.merchantPrivateKey, alipayPublicKey: sandbox.alipayPublicKey });
    const fields = alipayPaymentFields({
      appId: sandbox.appId,
      sellerId: sandbox.sellerId,
      orderId: newOrder(1n).orderId,
      tradeNo: "2026000000000000000001",
      subject: "Gas quota top-up 100% + tax",
      amountFen: 12_345n,
      createdAt: new Date(),
      paidAt: new Date(),
    });
    /** Signs `content` (a form) the way a variant signer would: every field but `leaveOut`, sorted, `k=v&…`. */
    const signOver = (form: Record<string, string>, leaveOut: string[], key = sandbox.alipayPrivateKey) => {
      const text = Object.keys(form)
        .filter((name) => !leaveOut.includes(name))
        .sort()
        .map((name) => `${name}=${form[name]}`)
        .join("&");
      return createSign("RSA-SHA256").update(text, "utf8").sign(key, "base64");
    };
    const genuine = signNotification(fields, sandbox.alipayPrivateKey);
    const withoutType = (({ sign_type: _t, ...rest }) => rest)(fields);
    const forms: Record<string, Record<string, string>> = {
      "as Alipay signs (sign_type sent, not signed)": genuine,
      "sign_type sent and signed": { ...fields, sign_type: "RSA2", sign: signOver({ ...fields, sign_type: "RSA2" }, ["sign"]) },
      "no sign_type, signed without": { ...withoutType, sign: signOver(withoutType, []) },
      "no sign_type, signed as RSA2": { ...withoutType, sign: signOver({ ...withoutType, sign_type: "RSA2" }, []) },
      "an empty value, signed as k=": { ...fields, buyer_id: "", sign_type: "RSA2", sign: signOver({ ...fields, buyer_id: "" }, ["sign", "sign_type"]) },
      "an empty value left out of the signature": { ...fields, buyer_id: "", sign_type: "RSA2", sign: signOver((({ buyer_id: _b, ...rest }) => rest)(fields), ["sign", "sign_type"]) },
      "a field without a name": { ...genuine, "": "x" },
      "an amount changed after signing": { ...genuine, total_amount: "123.46" },
      "signed by another key": { ...fields, sign_type: "RSA2", sign: signOver(fields, [], stranger.alipayPrivateKey) },
      "a sign of the wrong length": { ...genuine, sign: "AAAA" },
      "a sign that is not base64": { ...genuine, sign: "!!not base64!!" },
      "an empty sign": { ...genuine, sign: "" },
    };
    for (const [name, form] of Object.entries(forms)) {
      const callback = { headers: { "content-type": "application/x-www-form-urlencoded" }, rawBody: new URLSearchParams(form).toString() };
      const parsed = Object.fromEntries(new URLSearchParams(callback.rawBody));
      const result = await gateway.verifyCallback(callback);
      const ours = result.ok || result.code !== "bad_signature";
      assert.equal(ours, sdk.checkNotifySignV2(parsed), `${name}: verifyCallback ${ours ? "accepts" : "refuses"} it, alipay-sdk does not`);
    }
    assert.deepEqual(pick(await gateway.verifyCallback({ headers: {}, rawBody: new URLSearchParams(genuine).toString() })), { ok: true }, "the genuine one verifies");
  });

  it("rejects a body that is not an Alipay form (bad_request)", async () => {
    const json = { headers: { "content-type": "application/json" }, rawBody: '{"sign":"x"}' };
    const repeated = { headers: { "content-type": "application/x-www-form-urlencoded" }, rawBody: "sign=a&sign=b" };
    assert.deepEqual(pick(await gateway.verifyCallback(json)), { ok: false, code: "bad_request" });
    assert.deepEqual(pick(await gateway.verifyCallback(repeated)), { ok: false, code: "bad_request" });
  });

  it("reads a partial refund's notification (TRADE_SUCCESS with refund_fee) as that refund having succeeded, never as a payment", async () => {
    const order = await paidOrder(300n);
    await gateway.refund({ orderId: order.orderId, refundId: "refund-1", amountFen: 100n, totalFen: 300n });
    await alipay.simulator.notifier.idle();
    const refundNotice = receiver.forOrder(order.orderId).find((copy) => copy.form.out_biz_no === "refund-1")!;
    assert.equal(refundNotice.form.trade_status, "TRADE_SUCCESS");
    const result = await gateway.verifyCallback(refundNotice);
    assert.ok(result.ok && result.kind === "refund", JSON.stringify(pick(result)));
    assert.equal(result.refund.orderId, order.orderId);
    assert.equal(result.refund.refundId, "refund-1");
    assert.equal(result.refund.gatewayStatus, "TRADE_SUCCESS");
    assert.equal(result.refund.tradeRefundedFen, 100n);
    assert.deepEqual(result.refund.state, { status: "succeeded", succeededAt: parseBeijingTime(refundNotice.form.gmt_refund!) });
  });

  it("reads the notification of the refund that empties the trade (TRADE_CLOSED) as a refund too, with the trade's refunded total", async () => {
    const order = await paidOrder(300n);
    await gateway.refund({ orderId: order.orderId, refundId: "refund-a", amountFen: 100n, totalFen: 300n });
    await gateway.refund({ orderId: order.orderId, refundId: "refund-b", amountFen: 200n, totalFen: 300n });
    await alipay.simulator.notifier.idle();
    const closing = receiver.forOrder(order.orderId).find((copy) => copy.form.out_biz_no === "refund-b")!;
    const result = await gateway.verifyCallback(closing);
    assert.ok(result.ok && result.kind === "refund", JSON.stringify(pick(result)));
    assert.equal(result.refund.refundId, "refund-b");
    assert.equal(result.refund.gatewayStatus, "TRADE_CLOSED");
    assert.equal(result.refund.tradeRefundedFen, 300n);
    assert.equal(result.refund.state.status, "succeeded");
  });

  it("rejects a genuine notification for another seller (seller_id not our PID), or one naming no seller (merchant_mismatch)", async () => {
    const otherSeller = { ...sandbox, sellerId: "2088000000000042" };
    const other = await startSimulator(otherSeller);
    stops.push(other.close);
    const order = newOrder(100n);
    await createAlipayGateway(configFor(otherSeller, other)).createPayment(order);
    await other.simulator.pay(order.orderId);
    await other.simulator.notifier.idle();
    const notice = receiver.forOrder(order.orderId)[0]!;
    assert.equal(notice.form.app_id, sandbox.appId, "same app: only the seller differs");
    const result = await gateway.verifyCallback(notice);
    assert.deepEqual(pick(result), { ok: false, code: "merchant_mismatch" });
    assert.match(result.ok ? "" : result.detail, /seller_id 2088000000000042 is not ours/);

    const unsigned = { ...notice.form };
    for (const field of ["seller_id", "sign", "sign_type"]) delete unsigned[field];
    const noSeller = signNotification(unsigned, sandbox.alipayPrivateKey);
    assert.deepEqual(pick(await gateway.verifyCallback({ headers: notice.headers, rawBody: new URLSearchParams(noSeller).toString() })), { ok: false, code: "merchant_mismatch" });
  });

  it("acknowledges with exactly `success` and refuses with `fail`, both HTTP 200 text/plain", () => {
    assert.deepEqual(gateway.successReply(), { status: 200, contentType: "text/plain", body: "success" });
    assert.deepEqual(gateway.failureReply("amount mismatch"), { status: 200, contentType: "text/plain", body: "fail" });
  });
});

describe("Alipay gateway: signatures on the wire", () => {
  it("throws when a response does not verify with the configured Alipay public key", async () => {
    const wrongAlipayKey = createAlipayGateway({ ...configFor(sandbox, alipay), alipayPublicKey: stranger.alipayPublicKey });
    await assert.rejects(wrongAlipayKey.createPayment(newOrder(100n)), (error: unknown) => {
      assert.ok(error instanceof GatewayError);
      assert.match(error.message, /signature does not verify/);
      return true;
    });
  });

  it("is refused by the gateway when it signs with a key Alipay does not hold for the app (isv.invalid-signature)", async () => {
    const strangerKey = stranger.merchantPrivateKey;
    const wrongMerchantKey = createAlipayGateway({ ...configFor(sandbox, alipay), privateKey: strangerKey });
    await assert.rejects(wrongMerchantKey.createPayment(newOrder(100n)), (error: unknown) => {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.gatewayCode, "isv.invalid-signature");
      assert.ok(!error.message.includes(strangerKey.split("\n")[1]!), "the private key stays out of the message");
      return true;
    });
  });

  it("reports an unsigned answer (wrong app_id) as unverifiable instead of trusting it", async () => {
    const wrongApp = createAlipayGateway({ ...configFor(sandbox, alipay), appId: "2021000000000007" });
    await assert.rejects(wrongApp.queryTrade("whatever"), /response is not signed/);
  });

  it("accepts keys as PKCS#8 PEM or as the bare base64 Alipay's tools print", async () => {
    const pkcs8 = createPrivateKey(sandbox.merchantPrivateKey).export({ type: "pkcs8", format: "pem" }).toString();
    const bareAlipayKey = createPublicKey(sandbox.alipayPublicKey).export({ type: "spki", format: "der" }).toString("base64");
    const reformatted = createAlipayGateway({ ...configFor(sandbox, alipay), privateKey: pkcs8, alipayPublicKey: bareAlipayKey });
    assert.ok((await reformatted.createPayment(newOrder(100n))).qrCode);
  });

  it("refuses to start with a configuration its schema does not accept, naming the fields", () => {
    assert.throws(() => createAlipayGateway({ ...configFor(sandbox, alipay), gatewayUrl: "gateway.do", appId: "" }), (error: Error) => {
      assert.match(error.message, /^Alipay gateway configuration: /);
      assert.match(error.message, /appId/);
      assert.match(error.message, /gatewayUrl/);
      return true;
    });
  });

  it("refuses to start with a key that is not an RSA key, without echoing it", () => {
    assert.throws(() => createAlipayGateway({ ...configFor(sandbox, alipay), privateKey: "not-a-secret-key" }), (error: Error) => {
      assert.match(error.message, /app private key is not an RSA key/);
      assert.ok(!error.message.includes("not-a-secret-key"));
      return true;
    });
  });
});

describe("Alipay gateway: the daily trade bill", () => {
  /** Its own simulator and gateway on one business clock (2026-04-01 in Beijing), which the tests move. */
  let businessTime = new Date("2026-04-01T10:00:00+08:00");
  const at = (beijing: string) => (businessTime = new Date(`${beijing}+08:00`));
  let billing: RunningSimulator;
  let billGateway: PaymentGateway;
  const paidAt = async (beijing: string, amountFen: bigint) => {
    at(beijing);
    const order = newOrder(amountFen, new Date(businessTime.getTime() + 15 * 60_000));
    await billGateway.createPayment(order);
    await billing.simulator.pay(order.orderId);
    return order;
  };

  before(async () => {
    billing = await startSimulator(sandbox, () => businessTime);
    stops.push(billing.close);
    billGateway = createAlipayGateway(configFor(sandbox, billing), { now: () => businessTime });
  });

  it("is not ready while the day runs and until Alipay produces it (09:00 the next day); then lists the day's payments and refunds with the bill's own totals", async () => {
    const first = await paidAt("2026-04-01T10:00:00", 10_000n);
    const second = await paidAt("2026-04-01T23:59:59", 1n);
    at("2026-04-01T20:00:00");
    assert.equal((await billGateway.refund({ orderId: first.orderId, refundId: "rf-april", amountFen: 2_500n, totalFen: 10_000n })).status, "succeeded");

    at("2026-04-01T23:00:00");
    assert.equal((await billGateway.downloadBill("2026-04-01")).status, "not_ready");
    at("2026-04-02T08:59:00");
    const early = await billGateway.downloadBill("2026-04-01");
    assert.equal(early.status, "not_ready");
    assert.match(early.status === "not_ready" ? early.detail : "", /isp\.bill_not_exist/);

    at("2026-04-02T09:00:00");
    const download = await billGateway.downloadBill("2026-04-01");
    assert.equal(download.status, "ready");
    const bill = download.status === "ready" ? download.bill : assert.fail("not ready");
    const tradeNo = billing.simulator.trade(first.orderId)!.gatewayTradeNo;
    assert.deepEqual(bill.entries, [
      { kind: "payment", orderId: first.orderId, gatewayTradeNo: tradeNo, amountFen: 10_000n, feeMilliFen: 60_000n, at: new Date("2026-04-01T02:00:00Z") },
      { kind: "refund", orderId: first.orderId, refundId: "rf-april", gatewayRefundNo: `${tradeNo}/rf-april`, amountFen: 2_500n, feeMilliFen: -15_000n, at: new Date("2026-04-01T12:00:00Z") },
      { kind: "payment", orderId: second.orderId, gatewayTradeNo: billing.simulator.trade(second.orderId)!.gatewayTradeNo, amountFen: 1n, feeMilliFen: 0n, at: new Date("2026-04-01T15:59:59Z") },
    ]);
    assert.deepEqual(bill.summary, { paymentCount: 2, paymentFen: 10_001n, refundCount: 1, refundFen: 2_500n, feeMilliFen: 45_000n });
    assert.equal(bill.source.files.length, 2);
  });

  it("a day without trades: not ready until noon the next day (Alipay may be late), then a ready bill with no entries", async () => {
    at("2026-04-06T11:00:00");
    assert.equal((await billGateway.downloadBill("2026-04-05")).status, "not_ready");
    at("2026-04-06T12:00:00");
    assert.deepEqual(await billGateway.downloadBill("2026-04-05"), {
      status: "ready",
      bill: { provider: "alipay", date: "2026-04-05", entries: [], summary: { paymentCount: 0, paymentFen: 0n, refundCount: 0, refundFen: 0n, feeMilliFen: 0n }, source: { files: [] } },
    });
  });

  it("shows what only the bill knows: a silent payment (queryTrade pending), a payment listed a fen high, a console refund not of ours", async () => {
    at("2026-04-03T09:00:00");
    const silent = newOrder(300n, new Date(businessTime.getTime() + 15 * 60_000));
    await billGateway.createPayment(silent);
    await billing.simulator.injectBillFault({ kind: "silent_payment", orderId: silent.orderId });
    assert.deepEqual(await billGateway.queryTrade(silent.orderId), { status: "pending" });
    const high = await paidAt("2026-04-03T10:00:00", 400n);
    await billing.simulator.injectBillFault({ kind: "amount_off_by_one_fen", orderId: high.orderId });
    const refunded = await paidAt("2026-04-03T11:00:00", 500n);
    await billing.simulator.injectBillFault({ kind: "console_refund", orderId: refunded.orderId, amountFen: 120n });

    at("2026-04-04T10:00:00");
    const download = await billGateway.downloadBill("2026-04-03");
    const bill = download.status === "ready" ? download.bill : assert.fail("not ready");
    const entryFor = (orderId: string, kind: string) => bill.entries.find((entry) => entry.orderId === orderId && entry.kind === kind);
    assert.equal(entryFor(silent.orderId, "payment")?.amountFen, 300n);
    assert.equal(entryFor(high.orderId, "payment")?.amountFen, 401n);
    const consoleRefund = entryFor(refunded.orderId, "refund");
    assert.equal(consoleRefund?.amountFen, 120n);
    assert.match(consoleRefund?.kind === "refund" ? (consoleRefund.refundId ?? "") : "", /^HZ01RF\d+$/);
  });

  it("refuses a date that is no calendar day without asking Alipay", async () => {
    await assert.rejects(billGateway.downloadBill("2026-02-30"), /not a YYYY-MM-DD day/);
  });
});

describe("Alipay money and time formats", () => {
  it("converts yuan strings to fen and back exactly", () => {
    assert.equal(parseYuan("10.00"), 1000n);
    assert.equal(parseYuan("0.01"), 1n);
    assert.equal(parseYuan("12.3"), 1230n);
    assert.equal(parseYuan("7"), 700n);
    assert.equal(parseYuan("92233720368547758.07"), 9223372036854775807n);
    assert.equal(formatYuan(1n), "0.01");
    assert.equal(formatYuan(1230n), "12.30");
    assert.equal(formatYuan(9223372036854775807n), "92233720368547758.07");
    assert.throws(() => formatYuan(-1n), RangeError);
  });

  it("refuses anything that is not a plain yuan amount", () => {
    for (const text of ["", "1.234", "-1.00", "+1", "1e2", "01.00", "1.", ".5", " 1.00", "1,00", "0x10"]) {
      assert.equal(parseYuan(text), undefined, JSON.stringify(text));
    }
  });

  it("writes and reads Alipay times in China Standard Time", () => {
    const instant = new Date("2024-01-31T16:30:05.999Z");
    assert.equal(formatBeijingTime(instant), "2024-02-01 00:30:05");
    assert.deepEqual(parseBeijingTime("2024-02-01 00:30:05"), new Date("2024-01-31T16:30:05Z"));
    assert.deepEqual(parseBeijingTime("2024-02-01 00:30"), new Date("2024-01-31T16:30:00Z"));
    assert.equal(parseBeijingTime("2024-02-30 00:00:00"), undefined);
    assert.equal(parseBeijingTime("2024-02-01T00:30:05"), undefined);
  });
});

// ---- helpers -------------------------------------------------------------------------------------------

let orderCounter = 0;
function newOrder(amountFen: bigint, expiresAt = new Date(Date.now() + 15 * 60_000)): GatewayOrder {
  return { orderId: `ali${Date.now()}${orderCounter++}`, amountFen, subject: "Gas quota top-up", expiresAt };
}

function configFor(keys: AlipaySandbox, running: RunningSimulator): AlipayGatewayConfig {
  return {
    appId: keys.appId,
    sellerId: keys.sellerId,
    privateKey: keys.merchantPrivateKey,
    alipayPublicKey: keys.alipayPublicKey,
    gatewayUrl: `${running.url}${ALIPAY_GATEWAY_PATH}`,
    notifyUrl: receiver.url,
    checkout: "qr",
    timeoutMs: 5_000,
  };
}

async function paidOrder(amountFen: bigint): Promise<GatewayOrder> {
  const order = newOrder(amountFen);
  await gateway.createPayment(order);
  await alipay.simulator.pay(order.orderId);
  await alipay.simulator.notifier.idle();
  return order;
}

async function payOnPayerPage(payerUrl: string): Promise<void> {
  const response = await fetch(payerUrl, { method: "POST", body: new URLSearchParams({ action: "pay" }) });
  assert.equal(response.status, 200);
  await response.text();
  await alipay.simulator.notifier.idle();
}

async function notificationFor(orderId: string): Promise<Received> {
  const [first] = receiver.forOrder(orderId);
  assert.ok(first, `a notification for ${orderId} arrived`);
  return first;
}

function withForm(callback: Received, change: (form: Record<string, string>) => void): IncomingCallback {
  const form = { ...callback.form };
  change(form);
  return { headers: callback.headers, rawBody: new URLSearchParams(form).toString() };
}

function pick(result: Awaited<ReturnType<PaymentGateway["verifyCallback"]>>) {
  return result.ok ? { ok: true } : { ok: false, code: result.code };
}

function gatewayError(code: string) {
  return (error: unknown) => error instanceof GatewayError && error.gatewayCode === code;
}

async function listen(handler: http.RequestListener) {
  const server = http.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url: `http://127.0.0.1:${port}`, close };
}

async function startSimulator(keys: AlipaySandbox, now?: () => Date): Promise<RunningSimulator> {
  const app = express();
  const server = await listen(app);
  const simulator = createAlipaySimulator({ sandbox: keys, publicUrl: server.url, timeScale: 0.0001, ...(now ? { now } : {}) });
  app.use(simulator.router);
  return {
    simulator,
    url: server.url,
    close: async () => {
      simulator.notifier.close();
      await server.close();
    },
  };
}

/** Our notify endpoint as Alipay sees it: it records each callback as it arrived and answers `success`. */
async function startReceiver() {
  const received: Received[] = [];
  const server = await listen(async (req, res) => {
    let rawBody = "";
    for await (const chunk of req) rawBody += chunk;
    const headers = { "content-type": req.headers["content-type"] };
    received.push({ headers, rawBody, form: Object.fromEntries(new URLSearchParams(rawBody)) });
    res.end("success");
  });
  return { ...server, forOrder: (orderId: string) => received.filter((copy) => copy.form.out_trade_no === orderId) };
}
