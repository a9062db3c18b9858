/**
 * A v0.7 UserOperation as JSON-RPC sends it (ERC-7769 / ERC-7677: quantities as hex strings), parsed into
 * typed fields. Every problem is named (`userOp.callGasLimit: …`); nothing here throws anything but SponsorError.
 */
import type { Address, Hex } from "viem";
import { CHECKSUM_MESSAGE, addressProblem, checksummed } from "../schemas/primitives";
import { invalidParams } from "./errors";
import type { SponsoredUserOperation } from "./signing/paymasterData";

export type UserOperationInput = SponsoredUserOperation & { signature: Hex };

const MAX_UINT256 = 2n ** 256n - 1n;
const MAX_UINT128 = 2n ** 128n - 1n;
/** Calldata beyond this is refused before hashing: no sponsored account call needs more. */
export const MAX_CALL_DATA_BYTES = 32 * 1024;

const QUANTITY_FIELDS = ["nonce", "callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"] as const;

function quantity(value: unknown, field: string, max: bigint): bigint {
  if (typeof value !== "string" || !/^0x[0-9a-fA-F]{1,64}$/.test(value)) {
    throw invalidParams(`userOp.${field} must be a hex quantity such as "0x1a2b": got ${describe(value)}`, { field });
  }
  const n = BigInt(value);
  if (n > max) throw invalidParams(`userOp.${field} is too large (${n} exceeds ${max === MAX_UINT128 ? "uint128" : "uint256"})`, { field });
  return n;
}

function bytes(value: unknown, field: string, maxBytes: number): Hex {
  if (typeof value !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(value)) {
    throw invalidParams(`userOp.${field} must be 0x-prefixed hex bytes: got ${describe(value)}`, { field });
  }
  if ((value.length - 2) / 2 > maxBytes) throw invalidParams(`userOp.${field} is longer than ${maxBytes} bytes`, { field });
  return value.toLowerCase() as Hex;
}

/** The address rule of every schema (schemas/primitives.ts), with this module's messages. */
function addressField(value: unknown, field: string): Address {
  const problem = typeof value === "string" ? addressProblem(value) : "format";
  if (problem === "format") throw invalidParams(`userOp.${field} must be a 20-byte 0x-prefixed address: got ${describe(value)}`, { field });
  if (problem === "checksum") throw invalidParams(`userOp.${field} ${CHECKSUM_MESSAGE}: got ${describe(value)}`, { field });
  return checksummed(value as string);
}

/** A short description of a bad value; objects by their type only (a deeply nested one must not be walked). */
function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/**
 * Parses the userOp parameter. `requireGas`: the final request must carry every gas field; a stub request may
 * leave them out (wallets ask for the stub before estimating), and they count as 0.
 */
export function parseUserOperation(input: unknown, options: { requireGas: boolean }): UserOperationInput {
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw invalidParams("userOp must be an object");
  const op = input as Record<string, unknown>;
  if ("initCode" in op || ("paymasterAndData" in op && !("paymaster" in op))) {
    throw invalidParams("userOp is in the EntryPoint v0.6 format (initCode / paymasterAndData); only v0.7 UserOperations are sponsored");
  }
  const values = {} as Record<(typeof QUANTITY_FIELDS)[number], bigint>;
  for (const field of QUANTITY_FIELDS) {
    const raw = op[field];
    if (raw === undefined || raw === null) {
      if (field === "nonce" || options.requireGas) throw invalidParams(`userOp.${field} is required`, { field });
      values[field] = 0n;
      continue;
    }
    values[field] = quantity(raw, field, field === "nonce" ? MAX_UINT256 : MAX_UINT128);
  }
  const factoryRaw = op.factory;
  const factory = factoryRaw === undefined || factoryRaw === null || factoryRaw === "0x" ? undefined : addressField(factoryRaw, "factory");
  const factoryData = op.factoryData === undefined || op.factoryData === null ? undefined : bytes(op.factoryData, "factoryData", MAX_CALL_DATA_BYTES);
  if (factoryData && factoryData !== "0x" && !factory) throw invalidParams("userOp.factoryData is set but userOp.factory is not", { field: "factoryData" });
  if (op.sender === undefined) throw invalidParams("userOp.sender is required", { field: "sender" });
  if (op.callData === undefined) throw invalidParams("userOp.callData is required", { field: "callData" });
  return {
    sender: addressField(op.sender, "sender"),
    nonce: values.nonce,
    factory,
    factoryData: factory ? (factoryData ?? "0x") : undefined,
    callData: bytes(op.callData, "callData", MAX_CALL_DATA_BYTES),
    callGasLimit: values.callGasLimit,
    verificationGasLimit: values.verificationGasLimit,
    preVerificationGas: values.preVerificationGas,
    maxFeePerGas: values.maxFeePerGas,
    maxPriorityFeePerGas: values.maxPriorityFeePerGas,
    // the paymaster's own limits are ours to set; whatever the client sent is replaced
    paymasterVerificationGasLimit: 0n,
    paymasterPostOpGasLimit: 0n,
    signature: op.signature === undefined || op.signature === null ? "0x" : bytes(op.signature, "signature", 4096),
  };
}

/** The entryPoint parameter: an address (compared case-insensitively by the caller). */
export function parseEntryPoint(value: unknown): Address {
  const problem = typeof value === "string" ? addressProblem(value) : "format";
  if (problem === "format") throw invalidParams(`entryPoint must be a 20-byte 0x-prefixed address: got ${describe(value)}`);
  if (problem === "checksum") throw invalidParams(`entryPoint ${CHECKSUM_MESSAGE}: got ${describe(value)}`);
  return checksummed(value as string);
}

/** The chainId parameter: ERC-7677 sends it as hex ("0x2105"); REST may send a number. */
export function parseChainId(value: unknown): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  if (typeof value === "string" && /^0x[0-9a-fA-F]{1,13}$/.test(value) && BigInt(value) > 0n) return Number(BigInt(value));
  if (typeof value === "string" && /^[1-9]\d{0,15}$/.test(value)) return Number(value);
  throw invalidParams(`chainId must be a positive hex quantity such as "0x1": got ${describe(value)}`);
}
