import {
  type Abi,
  type Account,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
  BaseError,
  ContractFunctionRevertedError,
  formatEther,
  getAddress,
} from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import { fiatPaymasterAbi } from "./fiatPaymasterAbi";

export type OperatorWallet = WalletClient<Transport, Chain, Account>;

/** A refusal the operator can act on (wrong key, not enough deposit, stake still locked, …). */
export class OperatorError extends Error {
  override name = "OperatorError";
}

export type PaymasterStatus = {
  chainId: number;
  paymaster: Address;
  entryPoint: Address;
  owner: Address;
  pendingOwner: Address | null;
  deposit: bigint;
  stake: bigint;
  staked: boolean;
  unstakeDelaySec: number;
  /** Unix time from which the unlocked stake can be withdrawn; 0 = not unlocking. */
  withdrawTime: number;
  signers: Address[];
};

const paymasterAbi = (): Abi => fiatPaymasterAbi;

type DepositInfo = { deposit: bigint; staked: boolean; stake: bigint; unstakeDelaySec: number; withdrawTime: number };

/**
 * The paymaster's deposit and stake, read from its own EntryPoint (any version: the StakeManager's ABI is the same
 * in v0.7, v0.8 and v0.9).
 */
async function readDepositInfo(client: PublicClient, paymaster: Address): Promise<DepositInfo> {
  const entryPoint = (await client.readContract({ address: paymaster, abi: paymasterAbi(), functionName: "entryPoint" })) as Address;
  return (await client.readContract({
    address: entryPoint,
    abi: entryPoint07Abi,
    functionName: "getDepositInfo",
    args: [paymaster],
  })) as DepositInfo;
}

/** Everything an operator wants to see about a deployed paymaster, read in one go. */
export async function readPaymasterStatus(client: PublicClient, paymaster: Address): Promise<PaymasterStatus> {
  const code = await client.getCode({ address: paymaster });
  if (!code || code === "0x") {
    throw new OperatorError(`no contract at ${paymaster} on chain ${await client.getChainId()}`);
  }
  const abi = paymasterAbi();
  const read = (functionName: string) => client.readContract({ address: paymaster, abi, functionName });
  const [chainId, entryPoint, owner, pendingOwner, signers, info] = await Promise.all([
    client.getChainId(),
    read("entryPoint") as Promise<Address>,
    read("owner") as Promise<Address>,
    read("pendingOwner") as Promise<Address>,
    read("signers") as Promise<readonly Address[]>,
    readDepositInfo(client, paymaster),
  ]);
  return {
    chainId,
    paymaster: getAddress(paymaster),
    entryPoint,
    owner,
    pendingOwner: BigInt(pendingOwner) === 0n ? null : pendingOwner,
    deposit: info.deposit,
    stake: info.stake,
    staked: info.staked,
    unstakeDelaySec: Number(info.unstakeDelaySec),
    withdrawTime: Number(info.withdrawTime),
    signers: [...signers],
  };
}

export function formatStatus(status: PaymasterStatus): string {
  const unlock =
    status.withdrawTime === 0
      ? status.staked
        ? "locked (run `unlock` to start the delay)"
        : "none"
      : `withdrawable from ${new Date(status.withdrawTime * 1000).toISOString()}`;
  return [
    `chain        ${status.chainId}`,
    `paymaster    ${status.paymaster}`,
    `entryPoint   ${status.entryPoint}`,
    `owner        ${status.owner}${status.pendingOwner ? ` (pending transfer to ${status.pendingOwner})` : ""}`,
    `deposit      ${formatEther(status.deposit)} ETH`,
    `stake        ${formatEther(status.stake)} ETH, ${status.staked ? "staked" : "not staked"}, unstake delay ${status.unstakeDelaySec} s`,
    `unlock       ${unlock}`,
    `signers      ${status.signers.length === 0 ? "(none: nothing can be sponsored)" : status.signers.join(", ")}`,
  ].join("\n");
}

async function requireOwner(client: PublicClient, wallet: OperatorWallet, paymaster: Address): Promise<void> {
  const owner = (await client.readContract({ address: paymaster, abi: paymasterAbi(), functionName: "owner" })) as Address;
  if (getAddress(owner) !== getAddress(wallet.account.address)) {
    throw new OperatorError(`the key's address ${wallet.account.address} is not the paymaster's owner ${owner}`);
  }
}

/** Simulates, then sends, a paymaster call; a revert becomes an OperatorError naming the contract's error. */
async function send(
  client: PublicClient,
  wallet: OperatorWallet,
  paymaster: Address,
  functionName: string,
  args: readonly unknown[] = [],
  value?: bigint,
): Promise<Hex> {
  try {
    const { request } = await client.simulateContract({
      account: wallet.account,
      address: paymaster,
      abi: paymasterAbi(),
      functionName,
      args,
      value,
    });
    const hash = await wallet.writeContract(request as Parameters<OperatorWallet["writeContract"]>[0]);
    const receipt = await client.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new OperatorError(`${functionName} transaction ${hash} reverted`);
    return hash;
  } catch (error) {
    if (error instanceof BaseError) {
      const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
      if (revert instanceof ContractFunctionRevertedError) {
        const reason = revert.data?.errorName
          ? `${revert.data.errorName}(${(revert.data.args ?? []).join(", ")})`
          : (revert.reason ?? "no reason");
        throw new OperatorError(`${functionName} reverted: ${reason}`);
      }
    }
    throw error;
  }
}

