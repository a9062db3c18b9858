import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import express, { type Request, type Response } from "express";
import {
  buildWechatNotification,
  generateWechatSandbox,
  type PlatformSigner,
  REFUND_ABNORMAL,
  REFUND_SUCCESS,
  signWechatMessage,
  tamperWithCiphertext,
  TRANSACTION_SUCCESS,
  type WechatSandbox,
  createWechatSimulator,
  wechatPlatformSigner,
  wechatSandboxGatewayConfig,
  type WechatProviderSimulator,
} from "../../../devtools/simulator/wechat";
import type { SimulatorClock } from "../../../devtools/simulator/types";
import {
  type BillDownload,
  GatewayError,
  type GatewayBill,
  type IncomingCallback,
  type PaymentGateway,
  type VerifiedPaymentNotification,
  type VerifiedRefundNotification,
  type VerifyCallbackResult,
} from "../gateway";
import { createWechatGateway, type WechatGatewayConfig } from "./wechat";

type PlatformMode = "certificate" | "publicKey" | "certificateAndPublicKey";

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

    it("refunds part, then the rest; an over-refund is refused (INVALID_REQUEST) and fails; the trade stays paid", async () => {
      const orderId = await paidOrder(env, 1000n);
      const partial = await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 300n, totalFen: 1000n, reason: "unspent" });
      assert.equal(partial.status, "pending");
      const rest = await env.gateway.refund({ orderId, refundId: `${orderId}R2`, amountFen: 700n, totalFen: 1000n });
      assert.equal(rest.status, "pending");
      const over = await env.gateway.refund({ orderId, refundId: `${orderId}R3`, amountFen: 1n, totalFen: 1000n });
      assert.equal(over.status, "failed");
      assert.match(over.status === "failed" ? over.reason : "", /^INVALID_REQUEST/);

      const first = await env.gateway.queryRefund(orderId, `${orderId}R1`);
      assert.equal(first.status, "succeeded");
      assert.ok(first.status === "succeeded" && first.succeededAt instanceof Date, "succeededAt from success_time");
      assert.equal((await env.gateway.queryRefund(orderId, `${orderId}R2`)).status, "succeeded");
      assert.deepEqual(await env.gateway.queryRefund(orderId, `${orderId}R3`), { status: "not_found" });
      assert.equal((await env.gateway.queryTrade(orderId)).status, "paid");
      assert.equal(env.simulator.trade(orderId)?.refundedFen, 1000n);
    });

    it("a NOT_ENOUGH refund stays requested and succeeds on retry with the same out_refund_no once the balance is topped up", async () => {
      const orderId = await paidOrder(env, 1000n);
      const request = { orderId, refundId: `${orderId}R1`, amountFen: 300n, totalFen: 1000n };
      env.simulator.setAvailableBalance(299n);
      try {
        assert.deepEqual(await env.gateway.refund(request), { status: "pending", gatewayStatus: "NOT_ENOUGH" });
        assert.deepEqual(await env.gateway.queryRefund(orderId, request.refundId), { status: "not_found" }, "nothing was refunded yet");
        assert.equal(env.simulator.trade(orderId)?.refundedFen, 0n);

        env.simulator.setAvailableBalance(10_000n);
        const retried = await env.gateway.refund(request);
        assert.equal(retried.status, "pending");
        assert.equal((await env.gateway.queryRefund(orderId, request.refundId)).status, "succeeded");
        assert.equal(env.simulator.trade(orderId)?.refundedFen, 300n);
        assert.equal(env.simulator.availableBalance(), 9_700n);
      } finally {
        env.simulator.setAvailableBalance(undefined);
      }
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

    it("a REFUND.SUCCESS notification is verified as the refund succeeded, with WeChat's refund number, time and amount", async () => {
      const orderId = await paidOrder(env, 1000n);
      const started = await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 1000n, totalFen: 1000n });
      await env.simulator.notifier.idle();
      const [refund, ...more] = env.merchant.refundsFor(`${orderId}R1`);
      assert.equal(more.length, 0);
      assert.ok(refund);
      assert.equal(refund.orderId, orderId);
      assert.equal(refund.gatewayStatus, "SUCCESS");
      assert.equal(refund.amountFen, 1000n);
      assert.equal(refund.state.status, "succeeded");
      assert.equal(refund.state.status === "succeeded" && refund.state.gatewayRefundNo, started.status === "pending" && started.gatewayRefundNo);
      assert.ok(refund.state.status === "succeeded" && refund.state.succeededAt instanceof Date);
    });

    it("a refund the payer's bank refuses is REFUND.ABNORMAL: pending with gatewayStatus ABNORMAL, in the notification and the query", async () => {
      const orderId = await paidOrder(env, 1000n);
      env.simulator.setRefundOutcome("ABNORMAL");
      try {
        await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 500n, totalFen: 1000n });
      } finally {
        env.simulator.setRefundOutcome("SUCCESS");
      }
      await env.simulator.notifier.idle();
      const [refund] = env.merchant.refundsFor(`${orderId}R1`);
      assert.ok(refund);
      assert.equal(refund.gatewayStatus, "ABNORMAL");
      assert.deepEqual({ ...refund.state, gatewayRefundNo: undefined }, { status: "pending", gatewayStatus: "ABNORMAL", gatewayRefundNo: undefined });
      const queried = await env.gateway.queryRefund(orderId, `${orderId}R1`);
      assert.equal(queried.status === "pending" && queried.gatewayStatus, "ABNORMAL");
    });

    it("a closed refund is REFUND.CLOSED: failed, and the trade can be refunded again", async () => {
      const orderId = await paidOrder(env, 1000n);
      env.simulator.setRefundOutcome("CLOSED");
      try {
        await env.gateway.refund({ orderId, refundId: `${orderId}R1`, amountFen: 1000n, totalFen: 1000n });
      } finally {
        env.simulator.setRefundOutcome("SUCCESS");
      }
      await env.simulator.notifier.idle();
      const [refund] = env.merchant.refundsFor(`${orderId}R1`);
      assert.ok(refund);
      assert.equal(refund.gatewayStatus, "CLOSED");
      assert.equal(refund.state.status, "failed");
      assert.equal((await env.gateway.queryRefund(orderId, `${orderId}R1`)).status, "failed");
      assert.equal(env.simulator.trade(orderId)?.refundedFen, 0n);
      assert.equal((await env.gateway.refund({ orderId, refundId: `${orderId}R2`, amountFen: 1000n, totalFen: 1000n })).status, "pending");
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

      it("verifies an authentic refund notification, and rejects another merchant's (merchant_mismatch) or a self-contradicting one (bad_request)", async () => {
        const ours = refundBody(REFUND_SUCCESS, {});
        const refund = assertRefund(await env.gateway.verifyCallback(signedCallback(ours, signer())));
        assert.deepEqual(refund.state, { status: "succeeded", gatewayRefundNo: "50000000382019052709732678859", succeededAt: new Date("2024-01-01T12:00:30+08:00") });
        assert.equal(refund.refundId, "R1");
        assert.equal(refund.amountFen, 40n);
        assertRejected(await env.gateway.verifyCallback(signedCallback(refundBody(REFUND_SUCCESS, { mchid: "1900000109" }), signer())), "merchant_mismatch");
        assertRejected(await env.gateway.verifyCallback(signedCallback(refundBody(REFUND_ABNORMAL, {}), signer())), "bad_request");
        assertRejected(await env.gateway.verifyCallback(signedCallback(breakGcmTag(ours), signer())), "decrypt_failed");
      });
    });

    it("a request WeChat refuses with SIGN_ERROR is a gateway failure, not a business answer: no gatewayCode", async () => {
      const config = wechatSandboxGatewayConfig(sandbox, { baseUrl: env.url, notifyUrl: `${env.url}/merchant/wechat/notify`, platformMode: mode });
      const misconfigured = createWechatGateway({ ...config, mchId: "1900000109" });
      await assert.rejects(misconfigured.queryTrade(newOrderId()), (error) => {
        assert.ok(error instanceof GatewayError);
        // WeChat does not sign the refusal of a request it could not verify: read as a failure, never as forged
        assert.match(error.message, /HTTP 401 SIGN_ERROR: .*\(unsigned\)/);
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

describe("WeChat Pay gateway: what it sends and which unsigned answers it believes", () => {
  it("names the platform key it verifies with in Wechatpay-Serial on every request (certificate serial, public key id)", async () => {
    const fake = await startCounterfeitWechat((body) => signWechatMessage(body, wechatPlatformSigner(sandbox)));
    try {
      const base = { baseUrl: fake.url, notifyUrl: `${fake.url}/n` };
      await createWechatGateway(wechatSandboxGatewayConfig(sandbox, base)).queryTrade(newOrderId());
      await createWechatGateway(wechatSandboxGatewayConfig(sandbox, { ...base, platformMode: "publicKey" })).closeTrade(newOrderId()).catch(() => undefined);
      assert.deepEqual(
        fake.requests.map((h) => h["wechatpay-serial"]),
        [sandbox.platformSerialNo, sandbox.platformPublicKeyId],
      );
    } finally {
      await fake.close();
    }
  });

  it("reads an unsigned error as a failure but never as a business answer: an unsigned 404 ORDER_NOT_EXIST is not 'not found'", async () => {
    const fake = await startCounterfeitWechat(() => ({}), { status: 404, body: { code: "ORDER_NOT_EXIST", message: "订单不存在" } });
    try {
      const gateway = createWechatGateway(wechatSandboxGatewayConfig(sandbox, { baseUrl: fake.url, notifyUrl: `${fake.url}/n` }));
      await assert.rejects(gateway.queryTrade(newOrderId()), (error) => {
        assert.ok(error instanceof GatewayError);
        assert.match(error.message, /HTTP 404 ORDER_NOT_EXIST: 订单不存在 \(unsigned\)/);
        assert.equal(error.gatewayCode, undefined);
        return true;
      });
    } finally {
      await fake.close();
    }
  });
});

describe("WeChat Pay gateway: bill downloads elsewhere", () => {
  it("refuses a download_url that is not WeChat Pay's bill download, and never sends our signature there", async () => {
    const elsewhere = { hash_type: "SHA1", hash_value: "79bb0f45fc4c42234a918000b2668d689e2bde04", download_url: "https://bills.example.com/v3/billdownload/file?token=x" };
    const fake = await startCounterfeitWechat((body) => signWechatMessage(body, wechatPlatformSigner(sandbox)), { status: 200, body: elsewhere });
    try {
      const gateway = createWechatGateway(wechatSandboxGatewayConfig(sandbox, { baseUrl: fake.url, notifyUrl: `${fake.url}/n` }));
      await assert.rejects(gateway.downloadBill("2024-01-01"), /download_url https:\/\/bills\.example\.com\/v3\/billdownload\/file is not WeChat Pay's bill download/);
      assert.equal(fake.requests.length, 1, "only the bill application reached anyone");
    } finally {
      await fake.close();
    }
  });
});

describe("WeChat Pay gateway: daily bills", () => {
  // business time: the simulator's trades, payments and bill days follow this clock; signatures use the real one
  let now = new Date("2026-03-01T10:00:00+08:00");
  const clock: SimulatorClock = () => now;
  let env: Sandbox;
  before(async () => {
    env = await startSandbox({ sandbox, mode: "certificate", clock });
  });
  after(() => env.close());
  const businessOrder = (orderId: string, amountFen: bigint) => ({ ...order(orderId, amountFen), expiresAt: new Date(now.getTime() + 15 * 60_000) });
  const ready = (download: BillDownload): GatewayBill => {
    if (download.status !== "ready") assert.fail(`expected a ready bill, got not_ready: ${download.detail}`);
    return download.bill;
  };

  it("a day not over yet is not_ready (STATEMENT_CREATING); a day without trades is a ready bill with no entries", async () => {
    now = new Date("2026-03-01T10:00:00+08:00");
    const today = await env.gateway.downloadBill("2026-03-01");
    assert.equal(today.status, "not_ready");
    assert.match(today.status === "not_ready" ? today.detail : "", /STATEMENT_CREATING/);
    const empty = ready(await env.gateway.downloadBill("2026-02-27"));
    assert.deepEqual(empty.entries, []);
    assert.deepEqual(empty.summary, { paymentCount: 0, paymentFen: 0n, refundCount: 0, refundFen: 0n, feeMilliFen: 0n });
    assert.deepEqual(empty.fundFlow, { incomeCount: 0, incomeFen: 0n, expenseCount: 0, expenseFen: 0n });
  });

  it("lists the day's payments and refunds exactly (fen; fees in thousandths of a fen), with the summaries and fund flow the bills state", async () => {
    now = new Date("2026-03-02T09:00:00+08:00");
    const big = newOrderId();
    const small = newOrderId();
    await env.gateway.createPayment(businessOrder(big, 1234n));
    await env.simulator.pay(big);
    await env.gateway.createPayment(businessOrder(small, 1n));
    await env.simulator.pay(small);
    now = new Date("2026-03-02T23:59:59+08:00");
    await env.gateway.refund({ orderId: big, refundId: `${big}R1`, amountFen: 234n, totalFen: 1234n });
    await env.simulator.notifier.idle();
    // the next day's payment is not in this bill
    now = new Date("2026-03-03T00:00:00+08:00");
    const nextDay = newOrderId();
    await env.gateway.createPayment(businessOrder(nextDay, 500n));
    await env.simulator.pay(nextDay);

    now = new Date("2026-03-03T10:00:00+08:00");
    const bill = ready(await env.gateway.downloadBill("2026-03-02"));
    const tradeNo = env.simulator.trade(big)!.gatewayTradeNo;
    const refund = bill.entries.find((e) => e.kind === "refund");
    assert.deepEqual(bill.entries, [
      { kind: "payment", orderId: big, gatewayTradeNo: tradeNo, amountFen: 1234n, feeMilliFen: 7404n, at: new Date("2026-03-02T09:00:00+08:00") },
      { kind: "payment", orderId: small, gatewayTradeNo: env.simulator.trade(small)!.gatewayTradeNo, amountFen: 1n, feeMilliFen: 6n, at: new Date("2026-03-02T09:00:00+08:00") },
      { kind: "refund", orderId: big, refundId: `${big}R1`, gatewayRefundNo: refund?.gatewayRefundNo ?? "", amountFen: 234n, feeMilliFen: -1404n, at: new Date("2026-03-02T23:59:59+08:00") },
    ]);
    assert.match(refund?.gatewayRefundNo ?? "", /^50\d{27}$/);
    assert.deepEqual(bill.summary, { paymentCount: 2, paymentFen: 1235n, refundCount: 1, refundFen: 234n, feeMilliFen: 6006n });
    assert.deepEqual(bill.fundFlow, { incomeCount: 2, incomeFen: 1235n, expenseCount: 1, expenseFen: 234n });
    assert.equal(bill.provider, "wechat");
    assert.equal(bill.date, "2026-03-02");
    assert.deepEqual(bill.source.files, ["tradebill 2026-03-02 ALL", "fundflowbill 2026-03-02 BASIC"]);
    assert.match(bill.source.hash ?? "", /^[0-9a-f]{40} [0-9a-f]{40}$/);
  });

  it("shows each bill fault only in the bill: a silent payment, a payment one fen over, a console refund that is not ours", async () => {
    now = new Date("2026-03-05T12:00:00+08:00");
    const [silent, offByOne, refunded] = [newOrderId(), newOrderId(), newOrderId()];
    for (const orderId of [silent, offByOne, refunded]) await env.gateway.createPayment(businessOrder(orderId, 1000n));
    await env.simulator.injectBillFault({ kind: "silent_payment", orderId: silent });
    await env.simulator.pay(offByOne);
    await env.simulator.injectBillFault({ kind: "amount_off_by_one_fen", orderId: offByOne });
    await env.simulator.pay(refunded);
    await env.simulator.injectBillFault({ kind: "console_refund", orderId: refunded, amountFen: 300n });
    await env.simulator.notifier.idle();

    assert.deepEqual(await env.gateway.queryTrade(silent), { status: "pending" }, "the query says NOTPAY");
    assert.equal(env.merchant.callbacksFor(silent).length, 0, "no notification for the silent payment");
    assert.equal(env.merchant.callbacks.filter((c) => c.result.ok && c.result.kind === "refund" && c.result.refund.orderId === refunded).length, 0);

    now = new Date("2026-03-06T10:00:00+08:00");
    const bill = ready(await env.gateway.downloadBill("2026-03-05"));
    const payment = (orderId: string) => bill.entries.find((e) => e.kind === "payment" && e.orderId === orderId);
    assert.equal(payment(silent)?.amountFen, 1000n);
    assert.equal(payment(offByOne)?.amountFen, 1001n);
    const consoleRefund = bill.entries.find((e) => e.kind === "refund" && e.orderId === refunded);
    assert.ok(consoleRefund && consoleRefund.kind === "refund");
    assert.equal(consoleRefund.amountFen, 300n);
    assert.notEqual(consoleRefund.refundId, undefined);
    assert.ok(!consoleRefund.refundId?.startsWith(refunded), "the console's out_refund_no is WeChat's, not one of ours");
    assert.deepEqual(bill.summary, { paymentCount: 3, paymentFen: 3001n, refundCount: 1, refundFen: 300n, feeMilliFen: 3001n * 6n - 1800n });
  });

  it("plays a 30-day month on the business clock: each day's bill holds that day's payment only, ready once the day is over", async () => {
    const days = Array.from({ length: 30 }, (_, i) => `2026-06-${String(i + 1).padStart(2, "0")}`);
    const paid = new Map<string, string>();
    for (const [i, day] of days.entries()) {
      now = new Date(`${day}T12:00:00+08:00`);
      const orderId = newOrderId();
      await env.gateway.createPayment(businessOrder(orderId, BigInt(100 + i)));
      await env.simulator.pay(orderId);
      paid.set(day, orderId);
      assert.equal((await env.gateway.downloadBill(day)).status, "not_ready", `${day} is not over at noon`);
    }
    await env.simulator.notifier.idle();
    now = new Date("2026-07-01T10:00:00+08:00");
    for (const [i, day] of days.entries()) {
      const bill = ready(await env.gateway.downloadBill(day));
      assert.deepEqual(bill.entries.map((e) => [e.orderId, e.amountFen]), [[paid.get(day), BigInt(100 + i)]], day);
      assert.equal(bill.fundFlow?.incomeFen, BigInt(100 + i));
    }
  });

  it("refuses a bill whose bytes do not hash to the hash_value WeChat signed", async () => {
    now = new Date("2026-03-08T12:00:00+08:00");
    const orderId = newOrderId();
    await env.gateway.createPayment(businessOrder(orderId, 1000n));
    await env.simulator.pay(orderId);
    now = new Date("2026-03-09T10:00:00+08:00");
    env.tamperNextBill((bill) => bill.replace("`10.00", "`1000.00"));
    await assert.rejects(env.gateway.downloadBill("2026-03-08"), (error) => {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.gatewayCode, "BILL_HASH_MISMATCH");
      assert.match(error.message, /SHA1 of the downloaded bill is [0-9a-f]{40}, the bill application said [0-9a-f]{40}/);
      return true;
    });
    assert.equal(ready(await env.gateway.downloadBill("2026-03-08")).summary.paymentFen, 1000n, "an untouched download is accepted");
  });
});

describe("WeChat Pay gateway: platform certificates and the WeChat Pay public key", () => {
  it("while migrating, holds both: verifies answers signed with the public key and notifications with the certificate", async () => {
    const env = await startSandbox({ sandbox, mode: "certificateAndPublicKey" });
    try {
      // the request names the public key id, so WeChat answers with the public key
      const orderId = newOrderId();
      await env.gateway.createPayment(order(orderId, 100n));
      await env.simulator.pay(orderId);
      await env.simulator.notifier.idle();
      assert.equal(env.merchant.callbacksFor(orderId).length, 1, "the notification, signed with the certificate, verified");
      const byPublicKey = assertAccepted(await env.gateway.verifyCallback(signedCallback(transactionBody(), wechatPlatformSigner(sandbox, "publicKey"))));
      assert.equal(byPublicKey.orderId, "ORDER20240101");
    } finally {
      await env.close();
    }
  });

  it("fetches a newly published certificate when due, verified with a key it already trusts, and then accepts its signatures", async () => {
    const env = await startSandbox({ sandbox, mode: "certificate", gatewayConfig: { certificateRefresh: { everyMs: 50, unknownSerialMinIntervalMs: 60_000 } } });
    try {
      const rotated = await env.simulator.publishPlatformCertificate();
      await sleep(60);
      await env.gateway.queryTrade(newOrderId()); // due: refreshed first
      assert.equal(env.simulator.certificateDownloads(), 1);
      env.simulator.signWith({ certificate: rotated.serialNo });
      assert.deepEqual(await env.gateway.queryTrade(newOrderId()), { status: "not_found" }, "an answer under the new serial verifies");
    } finally {
      await env.close();
    }
  });

  it("a serial it does not hold makes it fetch certificates at most once a minute, whoever sent it", async () => {
    const env = await startSandbox({ sandbox, mode: "certificate" });
    try {
      const published = await env.simulator.publishPlatformCertificate();
      const underNewSerial = { privateKey: published.privateKey, serial: published.serialNo };
      // the first unknown serial: one fetch (signed with the certificate we hold), and the new one is known
      assertAccepted(await env.gateway.verifyCallback(signedCallback(transactionBody(), underNewSerial)));
      assert.equal(env.simulator.certificateDownloads(), 1);
      // serials nobody issued: refused, and no more fetching within the minute
      for (let i = 0; i < 5; i++) {
        const forged = { privateKey: impostorKey, serial: randomBytes(20).toString("hex").toUpperCase() };
        assertRejected(await env.gateway.verifyCallback(signedCallback(transactionBody(), forged)), "unknown_certificate");
      }
      assert.equal(env.simulator.certificateDownloads(), 1);
    } finally {
      await env.close();
    }
  });

  it("ignores a /v3/certificates answer signed with a key it does not trust", async () => {
    const env = await startSandbox({ sandbox, mode: "certificate", gatewayConfig: { certificateRefresh: { everyMs: 50 } } });
    try {
      const rotated = await env.simulator.publishPlatformCertificate();
      env.simulator.signWith({ certificate: rotated.serialNo });
      await sleep(60);
      // the certificates answer is signed by the new certificate, which nothing we trust vouches for
      await assert.rejects(env.gateway.queryTrade(newOrderId()), /rejected: unknown_certificate/);
      assert.ok(env.simulator.certificateDownloads() >= 1);
    } finally {
      await env.close();
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
  simulator: WechatProviderSimulator;
  gateway: PaymentGateway;
  merchant: { callbacks: ReceivedCallback[]; callbacksFor(orderId: string): ReceivedCallback[]; refundsFor(refundId: string): VerifiedRefundNotification[] };
  /** Changes the next bill file in transit (after WeChat computed its hash). */
  tamperNextBill(change: (bill: string) => string): void;
  close(): Promise<void>;
};

async function startSandbox(options: {
  sandbox: WechatSandbox;
  mode: PlatformMode;
  simulatorSandbox?: WechatSandbox;
  clock?: SimulatorClock;
  gatewayConfig?: Partial<WechatGatewayConfig>;
}): Promise<Sandbox> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const signWith = options.mode === "publicKey" ? "publicKey" : "certificate";
  const simulator = createWechatSimulator({ sandbox: options.simulatorSandbox ?? options.sandbox, publicUrl: url, signWith, timeScale: 0.001, clock: options.clock });
  const gateway = createWechatGateway({
    ...wechatSandboxGatewayConfig(options.sandbox, { baseUrl: url, notifyUrl: `${url}/merchant/wechat/notify`, platformMode: options.mode }),
    ...options.gatewayConfig,
  });
  const callbacks: ReceivedCallback[] = [];
  let tamper: ((bill: string) => string) | undefined;
  const app = express();
  app.use("/v3/billdownload/file", (_req, res, next) => {
    const change = tamper;
    tamper = undefined;
    if (change) {
      const send = res.send.bind(res);
      res.send = (body: Buffer) => send(gzipSync(Buffer.from(change(gunzipSync(body).toString("utf8")), "utf8")));
    }
    next();
  });
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
      refundsFor: (refundId) => callbacks.flatMap((c) => (c.result.ok && c.result.kind === "refund" && c.result.refund.refundId === refundId ? [c.result.refund] : [])),
    },
    tamperNextBill: (change) => void (tamper = change),
    async close() {
      simulator.notifier.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Answers every request with an unpaid trade (or `answer`'s status and body), under whatever headers `headersFor`
 * gives the body; keeps each request's headers.
 */
async function startCounterfeitWechat(
  headersFor: (body: string) => Record<string, string>,
  answer?: { status: number; body: object },
): Promise<{ url: string; requests: Record<string, string | string[] | undefined>[]; close(): Promise<void> }> {
  const requests: Record<string, string | string[] | undefined>[] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    const orderId = (req.url ?? "").split("/").at(-1)?.split("?")[0] ?? "";
    const body = JSON.stringify(answer?.body ?? { appid: sandbox.appId, mchid: sandbox.mchId, out_trade_no: orderId, trade_state: "NOTPAY" });
    res.writeHead(answer?.status ?? 200, { "Content-Type": "application/json", ...headersFor(body) }).end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
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

function assertRefund(result: VerifyCallbackResult): VerifiedRefundNotification {
  if (!result.ok) assert.fail(`expected acceptance, got ${result.code}: ${result.detail}`);
  if (result.kind !== "refund") assert.fail("expected a refund notification");
  return result.refund;
}

/** A REFUND.* notification as WeChat documents its resource. */
function refundBody(event: typeof REFUND_SUCCESS, overrides: Record<string, unknown>): string {
  return buildWechatNotification(sandbox.apiV3Key, event, {
    mchid: sandbox.mchId,
    out_trade_no: "ORDER20240101",
    transaction_id: "4200000000202401010000000001",
    out_refund_no: "R1",
    refund_id: "50000000382019052709732678859",
    refund_status: "SUCCESS",
    success_time: "2024-01-01T12:00:30+08:00",
    user_received_account: "支付用户零钱",
    amount: { total: 100, refund: 40, payer_total: 100, payer_refund: 40 },
    ...overrides,
  });
}

function assertRejected(result: VerifyCallbackResult, code: string): void {
  assert.equal(result.ok, false, "expected a rejection");
  assert.equal(!result.ok && result.code, code, !result.ok ? result.detail : "");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
