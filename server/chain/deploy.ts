import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from "node:fs";
import path from "node:path";
import { type Address, type Hex, type PublicClient, concat, encodeAbiParameters, formatEther, getAddress, isAddress, keccak256, pad } from "viem";
import { CANONICAL_ENTRY_POINTS, type EntryPointVersion } from "./addresses";
import { FIAT_PAYMASTER_CONTRACTS, fiatPaymasterArtifact } from "./artifacts";
import { DeploymentError, deployDeterministic, deterministicAddress, hasCode } from "./canonical";
import {
  type OperatorWallet,
  addPaymasterSigner,
  depositToPaymaster,
  isPaymasterSigner,
  readDepositInfo,
  readPaymasterStatus,
  stakePaymaster,
} from "./operator";

export type DeployPaymasterParameters = {
  /** Which EntryPoint the paymaster serves (default "0.7"); each version has its own contract, so its own address. */
  entryPointVersion?: EntryPointVersion;
  /** Owner of the paymaster (default: the deployer). Part of the CREATE2 address. */
  owner?: Address;
  /** CREATE2 salt (default: zero). Part of the address. */
  salt?: Hex;
  /** Signers the set must contain (added if missing; others are left alone). */
  signers?: Address[];
  /** Keep the EntryPoint deposit at least this many wei (topped up if lower). */
  minDeposit?: bigint;
  /** Keep the stake at least this many wei (topped up if lower). */
  minStake?: bigint;
  /** Unstake delay for the stake, in seconds (default one day). */
  unstakeDelaySec?: number;
  /** Folder for `<chainId>.json` (omit to write nothing). */
  deploymentsDir?: string;
  log?: (line: string) => void;
};

export type PaymasterDeployment = {
  chainId: number;
  paymaster: Address;
  entryPoint: Address;
  /** Absent in records written before v0.8 was served: those are v0.7. */
  entryPointVersion?: EntryPointVersion;
  owner: Address;
  salt: Hex;
  initCodeHash: Hex;
  transactionHash: Hex | null;
  blockNumber: string | null;
  signers: Address[];
  updatedAt: string;
};

export const DEFAULT_UNSTAKE_DELAY_SEC = 86_400;

/** The paymaster's init code for `owner`, serving the canonical EntryPoint of `version`. */
export function paymasterInitCode(owner: Address, version: EntryPointVersion = "0.7"): Hex {
  return concat([
    fiatPaymasterArtifact(version).bytecode,
    encodeAbiParameters([{ type: "address" }, { type: "address" }], [CANONICAL_ENTRY_POINTS[version], owner]),
  ]);
}

/** The paymaster's address for `owner`, `salt` and EntryPoint `version`: the same on every chain. */
export function paymasterAddress(owner: Address, salt: Hex = pad("0x0"), version: EntryPointVersion = "0.7"): Address {
  return deterministicAddress(salt, paymasterInitCode(owner, version));
}

/** `<dir>/<chainId>.json` for the v0.7 paymaster (as before other versions were served), `<chainId>-ep0.8.json` … */
export function deploymentFile(deploymentsDir: string, chainId: number, version: EntryPointVersion = "0.7"): string {
  return path.join(deploymentsDir, version === "0.7" ? `${chainId}.json` : `${chainId}-ep${version}.json`);
}

/** Reads the record of the `version` paymaster on `chainId`; undefined when there is none. */
export function readDeployment(deploymentsDir: string, chainId: number, version: EntryPointVersion = "0.7"): PaymasterDeployment | undefined {
  const file = deploymentFile(deploymentsDir, chainId, version);
  if (!existsSync(file)) return undefined;
  let deployment: PaymasterDeployment;
  try {
    deployment = JSON.parse(readFileSync(file, "utf8")) as PaymasterDeployment;
  } catch (error) {
    throw new DeploymentError(`cannot read the deployment record ${file}: ${(error as Error).message}`);
  }
  const paymaster: unknown = deployment?.paymaster;
  if (typeof paymaster !== "string" || !isAddress(paymaster, { strict: false })) {
    throw new DeploymentError(`the deployment record ${file} has no valid paymaster address`);
  }
  return deployment;
}

