/**
 * The phone flows end to end, on the real service and the gateway simulator through the real alipay-sdk and
 * wechatpay-node-v3: Alipay 手机网站支付 (alipay.trade.wap.pay), WeChat Pay H5 and WeChat Pay JSAPI with WeChat's
 * OAuth. A payer coming back from the gateway (return_url, redirect_url, WeixinJSBridge's ok) credits nothing: only
 * the verified notification or the reconciler's query does.
 */
import assert from "node:assert/strict";
import { createVerify } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { AlipaySdk } from "alipay-sdk";
import { getBalance } from "../ledger/ledger";
import { type Stack, eventually, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { reconcileOnce } from "./reconcile";
import { OAUTH_CALLBACK_PATH, OAUTH_COOKIE } from "./oauthState";

const account = (n: number) => `0x${n.toString(16).padStart(40, "0")}`;
let next = 0x30_0000;

describe("mobile payment flows", () => {
  let stack: Stack;
  before(async () => {
    stack = await startPaymentsStack("pglite", { alipayFlows: ["qr", "page", "wap"], wechatFlows: ["qr", "h5", "jsapi"], trustProxy: 1 });
  });
  after(() => stack?.close());

  const order = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    stack.request("POST", "/v1/orders", { account: account(next++), amountFen: "2500", ...body }, headers);
  const manual = (url: string, init: RequestInit = {}) => fetch(url, { ...init, redirect: "manual" });
  const creditedFen = async (orderId: string) => {
    const { rows } = await stack.db.query<{ account: string; status: string }>("SELECT account, status FROM orders WHERE id = $1", [orderId]);
    return rows[0]!.status === "paid" ? (await getBalance(stack.db, rows[0]!.account)).availableFen : 0n;
  };

  describe("choosing a flow", () => {
    it("a request without flow keeps the provider's default (Alipay precreate's QR code, WeChat Pay Native)", async () => {
      const alipay = await order({ provider: "alipay" });
      assert.equal(alipay.status, 201, alipay.text);
      assert.equal(alipay.body.flow, "qr");
      assert.ok(alipay.body.qrCode);
      const wechat = await order({ provider: "wechat" });
      assert.equal(wechat.body.flow, "qr");
      assert.ok(wechat.body.qrCode);
    });

    it("a flow the provider does not have, or one the server did not enable, is a 400 naming it; nothing is created", async () => {
      const foreign = await order({ provider: "alipay", flow: "h5" });
      assert.equal(foreign.status, 400);
      assert.match(foreign.body.detail, /flow h5 does not exist for alipay: it has qr, page, wap/);
      const unknown = await order({ provider: "wechat", flow: "app" });
      assert.equal(unknown.status, 400);
      assert.match(JSON.stringify(unknown.body), /flow/);
      const narrow = await startPaymentsStack("pglite", { wechatFlows: ["qr"] });
      try {
        const off = await narrow.request("POST", "/v1/orders", { account: account(next++), amountFen: "2500", provider: "wechat", flow: "jsapi" });
        assert.equal(off.status, 400);
        assert.match(off.body.detail, /flow jsapi is not enabled for wechat on this server: enabled are qr/);
        const { rows } = await narrow.db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM orders");
        assert.equal(rows[0]!.n, 0n);
      } finally {
        await narrow.close();
      }
    });

    it("a retry with the same idempotencyKey returns the same order; the same key with another flow is a 409 naming the order's flow", async () => {
      const body = { account: account(next++), amountFen: "2500", provider: "alipay", flow: "wap", idempotencyKey: `mobile-${next}` };
      const first = await stack.request("POST", "/v1/orders", body);
      const again = await stack.request("POST", "/v1/orders", body);
      assert.equal(again.body.id, first.body.id);
      assert.equal(again.body.payUrl, first.body.payUrl);
      const other = await stack.request("POST", "/v1/orders", { ...body, flow: "qr" });
      assert.equal(other.status, 409);
      assert.equal(other.body.orderId, first.body.id);
      assert.equal(other.body.flow, "wap");
      assert.match(other.body.detail, /one order is one gateway trade/);
    });
  });

  describe("Alipay 手机网站支付 (alipay.trade.wap.pay)", () => {
    it("answers a signed WAP cashier URL: product QUICK_WAP_WAY, quit_url and return_url back to the checkout of the order", async () => {
      const created = await order({ provider: "alipay", flow: "wap" });
      assert.equal(created.status, 201, created.text);
      const url = new URL(created.body.payUrl);
      assert.equal(url.searchParams.get("method"), "alipay.trade.wap.pay");
      assert.equal(url.searchParams.get("sign_type"), "RSA2");
      assert.equal(url.searchParams.get("notify_url"), `${stack.url}/v1/payments/alipay/notify`);
      assert.equal(url.searchParams.get("return_url"), `${stack.url}/checkout?order=${created.body.id}`);
      const biz = JSON.parse(url.searchParams.get("biz_content")!);
      assert.equal(biz.product_code, "QUICK_WAP_WAY");
      assert.equal(biz.out_trade_no, created.body.id);
      assert.equal(biz.total_amount, "25.00");
      assert.equal(biz.quit_url, `${stack.url}/checkout?order=${created.body.id}`);
      assert.match(biz.time_expire, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    });

    it("a tampered WAP URL is refused by the gateway's cashier (invalid-signature)", async () => {
      const created = await order({ provider: "alipay", flow: "wap" });
      const cashier = await manual(created.body.payUrl.replace("25.00", "0.01"));
      assert.equal(cashier.status, 400);
      assert.match(await cashier.text(), /invalid-signature/);
    });

    it("pay on the phone cashier → back to return_url with signed sync fields, which credit nothing; the notification credits once", async () => {
      stack.simulator.alipay.notifier.setFaults({ dropAll: true });
      try {
        const created = await order({ provider: "alipay", flow: "wap" });
        const cashier = await manual(created.body.payUrl);
        assert.equal(cashier.status, 303);
        const payerUrl = new URL(cashier.headers.get("location")!, stack.simulator.url).toString();
        const page = await (await fetch(payerUrl)).text();
        assert.match(page, /name="viewport"/);
        assert.match(page, /手机网站支付/);
        const paid = await manual(payerUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "action=pay" });
        assert.equal(paid.status, 303);
        const back = new URL(paid.headers.get("location")!);
        assert.equal(`${back.origin}${back.pathname}`, `${stack.url}/checkout`);
        assert.equal(back.searchParams.get("order"), created.body.id);
        assert.equal(back.searchParams.get("method"), "alipay.trade.wap.pay.return");
        const returned = Object.fromEntries(back.searchParams);
        delete returned.order; // ours, not Alipay's: not signed
        const sdk = new AlipaySdk({ appId: stack.simulator.sandbox.alipay.appId, privateKey: stack.simulator.sandbox.alipay.merchantPrivateKey, alipayPublicKey: stack.simulator.sandbox.alipay.alipayPublicKey });
        assert.ok(sdk.checkNotifySignV2(returned), "the sync return is signed as Alipay signs it");
        // the browser arrives at the checkout (a static page): nothing changes, however real the fields look
        await (await fetch(back)).arrayBuffer();
        assert.equal((await stack.request("GET", `/v1/orders/${created.body.id}`)).body.status, "pending");
        assert.equal(await creditedFen(created.body.id), 0n);
        // the reconciler's query (the notification was lost) credits it
        await reconcileOnce({ db: stack.db, gateways: stack.service.gateways }, { afterMs: 0 });
        assert.equal(await creditedFen(created.body.id), 2500n);
      } finally {
        stack.simulator.alipay.notifier.setFaults({});
      }
    });

    it("leaving the WAP cashier goes to quit_url and leaves the order payable; paying later credits once by the notification", async () => {
      const created = await order({ provider: "alipay", flow: "wap" });
      const payerUrl = new URL((await manual(created.body.payUrl)).headers.get("location")!, stack.simulator.url).toString();
      const quit = await manual(payerUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "action=quit" });
      assert.equal(quit.status, 303);
      assert.equal(quit.headers.get("location"), `${stack.url}/checkout?order=${created.body.id}`);
      assert.equal(stack.simulator.alipay.trade(created.body.id)?.status, "pending");
      await manual(payerUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "action=pay" });
      await eventually(async () => (await creditedFen(created.body.id)) === 2500n, 10_000, "the WAP notification credits");
    });
  });

  describe("WeChat Pay H5", () => {
    it("sends the payer's real IP (TRUST_PROXY-aware req.ip) and type Wap; h5_url + redirect_url → pay → back to our page; the notification credits", async () => {
      const created = await order({ provider: "wechat", flow: "h5" }, { "x-forwarded-for": "203.0.113.77" });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.body.flow, "h5");
      const trade = stack.simulator.wechat.trade(created.body.id)!;
      assert.equal(trade.tradeType, "MWEB");
      assert.equal(trade.payerClientIp, "203.0.113.77");
      const redirect = `${stack.url}/checkout?order=${created.body.id}`;
      const h5 = `${created.body.payUrl}&redirect_url=${encodeURIComponent(redirect)}`;
      // opened from our checkout, on the merchant's registered H5 domain (WeChat checks the Referer)
      const cashier = await fetch(h5, { headers: { referer: `${stack.url}/checkout` } });
      assert.equal(cashier.status, 200);
      const html = await cashier.text();
      const action = /action="([^"]*checkmweb\/pay[^"]*)"/.exec(html)![1]!.replaceAll("&#38;", "&");
      const paid = await manual(new URL(action, h5).toString(), { method: "POST" });
      assert.equal(paid.status, 303);
      assert.equal(paid.headers.get("location"), redirect);
      await eventually(async () => (await creditedFen(created.body.id)) === 2500n, 10_000, "the H5 notification credits");
    });
  });

  it("WeChat Pay H5: a retried create of the pending order answers a fresh h5_url for the same trade (an h5_url lives 5 minutes)", async () => {
    const body = { account: account(next++), amountFen: "2500", provider: "wechat", flow: "h5", idempotencyKey: `h5-again-${next}` };
    const first = await stack.request("POST", "/v1/orders", body);
    const again = await stack.request("POST", "/v1/orders", body);
    assert.equal(again.status, 201, again.text);
    assert.equal(again.body.id, first.body.id);
    assert.notEqual(again.body.payUrl, first.body.payUrl);
    const fromCheckout = { headers: { referer: `${stack.url}/checkout` } };
    assert.equal((await fetch(again.body.payUrl, fromCheckout)).status, 200);
    assert.equal((await fetch(first.body.payUrl, fromCheckout)).status, 404, "the older h5_url is gone");
    assert.equal(stack.simulator.wechat.trade(first.body.id)?.status, "pending");
  });

  describe("WeChat Pay JSAPI with WeChat's OAuth (snsapi_base)", () => {
    /** POST the order, follow WeChat's authorize page: the callback URL and the cookie the order's answer set. */
    async function startJsapi(): Promise<{ id: string; callback: string; cookie: string; oauthUrl: URL }> {
      const created = await order({ provider: "wechat", flow: "jsapi" });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.body.status, "created");
      const cookie = created.headers.get("set-cookie")!.split(";")[0]!;
      assert.ok(cookie.startsWith(`${OAUTH_COOKIE}=`));
      assert.match(created.headers.get("set-cookie")!, /HttpOnly/);
      assert.match(created.headers.get("set-cookie")!, /SameSite=Lax/);
      const oauthUrl = new URL(created.body.oauthUrl);
      const authorize = await manual(oauthUrl.toString());
      assert.equal(authorize.status, 302);
      return { id: created.body.id, callback: authorize.headers.get("location")!, cookie, oauthUrl };
    }

    it("oauthUrl is WeChat's authorize URL for our appid, snsapi_base, a [0-9a-z] state of at most 128 characters, #wechat_redirect", async () => {
      const { oauthUrl, id } = await startJsapi();
      assert.equal(`${oauthUrl.origin}${oauthUrl.pathname}`, `${stack.simulator.url}/connect/oauth2/authorize`);
      assert.deepEqual([...oauthUrl.searchParams.keys()], ["appid", "redirect_uri", "response_type", "scope", "state"]);
      assert.equal(oauthUrl.searchParams.get("appid"), stack.simulator.sandbox.wechat.appId);
      assert.equal(oauthUrl.searchParams.get("redirect_uri"), `${stack.url}${OAUTH_CALLBACK_PATH}`);
      assert.equal(oauthUrl.searchParams.get("scope"), "snsapi_base");
      assert.equal(oauthUrl.searchParams.get("response_type"), "code");
      assert.match(oauthUrl.searchParams.get("state")!, /^[0-9a-z]{1,128}$/);
      assert.ok(oauthUrl.searchParams.get("state")!.startsWith(id));
      assert.equal(oauthUrl.hash, "#wechat_redirect");
    });

    it("code → openid → prepay_id → signed JS parameters; WeixinJSBridge's ok is not a credit, the notification is", async () => {
      stack.simulator.wechat.notifier.setFaults({ delayMs: 400 });
      try {
        const { id, callback, cookie } = await startJsapi();
        const back = await manual(callback, { headers: { cookie } });
        assert.equal(back.status, 303, await back.clone().text());
        assert.match(back.headers.get("location")!, new RegExp(`/checkout\\?account=0x[0-9a-f]{40}&order=${id}$`));
        assert.match(back.headers.get("set-cookie")!, /Max-Age=0/);
        const view = (await stack.request("GET", `/v1/orders/${id}`)).body;
        assert.equal(view.status, "pending");
        assert.equal(stack.simulator.wechat.trade(id)?.tradeType, "JSAPI");
        const p = view.jsapiParams;
        assert.equal(p.appId, stack.simulator.sandbox.wechat.appId);
        assert.equal(p.signType, "RSA");
        assert.match(p.package, /^prepay_id=wx\w+$/);
        const signed = `${p.appId}\n${p.timeStamp}\n${p.nonceStr}\n${p.package}\n`;
        assert.ok(createVerify("RSA-SHA256").update(signed).verify(stack.simulator.sandbox.wechat.merchantCertificate, p.paySign, "base64"));
        // what the bridge does on Pay
        const bridge = await fetch(`${stack.simulator.url}/sim/wechat/jsapi/pay`, { method: "POST", body: JSON.stringify(p) });
        assert.deepEqual(await bridge.json(), { ok: true });
        assert.equal(await creditedFen(id), 0n, "the bridge's ok credits nothing before the notification");
        await eventually(async () => (await creditedFen(id)) === 2500n, 10_000, "the JSAPI notification credits");
      } finally {
        stack.simulator.wechat.notifier.setFaults({});
      }
    });

    it("the callback without this browser's cookie, with another browser's cookie, or with a forged state is a 400, and no trade is made", async () => {
      const mine = await startJsapi();
      const theirs = await startJsapi();
      const noCookie = await manual(mine.callback);
      assert.equal(noCookie.status, 400);
      assert.match(((await noCookie.json()) as { detail: string }).detail, /this browser did not start the payment/);
      const swapped = await manual(mine.callback, { headers: { cookie: theirs.cookie } });
      assert.equal(swapped.status, 400);
      assert.match(((await swapped.json()) as { detail: string }).detail, /does not belong to this browser's payment/);
      const forged = new URL(mine.callback);
      forged.searchParams.set("state", `${theirs.id}${forged.searchParams.get("state")!.slice(26)}`);
      const forgedState = await manual(forged.toString(), { headers: { cookie: mine.cookie } });
      assert.equal(forgedState.status, 400);
      for (const id of [mine.id, theirs.id]) {
        assert.equal((await stack.request("GET", `/v1/orders/${id}`)).body.status, "created");
        assert.equal(stack.simulator.wechat.trade(id), undefined);
      }
    });

    it("a code used once is refused when used for another order (400 naming the code); WeChat's repeated callback of a done order just goes on", async () => {
      const first = await startJsapi();
      assert.equal((await manual(first.callback, { headers: { cookie: first.cookie } })).status, 303);
      // WeChat's browser may load the redirect twice: the order already has its trade
      assert.equal((await manual(first.callback, { headers: { cookie: first.cookie } })).status, 303);
      const second = await startJsapi();
      const reused = new URL(second.callback);
      reused.searchParams.set("code", new URL(first.callback).searchParams.get("code")!);
      const refused = await manual(reused.toString(), { headers: { cookie: second.cookie } });
      assert.equal(refused.status, 400);
      assert.match(((await refused.json()) as { detail: string }).detail, /code is invalid or already used \(errcode 40163\)/);
    });
  });
});
