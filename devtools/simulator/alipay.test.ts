import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import { AlipaySdk } from "alipay-sdk";
import express from "express";
import { unzipSync } from "fflate";
import iconv from "iconv-lite";
import { ALIPAY_GATEWAY_PATH, type AlipaySandbox, type AlipaySimulator, createAlipaySimulator, generateAlipaySandbox, signNotification } from "./alipay";
import { startSimulator } from "./server";

/** The real SDK ↔ the simulator over HTTP: the protocol as a merchant's code sees it. */

type Received = { contentType: string; rawBody: string; form: Record<string, string> };

let sandbox: AlipaySandbox;
let simulator: AlipaySimulator;
let simulatorUrl: string;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let sdk: AlipaySdk;
let clockOffsetMs = 0;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  sandbox = generateAlipaySandbox();
  receiver = await startReceiver();
  const app = express();
  const server = await listen(app);
  simulatorUrl = server.url;
  simulator = createAlipaySimulator({
    sandbox,
    publicUrl: simulatorUrl,
    timeScale: 0.0001,
    now: () => new Date(Date.now() + clockOffsetMs),
  });
  app.use(simulator.router);
  sdk = sdkFor(sandbox);
  stops.push(server.close, receiver.close);
});

after(async () => {
  simulator.notifier.close();
  await Promise.all(stops.map((stop) => stop()));
});

afterEach(() => {
  simulator.notifier.setFaults({});
  receiver.answers = () => "success";
  clockOffsetMs = 0;
});

describe("Alipay simulator: requests and responses", () => {
  it("generates a sandbox with RSA-2048 keys for the merchant and for Alipay", () => {
    const keys = sandbox;
    assert.match(keys.appId, /^\d{16}$/);
    for (const pem of [keys.merchantPublicKey, keys.alipayPublicKey]) {
      assert.equal(createPublicKey(pem).asymmetricKeyDetails?.modulusLength, 2048);
    }
    assert.notEqual(keys.merchantPrivateKey, keys.alipayPrivateKey);
  });

  it("answers precreate with a response the SDK verifies (validateSign), whose qr_code is the payer page", async () => {
    const orderId = newOrderId();
    const reply = await precreate(orderId, "12.34");
    assert.equal(reply.code, "10000");
    assert.equal(reply.out_trade_no, orderId);
    assert.equal(reply.qr_code, `${simulatorUrl}/payer/alipay/${orderId}`);
  });

  it("repeats precreate for the same out_trade_no and amount, and refuses another amount with ACQ.CONTEXT_INCONSISTENT", async () => {
    const orderId = newOrderId();
    const first = await precreate(orderId, "5.00");
    assert.equal((await precreate(orderId, "5.00")).qr_code, first.qr_code);
    assert.equal((await precreate(orderId, "6.00")).sub_code, "ACQ.CONTEXT_INCONSISTENT");
  });

  it("refuses a request signed with another merchant key with a signed isv.invalid-signature", async () => {
    const stranger = sdkFor({ ...sandbox, merchantPrivateKey: generateAlipaySandbox().merchantPrivateKey });
    const reply = await stranger.exec("alipay.trade.query", { bizContent: { out_trade_no: "anything" } }, { validateSign: true });
    assert.equal(reply.code, "40002");
    assert.equal(reply.sub_code, "isv.invalid-signature");
    assert.match(String(reply.sub_msg), /验签出错/);
  });

  it("refuses another app_id with isv.invalid-app-id, unsigned like the real gateway", async () => {
    const other = sdkFor({ ...sandbox, appId: "2021000000000001" });
    const reply = await other.exec("alipay.trade.query", { bizContent: { out_trade_no: "anything" } });
    assert.equal(reply.sub_code, "isv.invalid-app-id");
    // Unsigned, so a verifying client cannot trust it: the SDK throws on the missing sign.
    await assert.rejects(other.exec("alipay.trade.query", { bizContent: { out_trade_no: "x" } }, { validateSign: true }));
  });

  it("answers an unknown method with isv.invalid-method", async () => {
    const reply = await sdk.exec("alipay.trade.pay.nonsense", { bizContent: {} });
    assert.equal(reply.sub_code, "isv.invalid-method");
  });

  it("knows a precreated trade only once the payer opens it: before, query and close say ACQ.TRADE_NOT_EXIST", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00");
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).sub_code, "ACQ.TRADE_NOT_EXIST");
    await fetch(qr_code);
    const query = await exec("alipay.trade.query", { out_trade_no: orderId });
    assert.equal(query.trade_status, "WAIT_BUYER_PAY");
    assert.equal(query.total_amount, "1.00");
  });

  it("locks an unopened QR code when the merchant closes it, although close answers ACQ.TRADE_NOT_EXIST", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00");
    assert.equal((await exec("alipay.trade.close", { out_trade_no: orderId })).sub_code, "ACQ.TRADE_NOT_EXIST");
    const payerPage = await (await fetch(qr_code)).text();
    assert.match(payerPage, /Closed/);
    await assert.rejects(simulator.pay(orderId), /closed/);
  });

  it("closes an opened, unpaid trade once; closing again is ACQ.TRADE_STATUS_ERROR and precreate again ACQ.TRADE_HAS_CLOSE", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00");
    await fetch(qr_code);
    assert.equal((await exec("alipay.trade.close", { out_trade_no: orderId })).code, "10000");
    assert.equal((await exec("alipay.trade.close", { out_trade_no: orderId })).sub_code, "ACQ.TRADE_STATUS_ERROR");
    assert.equal((await precreate(orderId, "1.00")).sub_code, "ACQ.TRADE_HAS_CLOSE");
    assert.equal(simulator.trade(orderId)?.status, "closed");
  });

  it("closes a trade at its timeout_express when it is next queried", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00", { timeout_express: "5m" });
    await fetch(qr_code);
    clockOffsetMs = 4 * 60_000;
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "WAIT_BUYER_PAY");
    clockOffsetMs = 5 * 60_000;
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "TRADE_CLOSED");
    await assert.rejects(simulator.pay(orderId), /closed/);
  });

  it("rejects amounts that are not yuan with at most two decimals", async () => {
    for (const amount of ["0", "1.234", "-1.00", "1e2", "abc"]) {
      assert.equal((await precreate(newOrderId(), amount)).sub_code, "ACQ.INVALID_PARAMETER", amount);
    }
  });
});