/** Adds `amount` wei to the paymaster's EntryPoint deposit. Anyone may fund a paymaster. */
export async function depositToPaymaster(client: PublicClient, wallet: OperatorWallet, paymaster: Address, amount: bigint): Promise<Hex> {
  if (amount <= 0n) throw new OperatorError("the deposit amount must be greater than zero");
  const balance = await client.getBalance({ address: wallet.account.address });
  if (balance < amount) {
    throw new OperatorError(`${wallet.account.address} holds ${formatEther(balance)} ETH, less than ${formatEther(amount)} ETH`);
  }
  return send(client, wallet, paymaster, "deposit", [], amount);
}

/** Withdraws `amount` wei of the deposit to `to` (owner only). */
export async function withdrawFromPaymaster(
  client: PublicClient,
  wallet: OperatorWallet,
  paymaster: Address,
  to: Address,
  amount: bigint,
): Promise<Hex> {
  await requireOwner(client, wallet, paymaster);
  if (amount <= 0n) throw new OperatorError("the withdrawal amount must be greater than zero");
  const { deposit } = await readDepositInfo(client, paymaster);
  if (amount > deposit) {
    throw new OperatorError(`cannot withdraw ${formatEther(amount)} ETH: the deposit is ${formatEther(deposit)} ETH`);
  }
  return send(client, wallet, paymaster, "withdrawTo", [to, amount]);
}

/** Adds `amount` wei of stake with at least `unstakeDelaySec` (owner only). */
export async function stakePaymaster(
  client: PublicClient,
  wallet: OperatorWallet,
  paymaster: Address,
  amount: bigint,
  unstakeDelaySec: number,
): Promise<Hex> {
  await requireOwner(client, wallet, paymaster);
  if (!Number.isInteger(unstakeDelaySec) || unstakeDelaySec <= 0 || unstakeDelaySec > 2 ** 32 - 1) {
    throw new OperatorError(`the unstake delay must be a whole number of seconds in [1, 2^32): got ${unstakeDelaySec}`);
  }
  const info = await readDepositInfo(client, paymaster);
  if (unstakeDelaySec < Number(info.unstakeDelaySec)) {
    throw new OperatorError(`the unstake delay cannot go down: it is ${info.unstakeDelaySec} s, asked ${unstakeDelaySec} s`);
  }
  if (amount < 0n || (amount === 0n && info.stake === 0n)) throw new OperatorError("the stake amount must be greater than zero");
  return send(client, wallet, paymaster, "addStake", [unstakeDelaySec], amount);
}

/** Starts the unstake delay (owner only). */
export async function unlockPaymasterStake(client: PublicClient, wallet: OperatorWallet, paymaster: Address): Promise<Hex> {
  await requireOwner(client, wallet, paymaster);
  const info = await readDepositInfo(client, paymaster);
  if (!info.staked) throw new OperatorError("the paymaster is not staked (or already unlocking)");
  return send(client, wallet, paymaster, "unlockStake");
}

/** Withdraws the unlocked stake to `to` once the delay has passed (owner only). */
export async function withdrawPaymasterStake(
  client: PublicClient,
  wallet: OperatorWallet,
  paymaster: Address,
  to: Address,
): Promise<Hex> {
  await requireOwner(client, wallet, paymaster);
  const info = await readDepositInfo(client, paymaster);
  if (info.stake === 0n) throw new OperatorError("there is no stake to withdraw");
  if (Number(info.withdrawTime) === 0) throw new OperatorError("the stake is still locked: run `unlock` first");
  const block = await client.getBlock();
  if (block.timestamp < BigInt(info.withdrawTime)) {
    throw new OperatorError(`the stake is withdrawable from ${new Date(Number(info.withdrawTime) * 1000).toISOString()}`);
  }
  return send(client, wallet, paymaster, "withdrawStake", [to]);
}

/** Allows `signer` to sign sponsorships (owner only). */
export async function addPaymasterSigner(client: PublicClient, wallet: OperatorWallet, paymaster: Address, signer: Address): Promise<Hex> {
  await requireOwner(client, wallet, paymaster);
  return send(client, wallet, paymaster, "addSigner", [signer]);
}

/** Removes `signer` from the signer set (owner only). */
export async function removePaymasterSigner(client: PublicClient, wallet: OperatorWallet, paymaster: Address, signer: Address): Promise<Hex> {
  await requireOwner(client, wallet, paymaster);
  return send(client, wallet, paymaster, "removeSigner", [signer]);
}

export async function isPaymasterSigner(client: PublicClient, paymaster: Address, signer: Address): Promise<boolean> {
  return (await client.readContract({ address: paymaster, abi: paymasterAbi(), functionName: "isSigner", args: [signer] })) as boolean;
}

export { readDepositInfo };
