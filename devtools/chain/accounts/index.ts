/**
 * The contracts the common smart accounts need on EntryPoint v0.7 — Safe, Kernel v3.1, Nexus and LightAccount 2.0 —
 * for a local chain, where a fresh anvil has none of them. Their deployment bytecodes are vendored from
 * permissionless.js' test chain (each family's file names the source), and they land at the addresses permissionless
 * 0.4.1's account functions use by default, so `toSafeSmartAccount` & co. work without address overrides.
 * SimpleAccount's factory comes with the canonical contracts (server/chain/canonical.ts).
 */
import { type Address, type Hex, type PublicClient, type WalletClient, decodeFunctionData, getContractAddress, isAddressEqual, parseAbi, parseEther, slice, toHex } from "viem";
import { DeploymentError, deployDeterministic, deterministicAddress, hasCode } from "../../../server/chain/canonical";
import { KERNEL_ACCOUNT } from "./kernel";
import { LIGHT_ACCOUNT } from "./light";
import { NEXUS_ACCOUNT } from "./nexus";
import { SAFE_ACCOUNT } from "./safe";

/**
 * A contract its deployer creates from `createCall`, the deployer's calldata as vendored. `create2`: a factory like
 * the deterministic deployer (calldata salt ‖ init code, CREATE2). `create3`: Solady's CREATE3 behind
 * `deploy(bytes32 salt, bytes creationCode)`, where the address depends on the deployer and salt alone.
 */
export type VendoredContract = { label: string; address: Address; kind: "create2" | "create3"; deployer: Address; createCall: Hex };

/** A factory that reaches public chains by a one-off transaction: a local chain gets its runtime code set. */
export type PlacedContract = { label: string; address: Address; runtimeCode: Hex };

/** A call only `from` may make (impersonated on anvil), needed unless calling `done.to` with `done.data` returns `done.expect`. */
export type OwnerCall = { label: string; from: Address; to: Address; data: Hex; done: { to: Address; data: Hex; expect: Hex } };

export type AccountFamily = { name: string; placed?: PlacedContract[]; contracts: VendoredContract[]; ownerCalls?: OwnerCall[] };

export const ACCOUNT_FAMILIES: readonly AccountFamily[] = [SAFE_ACCOUNT, KERNEL_ACCOUNT, NEXUS_ACCOUNT, LIGHT_ACCOUNT];

export type InstalledContract = { family: string; label: string; address: Address; deployed: boolean };

const create3Abi = parseAbi(["function deploy(bytes32 salt, bytes creationCode)"]);

/** Solady CREATE3's proxy: its init code's address is CREATE2(deployer, salt); the proxy CREATEs the contract (nonce 1). */
const CREATE3_PROXY_INIT_CODE: Hex = "0x67363d3d37363d34f03d5260086018f3";

/** Where `contract`'s vendored bytes put it: computed from the bytes, so a mislabelled constant shows. */
export function vendoredAddress(contract: VendoredContract): Address {
  if (contract.kind === "create2") return deterministicAddress(slice(contract.createCall, 0, 32), slice(contract.createCall, 32), contract.deployer);
  const { args } = decodeFunctionData({ abi: create3Abi, data: contract.createCall });
  const proxy = getContractAddress({ opcode: "CREATE2", from: contract.deployer, salt: args[0], bytecode: CREATE3_PROXY_INIT_CODE });
  return getContractAddress({ opcode: "CREATE", from: proxy, nonce: 1n });
}

/**
 * Installs every account family's contracts that the chain lacks, each where permissionless expects it, and makes
 * the owner calls not yet made. Idempotent: on a chain that has them all it sends nothing. Placing factories and
 * owner calls use anvil's RPC (anvil_setCode, anvil_impersonateAccount), so a chain that lacks those pieces must be
 * anvil. Throws DeploymentError when something does not land where it should.
 */
