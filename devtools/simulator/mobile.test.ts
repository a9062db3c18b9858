/**
 * The simulator's phone flows refuse what the real gateways refuse: WeChat Pay H5 and JSAPI orders with bad
 * signatures, another appid/mchid, a missing payer_client_ip or an openid that is not the appid's; WeChat's OAuth
 * with another appid or AppSecret and a code used twice; a WeixinJSBridge payment whose paySign was tampered with;
 * Alipay WAP pay with a bad signature or the wrong product; an h5_url opened from, or returning to, a domain the
 * merchant did not register, and an OAuth redirect_uri outside its registered domain.
 */
import assert from "node:assert/strict";
import { createSign, generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { AlipaySdk } from "alipay-sdk";
import WxPay from "wechatpay-node-v3";
import { type Simulator, startSimulator } from "./server";

let sim: Simulator;
before(async () => {
  sim = await startSimulator({ timeScale: 0.001, wechatRegisteredDomains: ["merchant.example"] });
});
after(() => sim.close());

const newOrderId = () => `S${randomBytes(8).toString("hex")}`;
const impostorKey = () => Buffer.from(generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }));

/** The real client, its HTTP layer pointed at the simulator (answers unverified: these tests read refusals). */
function client(overrides: { appid?: string; mchid?: string; privateKey?: Buffer } = {}): WxPay {
  const { wechat } = sim.sandbox;
  const pay = new WxPay({
    appid: overrides.appid ?? wechat.appId,
    mchid: overrides.mchid ?? wechat.mchId,
    serial_no: wechat.merchantSerialNo,
    publicKey: Buffer.from(wechat.merchantCertificate),
    privateKey: overrides.privateKey ?? Buffer.from(wechat.merchantPrivateKey),
  });
  const send = async (method: string, sdkUrl: string, headers: Record<string, string>, body?: string) => {
    const { pathname, search } = new URL(sdkUrl);
    const response = await fetch(`${sim.url}${pathname}${search}`, { method, headers, body });
    const text = await response.text();
    const data = text ? JSON.parse(text) : undefined;
    return response.ok ? { status: response.status, data } : { status: response.status, error: data };
  };
  pay.createHttp({
    get: (url, headers) => send("GET", url, headers as Record<string, string>),
    post: (url, params, headers) => send("POST", url, headers as Record<string, string>, JSON.stringify(params)),
    upload: () => Promise.reject(new Error("no uploads")),
  });
  return pay;
}

const trade = (orderId = newOrderId()) => ({
  description: "Gas quota top-up",
  out_trade_no: orderId,
  notify_url: `${sim.url}/nowhere`,
  amount: { total: 100, currency: "CNY" },
});
const h5 = (orderId?: string, ip: string | null = "198.51.100.7") => ({
  ...trade(orderId),
  scene_info: { ...(ip ? { payer_client_ip: ip } : {}), h5_info: { type: "Wap" } },
});

/** WeChat's OAuth as a browser goes through it: the authorize page's redirect carries the code. */
async function oauthCode(): Promise<string> {
  const url = new URL(`${sim.url}/connect/oauth2/authorize`);
  url.search = new URLSearchParams({ appid: sim.sandbox.wechat.appId, redirect_uri: "https://merchant.example/cb", response_type: "code", scope: "snsapi_base", state: "abc123" }).toString();
  const response = await fetch(`${url}#wechat_redirect`, { redirect: "manual" });
  assert.equal(response.status, 302);
  const back = new URL(response.headers.get("location")!);
  assert.equal(back.searchParams.get("state"), "abc123");
  return back.searchParams.get("code")!;
}

async function accessToken(params: Record<string, string>): Promise<Record<string, unknown>> {
  const { appId, appSecret } = sim.sandbox.wechat;
  const url = new URL(`${sim.url}/sns/oauth2/access_token`);
  url.search = new URLSearchParams({ appid: appId, secret: appSecret, grant_type: "authorization_code", ...params }).toString();
  return (await fetch(url)).json() as Promise<Record<string, unknown>>;
}

