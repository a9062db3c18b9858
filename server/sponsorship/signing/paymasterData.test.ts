import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Hex, hexToBytes, keccak256, parseSignature, recoverAddress, size, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  InvalidPaymasterDataError,
  PAYMASTER_DATA_LENGTH,
  STUB_SIGNATURE,
  type GetPaymasterHashParameters,
  type SponsoredUserOperation,
  decodePaymasterData,
  encodePaymasterData,
  encodeStubPaymasterData,
  getPaymasterHash,
  PAYMASTER_SIGNATURE_MAGIC,
  encodePaymasterDataV09,
  encodePaymasterSignatureSuffix,
  getPaymasterHashV09,
  initCodeForHash,
  isEip7702Marker,
} from "./paymasterData";

const SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

const op: SponsoredUserOperation = {
  sender: "0x1111111111111111111111111111111111111111",
  nonce: 5n,
  factory: "0x91E60e0613810449d098b0b5Ec8b51A0FE8c8985",
  factoryData: "0xabcd",
  callData: "0xb61d27f6",
  callGasLimit: 100_000n,
  verificationGasLimit: 400_000n,
  preVerificationGas: 50_000n,
  maxFeePerGas: 3_000_000_000n,
  maxPriorityFeePerGas: 1_000_000_000n,
  paymasterVerificationGasLimit: 60_000n,
  paymasterPostOpGasLimit: 0n,
};
const base: GetPaymasterHashParameters = {
  userOperation: op,
  chainId: 8453,
  paymaster: "0x2222222222222222222222222222222222222222",
  entryPoint: "0x0000000071727De22E5E9d8BAf0edAc6f37da032",
  validUntil: 1_900_000_000,
  validAfter: 0,
};

describe("paymasterData encoding", () => {
  it("lays out validUntil ‖ validAfter ‖ signature in 77 bytes and decodes back", async () => {
    const signature = await privateKeyToAccount(generatePrivateKey()).signMessage({ message: { raw: keccak256("0x01") } });
    const data = encodePaymasterData({ validUntil: 0xa1b2c3d4e5f6, validAfter: 7, signature });
    assert.equal(size(data), PAYMASTER_DATA_LENGTH);
    assert.equal(data.slice(0, 26), "0xa1b2c3d4e5f6000000000007");
    assert.deepEqual(decodePaymasterData(data), { validUntil: 0xa1b2c3d4e5f6, validAfter: 7, signature });
  });

  it("refuses timestamps outside uint48 and signatures that are not 65 bytes", () => {
    const signature = STUB_SIGNATURE;
    for (const validUntil of [-1, 2 ** 48, 1.5, Number.NaN]) {
      assert.throws(() => encodePaymasterData({ validUntil, validAfter: 0, signature }), InvalidPaymasterDataError);
    }
    assert.throws(() => encodePaymasterData({ validUntil: 0, validAfter: 0, signature: toHex(1, { size: 64 }) }), /65 bytes: got 64/);
  });

  it("refuses to decode data of the wrong length", () => {
    assert.throws(() => decodePaymasterData("0x"), /must be 77 bytes: got 0/);
    assert.throws(() => decodePaymasterData(toHex(0, { size: 78 })), /got 78/);
  });
});

describe("the stub paymasterData", () => {
  it("has the final length and no zero bytes in its signature, so it costs what the real data costs", () => {
    const stub = encodeStubPaymasterData({ validUntil: base.validUntil, validAfter: 0 });
    assert.equal(size(stub), PAYMASTER_DATA_LENGTH);
    assert.ok(hexToBytes(STUB_SIGNATURE).every((b) => b !== 0));
  });

  it("is a well-formed low-s signature that recovers to an address, so validation takes the real path", async () => {
    const { s, v } = parseSignature(STUB_SIGNATURE);
    assert.ok(BigInt(s) <= SECP256K1_HALF_N, "low s");
    assert.ok(v === 27n || v === 28n);
    const recovered = await recoverAddress({ hash: keccak256("0x1234"), signature: STUB_SIGNATURE });
    assert.match(recovered, /^0x[0-9a-fA-F]{40}$/);
  });
});