export async function installAccountContracts(
  client: PublicClient,
  wallet: WalletClient,
  log: (line: string) => void = () => {},
): Promise<InstalledContract[]> {
  const installed: InstalledContract[] = [];
  for (const family of ACCOUNT_FAMILIES) {
    for (const placed of family.placed ?? []) await place(client, placed, log);
    for (const contract of family.contracts) {
      installed.push({ family: family.name, label: contract.label, address: contract.address, deployed: await deploy(client, wallet, contract, log) });
    }
    for (const call of family.ownerCalls ?? []) await callAsOwner(client, call, log);
  }
  return installed;
}

/** Deploys `contract` unless its address holds code; whether it sent a deployment. */
async function deploy(client: PublicClient, wallet: WalletClient, contract: VendoredContract, log: (line: string) => void): Promise<boolean> {
  const address = vendoredAddress(contract);
  if (!isAddressEqual(address, contract.address)) {
    throw new DeploymentError(`${contract.label}: the vendored bytes deploy to ${address}, not to ${contract.address}`);
  }
  if (contract.kind === "create2") {
    const deployment = await deployDeterministic(
      client,
      wallet,
      { salt: slice(contract.createCall, 0, 32), initCode: slice(contract.createCall, 32), label: contract.label, deployer: contract.deployer },
      log,
    );
    return deployment.transactionHash !== undefined;
  }
  if (await hasCode(client, address)) {
    log(`${contract.label}: already at ${address}`);
    return false;
  }
  if (!(await hasCode(client, contract.deployer))) throw new DeploymentError(`${contract.label}: its CREATE3 factory ${contract.deployer} is not on chain`);
  if (!wallet.account) throw new DeploymentError("the wallet client has no account");
  log(`${contract.label}: deploying to ${address} …`);
  const hash = await wallet.sendTransaction({ account: wallet.account, chain: wallet.chain, to: contract.deployer, data: contract.createCall });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success" || !(await hasCode(client, address))) {
    throw new DeploymentError(`${contract.label}: deployment transaction ${hash} did not create ${address}`);
  }
  log(`${contract.label}: deployed at ${address} (tx ${hash}, block ${receipt.blockNumber})`);
  return true;
}

async function place(client: PublicClient, placed: PlacedContract, log: (line: string) => void): Promise<void> {
  if (await hasCode(client, placed.address)) {
    log(`${placed.label}: already at ${placed.address}`);
    return;
  }
  await anvil(client, "anvil_setCode", [placed.address, placed.runtimeCode], placed.label);
  if (!(await hasCode(client, placed.address))) throw new DeploymentError(`${placed.label}: anvil_setCode left ${placed.address} empty`);
  log(`${placed.label}: placed at ${placed.address}`);
}

async function callAsOwner(client: PublicClient, call: OwnerCall, log: (line: string) => void): Promise<void> {
  const isDone = async () => (await client.call({ to: call.done.to, data: call.done.data })).data === call.done.expect;
  if (await isDone()) {
    log(`${call.label}: already done`);
    return;
  }
  await anvil(client, "anvil_impersonateAccount", [call.from], call.label);
  try {
    // the owner pays the gas of its call: give it some, as permissionless' test chain does
    if ((await client.getBalance({ address: call.from })) < parseEther("1")) await anvil(client, "anvil_setBalance", [call.from, toHex(parseEther("1"))], call.label);
    const hash = (await client.request({ method: "eth_sendTransaction", params: [{ from: call.from, to: call.to, data: call.data }] } as never)) as Hex;
    const receipt = await client.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success" || !(await isDone())) throw new DeploymentError(`${call.label}: transaction ${hash} from ${call.from} did not take effect`);
    log(`${call.label}: done (tx ${hash})`);
  } finally {
    await anvil(client, "anvil_stopImpersonatingAccount", [call.from], call.label);
  }
}

async function anvil(client: PublicClient, method: string, params: unknown[], label: string): Promise<unknown> {
  try {
    return await client.request({ method, params } as never);
  } catch (error) {
    throw new DeploymentError(`${label}: ${method} failed (${(error as Error).message.split("\n")[0]}); only a local anvil chain can be given this`);
  }
}
