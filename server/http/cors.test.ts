/** Which endpoints a page on another origin may call: the public API yes, admin endpoints and callbacks never. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ADMIN_TOKEN, type Stack, startPaymentsStack } from "../../devtools/testing/paymentsStack";

const ORIGIN = "https://dapp.example";
const preflight = (url: string, headers = "content-type") =>
  fetch(url, { method: "OPTIONS", headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": headers } });

describe("cross-origin access", () => {
  let stack: Stack;
  before(async () => {
    stack = await startPaymentsStack("pglite");
  });
  after(async () => {
    await stack?.close();
  });

  it("a page on another origin may create an order and read it and the account: preflight answered, answers readable, no credentials", async () => {
    const pre = await preflight(`${stack.url}/v1/orders`);
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    assert.equal(pre.headers.get("access-control-allow-credentials"), null);
    const account = `0x${"ab".repeat(20)}`;
    const created = await fetch(`${stack.url}/v1/orders`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json" },
      body: JSON.stringify({ account, amountFen: 500, provider: "wechat" }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    assert.equal(created.headers.get("access-control-allow-origin"), "*");
    const { id } = (await created.json()) as { id: string };
    for (const path of [`/v1/orders/${id}`, `/v1/accounts/${account}`, "/v1/config"]) {
      const read = await fetch(`${stack.url}${path}`, { headers: { origin: ORIGIN } });
      assert.equal(read.status, 200, path);
      assert.equal(read.headers.get("access-control-allow-origin"), "*", path);
    }
    const bad = await fetch(`${stack.url}/v1/orders`, { method: "POST", headers: { origin: ORIGIN, "content-type": "application/json" }, body: "{}" });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get("access-control-allow-origin"), "*", "a refusal is readable by the page");
  });

  it("admin endpoints and the gateways' callbacks carry no CORS headers, preflight or not", async () => {
    for (const path of ["/admin/orders", "/admin/api-keys", "/v1/refunds", "/v1/payments/wechat/notify", "/v1/payments/alipay/notify"]) {
      const pre = await preflight(`${stack.url}${path}`, "authorization,content-type");
      assert.equal(pre.headers.get("access-control-allow-origin"), null, `preflight ${path}`);
    }
    const admin = await fetch(`${stack.url}/admin/orders`, { headers: { origin: ORIGIN, authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(admin.status, 200);
    assert.equal(admin.headers.get("access-control-allow-origin"), null);
  });
});
