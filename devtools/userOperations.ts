/**
 * Test helpers: build, sponsor, sign and submit UserOperations straight to the EntryPoint (`handleOps`), the way a
 * bundler would: v0.7 ones from permissionless SimpleAccounts, v0.8 and v0.9 ones from SimpleAccounts and EIP-7702
 * EOAs delegating to Simple7702Account.
 */
import { entryPoint07Abi, entryPoint08Abi, entryPoint09Abi } from "viem/account-abstraction";
import {
  type Abi,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type SignedAuthorization,
  type TransactionReceipt,
  BaseError,
  ContractFunctionRevertedError,
  concat,
  type SignedAuthorizationList,
  decodeErrorResult,
  decodeEventLog,
  encodeFunctionData,
  isAddressEqual,
  numberToHex,
  parseEventLogs,
} from "viem";
import {
  type SmartAccount,
  type UserOperation,
  getUserOperationHash,
  toPackedUserOperation,
  toSimple7702SmartAccount,
} from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { type ToSimpleSmartAccountReturnType, toSimpleSmartAccount } from "permissionless/accounts";
import {
  CANONICAL_ENTRY_POINTS,
  ENTRY_POINT_V07,
  ENTRY_POINT_V08,
  type EntryPointVersion,
  SIMPLE_7702_ACCOUNT_V08,
  SIMPLE_7702_ACCOUNT_V09,
  SIMPLE_ACCOUNT_FACTORY_V09,
} from "../server/chain/addresses";
import { loadProjectArtifact } from "../server/chain/artifacts";
import {
  STUB_SIGNATURE,
  type SponsoredUserOperation,
  encodePaymasterData,
  encodePaymasterDataV09,
  getPaymasterHash,
  getPaymasterHashV09,
  isEip7702Marker,
} from "../server/sponsorship/signing/paymasterData";
import type { OperatorWallet } from "../server/chain/operator";

export type SimpleAccount = ToSimpleSmartAccountReturnType<"0.7">;
export type UserOp = UserOperation<"0.7">;

export const entryPointAbi = (): Abi => entryPoint07Abi;

/** A fresh SimpleAccount (counterfactual: not deployed, zero ETH) with a random owner key. */
export async function newSimpleAccount(client: PublicClient): Promise<SimpleAccount> {
  return toSimpleSmartAccount({
    client,
    owner: privateKeyToAccount(generatePrivateKey()),
    entryPoint: { address: ENTRY_POINT_V07, version: "0.7" },
  });
}

/** The address of a fresh, counterfactual SimpleAccount (random owner). */
export async function newSimpleAccountAddress(client: PublicClient): Promise<Address> {
  return (await newSimpleAccount(client)).address;
}

/** A built userOp as the JSON a DApp sends (quantities hex; paymaster gas limits only when set). */
export function userOpJson(op: UserOp): Record<string, unknown> {
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  return {
    sender: op.sender,
    nonce: hex(op.nonce),
    factory: op.factory,
    factoryData: op.factoryData,
    callData: op.callData,
    callGasLimit: hex(op.callGasLimit),
    verificationGasLimit: hex(op.verificationGasLimit),
    preVerificationGas: hex(op.preVerificationGas),
    maxFeePerGas: hex(op.maxFeePerGas),
    maxPriorityFeePerGas: hex(op.maxPriorityFeePerGas),
    ...(op.paymasterVerificationGasLimit !== undefined ? { paymasterVerificationGasLimit: hex(op.paymasterVerificationGasLimit) } : {}),
    signature: "0x",
  };
}

export type BuildParameters = {
  calls: { to: Address; data?: Hex; value?: bigint }[];
  paymaster: Address;
  nonce?: bigint;
};