describe("Alipay simulator: payer page and notifications", () => {
  it("shows the amount with Pay and Cancel; Pay sends a form-encoded trade_status_sync notification that checkNotifySignV2 accepts", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "12.30");
    const payerPage = await (await fetch(qr_code)).text();
    assert.match(payerPage, /¥12\.30/);
    assert.match(payerPage, /value="pay"/);
    assert.match(payerPage, /value="cancel"/);

    const paid = await fetch(qr_code, { method: "POST", body: new URLSearchParams({ action: "pay" }) });
    assert.match(await paid.text(), /Paid/);
    await simulator.notifier.idle();

    const [notification] = receiver.forOrder(orderId);
    assert.ok(notification);
    assert.match(notification.contentType, /^application\/x-www-form-urlencoded/);
    assert.equal(sdk.checkNotifySignV2(notification.form), true);
    const { form } = notification;
    assert.equal(form.notify_type, "trade_status_sync");
    assert.equal(form.app_id, sandbox.appId);
    assert.equal(form.trade_status, "TRADE_SUCCESS");
    assert.equal(form.total_amount, "12.30");
    assert.equal(form.receipt_amount, "12.30");
    assert.equal(form.buyer_pay_amount, "12.30");
    assert.equal(form.trade_no, simulator.trade(orderId)?.gatewayTradeNo);
    assert.equal(form.sign_type, "RSA2");
    assert.match(form.gmt_payment!, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    for (const field of ["notify_id", "notify_time", "charset", "version"]) assert.ok(form[field], field);
  });

  it("reports a paid trade as TRADE_SUCCESS and refuses to precreate it again (ACQ.TRADE_HAS_SUCCESS)", async () => {
    const orderId = await paidOrder("3.00");
    const query = await exec("alipay.trade.query", { out_trade_no: orderId });
    assert.equal(query.trade_status, "TRADE_SUCCESS");
    assert.equal(query.buyer_pay_amount, "3.00");
    assert.equal((await precreate(orderId, "3.00")).sub_code, "ACQ.TRADE_HAS_SUCCESS");
  });

  it("Cancel on the payer page leaves the trade WAIT_BUYER_PAY (payable again, no notification) until the merchant closes it", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00");
    const cancelled = await fetch(qr_code, { method: "POST", body: new URLSearchParams({ action: "cancel" }) });
    assert.match(await cancelled.text(), /Waiting for payment/);
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "WAIT_BUYER_PAY");
    await simulator.notifier.idle();
    assert.deepEqual(receiver.forOrder(orderId), []);
    assert.equal((await exec("alipay.trade.close", { out_trade_no: orderId })).code, "10000");
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "TRADE_CLOSED");
  });

  it("Cancel and then Pay on the payer page: the trade is still payable and is paid", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00");
    await (await fetch(qr_code, { method: "POST", body: new URLSearchParams({ action: "cancel" }) })).text();
    assert.match(await (await fetch(qr_code, { method: "POST", body: new URLSearchParams({ action: "pay" }) })).text(), /Paid/);
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "TRADE_SUCCESS");
  });

  it("names the sandbox's fixed seller (PID) in every notification", async () => {
    assert.match(sandbox.sellerId, /^2088\d{12}$/);
    const orderId = await paidOrder("1.00");
    await simulator.notifier.idle();
    assert.equal(receiver.forOrder(orderId)[0]?.form.seller_id, sandbox.sellerId);
  });

  it("signs an empty field as `name=`, the way Alipay's verifiers (checkNotifySignV2) read it", () => {
    const fields = { notify_type: "trade_status_sync", app_id: sandbox.appId, out_trade_no: "o1", total_amount: "1.00", body: "", passback_params: "" };
    const signed = signNotification(fields, sandbox.alipayPrivateKey);
    assert.equal(sdk.checkNotifySignV2(signed), true);
    // and dropping the empty field changes what was signed
    const withoutBody = { ...signed };
    delete withoutBody.body;
    assert.equal(sdk.checkNotifySignV2(withoutBody), false);
  });

  it("leads the browser from the SDK's page-pay URL to the payer page, and back to return_url signed after paying", async () => {
    const orderId = newOrderId();
    const payUrl = sdk.pageExecute("alipay.trade.page.pay", "GET", {
      notifyUrl: receiver.url,
      returnUrl: "http://shop.example/paid",
      bizContent: { out_trade_no: orderId, total_amount: "8.80", subject: "Gas quota top-up", product_code: "FAST_INSTANT_TRADE_PAY" },
    });
    const cashier = await fetch(payUrl);
    assert.equal(cashier.url, `${simulatorUrl}/payer/alipay/${orderId}`);
    assert.match(await cashier.text(), /¥8\.80/);

    const paid = await (await fetch(cashier.url, { method: "POST", body: new URLSearchParams({ action: "pay" }) })).text();
    const returnUrl = new URL(/id="return" href="([^"]+)"/.exec(paid)![1]!.replaceAll("&#38;", "&"));
    assert.equal(returnUrl.origin + returnUrl.pathname, "http://shop.example/paid");
    assert.equal(sdk.checkNotifySignV2(Object.fromEntries(returnUrl.searchParams)), true);
  });

  it("accepts the SDK's auto-submitting page-pay form (pageExecute POST) the same way", async () => {
    const orderId = newOrderId();
    const html = sdk.pageExecute("alipay.trade.page.pay", "POST", {
      notifyUrl: receiver.url,
      bizContent: { out_trade_no: orderId, total_amount: "0.50", subject: "Gas quota top-up", product_code: "FAST_INSTANT_TRADE_PAY" },
    });
    const action = /action="([^"]+)"/.exec(html)![1]!;
    const fields = [...html.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map(([, name, value]): [string, string] => [name!, value!.replaceAll("&quot;", '"')]);
    const cashier = await fetch(action, { method: "POST", body: new URLSearchParams(fields) });
    assert.equal(cashier.url, `${simulatorUrl}/payer/alipay/${orderId}`);
    assert.match(await cashier.text(), /¥0\.50/);
  });

  it("shows the gateway's error page for a page-pay URL whose parameters were changed after signing", async () => {
    const payUrl = sdk.pageExecute("alipay.trade.page.pay", "GET", {
      notifyUrl: receiver.url,
      bizContent: { out_trade_no: newOrderId(), total_amount: "8.80", subject: "Gas", product_code: "FAST_INSTANT_TRADE_PAY" },
    });
    const forged = payUrl.replace(encodeURIComponent('"8.80"'), encodeURIComponent('"0.01"'));
    assert.notEqual(forged, payUrl);
    const response = await fetch(forged);
    assert.equal(response.status, 400);
    assert.match(await response.text(), /错误代码 invalid-signature/);
  });

  it("retries on Alipay's schedule, time-compressed, until the merchant answers exactly `success`", async () => {
    receiver.answers = (attempt) => ["fail", "success\n", "success"][attempt - 1] ?? "success";
    const orderId = await paidOrder("1.00");
    await simulator.notifier.idle();
    assert.equal(receiver.forOrder(orderId).length, 3);
    const delivery = simulator.notifier.deliveries().find((d) => d.key === `payment:${orderId}`);
    assert.deepEqual(delivery, { key: `payment:${orderId}`, attempts: 3, acknowledged: true });
  });

  it("with the duplicate fault, sends every attempt twice", async () => {
    simulator.notifier.setFaults({ duplicate: 1 });
    const orderId = await paidOrder("1.00");
    await simulator.notifier.idle();
    const copies = receiver.forOrder(orderId);
    assert.equal(copies.length, 2);
    assert.equal(copies[0]!.form.notify_id, copies[1]!.form.notify_id);
  });

  it("with the dropAttempts fault, loses the first attempts and the retries deliver", async () => {
    simulator.notifier.setFaults({ dropAttempts: 2 });
    const orderId = await paidOrder("1.00");
    await simulator.notifier.idle();
    assert.equal(receiver.forOrder(orderId).length, 1);
    assert.equal(simulator.notifier.deliveries().find((d) => d.key === `payment:${orderId}`)?.attempts, 3);
  });

  it("with the dropAll fault, never notifies, while query still shows the payment", async () => {
    simulator.notifier.setFaults({ dropAll: true });
    const orderId = await paidOrder("1.00");
    await simulator.notifier.idle();
    assert.deepEqual(receiver.forOrder(orderId), []);
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "TRADE_SUCCESS");
  });

  it("with the tamper fault, also sends a copy whose total_amount no longer matches its signature", async () => {
    simulator.notifier.setFaults({ tamper: true });
    const orderId = await paidOrder("2.00");
    await simulator.notifier.idle();
    const copies = receiver.forOrder(orderId);
    assert.equal(copies.length, 2);
    const tampered = copies.find((copy) => copy.form.total_amount !== "2.00");
    const genuine = copies.find((copy) => copy.form.total_amount === "2.00");
    assert.equal(sdk.checkNotifySignV2(tampered!.form), false);
    assert.equal(sdk.checkNotifySignV2(genuine!.form), true);
  });
});

