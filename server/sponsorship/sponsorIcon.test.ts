/** ERC-7677's `sponsor`: the name, and the icon (an RFC 2397 data URI) when SPONSOR_ICON is set. */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { type SponsorStack, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { ENTRY_POINT_V07 } from "../chain/addresses";

const ICON = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=";

describeWithDatabases("the sponsor's name and icon", (db) => {
  let stack: SponsorStack;
  before(async () => {
    stack = await startSponsorStack({ db: db(), env: { SPONSOR_NAME: "Example DApp", SPONSOR_ICON: ICON } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("the stub answer carries sponsor { name, icon } as configured", async () => {
    const sender = privateKeyToAccount(generatePrivateKey()).address;
    await stack.fund(sender, 100_000n);
    const userOp = { sender, nonce: "0x0", callData: "0x", signature: "0x" };
    const response = await fetch(`${stack.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": stack.apiKey },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [userOp, ENTRY_POINT_V07, "0x7a69", {}] }),
    });
    const body = (await response.json()) as { result?: { sponsor: unknown }; error?: unknown };
    assert.ok(body.result, JSON.stringify(body.error));
    assert.deepEqual(body.result.sponsor, { name: "Example DApp", icon: ICON });
  });
});