/** An unsigned, unsponsored operation with generous fixed gas limits and fees from the latest block. */
export async function buildUserOperation(client: PublicClient, account: SimpleAccount, p: BuildParameters): Promise<UserOp> {
  const [callData, nonce, deployed, block] = await Promise.all([
    account.encodeCalls(p.calls.map((c) => ({ to: c.to, data: c.data ?? "0x", value: c.value ?? 0n }))),
    p.nonce ?? account.getNonce(),
    account.isDeployed(),
    client.getBlock(),
  ]);
  const factoryArgs = deployed ? {} : await account.getFactoryArgs();
  const maxPriorityFeePerGas = 1_000_000_000n;
  return {
    sender: account.address,
    nonce,
    ...factoryArgs,
    callData,
    callGasLimit: 200_000n,
    verificationGasLimit: 500_000n,
    preVerificationGas: 60_000n,
    maxFeePerGas: (block.baseFeePerGas ?? 0n) * 2n + maxPriorityFeePerGas,
    maxPriorityFeePerGas,
    paymaster: p.paymaster,
    paymasterVerificationGasLimit: 60_000n,
    paymasterPostOpGasLimit: 0n,
    paymasterData: "0x",
    signature: "0x",
  } as UserOp;
}

export type SponsorParameters = {
  signer: LocalAccount;
  chainId: number;
  validUntil?: number;
  validAfter?: number;
  /** Sign for another paymaster address than the operation names (to test binding). */
  paymasterForHash?: Address;
};

/** The operation with its paymaster gas limits set (viem types them optional; the paymaster hash binds them). */
export function withPaymasterGas(op: UserOp): SponsoredUserOperation {
  return { ...op, paymasterVerificationGasLimit: op.paymasterVerificationGasLimit ?? 0n, paymasterPostOpGasLimit: op.paymasterPostOpGasLimit ?? 0n };
}

/** Adds paymasterData signed by `signer` over the operation as it is now. */
export async function sponsor(op: UserOp, s: SponsorParameters): Promise<UserOp> {
  const validUntil = s.validUntil ?? Math.floor(Date.now() / 1000) + 600;
  const validAfter = s.validAfter ?? 0;
  const hash = getPaymasterHash({
    userOperation: withPaymasterGas(op),
    chainId: s.chainId,
    paymaster: s.paymasterForHash ?? op.paymaster!,
    entryPoint: ENTRY_POINT_V07,
    validUntil,
    validAfter,
  });
  const signature = await s.signer.signMessage({ message: { raw: hash } });
  return { ...op, paymasterData: encodePaymasterData({ validUntil, validAfter, signature }) };
}

/** The account owner's signature over the operation as it is now. */
export async function signAsAccount(account: SimpleAccount, op: UserOp, chainId: number): Promise<UserOp> {
  return { ...op, signature: await account.signUserOperation({ ...op, chainId }) };
}

/** The EntryPoint's FailedOp reason (e.g. "AA34 signature error") if handleOps would revert, else null. */
export async function handleOpsFailure(client: PublicClient, bundler: OperatorWallet, ops: UserOp[]): Promise<string | null> {
  try {
    await client.simulateContract({
      account: bundler.account,
      address: ENTRY_POINT_V07,
      abi: entryPointAbi(),
      functionName: "handleOps",
      args: [ops.map((op) => toPackedUserOperation(op)), bundler.account.address],
    });
    return null;
  } catch (error) {
    const revert = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (revert instanceof ContractFunctionRevertedError && revert.data?.errorName?.startsWith("FailedOp")) {
      const args = revert.data.args as readonly unknown[];
      return [args[1], ...args.slice(2)].map(String).join(" ");
    }
    throw error;
  }
}

/** Submits the operations like a bundler; throws if the transaction reverts. */
export async function handleOps(client: PublicClient, bundler: OperatorWallet, ops: UserOp[]): Promise<TransactionReceipt> {
  const hash = await bundler.sendTransaction({
    to: ENTRY_POINT_V07,
    data: encodeFunctionData({
      abi: entryPointAbi(),
      functionName: "handleOps",
      args: [ops.map((op) => toPackedUserOperation(op)), bundler.account.address],
    }),
    gas: 3_000_000n,
  });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`handleOps transaction ${hash} reverted`);
  return receipt;
}

export type UserOperationEvent = {
  userOpHash: Hex;
  sender: Address;
  paymaster: Address;
  nonce: bigint;
  success: boolean;
  actualGasCost: bigint;
  actualGasUsed: bigint;
};

