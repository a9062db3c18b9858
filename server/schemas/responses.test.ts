/**
 * The answers the service really sends parse with the response schemas the OpenAPI document is generated from:
 * a payments stack (the gateway simulator, a paid order, a refund, an adjustment, an API key) and every admin list.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { z } from "zod";
import { createTestDatabase } from "../../devtools/testing/databases";
import { ADMIN_TOKEN, type Stack, eventually, payOnPayerPage, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { ADMIN_TOKEN as SPONSOR_ADMIN_TOKEN, type SponsorStack, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { buildUserOperation, newSimpleAccount, userOpJson } from "../../devtools/userOperations";
import { ENTRY_POINT_V07 } from "../chain/addresses";
import { accountSchemaOut } from "./accounts";
import {
  accountLedgerSchema,
  adjustmentSchema,
  adminAccountPage,
  adminActionPage,
  adminHoldPage,
  adminOrderDetailSchema,
  adminOrderPage,
  chainAdminStatusList,
  paymentCallbackPage,
  reconciliationRunPage,
  refundPage,
  settlementPage,
  statsSchema,
} from "./admin";
import { healthSchema, publicConfigSchema, readySchema } from "./common";
import { orderSchema, refundSchema } from "./payments";
import { apiKeyListSchema, apiKeySchema, createdApiKeySchema, quoteSchema, sponsorshipSchema } from "./sponsorship";

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** The answer's body, after asserting its status, that `schema` accepts it, and that it has no member the schema does not describe. */
type Res = { status: number; body: unknown; text: string };

async function fetched(url: string, init: RequestInit = {}): Promise<Res> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, text };
}

function answered<T extends z.ZodType>(schema: T, res: Res, status = 200): z.output<T> {
  assert.equal(res.status, status, res.text);
  const parsed = schema.safeParse(res.body);
  assert.ok(parsed.success, `${res.text.slice(0, 300)}\n→ ${parsed.success ? "" : parsed.error.message}`);
  // the response schemas do not transform, and drop unknown members: what is left must be the whole answer
  assert.deepEqual(parsed.data, res.body);
  return parsed.data;
}

describe("the answers parse with their response schemas", () => {
  let stack: Stack;
  let orderId: string;
  const account = `0x${randomBytes(20).toString("hex")}`;
  before(async () => {
    stack = await startPaymentsStack("pglite");
    const created = await stack.request("POST", "/v1/orders", { account, amountFen: 2000, provider: "wechat", idempotencyKey: "schemas-1" });
    orderId = answered(orderSchema, created, 201).id;
    await payOnPayerPage("wechat", created.body.qrCode);
    await eventually(async () => (await stack.request("GET", `/v1/orders/${orderId}`)).body.status === "paid", 10_000, "the order to be paid");
  });
  after(async () => {
    await stack?.close();
  });

  it("orders, accounts, the public configuration and the probes", async () => {
    assert.equal(answered(orderSchema, await stack.request("GET", `/v1/orders/${orderId}`)).status, "paid");
    assert.equal(answered(accountSchemaOut, await stack.request("GET", `/v1/accounts/${account}`)).availableFen, "2000");
    answered(publicConfigSchema, await stack.request("GET", "/v1/config"));
    answered(healthSchema, await stack.request("GET", "/healthz"));
    answered(readySchema, await stack.request("GET", "/readyz"));
  });

  it("refunds and adjustments", async () => {
    const refund = answered(refundSchema, await stack.request("POST", "/v1/refunds", { orderId, amountFen: 300 }, admin), 201);
    answered(refundSchema, await stack.request("GET", `/v1/refunds/${refund.id}`, undefined, admin));
    answered(adjustmentSchema, await stack.request("POST", "/admin/adjustments", { account, amountFen: -100, reason: "schema check" }, admin), 201);
  });

  it("API keys", async () => {
    const created = answered(createdApiKeySchema, await stack.request("POST", "/admin/api-keys", { name: "schemas", policy: { maxChargePerOpFen: "500", allowedSenders: [account] } }, admin), 201);
    answered(apiKeySchema, await stack.request("PUT", `/admin/api-keys/${created.id}/policy`, { senderSpendLimit: { fen: 1000, periodSeconds: 86_400 } }, admin));
    answered(apiKeyListSchema, await stack.request("GET", "/admin/api-keys", undefined, admin));
  });

  it("every admin list and view", async () => {
    const get = (path: string) => stack.request("GET", path, undefined, admin);
    assert.ok(answered(adminOrderPage, await get("/admin/orders")).items.length > 0);
    const detail = answered(adminOrderDetailSchema, await get(`/admin/orders/${orderId}?raw=1`));
    assert.ok(detail.callbacks.length > 0 && detail.refunds.length > 0);
    assert.ok(answered(paymentCallbackPage, await get("/admin/callbacks")).items.length > 0);
    answered(adminAccountPage, await get("/admin/accounts"));
    assert.ok(answered(accountLedgerSchema, await get(`/admin/accounts/${account}/ledger`)).items.length >= 3);
    answered(adminHoldPage, await get("/admin/holds"));
    answered(settlementPage, await get("/admin/settlements"));
    assert.ok(answered(refundPage, await get("/admin/refunds")).items.length > 0);
    answered(reconciliationRunPage, await get("/admin/reconciliation-runs"));
    assert.ok(answered(adminActionPage, await get("/admin/audit")).items.length > 0);
    answered(chainAdminStatusList, await get("/admin/chains"));
    answered(statsSchema, await get("/admin/stats"));
  });
});

describe("the sponsorship answers parse with their response schemas", () => {
  let stack: SponsorStack;
  let drop: () => Promise<void>;
  const admin = { authorization: `Bearer ${SPONSOR_ADMIN_TOKEN}` };
  before(async () => {
    const database = await createTestDatabase("pglite");
    drop = database.drop;
    stack = await startSponsorStack({ db: database.db });
  });
  after(async () => {
    await stack?.stop();
    await drop?.();
  });

  it("a REST sponsorship, a quote, the chain's admin status, its hold and readiness", async () => {
    const account = await newSimpleAccount(stack.chain.client);
    await stack.fund(account.address, 1_000_000n);
    const op = await buildUserOperation(stack.chain.client, account, { calls: [{ to: stack.chain.paymaster, data: "0x" }], paymaster: stack.chain.paymaster });
    const userOp = userOpJson(op);
    const sponsored = await fetched(`${stack.url}/v1/sponsorships`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": stack.apiKey },
      body: JSON.stringify({ chainId: stack.chain.anvil.chainId, entryPoint: ENTRY_POINT_V07, userOp }),
    });
    answered(sponsorshipSchema, sponsored, 201);
    answered(quoteSchema, await fetched(`${stack.url}/v1/quote?chainId=${stack.chain.anvil.chainId}&gas=100000`));
    const chains = answered(chainAdminStatusList, await fetched(`${stack.url}/admin/chains`, { headers: admin }));
    assert.equal(chains.chains.length, 1);
    assert.equal(answered(adminHoldPage, await fetched(`${stack.url}/admin/holds`, { headers: admin })).items.length, 1);
    answered(readySchema, await fetched(`${stack.url}/readyz`));
    answered(publicConfigSchema, await fetched(`${stack.url}/v1/config`));
  });
});