describe("Alipay simulator: refunds", () => {
  it("refunds in parts up to the paid amount, never beyond (ACQ.REFUND_AMT_NOT_EQUAL_TOTAL); a full refund closes the trade", async () => {
    const orderId = await paidOrder("10.00");
    const first = await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "r1", refund_amount: "3.00" });
    assert.equal(first.fund_change, "Y");
    assert.equal(first.refund_fee, "3.00");
    const tooMuch = await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "r2", refund_amount: "7.01" });
    assert.equal(tooMuch.sub_code, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    const rest = await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "r2", refund_amount: "7.00" });
    assert.equal(rest.refund_fee, "10.00");
    assert.equal((await exec("alipay.trade.query", { out_trade_no: orderId })).trade_status, "TRADE_CLOSED");
    assert.equal(simulator.trade(orderId)?.refundedFen, 1000n);
  });

  it("repeats a refund with the same out_request_no without moving money again (fund_change N)", async () => {
    const orderId = await paidOrder("5.00");
    const request = { out_trade_no: orderId, out_request_no: "again", refund_amount: "2.00" };
    assert.equal((await exec("alipay.trade.refund", request)).fund_change, "Y");
    const repeat = await exec("alipay.trade.refund", request);
    assert.equal(repeat.fund_change, "N");
    assert.equal(repeat.refund_fee, "2.00");
    assert.equal(simulator.trade(orderId)?.refundedFen, 200n);
  });

  it("refuses to refund a trade that was never paid", async () => {
    const orderId = newOrderId();
    const { qr_code } = await precreate(orderId, "1.00");
    await fetch(qr_code);
    const reply = await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "r", refund_amount: "1.00" });
    assert.equal(reply.sub_code, "ACQ.TRADE_STATUS_ERROR");
  });

  it("answers a refund query with the refund, or with no refund data for an unknown out_request_no", async () => {
    const orderId = await paidOrder("4.00");
    await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "q1", refund_amount: "1.50" });
    const found = await exec("alipay.trade.fastpay.refund.query", { out_trade_no: orderId, out_request_no: "q1" });
    assert.equal(found.refund_amount, "1.50");
    assert.equal(found.refund_status, "REFUND_SUCCESS");
    const missing = await exec("alipay.trade.fastpay.refund.query", { out_trade_no: orderId, out_request_no: "nope" });
    assert.equal(missing.code, "10000");
    assert.equal(missing.refund_amount, undefined);
  });

  it("notifies a partial refund as TRADE_SUCCESS and the refund that empties the trade as TRADE_CLOSED, with out_biz_no, refund_fee (the total), gmt_refund and seller_id", async () => {
    const orderId = await paidOrder("6.00");
    await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "n1", refund_amount: "2.00" });
    await exec("alipay.trade.refund", { out_trade_no: orderId, out_request_no: "n2", refund_amount: "4.00" });
    await simulator.notifier.idle();
    const partial = receiver.forOrder(orderId).find((copy) => copy.form.out_biz_no === "n1");
    const full = receiver.forOrder(orderId).find((copy) => copy.form.out_biz_no === "n2");
    assert.ok(partial && full);
    assert.equal(partial.form.trade_status, "TRADE_SUCCESS");
    assert.equal(partial.form.refund_fee, "2.00");
    assert.equal(partial.form.gmt_close, undefined);
    assert.equal(full.form.trade_status, "TRADE_CLOSED");
    assert.equal(full.form.refund_fee, "6.00");
    assert.match(full.form.gmt_close!, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    for (const notice of [partial, full]) {
      assert.match(notice.form.gmt_refund!, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
      assert.equal(notice.form.seller_id, sandbox.sellerId);
      assert.equal(notice.form.total_amount, "6.00");
      assert.equal(sdk.checkNotifySignV2(notice.form), true);
    }
  });

  it("refuses a refund the merchant's balance cannot cover (ACQ.SELLER_BALANCE_NOT_ENOUGH) without recording it; the same out_request_no goes through once it can", async () => {
    const orderId = await paidOrder("5.00");
    const request = { out_trade_no: orderId, out_request_no: "short-1", refund_amount: "3.00" };
    try {
      simulator.setMerchantBalance(299n);
      const refused = await exec("alipay.trade.refund", request);
      assert.equal(refused.code, "40004");
      assert.equal(refused.sub_code, "ACQ.SELLER_BALANCE_NOT_ENOUGH");
      assert.equal((await exec("alipay.trade.fastpay.refund.query", { out_trade_no: orderId, out_request_no: "short-1" })).refund_amount, undefined);
      assert.equal(simulator.trade(orderId)?.refundedFen, 0n);
      await simulator.pay((await unpaidOrder("2.00")));
      assert.equal(simulator.merchantBalance(), 499n);
      const retried = await exec("alipay.trade.refund", request);
      assert.equal(retried.fund_change, "Y");
      assert.equal(simulator.merchantBalance(), 199n);
      assert.equal(simulator.trade(orderId)?.refundedFen, 300n);
    } finally {
      simulator.setMerchantBalance(undefined);
    }
  });
});