/** The UserOperationEvents in a handleOps receipt. */
export function userOperationEvents(receipt: TransactionReceipt): UserOperationEvent[] {
  const abi = entryPointAbi();
  const events: UserOperationEvent[] = [];
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== ENTRY_POINT_V07.toLowerCase()) continue;
    try {
      const decoded = decodeEventLog({ abi, data: log.data, topics: log.topics });
      if (decoded.eventName === "UserOperationEvent") events.push(decoded.args as unknown as UserOperationEvent);
    } catch {
      // another EntryPoint event
    }
  }
  return events;
}

/** The test Counter contract, deployed fresh. */
export async function deployCounter(client: PublicClient, wallet: OperatorWallet): Promise<{ address: Address; abi: Abi }> {
  const { abi, bytecode } = loadProjectArtifact("test/Counter.sol", "Counter");
  const hash = await wallet.deployContract({ abi, bytecode });
  const receipt = await client.waitForTransactionReceipt({ hash });
  return { address: receipt.contractAddress!, abi };
}

/** paymasterAndData as the EntryPoint sees it, for calling the paymaster directly. */
export function paymasterAndData(op: UserOp): Hex {
  return concat([
    op.paymaster!,
    numberToHex(op.paymasterVerificationGasLimit!, { size: 16 }),
    numberToHex(op.paymasterPostOpGasLimit!, { size: 16 }),
    op.paymasterData ?? "0x",
  ]);
}

/** An EntryPoint of any served version, as the test helpers below address it. */
export type EntryPointTarget = { address: Address; abi: Abi };

export const ENTRY_POINTS: Record<EntryPointVersion, EntryPointTarget> = {
  "0.7": { address: CANONICAL_ENTRY_POINTS["0.7"], abi: entryPoint07Abi },
  "0.8": { address: CANONICAL_ENTRY_POINTS["0.8"], abi: entryPoint08Abi },
  "0.9": { address: CANONICAL_ENTRY_POINTS["0.9"], abi: entryPoint09Abi },
};

/**
 * `handleOps` on any EntryPoint version, like a bundler: the operations are given unpacked (viem packs them, v0.9's
 * paymasterSignature included); EIP-7702 authorizations ride along in a type-4 transaction. Resolves to the
 * receipt, or rejects with the EntryPoint's FailedOp reason ("AA34 signature error") found by simulating first.
 */
export async function submitOperations(
  client: PublicClient,
  bundler: OperatorWallet,
  entryPoint: EntryPointTarget,
  ops: UserOperation[],
  authorizationList?: SignedAuthorizationList,
): Promise<TransactionReceipt> {
  const data = encodeFunctionData({
    abi: entryPoint.abi,
    functionName: "handleOps",
    args: [ops.map((op) => toPackedUserOperation(op)), bundler.account.address],
  });
  try {
    await client.call({ account: bundler.account, to: entryPoint.address, data, authorizationList, gas: 5_000_000n });
  } catch (error) {
    const reason = failedOpReason(error, entryPoint.abi);
    if (reason) throw new Error(reason);
    throw error;
  }
  const hash = await bundler.sendTransaction({ to: entryPoint.address, data, authorizationList, gas: 5_000_000n });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`handleOps transaction ${hash} reverted`);
  return receipt;
}

/** "AA34 signature error" from a reverted handleOps call's FailedOp / FailedOpWithRevert, else undefined. */
function failedOpReason(error: unknown, abi: Abi): string | undefined {
  const data = error instanceof BaseError ? (error.walk((e) => typeof (e as { data?: unknown }).data === "string") as { data?: Hex } | null)?.data : undefined;
  if (!data) return undefined;
  try {
    const decoded = decodeErrorResult({ abi, data });
    if (!decoded.errorName.startsWith("FailedOp")) return `${decoded.errorName}(${(decoded.args ?? []).map(String).join(", ")})`;
    const args = decoded.args as readonly unknown[];
    return [args[1], ...args.slice(2)].map(String).join(" ");
  } catch {
    return undefined;
  }
}