function writeDeployment(deploymentsDir: string, deployment: PaymasterDeployment): string {
  mkdirSync(deploymentsDir, { recursive: true });
  const file = deploymentFile(deploymentsDir, deployment.chainId, deployment.entryPointVersion);
  // write-then-rename: a crash never leaves half a file where the operator CLI looks
  writeFileSync(`${file}.tmp`, `${JSON.stringify(deployment, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  return file;
}

/**
 * Brings the paymaster of one EntryPoint version on the connected chain to the wanted state: deployed through CREATE2 (same address on
 * every chain for the same owner and salt), signers present, deposit and stake at least the minimums.
 * Idempotent: run it again and it finds the deployment and sends only what is missing.
 */
export async function deployPaymaster(
  client: PublicClient,
  wallet: OperatorWallet,
  parameters: DeployPaymasterParameters = {},
): Promise<PaymasterDeployment> {
  const log = parameters.log ?? (() => {});
  const chainId = await client.getChainId();
  log(`chain ${chainId}, deployer ${wallet.account.address} (${formatEther(await client.getBalance({ address: wallet.account.address }))} ETH)`);

  const version = parameters.entryPointVersion ?? "0.7";
  const entryPoint = CANONICAL_ENTRY_POINTS[version];
  if (!(await hasCode(client, entryPoint))) {
    throw new DeploymentError(`EntryPoint v${version} is not deployed at ${entryPoint} on chain ${chainId}: refusing to deploy`);
  }
  log(`EntryPoint v${version} found at ${entryPoint}`);

  const owner = getAddress(parameters.owner ?? wallet.account.address);
  const salt = parameters.salt ?? pad("0x0");
  const initCode = paymasterInitCode(owner, version);
  const recorded = parameters.deploymentsDir ? readDeployment(parameters.deploymentsDir, chainId, version) : undefined;
  const label = FIAT_PAYMASTER_CONTRACTS[version];
  const deployed = await deployDeterministic(client, wallet, { salt, initCode, label }, log);
  const paymaster = deployed.address;
  // the record may describe another paymaster (other owner or salt): only this one's transaction is worth keeping
  const previous = recorded && getAddress(recorded.paymaster) === paymaster ? recorded : undefined;
  const status = await readPaymasterStatus(client, paymaster);
  if (getAddress(status.owner) !== owner) {
    // ownership moved since deployment (Ownable2Step): the address is still right, say who owns it now
    log(`note: the paymaster is now owned by ${status.owner}`);
  }

  const ownerKey = getAddress(status.owner) === getAddress(wallet.account.address);
  for (const signer of parameters.signers ?? []) {
    if (await isPaymasterSigner(client, paymaster, signer)) {
      log(`signer ${signer}: present`);
      continue;
    }
    if (!ownerKey) throw new DeploymentError(`cannot add signer ${signer}: the deployer is not the owner ${status.owner}`);
    const hash = await addPaymasterSigner(client, wallet, paymaster, signer);
    log(`signer ${signer}: added (tx ${hash})`);
  }

  const info = await readDepositInfo(client, paymaster);
  if (parameters.minDeposit !== undefined && info.deposit < parameters.minDeposit) {
    const amount = parameters.minDeposit - info.deposit;
    const hash = await depositToPaymaster(client, wallet, paymaster, amount);
    log(`deposit: added ${formatEther(amount)} ETH, now ${formatEther(parameters.minDeposit)} ETH (tx ${hash})`);
  } else {
    log(`deposit: ${formatEther(info.deposit)} ETH`);
  }

  const delay = parameters.unstakeDelaySec ?? DEFAULT_UNSTAKE_DELAY_SEC;
  // a minimum of zero asks for no stake (the EntryPoint cannot stake nothing)
  const wantsStake = parameters.minStake !== undefined && parameters.minStake > 0n;
  const stakeShort = wantsStake && info.stake < parameters.minStake!;
  const needsStake = wantsStake && (stakeShort || !info.staked || info.unstakeDelaySec < delay);
  if (needsStake) {
    if (!ownerKey) throw new DeploymentError(`cannot stake: the deployer is not the owner ${status.owner}`);
    const amount = stakeShort ? parameters.minStake! - info.stake : 0n;
    const hash = await stakePaymaster(client, wallet, paymaster, amount, Math.max(delay, info.unstakeDelaySec));
    log(`stake: added ${formatEther(amount)} ETH, unstake delay ${Math.max(delay, info.unstakeDelaySec)} s (tx ${hash})`);
  } else {
    log(`stake: ${formatEther(info.stake)} ETH, ${info.staked ? "staked" : "not staked"}, unstake delay ${info.unstakeDelaySec} s`);
  }

  const final = await readPaymasterStatus(client, paymaster);
  const deployment: PaymasterDeployment = {
    chainId,
    paymaster,
    entryPoint,
    entryPointVersion: version,
    owner: final.owner,
    salt,
    initCodeHash: keccak256(initCode),
    transactionHash: deployed.transactionHash ?? previous?.transactionHash ?? null,
    blockNumber: deployed.blockNumber?.toString() ?? previous?.blockNumber ?? null,
    signers: final.signers,
    updatedAt: new Date().toISOString(),
  };
  if (parameters.deploymentsDir) log(`wrote ${writeDeployment(parameters.deploymentsDir, deployment)}`);
  return deployment;
}