describe("WeChat simulator: H5 orders", () => {
  it("answers h5_url for a signed order with scene_info.payer_client_ip and h5_info.type", async () => {
    const output = await client().transactions_h5(h5() as Parameters<WxPay["transactions_h5"]>[0]);
    assert.equal(output.status, 200, JSON.stringify(output));
    assert.match(output.data.h5_url, new RegExp(`^${sim.url}/payer/wechat/checkmweb\\?prepay_id=wx\\w+&package=\\d+$`));
  });

  it("refuses a missing payer_client_ip, and a malformed one: 400 PARAM_ERROR", async () => {
    for (const ip of [null, "not-an-ip"]) {
      const output = await client().transactions_h5(h5(undefined, ip) as Parameters<WxPay["transactions_h5"]>[0]);
      assert.equal(output.status, 400);
      assert.equal(output.error.code, "PARAM_ERROR");
      assert.match(output.error.message, /payer_client_ip/);
    }
  });

  it("refuses a bad signature (401 SIGN_ERROR) and another appid (400 APPID_MCHID_NOT_MATCH)", async () => {
    const forged = await client({ privateKey: impostorKey() }).transactions_h5(h5() as Parameters<WxPay["transactions_h5"]>[0]);
    assert.equal(forged.status, 401);
    assert.equal(forged.error.code, "SIGN_ERROR");
    const foreign = await client({ appid: "wx0000000000000000" }).transactions_h5(h5() as Parameters<WxPay["transactions_h5"]>[0]);
    assert.equal(foreign.status, 400);
    assert.equal(foreign.error.code, "APPID_MCHID_NOT_MATCH");
  });

  it("the cashier opens only from a page on the merchant's registered H5 domain and returns only to it", async () => {
    const output = await client().transactions_h5(h5() as Parameters<WxPay["transactions_h5"]>[0]);
    const h5Url: string = output.data.h5_url;
    const back = `&redirect_url=${encodeURIComponent("https://pay.merchant.example/checkout?order=1")}`;
    const open = (url: string, referer?: string) => fetch(url, { headers: referer ? { referer } : {} });
    const served = await open(`${h5Url}${back}`, "https://merchant.example/checkout");
    assert.equal(served.status, 200, "from the registered domain (a subdomain returns too)");
    for (const [what, url, referer] of [
      ["no Referer", h5Url, undefined],
      ["another domain's page", h5Url, "https://evil.example/pay"],
      ["a look-alike domain", h5Url, "https://evilmerchant.example/pay"],
      ["a redirect_url elsewhere", `${h5Url}&redirect_url=${encodeURIComponent("https://evil.example/done")}`, "https://merchant.example/checkout"],
    ] as const) {
      const refused = await open(url, referer);
      assert.equal(refused.status, 403, what);
      assert.match(await refused.text(), /商家参数格式有误，请联系商家解决/, what);
    }
  });

  it("refuses the same out_trade_no as another trade type: 403 OUT_TRADE_NO_USED", async () => {
    const orderId = newOrderId();
    assert.equal((await client().transactions_native(trade(orderId))).status, 200);
    const output = await client().transactions_h5(h5(orderId) as Parameters<WxPay["transactions_h5"]>[0]);
    assert.equal(output.status, 403);
    assert.equal(output.error.code, "OUT_TRADE_NO_USED");
  });
});

describe("WeChat simulator: OAuth2 snsapi_base", () => {
  it("a code gives the openid once; the same code again is 40163 code been used", async () => {
    const code = await oauthCode();
    const first = await accessToken({ code });
    assert.match(String(first.openid), /^o\w{27}$/);
    assert.equal(first.scope, "snsapi_base");
    assert.deepEqual(await accessToken({ code }), { errcode: 40163, errmsg: "code been used" });
  });

  it("refuses another AppSecret (40125), another appid (40013) and an unknown code (40029)", async () => {
    const code = await oauthCode();
    assert.equal((await accessToken({ code, secret: "wrong" })).errcode, 40125);
    assert.equal((await accessToken({ code, appid: "wx0000000000000000" })).errcode, 40013);
    assert.equal((await accessToken({ code: "nosuchcode" })).errcode, 40029);
    // the refused attempts did not use the code up
    assert.ok((await accessToken({ code })).openid);
  });

  it("the authorize page refuses another appid and a state outside [a-zA-Z0-9]{0,128}", async () => {
    const base = { redirect_uri: "https://merchant.example/cb", response_type: "code", scope: "snsapi_base" };
    const wrong = await fetch(`${sim.url}/connect/oauth2/authorize?${new URLSearchParams({ ...base, appid: "wx0000000000000000" })}`, { redirect: "manual" });
    assert.equal(wrong.status, 400);
    assert.match(await wrong.text(), /10016/);
    const badState = await fetch(`${sim.url}/connect/oauth2/authorize?${new URLSearchParams({ ...base, appid: sim.sandbox.wechat.appId, state: "a.b" })}`, { redirect: "manual" });
    assert.equal(badState.status, 400);
  });

  it("the authorize page refuses a redirect_uri outside the official account's registered domain (10003)", async () => {
    const ask = (redirectUri: string) =>
      fetch(`${sim.url}/connect/oauth2/authorize?${new URLSearchParams({ appid: sim.sandbox.wechat.appId, redirect_uri: redirectUri, response_type: "code", scope: "snsapi_base" })}`, { redirect: "manual" });
    assert.equal((await ask("https://pay.merchant.example/cb")).status, 302, "a subdomain of the registered domain");
    for (const uri of ["https://evil.example/cb", "https://merchant.example.evil.example/cb"]) {
      const refused = await ask(uri);
      assert.equal(refused.status, 400, uri);
      assert.match(await refused.text(), /10003 redirect_uri域名与后台配置不一致/, uri);
    }
  });
});

