/**
 * The sponsorship signer: signs the paymaster hash with the EIP-191 prefix, as FiatPaymaster verifies it.
 * Behind a small interface so a KMS can be plugged in. The local implementation uses the `secp256k1` package's
 * prebuilt native binding (about 12× faster than pure JS), loaded through its documented entry point, and falls
 * back to viem when the binding is missing.
 */
import { type Address, type Hex, hexToBytes, isHex, toBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { keccak256Buffer } from "./hashing";

export interface PaymasterSigner {
  readonly address: Address;
  /** r ‖ s ‖ v (65 bytes, v = 27/28, low s) over keccak256("\x19Ethereum Signed Message:\n32" ‖ hash). */
  signHash(hash: Hex): Promise<Hex>;
}

type NativeSecp256k1 = {
  ecdsaSign(message: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recid: number };
  privateKeyVerify(privateKey: Uint8Array): boolean;
};

function loadNative(): NativeSecp256k1 | undefined {
  try {
    // the package's documented entry point: its native binding, or (when the addon cannot load) pure-JS elliptic,
    // which is slower than viem — so that fallback is not used (the package is pinned; signer.test.ts checks that
    // this machine gets the binding)
    const secp256k1 = require("secp256k1") as NativeSecp256k1;
    return require.cache[require.resolve("secp256k1/elliptic")] ? undefined : secp256k1;
  } catch {
    return undefined;
  }
}

const PREFIX = toBytes("\x19Ethereum Signed Message:\n32");

export class SignerKeyError extends Error {
  override name = "SignerKeyError";
}

/** A signer holding `privateKey` in memory; `native: false` forces viem's pure-JS signing. */
export function createLocalSigner(privateKey: Hex, options: { native?: boolean } = {}): PaymasterSigner & { implementation: "native" | "viem" } {
  if (!isHex(privateKey) || privateKey.length !== 66) throw new SignerKeyError("the signer key must be 32 bytes of hex");
  let account;
  try {
    account = privateKeyToAccount(privateKey);
  } catch {
    throw new SignerKeyError("the signer key is not a valid secp256k1 private key");
  }
  const native = options.native === false ? undefined : loadNative();
  if (!native) {
    return { address: account.address, implementation: "viem", signHash: (hash) => account.signMessage({ message: { raw: hash } }) };
  }
  const key = hexToBytes(privateKey);
  const prefix = Buffer.from(PREFIX);
  return {
    address: account.address,
    implementation: "native",
    signHash: async (hash) => {
      if (!isHex(hash) || hash.length !== 66) throw new SignerKeyError("signHash takes a 32-byte hex hash");
      const digest = keccak256Buffer(Buffer.concat([prefix, Buffer.from(hash.slice(2), "hex")]));
      const { signature, recid } = native.ecdsaSign(digest, key);
      return `0x${Buffer.from(signature).toString("hex")}${(27 + recid).toString(16)}` as Hex;
    },
  };
}
