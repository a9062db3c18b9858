import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fiatPaymasterArtifact } from "./artifacts";
import { fiatPaymasterAbi } from "./fiatPaymasterAbi";

describe("the committed FiatPaymaster ABI", () => {
  it("is the compiled contract's (run `npm run abi` after changing the contract)", () => {
    assert.deepEqual(fiatPaymasterAbi, fiatPaymasterArtifact().abi);
  });
});
