import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { type Address, type Hex, getAddress, keccak256 } from "viem";
import { getUserOperationHash } from "viem/account-abstraction";
import { keccak256Buffer, keccakImplementation, paymasterHashBuffer, userOperationHashV07 } from "./hashing";
import { type SponsoredUserOperation, getPaymasterHash } from "./paymasterData";

const hex = (bytes: number): Hex => `0x${randomBytes(bytes).toString("hex")}`;
const address = (): Address => getAddress(hex(20));
const uint = (maxBytes: number): bigint => BigInt(hex(1 + (randomBytes(1)[0]! % maxBytes)));

function randomOperation(): SponsoredUserOperation {
  const deploy = randomBytes(1)[0]! % 2 === 0;
  return {
    sender: address(),
    nonce: uint(32),
    factory: deploy ? address() : undefined,
    factoryData: deploy ? hex(randomBytes(1)[0]!) : undefined,
    callData: hex(randomBytes(2).readUInt16BE() % 700),
    callGasLimit: uint(16),
    verificationGasLimit: uint(16),
    preVerificationGas: uint(16),
    maxFeePerGas: uint(16),
    maxPriorityFeePerGas: uint(16),
    paymasterVerificationGasLimit: uint(16),
    paymasterPostOpGasLimit: uint(16),
  };
}

describe("hot-path hashing", () => {
  it("uses the native keccak binding on this machine", () => {
    assert.equal(keccakImplementation, "native");
  });

  it("keccak-256 matches viem's on empty, short and multi-block inputs", () => {
    for (const size of [0, 1, 31, 32, 135, 136, 137, 1000]) {
      const data = randomBytes(size);
      assert.equal(`0x${keccak256Buffer(data).toString("hex")}`, keccak256(data));
    }
  });

  it("the paymaster hash equals the reference getPaymasterHash on 300 random operations", () => {
    for (let i = 0; i < 300; i++) {
      const p = { userOperation: randomOperation(), chainId: Number(uint(6)), paymaster: address(), entryPoint: address(), validUntil: Number(uint(6)), validAfter: Number(uint(5)) };
      assert.equal(`0x${paymasterHashBuffer(p).toString("hex")}`, getPaymasterHash(p));
    }
  });

  it("the userOpHash equals viem's getUserOperationHash for v0.7 on 300 random operations", () => {
    for (let i = 0; i < 300; i++) {
      const op = randomOperation();
      const paymaster = address();
      const paymasterData = hex(77);
      const chainId = Number(uint(6));
      const entryPoint = address();
      const expected = getUserOperationHash({ chainId, entryPointAddress: entryPoint, entryPointVersion: "0.7", userOperation: { ...op, paymaster, paymasterData, signature: "0x" } });
      assert.equal(userOperationHashV07({ userOperation: op, paymaster, paymasterData, chainId, entryPoint }), expected);
    }
  });
});
