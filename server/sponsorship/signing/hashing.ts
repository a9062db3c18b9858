/**
 * The hashes of the sponsorship hot path, computed on byte buffers with the native keccak-256 of
 * platform/keccak.ts. A signed sponsorship needs about eight keccaks — the
 * paymaster hash, the EIP-191 digest, the userOpHash — and through viem's generic ABI encoder they were the
 * largest cost of a request. `getPaymasterHash` (paymasterData.ts) and viem's `getUserOperationHash` stay the
 * readable references; the tests check these against them on random operations.
 */
import type { Address, Hex } from "viem";
import { getUserOperationHash } from "viem/account-abstraction";
import type { EntryPointVersion } from "../../chain/addresses";
import { keccak256Buffer } from "../../platform/keccak";
import { STUB_SIGNATURE, type SponsoredUserOperation, initCodeForHash } from "./paymasterData";

export { keccak256Buffer, keccakImplementation } from "../../platform/keccak";

const hexBuffer = (hex: string): Buffer => Buffer.from(hex.length % 2 === 0 ? hex.slice(2) : `0${hex.slice(2)}`, "hex");

/** Writes `value` big-endian into the 32-byte word at `offset` (right-aligned to `bytes`). */
function writeUint(target: Buffer, offset: number, value: bigint, bytes = 32): void {
  let v = value;
  for (let end = offset + 32; end > offset + 32 - bytes; end -= 8) {
    target.writeBigUInt64BE(v & 0xffffffffffffffffn, end - 8);
    v >>= 64n;
  }
}

function writeAddress(target: Buffer, offset: number, address: string): void {
  target.write(address.slice(2).toLowerCase(), offset + 12, 20, "hex");
}

function writeUint128Pair(target: Buffer, offset: number, high: bigint, low: bigint): void {
  writeUint(target, offset - 16, high, 16);
  writeUint(target, offset, low, 16);
}

function initCode(op: SponsoredUserOperation, eip7702Delegate?: Address): Buffer {
  if (eip7702Delegate) return hexBuffer(initCodeForHash(op, eip7702Delegate));
  return op.factory ? Buffer.concat([hexBuffer(op.factory), hexBuffer(op.factoryData ?? "0x")]) : Buffer.alloc(0);
}

/**
 * FiatPaymaster.getHash (v0.7) and FiatPaymasterV08.getHash, as getPaymasterHash computes them (13 words,
 * abi.encode); for v0.8 a 0x7702 marker initCode is hashed as `eip7702Delegate` ‖ factoryData.
 */
export function paymasterHashBuffer(p: {
  userOperation: SponsoredUserOperation;
  chainId: number;
  paymaster: Address;
  entryPoint: Address;
  validUntil: number;
  validAfter: number;
  eip7702Delegate?: Address;
}): Buffer {
  const op = p.userOperation;
  const words = Buffer.alloc(13 * 32);
  writeUint(words, 0, BigInt(p.chainId));
  writeAddress(words, 32, p.paymaster);
  writeAddress(words, 64, p.entryPoint);
  writeAddress(words, 96, op.sender);
  writeUint(words, 128, op.nonce);
  keccak256Buffer(initCode(op, p.eip7702Delegate)).copy(words, 160);
  keccak256Buffer(hexBuffer(op.callData)).copy(words, 192);
  writeUint128Pair(words, 224, op.verificationGasLimit, op.callGasLimit);
  writeUint128Pair(words, 256, op.paymasterVerificationGasLimit, op.paymasterPostOpGasLimit);
  writeUint(words, 288, op.preVerificationGas);
  writeUint128Pair(words, 320, op.maxPriorityFeePerGas, op.maxFeePerGas);
  writeUint(words, 352, BigInt(p.validUntil));
  writeUint(words, 384, BigInt(p.validAfter));
  return keccak256Buffer(words);
}

/** The EntryPoint v0.7 userOpHash: keccak(abi.encode(keccak(pack(op)), entryPoint, chainId)). */
export function userOperationHashV07(p: { userOperation: SponsoredUserOperation; paymaster: Address; paymasterData: Hex; chainId: number; entryPoint: Address }): Hex {
  const op = p.userOperation;
  const paymasterAndData = Buffer.alloc(52 + (p.paymasterData.length - 2) / 2);
  paymasterAndData.write(p.paymaster.slice(2), 0, 20, "hex");
  writeUint(paymasterAndData, 20 - 16, op.paymasterVerificationGasLimit, 16);
  writeUint(paymasterAndData, 36 - 16, op.paymasterPostOpGasLimit, 16);
  paymasterAndData.write(p.paymasterData.slice(2), 52, "hex");
  const packed = Buffer.alloc(8 * 32);
  writeAddress(packed, 0, op.sender);
  writeUint(packed, 32, op.nonce);
  keccak256Buffer(initCode(op)).copy(packed, 64);
  keccak256Buffer(hexBuffer(op.callData)).copy(packed, 96);
  writeUint128Pair(packed, 128, op.verificationGasLimit, op.callGasLimit);
  writeUint(packed, 160, op.preVerificationGas);
  writeUint128Pair(packed, 192, op.maxPriorityFeePerGas, op.maxFeePerGas);
  keccak256Buffer(paymasterAndData).copy(packed, 224);
  const outer = Buffer.alloc(3 * 32);
  keccak256Buffer(packed).copy(outer, 0);
  writeAddress(outer, 32, p.entryPoint);
  writeUint(outer, 64, BigInt(p.chainId));
  return `0x${keccak256Buffer(outer).toString("hex")}`;
}

/**
 * The userOpHash of EntryPoint v0.8 / v0.9: the EIP-712 hash of the packed operation (domain ERC4337, version 1,
 * the chain, the EntryPoint), through viem. A 0x7702 marker initCode is hashed with the sender's delegate; for
 * v0.9 the paymasterSignature is outside the hash, which covers only its magic (so the hash is the same before
 * and after the paymaster signs).
 */
export function userOperationHashV08V09(p: {
  version: Exclude<EntryPointVersion, "0.7">;
  userOperation: SponsoredUserOperation;
  paymaster: Address;
  paymasterData: Hex;
  chainId: number;
  entryPoint: Address;
  eip7702Delegate?: Address;
}): Hex {
  const op = p.userOperation;
  return getUserOperationHash({
    chainId: p.chainId,
    entryPointAddress: p.entryPoint,
    entryPointVersion: p.version,
    userOperation: {
      ...op,
      paymaster: p.paymaster,
      paymasterData: p.paymasterData,
      ...(p.version === "0.9" ? { paymasterSignature: STUB_SIGNATURE } : {}),
      ...(p.eip7702Delegate ? { authorization: { address: p.eip7702Delegate, chainId: p.chainId, nonce: 0, r: "0x0", s: "0x0", yParity: 0 } } : {}),
      signature: "0x",
    },
  });
}
