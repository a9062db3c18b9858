/** A server without CHAINS and a signer still answers its sponsorship endpoints: with 503s that say why. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ADMIN_TOKEN, type Stack, startPaymentsStack } from "../../devtools/testing/paymentsStack";
import { SPONSOR_ERROR_CODES } from "./errors";

describe("sponsorship not configured", () => {
  let stack: Stack;
  before(async () => {
    stack = await startPaymentsStack("pglite");
  });
  after(async () => {
    await stack?.close();
  });

  it("POST /rpc answers a JSON-RPC unavailable error with HTTP 503, naming what to set", async () => {
    const response = await fetch(`${stack.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [] }),
    });
    assert.equal(response.status, 503);
    const body = (await response.json()) as { jsonrpc: string; id: null; error: { code: number; message: string } };
    assert.deepEqual(body, { jsonrpc: "2.0", id: null, error: { code: SPONSOR_ERROR_CODES.unavailable, message: "sponsorship is not configured on this server (set CHAINS and SIGNER_PRIVATE_KEY)" } });
  });

  it("POST /v1/sponsorships with a valid key answers 503 sponsorship_off, and /readyz says sponsorship is off", async () => {
    const created = await fetch(`${stack.url}/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "off-test" }),
    });
    assert.equal(created.status, 201);
    const { key } = (await created.json()) as { key: string };
    const response = await fetch(`${stack.url}/v1/sponsorships`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ userOp: {}, entryPoint: "0x0000000071727De22E5E9d8BAf0edAc6f37da032", chainId: 1 }),
    });
    assert.equal(response.status, 503);
    const problem = (await response.json()) as { type: string; detail: string };
    assert.equal(problem.type, "sponsorship_off");
    assert.match(problem.detail, /set CHAINS and SIGNER_PRIVATE_KEY/);
    const ready = (await (await fetch(`${stack.url}/readyz`)).json()) as { sponsorship: string };
    assert.equal(ready.sponsorship, "off");
  });
});
