import {
  type Address,
  type Hex,
  concat,
  encodeAbiParameters,
  keccak256,
  numberToHex,
  size,
  slice,
  hexToNumber,
} from "viem";

/**
 * FiatPaymaster's paymasterData (what follows the EntryPoint's 52 fixed bytes of paymasterAndData), for
 * EntryPoint v0.7 (FiatPaymaster) and v0.8 (FiatPaymasterV08):
 *
 *   [0:6)    validUntil  uint48, big-endian (0 = no expiry)
 *   [6:12)   validAfter  uint48, big-endian
 *   [12:77)  signature   r ‖ s ‖ v over getPaymasterHash(...), EIP-191 prefixed ("\x19Ethereum Signed Message:\n32")
 *
 * For v0.9 (FiatPaymasterV09) paymasterData is only validUntil ‖ validAfter; the signature, over
 * getPaymasterHashV09(userOpHash), travels as the EntryPoint's paymasterSignature suffix (signature ‖ uint16
 * length ‖ PAYMASTER_SIGNATURE_MAGIC), outside the userOpHash.
 *
 * The contracts' `validatePaymasterUserOp` read the same offsets (contracts/FiatPaymaster*.sol).
 */
export const VALID_UNTIL_OFFSET = 0;
export const VALID_AFTER_OFFSET = 6;
export const SIGNATURE_OFFSET = 12;
export const SIGNATURE_LENGTH = 65;
export const PAYMASTER_DATA_LENGTH = SIGNATURE_OFFSET + SIGNATURE_LENGTH;
/** v0.9: paymasterData holds the validity window only. */
export const PAYMASTER_DATA_LENGTH_V09 = SIGNATURE_OFFSET;
/** EntryPoint v0.9's paymasterSignature marker: keccak256("PaymasterSignature")[:8]. */
export const PAYMASTER_SIGNATURE_MAGIC: Hex = "0x22e325a297439656";
/** The initCode (factory) marker of an EIP-7702 account: "0x7702", or the same padded to 20 bytes. */
export const EIP7702_FACTORY_MARKER: Address = "0x7702000000000000000000000000000000000000";

const MAX_UINT48 = 2 ** 48 - 1;
const MAX_UINT128 = 2n ** 128n - 1n;

/**
 * A well-formed low-s signature with no zero bytes (a throwaway key's signature of keccak256("fiat-paymaster stub 0")): it recovers to an address that is not a signer, so the
 * contract runs the same path (ecrecover, then the signer-set read) as for a real signature and answers with a
 * signature failure, never a revert. Bundlers estimating gas with the stub therefore see the real cost, and a
 * zero-free stub costs as much calldata as the real data.
 */
export const STUB_SIGNATURE: Hex =
  "0x3aeeed33da760dc27acbc6054c8bdcb03fe4f8cd92559ee0b2432a4d556a744352861d60d2745f57bfcf29bc4187151c7c056c9fbd093ee48a19dba2ef90ca2b1b";

/** The parts of a v0.7 UserOperation the paymaster signature binds (viem's unpacked `UserOperation<"0.7">`). */
export type SponsoredUserOperation = {
  sender: Address;
  nonce: bigint;
  factory?: Address | undefined;
  factoryData?: Hex | undefined;
  callData: Hex;
  callGasLimit: bigint;
  verificationGasLimit: bigint;
  preVerificationGas: bigint;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  paymasterVerificationGasLimit: bigint;
  paymasterPostOpGasLimit: bigint;
};

export type GetPaymasterHashParameters = {
  userOperation: SponsoredUserOperation;
  chainId: number | bigint;
  paymaster: Address;
  entryPoint: Address;
  validUntil: number;
  validAfter: number;
  /**
   * FiatPaymasterV08 only: the delegate of an EIP-7702 sender whose factory is the 0x7702 marker. The EntryPoint
   * v0.8 (and the paymaster after it) hashes delegate ‖ factoryData in place of the initCode.
   */
  eip7702Delegate?: Address;
};

export type PaymasterDataFields = { validUntil: number; validAfter: number; signature: Hex };

/** Thrown for paymasterData or its fields that FiatPaymaster could not accept. */
export class InvalidPaymasterDataError extends Error {
  override name = "InvalidPaymasterDataError";
}

function checkUint48(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_UINT48) {
    throw new InvalidPaymasterDataError(`${name} must be an integer in [0, 2^48): got ${value}`);
  }
}

function packUint128Pair(high: bigint, low: bigint): Hex {
  for (const v of [high, low]) {
    if (v < 0n || v > MAX_UINT128) throw new InvalidPaymasterDataError(`gas value ${v} does not fit in uint128`);
  }
  return concat([numberToHex(high, { size: 16 }), numberToHex(low, { size: 16 })]);
}

/**
 * The hash FiatPaymaster's `getHash` computes on chain; a signer signs it with the EIP-191 prefix
 * (`signMessage({ message: { raw: hash } })`).
 */