describe("getPaymasterHash", () => {
  const hashOf = (change: Partial<typeof base> & { op?: Partial<SponsoredUserOperation> }): Hex => {
    const { op: opChange, ...rest } = change;
    return getPaymasterHash({ ...base, ...rest, userOperation: { ...op, ...opChange } });
  };

  it("changes with every bound field", () => {
    const reference = hashOf({});
    const variants: Record<string, Hex> = {
      chainId: hashOf({ chainId: 8454 }),
      paymaster: hashOf({ paymaster: "0x2222222222222222222222222222222222222223" }),
      entryPoint: hashOf({ entryPoint: "0x0000000071727de22e5e9d8baf0edac6f37da033" }),
      validUntil: hashOf({ validUntil: base.validUntil + 1 }),
      validAfter: hashOf({ validAfter: 1 }),
      sender: hashOf({ op: { sender: "0x1111111111111111111111111111111111111112" } }),
      nonce: hashOf({ op: { nonce: 6n } }),
      factory: hashOf({ op: { factory: undefined, factoryData: undefined } }),
      factoryData: hashOf({ op: { factoryData: "0xabce" } }),
      callData: hashOf({ op: { callData: "0xb61d27f7" } }),
      callGasLimit: hashOf({ op: { callGasLimit: 100_001n } }),
      verificationGasLimit: hashOf({ op: { verificationGasLimit: 400_001n } }),
      preVerificationGas: hashOf({ op: { preVerificationGas: 50_001n } }),
      maxFeePerGas: hashOf({ op: { maxFeePerGas: 3_000_000_001n } }),
      maxPriorityFeePerGas: hashOf({ op: { maxPriorityFeePerGas: 1_000_000_001n } }),
      paymasterVerificationGasLimit: hashOf({ op: { paymasterVerificationGasLimit: 60_001n } }),
      paymasterPostOpGasLimit: hashOf({ op: { paymasterPostOpGasLimit: 1n } }),
    };
    for (const [name, hash] of Object.entries(variants)) assert.notEqual(hash, reference, `${name} must change the hash`);
    assert.equal(new Set(Object.values(variants)).size, Object.keys(variants).length, "every change gives a distinct hash");
  });

  it("refuses gas values that do not fit the packed uint128 fields", () => {
    assert.throws(() => hashOf({ op: { callGasLimit: 2n ** 128n } }), /does not fit in uint128/);
    assert.throws(() => hashOf({ op: { maxFeePerGas: -1n } }), /does not fit in uint128/);
  });
});

describe("EntryPoint v0.8 / v0.9 layouts", () => {
  const delegate = "0xe6Cae83BdE06E4c305530e199D7217f42808555B" as const;

  it("recognises the 0x7702 marker in both its forms, and nothing else", () => {
    assert.equal(isEip7702Marker("0x7702"), true);
    assert.equal(isEip7702Marker("0x7702000000000000000000000000000000000000"), true);
    assert.equal(isEip7702Marker("0x7702000000000000000000000000000000000001"), false);
    assert.equal(isEip7702Marker(op.factory), false);
    assert.equal(isEip7702Marker(undefined), false);
  });

  it("hashes delegate ‖ factoryData in place of a marker initCode, and only when a delegate is given", () => {
    const marked = { ...op, factory: "0x7702" as Hex, factoryData: "0xabcd" as Hex };
    assert.equal(initCodeForHash(marked, delegate), `${delegate}abcd`);
    assert.equal(initCodeForHash({ ...marked, factoryData: "0x" }, delegate), delegate);
    assert.equal(initCodeForHash(marked), "0x7702abcd", "v0.7 knows no marker");
    assert.equal(initCodeForHash(op, delegate), `${op.factory}abcd`, "a real factory is never replaced");
    const hash = (p: Partial<GetPaymasterHashParameters>) =>
      getPaymasterHash({ userOperation: marked, chainId: 1, paymaster: op.sender, entryPoint: op.sender, validUntil: 0, validAfter: 0, ...p });
    assert.notEqual(hash({ eip7702Delegate: delegate }), hash({}));
    assert.notEqual(hash({ eip7702Delegate: delegate }), hash({ eip7702Delegate: "0xa46cc63eBF4Bd77888AA327837d20b23A63a56B5" }));
  });

  it("v0.9: paymasterData is the 12-byte window; the suffix is signature ‖ 0x0041 ‖ magic; the hash binds the paymaster", () => {
    assert.equal(encodePaymasterDataV09({ validUntil: 1, validAfter: 2 }), "0x000000000001000000000002");
    assert.equal(encodePaymasterSignatureSuffix(STUB_SIGNATURE), `${STUB_SIGNATURE}0041${PAYMASTER_SIGNATURE_MAGIC.slice(2)}`);
    assert.throws(() => encodePaymasterSignatureSuffix("0x1234"), /signature must be 65 bytes: got 2/);
    assert.throws(() => encodePaymasterDataV09({ validUntil: 2 ** 48, validAfter: 0 }), /validUntil must be an integer in \[0, 2\^48\)/);
    const userOpHash = keccak256("0x01");
    assert.notEqual(getPaymasterHashV09({ userOpHash, paymaster: op.sender }), getPaymasterHashV09({ userOpHash, paymaster: delegate }));
  });
});
