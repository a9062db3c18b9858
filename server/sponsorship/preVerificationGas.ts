/**
 * What a UserOperation's preVerificationGas needs to be (v0.7, v0.8, v0.9: the same packed layout), pure: the calldata and overhead a bundler pays for
 * it that the EntryPoint does not meter (ERC-4337 "preVerificationGas"). A sponsorship whose preVerificationGas is
 * far above this would let a self-bundling sender turn quota into ETH — the EntryPoint pays the bundler for gas
 * nobody used — so the sponsor refuses anything above `preVerificationGasPercent`% of it plus the chain's
 * `preVerificationGasAllowance` (an L2's L1 data fee, which this does not model).
 *
 * The figure follows the Pimlico bundler (alto) for a bundle of one, the bundler's most expensive case: the packed
 * operation ABI-encoded with every gas field at its maximum (as estimation does), 4 gas per zero byte and 16 per
 * other byte, the transaction's 21,000 and the bundle's fixed overhead, and per-operation and per-calldata-word
 * overheads; with EIP-7623 the calldata floor of 10 gas per token is the larger when calldata dominates.
 */
import type { Address, Hex } from "viem";
import type { EntryPointVersion } from "../chain/addresses";

export type PreVerificationGasInput = {
  sender: Address;
  nonce: bigint;
  factory?: Address | undefined;
  factoryData?: Hex | undefined;
  callData: Hex;
  /**
   * The wallet's signature (usually its dummy at this point); counted as 65 to 256 bytes whatever its length: the
   * paymaster does not sign the account's signature, so a long dummy must not raise the ceiling.
   */
  signature: Hex;
  /** An EIP-7702 authorization rides along (first operation of a 7702 EOA): the bundler pays for it. */
  eip7702Auth?: unknown;
};

/** The paymaster the operation names and the EntryPoint version its paymasterAndData is laid out for. */
export type PaymasterLayout = { paymaster: Address; version: EntryPointVersion };

/** alto's overheads for EntryPoint v0.7 (rpc/estimation/preVerificationGasCalculator). */
const TRANSACTION_GAS = 21_000n;
const BUNDLE_FIXED_GAS = 9_830n;
const PER_OPERATION_GAS = 7_260n;
const PER_CALL_DATA_WORD_MILLIGAS = 9_200n;
const EXECUTE_USER_OP_SELECTOR = "0x8dd7712f";
const EXECUTE_USER_OP_GAS = 1_610n;
const EXECUTE_USER_OP_PER_WORD_MILLIGAS = 8_200n;
const GAS_PER_TOKEN = 4n;
const FLOOR_GAS_PER_TOKEN = 10n;
/**
 * paymaster (20) ‖ two uint128 gas limits (32) ‖ FiatPaymaster's 77 bytes of paymasterData (v0.7, v0.8); v0.9's
 * 12 bytes of paymasterData ‖ 65-byte paymasterSignature ‖ uint16 length ‖ 8-byte magic.
 */
const PAYMASTER_AND_DATA_BYTES: Record<EntryPointVersion, number> = { "0.7": 20 + 32 + 77, "0.8": 20 + 32 + 77, "0.9": 20 + 32 + 12 + 65 + 2 + 8 };
/** What alto adds for an operation that carries an EIP-7702 authorization (the authorization tuple's cost). */
const EIP7702_AUTH_GAS = 25_000n;
const MIN_SIGNATURE_BYTES = 65;
const MAX_SIGNATURE_BYTES = 256;

const hexBytes = (hex: Hex | undefined): Buffer => Buffer.from((hex ?? "0x").slice(2), "hex");

function word(value: bigint): Buffer {
  const out = Buffer.alloc(32);
  let v = value;
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

const padTo32 = (length: number) => Math.ceil(length / 32) * 32;

/**
 * ABI-encoded `PackedUserOperation` tuple as the bundler prices it: gas fields and paymaster gas limits all 0xff,
 * paymasterData and signature filled with 0xff at their final length, the paymaster address real.
 */
function estimationEncoding(op: PreVerificationGasInput, { paymaster, version }: PaymasterLayout): Buffer {
  const initCode = op.factory ? Buffer.concat([hexBytes(op.factory), hexBytes(op.factoryData)]) : Buffer.alloc(0);
  const callData = hexBytes(op.callData);
  const paymasterAndData = Buffer.concat([hexBytes(paymaster), Buffer.alloc(PAYMASTER_AND_DATA_BYTES[version] - 20, 0xff)]);
  const signature = Buffer.alloc(Math.min(MAX_SIGNATURE_BYTES, Math.max(hexBytes(op.signature).length, MIN_SIGNATURE_BYTES)), 0xff);
  const tails = [initCode, callData, paymasterAndData, signature];
  const offsets: bigint[] = [];
  let at = 9 * 32;
  for (const tail of tails) {
    offsets.push(BigInt(at));
    at += 32 + padTo32(tail.length);
  }
  const full = Buffer.alloc(32, 0xff);
  const head = [word(32n), Buffer.concat([Buffer.alloc(12), hexBytes(op.sender)]), word(op.nonce), word(offsets[0]!), word(offsets[1]!), full, full, full, word(offsets[2]!), word(offsets[3]!)];
  const body = tails.flatMap((tail) => [word(BigInt(tail.length)), tail, Buffer.alloc(padTo32(tail.length) - tail.length)]);
  return Buffer.concat([...head, ...body]);
}

/** The preVerificationGas a bundle of one needs for `op` on an L1-priced chain. */
export function preVerificationGasNeeded(op: PreVerificationGasInput, layout: PaymasterLayout): bigint {
  const encoded = estimationEncoding(op, layout);
  // counted as a number (a bigint add per byte was most of this function's time), a few thousand at most
  let count = 0;
  for (let i = 0; i < encoded.length; i++) count += encoded[i] === 0 ? 1 : 4;
  const tokens = BigInt(count);
  const callDataBytes = hexBytes(op.callData).length;
  const words = BigInt(Math.ceil(encoded.length / 32));
  const perCall =
    op.callData.slice(0, 10).toLowerCase() === EXECUTE_USER_OP_SELECTOR
      ? EXECUTE_USER_OP_GAS + (EXECUTE_USER_OP_PER_WORD_MILLIGAS * words) / 1000n
      : (BigInt(Math.ceil(callDataBytes / 32)) * PER_CALL_DATA_WORD_MILLIGAS) / 1000n;
  const perOperation = PER_OPERATION_GAS + perCall + (op.eip7702Auth ? EIP7702_AUTH_GAS : 0n);
  const standard = GAS_PER_TOKEN * tokens + BUNDLE_FIXED_GAS + perOperation;
  const floor = FLOOR_GAS_PER_TOKEN * tokens;
  return TRANSACTION_GAS + (standard > floor ? standard : floor);
}

/** The most preVerificationGas a sponsorship accepts: `percent`% of what the operation needs, plus `allowance`. */
export function preVerificationGasCeiling(op: PreVerificationGasInput, layout: PaymasterLayout, limits: { percent: number; allowance: bigint }): bigint {
  return (preVerificationGasNeeded(op, layout) * BigInt(limits.percent)) / 100n + limits.allowance;
}