export function getPaymasterHash(parameters: GetPaymasterHashParameters): Hex {
  const { userOperation: op, chainId, paymaster, entryPoint, validUntil, validAfter } = parameters;
  checkUint48("validUntil", validUntil);
  checkUint48("validAfter", validAfter);
  const initCode = initCodeForHash(op, parameters.eip7702Delegate);
  return keccak256(
    encodeAbiParameters(
      [
        { type: "uint256" }, // chain id
        { type: "address" }, // paymaster
        { type: "address" }, // entry point
        { type: "address" }, // sender
        { type: "uint256" }, // nonce
        { type: "bytes32" }, // keccak256(initCode)
        { type: "bytes32" }, // keccak256(callData)
        { type: "bytes32" }, // accountGasLimits
        { type: "bytes32" }, // paymasterVerificationGasLimit ‖ paymasterPostOpGasLimit
        { type: "uint256" }, // preVerificationGas
        { type: "bytes32" }, // gasFees
        { type: "uint48" },
        { type: "uint48" },
      ],
      [
        BigInt(chainId),
        paymaster,
        entryPoint,
        op.sender,
        op.nonce,
        keccak256(initCode),
        keccak256(op.callData),
        packUint128Pair(op.verificationGasLimit, op.callGasLimit),
        packUint128Pair(op.paymasterVerificationGasLimit, op.paymasterPostOpGasLimit),
        op.preVerificationGas,
        packUint128Pair(op.maxPriorityFeePerGas, op.maxFeePerGas),
        validUntil,
        validAfter,
      ],
    ),
  );
}

/** Whether `factory` is the EIP-7702 marker (2 bytes, or padded to 20), not a factory address. */
export function isEip7702Marker(factory: Hex | undefined): boolean {
  if (!factory) return false;
  const lower = factory.toLowerCase();
  return lower === "0x7702" || lower === EIP7702_FACTORY_MARKER;
}

/**
 * The initCode as EntryPoint v0.8/v0.9 hash it (Eip7702Support._getEip7702InitCodeHashOverride): for the 0x7702
 * marker, the sender's delegate ‖ factoryData; otherwise factory ‖ factoryData. Without a delegate, a marker
 * hashes as itself (EntryPoint v0.7 knows no marker).
 */
export function initCodeForHash(op: Pick<SponsoredUserOperation, "factory" | "factoryData">, eip7702Delegate?: Address): Hex {
  if (!op.factory) return "0x";
  if (eip7702Delegate && isEip7702Marker(op.factory)) return concat([eip7702Delegate, op.factoryData ?? "0x"]);
  return concat([op.factory, op.factoryData ?? "0x"]);
}

/**
 * FiatPaymasterV09.getHash(userOpHash): the userOpHash (which already binds every field, the chain, the EntryPoint
 * and paymasterData) with the paymaster's address, so a signature is good for this contract only. Signed with the
 * EIP-191 prefix like the others.
 */
export function getPaymasterHashV09({ userOpHash, paymaster }: { userOpHash: Hex; paymaster: Address }): Hex {
  return keccak256(encodeAbiParameters([{ type: "bytes32" }, { type: "address" }], [userOpHash, paymaster]));
}

/** v0.9 paymasterData: validUntil ‖ validAfter (the signature goes in paymasterSignature). */
export function encodePaymasterDataV09({ validUntil, validAfter }: Omit<PaymasterDataFields, "signature">): Hex {
  checkUint48("validUntil", validUntil);
  checkUint48("validAfter", validAfter);
  return concat([numberToHex(validUntil, { size: 6 }), numberToHex(validAfter, { size: 6 })]);
}

/** The v0.9 paymasterSignature suffix of paymasterAndData: signature ‖ uint16 length ‖ magic. */
export function encodePaymasterSignatureSuffix(signature: Hex): Hex {
  if (size(signature) !== SIGNATURE_LENGTH) {
    throw new InvalidPaymasterDataError(`signature must be ${SIGNATURE_LENGTH} bytes: got ${size(signature)}`);
  }
  return concat([signature, numberToHex(SIGNATURE_LENGTH, { size: 2 }), PAYMASTER_SIGNATURE_MAGIC]);
}

/** Lays out validUntil ‖ validAfter ‖ signature as FiatPaymaster reads them. */
export function encodePaymasterData({ validUntil, validAfter, signature }: PaymasterDataFields): Hex {
  checkUint48("validUntil", validUntil);
  checkUint48("validAfter", validAfter);
  if (size(signature) !== SIGNATURE_LENGTH) {
    throw new InvalidPaymasterDataError(`signature must be ${SIGNATURE_LENGTH} bytes: got ${size(signature)}`);
  }
  return concat([numberToHex(validUntil, { size: 6 }), numberToHex(validAfter, { size: 6 }), signature]);
}

/** paymasterData of the final length whose signature is the stub: for gas estimation (ERC-7677 stub data). */
export function encodeStubPaymasterData({ validUntil, validAfter }: Omit<PaymasterDataFields, "signature">): Hex {
  return encodePaymasterData({ validUntil, validAfter, signature: STUB_SIGNATURE });
}

/** Splits paymasterData into its fields; throws InvalidPaymasterDataError if its length is not exact. */
export function decodePaymasterData(paymasterData: Hex): PaymasterDataFields {
  if (size(paymasterData) !== PAYMASTER_DATA_LENGTH) {
    throw new InvalidPaymasterDataError(
      `paymasterData must be ${PAYMASTER_DATA_LENGTH} bytes: got ${size(paymasterData)}`,
    );
  }
  return {
    validUntil: hexToNumber(slice(paymasterData, VALID_UNTIL_OFFSET, VALID_AFTER_OFFSET)),
    validAfter: hexToNumber(slice(paymasterData, VALID_AFTER_OFFSET, SIGNATURE_OFFSET)),
    signature: slice(paymasterData, SIGNATURE_OFFSET, PAYMASTER_DATA_LENGTH),
  };
}