/** The UserOperationEvents an EntryPoint of any version emitted in a receipt. */
export function userOperationEventsAt(receipt: TransactionReceipt, entryPoint: EntryPointTarget): UserOperationEvent[] {
  return parseEventLogs({ abi: entryPoint07Abi, logs: receipt.logs, eventName: "UserOperationEvent" })
    .filter((log) => isAddressEqual(log.address, entryPoint.address))
    .map((log) => log.args as unknown as UserOperationEvent);
}

// ---------------------------------------------------------------------------------------------------------------
// EntryPoint v0.8 and v0.9: SimpleAccounts and EIP-7702 EOAs

/** The EntryPoint versions with EIP-7702 accounts: the 0x7702 initCode marker, the delegate in the userOpHash. */
export type Eip7702EntryPointVersion = "0.8" | "0.9";
/** v0.9's unpacked form is v0.8's with paymasterSignature; both versions' operations fit it. */
export type UserOpV08V09 = UserOperation<"0.9">;
/** A smart account on EntryPoint v0.8 or v0.9, and for an EIP-7702 one the EOA that signs its authorization. */
export type VersionedAccount = { smart: SmartAccount; eoa?: LocalAccount; version: Eip7702EntryPointVersion };

/** The Simple7702Account an EIP-7702 EOA delegates to, per EntryPoint version (viem's defaults). */
export const SIMPLE_7702_DELEGATES: Readonly<Record<Eip7702EntryPointVersion, Address>> = {
  "0.8": SIMPLE_7702_ACCOUNT_V08,
  "0.9": SIMPLE_7702_ACCOUNT_V09,
};

/** A fresh, counterfactual SimpleAccount (random owner, zero ETH) on EntryPoint v0.8 or v0.9. */
export async function newVersionedSimpleAccount(client: PublicClient, version: Eip7702EntryPointVersion): Promise<VersionedAccount> {
  const smart = await toSimpleSmartAccount({
    client,
    owner: privateKeyToAccount(generatePrivateKey()),
    // permissionless 0.4.1 knows no "0.9"; v0.9's SimpleAccount, nonce and typed userOpHash are v0.8's
    entryPoint: { address: ENTRY_POINTS[version].address, version: "0.8" },
    ...(version === "0.9" ? { factoryAddress: SIMPLE_ACCOUNT_FACTORY_V09 } : {}),
  });
  return { smart: smart as unknown as SmartAccount, version };
}

/** A fresh EOA (random key, zero ETH) to be delegated to the version's Simple7702Account by its first operation. */
export async function newEip7702Account(client: PublicClient, version: Eip7702EntryPointVersion): Promise<VersionedAccount> {
  const eoa = privateKeyToAccount(generatePrivateKey());
  const smart = await toSimple7702SmartAccount({ client, owner: eoa, entryPoint: version });
  return { smart: smart as unknown as SmartAccount, eoa, version };
}

/** The EIP-7702 authorization of a not yet delegated EOA, or nothing (a SimpleAccount, or already delegated). */
export async function eip7702AuthorizationFor(client: PublicClient, chainId: number, account: VersionedAccount): Promise<SignedAuthorization | undefined> {
  if (!account.eoa || (await client.getCode({ address: account.eoa.address }))) return undefined;
  const nonce = await client.getTransactionCount({ address: account.eoa.address });
  return account.eoa.signAuthorization!({ chainId, address: SIMPLE_7702_DELEGATES[account.version], nonce });
}

/** An unsigned, unsponsored v0.8/v0.9 operation with generous fixed gas and fees from the latest block. */
export async function buildVersionedUserOperation(client: PublicClient, account: VersionedAccount, p: BuildParameters): Promise<UserOpV08V09> {
  const [callData, nonce, deployed, block] = await Promise.all([
    account.smart.encodeCalls(p.calls.map((c) => ({ to: c.to, data: c.data ?? "0x", value: c.value ?? 0n }))),
    p.nonce ?? account.smart.getNonce(),
    account.smart.isDeployed(),
    client.getBlock(),
  ]);
  const factoryArgs = deployed ? {} : await account.smart.getFactoryArgs();
  const maxPriorityFeePerGas = 1_000_000_000n;
  return {
    sender: account.smart.address,
    nonce,
    ...factoryArgs,
    callData,
    callGasLimit: 200_000n,
    verificationGasLimit: 500_000n,
    preVerificationGas: 80_000n,
    maxFeePerGas: (block.baseFeePerGas ?? 0n) * 2n + maxPriorityFeePerGas,
    maxPriorityFeePerGas,
    paymaster: p.paymaster,
    paymasterVerificationGasLimit: 60_000n,
    paymasterPostOpGasLimit: 0n,
    paymasterData: "0x",
    signature: "0x",
  } as UserOpV08V09;
}