describe("Alipay simulator: the trade bill", () => {
  /** A second simulator whose business clock the tests move: 2026-03-10 in Beijing. */
  let billSim: AlipaySimulator;
  let billSdk: AlipaySdk;
  let businessTime = new Date("2026-03-10T10:00:00+08:00");
  const at = (beijing: string) => (businessTime = new Date(`${beijing}+08:00`));
  const billUrl = (date: string) => billSdk.exec("alipay.data.dataservice.bill.downloadurl.query", { bizContent: { bill_type: "trade", bill_date: date } }, { validateSign: true });
  const pay = async (amount: string) => {
    const orderId = newOrderId();
    await billSdk.exec("alipay.trade.precreate", { notify_url: receiver.url, bizContent: { out_trade_no: orderId, total_amount: amount, subject: "Gas quota top-up" } }, { validateSign: true });
    await billSim.pay(orderId);
    return orderId;
  };
  const refund = (orderId: string, outRequestNo: string, amount: string) =>
    billSdk.exec("alipay.trade.refund", { bizContent: { out_trade_no: orderId, out_request_no: outRequestNo, refund_amount: amount } }, { validateSign: true });
  const download = async (date: string) => {
    const reply = await billUrl(date);
    assert.equal(reply.code, "10000", JSON.stringify(reply));
    const response = await fetch(String(reply.bill_download_url));
    assert.equal(response.status, 200);
    return new Uint8Array(await response.arrayBuffer());
  };

  before(async () => {
    const app = express();
    const server = await listen(app);
    const keys = generateAlipaySandbox();
    billSim = createAlipaySimulator({ sandbox: keys, publicUrl: server.url, timeScale: 0.0001, clock: () => businessTime });
    app.use(billSim.router);
    billSdk = new AlipaySdk({ appId: keys.appId, privateKey: keys.merchantPrivateKey, alipayPublicKey: keys.alipayPublicKey, gateway: `${server.url}${ALIPAY_GATEWAY_PATH}`, camelcase: false });
    stops.push(async () => {
      billSim.notifier.close();
      await server.close();
    });
  });

  it("refuses a day not over (isv.invalid-arguments), says isp.bill_not_exist until 09:00 the next day, then gives a URL", async () => {
    at("2026-03-10T10:00:00");
    await pay("10.00");
    assert.equal((await billUrl("2026-03-10")).sub_code, "isv.invalid-arguments");
    assert.equal((await billUrl("2026-03-11")).sub_code, "isv.invalid-arguments");
    at("2026-03-11T08:59:59");
    assert.equal((await billUrl("2026-03-10")).sub_code, "isp.bill_not_exist");
    at("2026-03-11T09:00:00");
    const reply = await billUrl("2026-03-10");
    assert.equal(reply.code, "10000");
    assert.match(String(reply.bill_download_url), /downloadBillFile\.resource\?bizType=trade&/);
  });

  it("has no bill for a day without trades (isp.bill_not_exist)", async () => {
    at("2026-03-20T10:00:00");
    assert.equal((await billUrl("2026-03-18")).sub_code, "isp.bill_not_exist");
  });

  it("serves a zip of two GBK CSV files in Alipay's layout: 业务明细 (payments, refunds negative, padded cells, 合计 lines) and 业务明细(汇总)", async () => {
    at("2026-03-12T11:00:00");
    const paid = await pay("12.34");
    at("2026-03-12T15:30:00");
    await refund(paid, "rf-part", "2.34");
    at("2026-03-13T09:30:00");
    const files = unzipSync(await download("2026-03-12"));
    const names = Object.keys(files).sort();
    assert.deepEqual(names, [`${billSim.sellerId}0156_20260312_业务明细(汇总).csv`, `${billSim.sellerId}0156_20260312_业务明细.csv`]);
    const detail = iconv.decode(Buffer.from(files[names[1]!]!), "gbk");
    assert.notEqual(new TextDecoder("utf-8").decode(files[names[1]!]!), detail, "GBK, not UTF-8");
    const lines = detail.split("\n");
    assert.equal(lines[0], "#支付宝业务明细查询");
    assert.equal(lines[1], `#账号：[${billSim.sellerId}0156]`);
    assert.equal(lines[2], "#起始日期：[2026年03月12日 00:00:00]   终止日期：[2026年03月13日 00:00:00]");
    assert.match(lines[4]!, /^支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,.*订单金额（元）,商家实收（元）,.*退款批次号\/请求号,服务费（元）,分润（元）,备注$/);
    const tradeNo = billSim.trade(paid)!.gatewayTradeNo;
    assert.ok(lines[5]!.startsWith(`${tradeNo}\t,${paid}\t,交易\t,Gas quota top-up,2026-03-12 11:00:00,2026-03-12 11:00:00,`), lines[5]);
    assert.match(lines[5]!, /,12\.34,12\.34,.*,\t,-0\.07,0\.00,/);
    assert.ok(lines[6]!.includes(`,退款\t,`) && lines[6]!.includes(",-2.34,-2.34,") && lines[6]!.includes(",rf-part\t,0.01,"), lines[6]);
    assert.match(lines[7]!, /^#-+业务明细列表结束-+$/);
    assert.equal(lines[8], "#交易合计：1笔，商家实收共12.34元，商家优惠共0.00元");
    assert.equal(lines[9], "#退款合计：1笔，商家实收退款共-2.34元，商家优惠退款共0.00元");
    assert.match(lines[10]!, /^#导出时间：\[2026年03月13日 09:30:00\]$/);
    const summary = iconv.decode(Buffer.from(files[names[0]!]!), "gbk").split("\n");
    assert.equal(summary[0], "#支付宝业务汇总查询");
    assert.ok(summary.includes("合计,,1,1,10.00,10.00,0.00,0.00,0.00,-0.06,0.00,9.94"), summary.join("\n"));
  });

  it("serves each download URL for 30 seconds of real time", async (t) => {
    at("2026-03-12T11:00:00");
    await pay("1.00");
    at("2026-03-13T10:00:00");
    const url = String((await billUrl("2026-03-12")).bill_download_url);
    t.mock.timers.enable({ apis: ["Date"], now: Date.now() });
    t.mock.timers.tick(29_000);
    assert.equal((await fetch(url)).status, 200);
    t.mock.timers.tick(1_000);
    assert.equal((await fetch(url)).status, 404);
  });

  it("takes bill faults through the control API (POST /sim/alipay/bill-faults) of the simulator server, on its business clock", async () => {
    let time = new Date("2026-05-01T10:00:00+08:00");
    const sim = await startSimulator({ timeScale: 0.0001, clock: () => time });
    try {
      const merchant = new AlipaySdk({ appId: sim.sandbox.alipay.appId, privateKey: sim.sandbox.alipay.merchantPrivateKey, alipayPublicKey: sim.sandbox.alipay.alipayPublicKey, gateway: `${sim.url}${ALIPAY_GATEWAY_PATH}`, camelcase: false });
      assert.equal(sim.serverSandbox.alipay?.sellerId, sim.sandbox.alipay.sellerId);
      const orderId = newOrderId();
      await merchant.exec("alipay.trade.precreate", { bizContent: { out_trade_no: orderId, total_amount: "2.00", subject: "Gas quota top-up" } }, { validateSign: true });
      const post = (body: unknown) => fetch(`${sim.url}/sim/alipay/bill-faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      assert.equal((await post({ kind: "silent_payment", orderId })).status, 200);
      assert.equal((await post({ kind: "console_refund", orderId, amountFen: "50" })).status, 200);
      assert.equal((await post({ kind: "console_refund", orderId, amountFen: "500" })).status, 409);
      assert.equal(sim.alipay.trade(orderId)?.paidAt?.getTime(), time.getTime());
      time = new Date("2026-05-02T09:00:00+08:00");
      const reply = await merchant.exec("alipay.data.dataservice.bill.downloadurl.query", { bizContent: { bill_type: "trade", bill_date: "2026-05-01" } }, { validateSign: true });
      assert.equal(reply.code, "10000");
    } finally {
      await sim.close();
    }
  });

  it("bill faults: a silent payment is only in the bill; a payment listed a fen high; a console refund with the console's own batch number, never notified", async () => {
    at("2026-03-14T09:00:00");
    const silent = newOrderId();
    await billSdk.exec("alipay.trade.precreate", { notify_url: receiver.url, bizContent: { out_trade_no: silent, total_amount: "3.00", subject: "Gas quota top-up" } }, { validateSign: true });
    await billSim.injectBillFault({ kind: "silent_payment", orderId: silent });
    const high = await pay("4.00");
    await billSim.injectBillFault({ kind: "amount_off_by_one_fen", orderId: high });
    const refunded = await pay("5.00");
    await billSim.injectBillFault({ kind: "console_refund", orderId: refunded, amountFen: 150n });
    await billSim.notifier.idle();

    assert.equal(billSim.trade(silent)?.status, "paid");
    const query = await billSdk.exec("alipay.trade.query", { bizContent: { out_trade_no: silent } }, { validateSign: true });
    assert.equal(query.trade_status, "WAIT_BUYER_PAY");
    assert.equal(query.send_pay_date, undefined);
    assert.deepEqual(receiver.forOrder(silent), []);
    assert.equal(receiver.forOrder(refunded).length, 1, "the payment only: a console refund is not notified");
    assert.equal(billSim.trade(refunded)?.refundedFen, 150n);

    at("2026-03-15T10:00:00");
    const files = unzipSync(await download("2026-03-14"));
    const detail = iconv.decode(Buffer.from(Object.entries(files).find(([name]) => !name.includes("汇总"))![1]), "gbk");
    const row = (orderId: string, type: string) => detail.split("\n").find((line) => line.includes(`,${orderId}\t,${type}\t,`));
    assert.ok(row(silent, "交易")?.includes(",3.00,3.00,"));
    assert.ok(row(high, "交易")?.includes(",4.01,4.01,"), row(high, "交易"));
    assert.match(row(refunded, "退款") ?? "", /,-1\.50,-1\.50,.*,HZ01RF\d+\t,/);
    assert.ok(detail.includes("#交易合计：3笔，商家实收共12.01元"));
  });
});

// ---- helpers -------------------------------------------------------------------------------------------

let orderCounter = 0;
function newOrderId(): string {
  return `sim${Date.now()}${orderCounter++}`;
}

function sdkFor(keys: AlipaySandbox): AlipaySdk {
  return new AlipaySdk({
    appId: keys.appId,
    privateKey: keys.merchantPrivateKey,
    alipayPublicKey: keys.alipayPublicKey,
    gateway: `${simulatorUrl}${ALIPAY_GATEWAY_PATH}`,
    camelcase: false,
  });
}

function exec(method: string, bizContent: Record<string, string>) {
  return sdk.exec(method, { notify_url: receiver.url, bizContent }, { validateSign: true });
}

function precreate(orderId: string, totalAmount: string, extra: Record<string, string> = {}) {
  return exec("alipay.trade.precreate", { out_trade_no: orderId, total_amount: totalAmount, subject: "Gas quota top-up", ...extra });
}

/** A precreated trade the payer has not paid yet. */
async function unpaidOrder(totalAmount: string): Promise<string> {
  const orderId = newOrderId();
  assert.equal((await precreate(orderId, totalAmount)).code, "10000");
  return orderId;
}

async function paidOrder(totalAmount: string): Promise<string> {
  const orderId = newOrderId();
  const reply = await precreate(orderId, totalAmount);
  assert.equal(reply.code, "10000");
  await simulator.pay(orderId);
  return orderId;
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

/** A merchant's notify endpoint that records what arrives and answers what the test says. */
async function startReceiver() {
  const received: Received[] = [];
  const state = {
    answers: (_attempt: number): string => "success",
    forOrder: (orderId: string) => received.filter((copy) => copy.form.out_trade_no === orderId),
  };
  const server = await listen(async (req, res) => {
    let rawBody = "";
    for await (const chunk of req) rawBody += chunk;
    const form = Object.fromEntries(new URLSearchParams(rawBody));
    received.push({ contentType: req.headers["content-type"] ?? "", rawBody, form });
    res.end(state.answers(state.forOrder(form.out_trade_no ?? "").length));
  });
  return Object.assign(state, server);
}
