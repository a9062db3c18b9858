import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keccak256, parseSignature, recoverMessageAddress, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { SignerKeyError, createLocalSigner } from "./signer";

const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

describe("the local paymaster signer", () => {
  it("uses the native secp256k1 binding and signs exactly as viem does", async () => {
    const key = generatePrivateKey();
    const native = createLocalSigner(key);
    const viem = createLocalSigner(key, { native: false });
    assert.equal(native.implementation, "native");
    assert.equal(viem.implementation, "viem");
    assert.equal(native.address, privateKeyToAccount(key).address);
    for (let i = 0; i < 20; i++) {
      const hash = keccak256(toHex(`hash ${i}`));
      const signature = await native.signHash(hash);
      assert.equal(signature, await viem.signHash(hash), "RFC 6979: the same bytes");
      assert.equal(await recoverMessageAddress({ message: { raw: hash }, signature }), native.address);
      const { s, v } = parseSignature(signature);
      assert.ok(BigInt(s) <= HALF_N, "low s");
      assert.ok(v === 27n || v === 28n);
    }
  });

  it("refuses malformed keys without echoing them", () => {
    for (const bad of ["0x1234", `0x${"00".repeat(32)}`, `0x${"ff".repeat(32)}`, "not hex"]) {
      assert.throws(
        () => createLocalSigner(bad as `0x${string}`),
        (e: unknown) => e instanceof SignerKeyError && !e.message.includes(bad.slice(2, 10) || "zz"),
      );
    }
  });
});