/** The operation as the EntryPoint hashes it: a marker initCode carries the delegate the EOA will have. */
function asHashed(chainId: number, account: VersionedAccount, op: UserOpV08V09): UserOpV08V09 {
  if (!isEip7702Marker(op.factory)) return op;
  return { ...op, authorization: { address: SIMPLE_7702_DELEGATES[account.version], chainId, nonce: 0 } } as UserOpV08V09;
}

/** The userOpHash the account's EntryPoint computes for the operation as it is now. */
export function versionedUserOpHash(chainId: number, account: VersionedAccount, op: UserOpV08V09): Hex {
  return getUserOperationHash({
    chainId,
    entryPointAddress: ENTRY_POINTS[account.version].address,
    entryPointVersion: account.version,
    userOperation: asHashed(chainId, account, op),
  });
}

/** The account's signature over the operation as it is now (v0.9: paymasterSignature excluded). */
export async function signAsVersionedAccount(chainId: number, account: VersionedAccount, op: UserOpV08V09): Promise<UserOpV08V09> {
  return { ...op, signature: await account.smart.signUserOperation({ ...asHashed(chainId, account, op), chainId } as never) };
}

export type SponsorV08Parameters = SponsorParameters & {
  /** The delegate the hash binds for a 0x7702 marker initCode (default: the v0.8 Simple7702Account). */
  eip7702Delegate?: Address;
};

/** FiatPaymasterV08: paymasterData signed over getHash, with the 7702 delegate in place of a marker initCode. */
export async function sponsorV08(op: UserOpV08V09, s: SponsorV08Parameters): Promise<UserOpV08V09> {
  const validUntil = s.validUntil ?? Math.floor(Date.now() / 1000) + 600;
  const validAfter = s.validAfter ?? 0;
  const hash = getPaymasterHash({
    userOperation: { ...op, paymasterVerificationGasLimit: op.paymasterVerificationGasLimit ?? 0n, paymasterPostOpGasLimit: op.paymasterPostOpGasLimit ?? 0n },
    chainId: s.chainId,
    paymaster: s.paymasterForHash ?? op.paymaster!,
    entryPoint: ENTRY_POINT_V08,
    validUntil,
    validAfter,
    eip7702Delegate: isEip7702Marker(op.factory) ? (s.eip7702Delegate ?? SIMPLE_7702_ACCOUNT_V08) : undefined,
  });
  const signature = await s.signer.signMessage({ message: { raw: hash } });
  return { ...op, paymasterData: encodePaymasterData({ validUntil, validAfter, signature }) };
}

/**
 * FiatPaymasterV09: the window as paymasterData, the signature over getHash(userOpHash) as paymasterSignature. The
 * account may sign before or after: the userOpHash does not cover paymasterSignature.
 */
export async function sponsorV09(account: VersionedAccount, op: UserOpV08V09, s: SponsorParameters): Promise<UserOpV08V09> {
  const window = { validUntil: s.validUntil ?? Math.floor(Date.now() / 1000) + 600, validAfter: s.validAfter ?? 0 };
  const withData = { ...op, paymasterData: encodePaymasterDataV09(window), paymasterSignature: STUB_SIGNATURE } as UserOpV08V09;
  const hash = getPaymasterHashV09({ userOpHash: versionedUserOpHash(s.chainId, account, withData), paymaster: s.paymasterForHash ?? op.paymaster! });
  const paymasterSignature = await s.signer.signMessage({ message: { raw: hash } });
  return { ...withData, paymasterSignature } as UserOpV08V09;
}