describe("WeChat simulator: JSAPI orders and the WeixinJSBridge stand-in", () => {
  async function jsapiOrder(): Promise<{ orderId: string; params: Record<string, string> }> {
    const openid = String((await accessToken({ code: await oauthCode() })).openid);
    const orderId = newOrderId();
    const output = await client().transactions_jsapi({ ...trade(orderId), payer: { openid } });
    assert.equal(output.status, 200, JSON.stringify(output));
    return { orderId, params: output.data as Record<string, string> };
  }
  const bridge = (action: string, params: object) => fetch(`${sim.url}/sim/wechat/jsapi/${action}`, { method: "POST", body: JSON.stringify(params) });

  it("refuses a JSAPI order for an openid WeChat never gave this appid: 400 PARAM_ERROR", async () => {
    const output = await client().transactions_jsapi({ ...trade(), payer: { openid: "o_stranger_of_another_app_0000" } });
    assert.equal(output.status, 400);
    assert.equal(output.error.code, "PARAM_ERROR");
  });

  it("takes the SDK's JS parameters (paySign over appId, timeStamp, nonceStr, package) and pays the trade", async () => {
    const { orderId, params } = await jsapiOrder();
    assert.equal(params.signType, "RSA");
    const check = await bridge("check", params);
    assert.deepEqual(await check.json(), { ok: true, amount: "1.00", description: "Gas quota top-up" });
    assert.deepEqual(await (await bridge("pay", params)).json(), { ok: true });
    assert.equal(sim.wechat.trade(orderId)?.status, "paid");
    assert.equal((await bridge("pay", params)).status, 400, "a paid order cannot be paid again");
  });

  it("refuses a tampered paySign, a paySign by another key, another appId, and an unknown prepay_id; nothing is paid", async () => {
    const { orderId, params } = await jsapiOrder();
    const signWith = (key: Buffer | string, p: Record<string, string>) =>
      createSign("RSA-SHA256").update(`${p.appId}\n${p.timeStamp}\n${p.nonceStr}\n${p.package}\n`).sign(key, "base64");
    const tampered = { ...params, paySign: `${params.paySign!.slice(0, -4)}AAA=` };
    const otherKey = { ...params, paySign: signWith(impostorKey(), params) };
    const otherApp: Record<string, string> = { ...params, appId: "wx0000000000000000" };
    otherApp.paySign = signWith(sim.sandbox.wechat.merchantPrivateKey, otherApp);
    const unknown: Record<string, string> = { ...params, package: "prepay_id=wx_nothing" };
    unknown.paySign = signWith(sim.sandbox.wechat.merchantPrivateKey, unknown);
    const changedAmountNonce = { ...params, nonceStr: "another" };
    for (const [what, p] of Object.entries({ tampered, otherKey, otherApp, unknown, changedAmountNonce })) {
      const answer = await bridge("pay", p);
      assert.equal(answer.status, 400, what);
      assert.equal(((await answer.json()) as { ok: boolean }).ok, false, what);
    }
    assert.equal(sim.wechat.trade(orderId)?.status, "pending");
  });

  it("serves the bridge script, which defines WeixinJSBridge and fires WeixinJSBridgeReady", async () => {
    const script = await fetch(`${sim.url}/sim/wechat/jsbridge.js`);
    assert.match(script.headers.get("content-type")!, /javascript/);
    const text = await script.text();
    assert.match(text, /window\.WeixinJSBridge = \{/);
    assert.match(text, /WeixinJSBridgeReady/);
    assert.match(text, /get_brand_wcpay_request:ok/);
  });
});

describe("Alipay simulator: 手机网站支付 (alipay.trade.wap.pay)", () => {
  const sdk = (privateKey = sim.sandbox.alipay.merchantPrivateKey) =>
    new AlipaySdk({ appId: sim.sandbox.alipay.appId, privateKey, alipayPublicKey: sim.sandbox.alipay.alipayPublicKey, gateway: `${sim.url}/alipay/gateway.do` });
  const wapUrl = (product: string, privateKey?: string) =>
    sdk(privateKey).pageExecute("alipay.trade.wap.pay", "GET", {
      bizContent: { out_trade_no: newOrderId(), total_amount: "1.00", subject: "Gas quota top-up", product_code: product, quit_url: "https://merchant.example/quit" },
      returnUrl: "https://merchant.example/back",
    });

  it("opens the phone cashier for a signed QUICK_WAP_WAY request", async () => {
    const response = await fetch(wapUrl("QUICK_WAP_WAY"), { redirect: "manual" });
    assert.equal(response.status, 303);
    const cashier = await (await fetch(new URL(response.headers.get("location")!, sim.url))).text();
    assert.match(cashier, /手机网站支付/);
    assert.match(cashier, /value="quit">Cancel/);
  });

  it("refuses a request signed with another key (invalid-signature) and the page-pay product (INVALID_PARAMETER)", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    const forged = await fetch(wapUrl("QUICK_WAP_WAY", other), { redirect: "manual" });
    assert.equal(forged.status, 400);
    assert.match(await forged.text(), /invalid-signature/);
    const wrongProduct = await fetch(wapUrl("FAST_INSTANT_TRADE_PAY"), { redirect: "manual" });
    assert.equal(wrongProduct.status, 400);
    assert.match(await wrongProduct.text(), /INVALID_PARAMETER/);
  });
});
