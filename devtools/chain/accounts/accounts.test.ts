/**
 * The vendored account contracts, without a chain: their bytes put each where it is declared (and where
 * permissionless looks for it; the end-to-end proof is server/sponsorship/accounts.test.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SAFE_MULTI_SEND_CALL_ONLY } from "../../../server/sponsorship/callData";
import { ACCOUNT_FAMILIES, vendoredAddress } from "./index";

describe("vendored account contracts", () => {
  it("each one's vendored bytes deploy it to the address it is declared at", () => {
    for (const family of ACCOUNT_FAMILIES) {
      for (const contract of family.contracts) assert.equal(vendoredAddress(contract), contract.address, `${family.name}: ${contract.label}`);
    }
  });

  it("no two share an address", () => {
    const addresses = ACCOUNT_FAMILIES.flatMap((f) => [...(f.placed ?? []), ...f.contracts].map((c) => c.address.toLowerCase()));
    assert.equal(new Set(addresses).size, addresses.length);
  });

  it("the vendored MultiSendCallOnly is one the policy's Safe batch decoding trusts", () => {
    const multiSend = ACCOUNT_FAMILIES.flatMap((f) => f.contracts).find((c) => c.label === "MultiSendCallOnly 1.4.1");
    assert.ok(multiSend && SAFE_MULTI_SEND_CALL_ONLY.includes(multiSend.address.toLowerCase()));
  });
});
