/**
 * Test helpers: build, sponsor, sign and submit v0.7 UserOperations from permissionless SimpleAccounts straight
 * to the EntryPoint (`handleOps`), the way a bundler would.
 */
import { entryPoint07Abi, entryPoint08Abi, entryPoint09Abi } from "viem/account-abstraction";
import {
  type Abi,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
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
import { type UserOperation, toPackedUserOperation } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { type ToSimpleSmartAccountReturnType, toSimpleSmartAccount } from "permissionless/accounts";
import { CANONICAL_ENTRY_POINTS, ENTRY_POINT_V07, type EntryPointVersion } from "../server/chain/addresses";
import { loadProjectArtifact } from "../server/chain/artifacts";
import { type SponsoredUserOperation, encodePaymasterData, getPaymasterHash } from "../server/sponsorship/signing/paymasterData";
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
