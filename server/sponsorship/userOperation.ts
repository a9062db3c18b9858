/**
 * A v0.7 / v0.8 / v0.9 UserOperation as JSON-RPC sends it (ERC-7769 / ERC-7677: quantities as hex strings), parsed
 * into typed fields. Every problem is named (`userOp.callGasLimit: …`); nothing here throws anything but
 * SponsorError. From v0.8 on, an EIP-7702 EOA's operation may carry the initCode marker (`factory` "0x7702") and
 * its authorization (`eip7702Auth`, as alto takes it).
 */
import type { Address, Hex } from "viem";
import type { EntryPointVersion } from "../chain/addresses";
import { isEip7702Marker } from "./signing/paymasterData";
import { CHECKSUM_MESSAGE, addressProblem, checksummed } from "../schemas/primitives";
import { invalidParams } from "./errors";
import type { SponsoredUserOperation } from "./signing/paymasterData";

/** An EIP-7702 authorization as the bundler RPC carries it (alto's `eip7702Auth`). */
export type Eip7702Auth = { address: Address; chainId: number; nonce: number; r: Hex; s: Hex; yParity: number };

export type UserOperationInput = SponsoredUserOperation & { signature: Hex; eip7702Auth?: Eip7702Auth };

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
export function parseUserOperation(input: unknown, options: { requireGas: boolean; entryPointVersion?: EntryPointVersion }): UserOperationInput {
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw invalidParams("userOp must be an object");
  const op = input as Record<string, unknown>;
  if ("initCode" in op || ("paymasterAndData" in op && !("paymaster" in op))) {
    throw invalidParams("userOp is in the EntryPoint v0.6 format (initCode / paymasterAndData); only v0.7, v0.8 and v0.9 UserOperations are sponsored");
  }
  const version = options.entryPointVersion ?? "0.7";
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
  const marker = typeof factoryRaw === "string" && isEip7702Marker(factoryRaw as Hex);
  if (marker && version === "0.7") {
    throw invalidParams("userOp.factory is the EIP-7702 marker 0x7702, which EntryPoint v0.7 does not know: send EIP-7702 operations to EntryPoint v0.8 or v0.9", { field: "factory" });
  }
  const factory =
    factoryRaw === undefined || factoryRaw === null || factoryRaw === "0x" ? undefined : marker ? ((factoryRaw as string).toLowerCase() as Address) : addressField(factoryRaw, "factory");
  const eip7702Auth = op.eip7702Auth === undefined || op.eip7702Auth === null ? undefined : parseEip7702Auth(op.eip7702Auth);
  if (eip7702Auth && version === "0.7") throw invalidParams("userOp.eip7702Auth: EntryPoint v0.7 does not serve EIP-7702 accounts; use v0.8 or v0.9", { field: "eip7702Auth" });
  if (eip7702Auth && !marker) {
    throw invalidParams("userOp.eip7702Auth is set but userOp.factory is not the 0x7702 marker: without it the EntryPoint would not bind the delegate", { field: "eip7702Auth" });
  }
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
    ...(eip7702Auth ? { eip7702Auth } : {}),
  };
}

/** `eip7702Auth`: { address, chainId, nonce, r, s, yParity } (quantities hex, as alto and viem send them). */
function parseEip7702Auth(value: unknown): Eip7702Auth {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidParams(`userOp.eip7702Auth must be an object: got ${describe(value)}`, { field: "eip7702Auth" });
  const auth = value as Record<string, unknown>;
  const word = (field: "r" | "s"): Hex => {
    const raw = auth[field];
    if (typeof raw !== "string" || !/^0x[0-9a-fA-F]{1,64}$/.test(raw)) {
      throw invalidParams(`userOp.eip7702Auth.${field} must be a 32-byte hex value: got ${describe(raw)}`, { field: `eip7702Auth.${field}` });
    }
    return `0x${raw.slice(2).padStart(64, "0").toLowerCase()}`;
  };
  const small = (field: "chainId" | "nonce" | "yParity", max: bigint): number => {
    const raw = auth[field] ?? (field === "yParity" ? auth.v : undefined);
    const n = typeof raw === "number" && Number.isSafeInteger(raw) && raw >= 0 ? BigInt(raw) : typeof raw === "string" && /^0x[0-9a-fA-F]{1,64}$/.test(raw) ? BigInt(raw) : undefined;
    if (n === undefined || n > max) throw invalidParams(`userOp.eip7702Auth.${field} must be a hex quantity of at most ${max}: got ${describe(raw)}`, { field: `eip7702Auth.${field}` });
    return Number(n);
  };
  const address = auth.address ?? auth.contractAddress;
  return {
    address: addressField(address, "eip7702Auth.address"),
    chainId: small("chainId", BigInt(Number.MAX_SAFE_INTEGER)),
    nonce: small("nonce", BigInt(Number.MAX_SAFE_INTEGER)),
    r: word("r"),
    s: word("s"),
    yParity: small("yParity", 1n),
  };
}

/** The entryPoint parameter: an address (compared case-insensitively by the caller). */
/**
 * Entry points already parsed: every request names one of very few, and the EIP-55 check (a keccak of the address)
 * was a few percent of a sponsorship. Bounded: a caller sending new strings only refills it.
 */
const entryPoints = new Map<string, Address>();
const ENTRY_POINTS_KEPT = 64;

export function parseEntryPoint(value: unknown): Address {
  const known = typeof value === "string" ? entryPoints.get(value) : undefined;
  if (known) return known;
  const address = parseEntryPointOnce(value);
  if (entryPoints.size >= ENTRY_POINTS_KEPT) entryPoints.clear();
  entryPoints.set(value as string, address);
  return address;
}

function parseEntryPointOnce(value: unknown): Address {
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
