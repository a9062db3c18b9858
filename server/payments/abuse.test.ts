/**
 * The unauthenticated payment endpoints under abuse, with the real SDKs against the simulator: top-up orders are
 * rate-limited per client IP and per account (each is a real gateway trade), money endpoints take JSON only,
 * forged callbacks are kept small and only for a retention period, a client IP that keeps sending them is refused
 * unread while the gateway's own notifications still credit, and the public account view shows no operator memo.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type DatabaseKind, testedDatabaseKinds } from "../../devtools/testing/databases";
import { adjust } from "../ledger/ledger";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { UNVERIFIED_BODY_BYTES, purgeUnverifiedCallbacks } from "./callbacks";

const account = (n: number) => `0x${n.toString(16).padStart(40, "0")}`;

for (const kind of testedDatabaseKinds() as DatabaseKind[]) {
  describe(`the payment endpoints under abuse [${kind}]`, () => {
    let stack: Stack;
    before(async () => {
      stack = await startPaymentsStack(kind, { orderRateLimits: { perIp: 3, perAccount: 2 }, unverifiedCallbacksPerIpPerMinute: 5, trustProxy: 1 });
    });
    after(async () => {
      await stack?.close();
    });
    const order = (acct: string, ip: string) => stack.request("POST", "/v1/orders", { account: acct, amountFen: 500, provider: "wechat" }, { "x-forwarded-for": ip });
    const ordersOf = async (acct: string) => (await stack.db.query("SELECT 1 FROM orders WHERE account = $1", [acct])).rows.length;

    it("creating orders is limited per account and per client IP, 429 with Retry-After; a refused one reaches no gateway", async () => {
      const a = account(0xa1);
      const b = account(0xb1);
      assert.equal((await order(a, "198.51.100.1")).status, 201);
      assert.equal((await order(a, "198.51.100.1")).status, 201);
      const byAccount = await order(a, "198.51.100.2");
      assert.equal(byAccount.status, 429, byAccount.text);
      assert.equal(byAccount.body.type, "rate_limited");
      assert.equal(byAccount.body.scope, "account");
      assert.ok(Number(byAccount.headers.get("retry-after")) >= 1);
      assert.equal(await ordersOf(a), 2);

      assert.equal((await order(b, "198.51.100.1")).status, 201);
      const byIp = await order(account(0xb2), "198.51.100.1");
      assert.equal(byIp.status, 429);
      assert.equal(byIp.body.scope, "ip");
      assert.equal(await ordersOf(account(0xb2)), 0, "nothing created for a refused order");
      assert.equal((await order(account(0xb3), "203.0.113.9")).status, 201, "another client is served");
    });

    it("money endpoints take JSON only: a text/plain or form body answers 415 and creates nothing", async () => {
      const acct = account(0xc1);
      const body = JSON.stringify({ account: acct, amountFen: 500, provider: "wechat" });
      for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
        const answer = await stack.request("POST", "/v1/orders", body, { "content-type": type, "x-forwarded-for": "203.0.113.20" });
        assert.equal(answer.status, 415, type);
        assert.equal(answer.body.type, "unsupported_media_type");
      }
      assert.equal(await ordersOf(acct), 0);
      const refund = await stack.request("POST", "/v1/refunds", JSON.stringify({ orderId: `fp${"0".repeat(24)}` }), { "content-type": "text/plain", authorization: `Bearer ${ADMIN_TOKEN}` });
      assert.equal(refund.status, 415);
    });

    it("a forged callback is kept with 4 KiB of its body and a few headers, and deleted after the retention; verified ones stay in full", async () => {
      const junk = "x".repeat(50_000);
      const headers: Record<string, string> = { "content-type": "application/json", "x-forwarded-for": "198.51.100.60", "wechatpay-serial": "nope", cookie: "secret=1", "x-junk": "y".repeat(2_000) };
      const forged = await stack.request("POST", "/v1/payments/wechat/notify", junk, headers);
      assert.equal(forged.status, 500, "WeChat Pay's failure reply");
      assert.equal(forged.body.code, "FAIL");
      const { rows } = await stack.db.query<{ id: bigint; raw_body: string; headers: Record<string, string>; verified: boolean }>(
        "SELECT id, raw_body, headers, verified FROM payment_callbacks WHERE NOT verified ORDER BY id DESC LIMIT 1",
      );
      const row = rows[0]!;
      assert.equal(row.verified, false);
      assert.ok(Buffer.byteLength(row.raw_body) <= UNVERIFIED_BODY_BYTES + 64, `kept ${Buffer.byteLength(row.raw_body)} bytes`);
      assert.match(row.raw_body, /\[50000 bytes, truncated\]$/);
      assert.equal(row.headers["wechatpay-serial"], "nope");
      assert.equal(row.headers.cookie, undefined, "only the headers that explain a failure are kept");
      assert.equal(row.headers["x-junk"], undefined);

      // a real payment's callback, verified, kept whole
      const paid = await stack.request("POST", "/v1/orders", { account: account(0xd1), amountFen: 700, provider: "wechat" }, { "x-forwarded-for": "203.0.113.61" });
      await payOnPayerPage("wechat", paid.body.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${paid.body.id}`)).body.status === "paid", 10_000, "the payment");
      const before = await stack.db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM payment_callbacks WHERE verified");
      const deleted = await purgeUnverifiedCallbacks(stack.db, { retentionHours: stack.config.callbacks.unverifiedRetentionHours, now: new Date(Date.now() + (stack.config.callbacks.unverifiedRetentionHours + 1) * 3_600_000) });
      assert.ok(deleted >= 1);
      assert.equal((await stack.db.query("SELECT 1 FROM payment_callbacks WHERE id = $1", [row.id])).rows.length, 0);
      const afterwards = await stack.db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM payment_callbacks WHERE verified");
      assert.equal(afterwards.rows[0]!.n, before.rows[0]!.n, "verified callbacks are kept");
    });

    it("a client IP sending callbacks that do not verify is answered 429 unread after the limit; the gateway's notifications still credit", async () => {
      const count = async () => (await stack.db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM payment_callbacks")).rows[0]!.n;
      const forge = () => stack.request("POST", "/v1/payments/alipay/notify", "out_trade_no=fp1&sign=forged", { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": "198.51.100.70" });
      for (let i = 0; i < 5; i++) assert.equal((await forge()).text, "fail");
      const stored = await count();
      const refused = await forge();
      assert.equal(refused.status, 429);
      assert.equal(refused.text, "fail", "Alipay's failure reply");
      assert.equal(await count(), stored, "refused unread: nothing stored");

      const paid = await stack.request("POST", "/v1/orders", { account: account(0xe1), amountFen: 900, provider: "alipay" }, { "x-forwarded-for": "203.0.113.71" });
      await payOnPayerPage("alipay", paid.body.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${paid.body.id}`)).body.status === "paid", 10_000, "the payment from the gateway's address");
    });

    it("GET /v1/accounts/:address shows amounts, kinds, times and order ids, never an operator's memo or a reference", async () => {
      const acct = account(0xf1);
      const paid = await stack.request("POST", "/v1/orders", { account: acct, amountFen: 1_000, provider: "wechat" }, { "x-forwarded-for": "203.0.113.80" });
      await payOnPayerPage("wechat", paid.body.qrCode);
      await eventually(async () => (await stack.request("GET", `/v1/orders/${paid.body.id}`)).body.status === "paid", 10_000, "the payment");
      await stack.db.transaction((tx) => adjust(tx, { account: acct, adjustmentId: "adj-test-memo", amountFen: -100n, reason: "refund promised by phone to Zhang San, 138-0000-0000" }));
      const view = await stack.request("GET", `/v1/accounts/${acct}`);
      assert.equal(view.status, 200);
      assert.doesNotMatch(view.text, /Zhang San|138-0000|adj-test-memo|memo|reference/);
      assert.deepEqual(
        view.body.entries.map((e: Record<string, unknown>) => Object.keys(e).sort()),
        [
          ["availableDeltaFen", "createdAt", "heldDeltaFen", "kind"],
          ["availableDeltaFen", "createdAt", "heldDeltaFen", "kind", "orderId"],
        ],
      );
      assert.equal(view.body.entries[1].orderId, paid.body.id);
    });
  });
}
