import {
  type Address,
  type Hex,
  type PublicClient,
  type WalletClient,
  concat,
  encodeAbiParameters,
  getContractAddress,
  isAddressEqual,
  slice,
} from "viem";
import {
  DETERMINISTIC_DEPLOYER,
  ENTRY_POINT_V07,
  ENTRY_POINT_V07_SALT,
  ENTRY_POINT_V08,
  ENTRY_POINT_V08_SALT,
  ENTRY_POINT_V09,
  ENTRY_POINT_VERSIONS,
  type EntryPointVersion,
  SIMPLE_7702_ACCOUNT_V08,
  SIMPLE_7702_ACCOUNT_V09,
  SIMPLE_ACCOUNT_FACTORY_V07,
  SIMPLE_ACCOUNT_FACTORY_V07_SALT,
  SIMPLE_ACCOUNT_FACTORY_V08,
  SIMPLE_ACCOUNT_FACTORY_V09,
} from "./addresses";
import {
  ENTRY_POINT_V09_CREATECALL,
  SIMPLE_7702_ACCOUNT_IMPLEMENTATION_V08_CREATECALL,
  SIMPLE_7702_ACCOUNT_IMPLEMENTATION_V09_CREATECALL,
  SIMPLE_ACCOUNT_FACTORY_V08_CREATECALL,
  SIMPLE_ACCOUNT_FACTORY_V09_CREATECALL,
} from "./vendored/altoDeployments";
import { loadAccountAbstractionArtifact } from "./artifacts";

/** Thrown when a chain lacks something a deployment needs, or a deployment did not land where expected. */
export class DeploymentError extends Error {
  override name = "DeploymentError";
}

export type DeterministicDeployment = { address: Address; transactionHash?: Hex; blockNumber?: bigint };

/**
 * The address the deterministic deployer gives `initCode` with `salt`: the same on every chain. `deployer` names
 * another factory of the same kind (CREATE2 with calldata salt ‖ initCode), such as Safe's singleton factory.
 */
export function deterministicAddress(salt: Hex, initCode: Hex, deployer: Address = DETERMINISTIC_DEPLOYER): Address {
  return getContractAddress({ opcode: "CREATE2", from: deployer, salt, bytecode: initCode });
}

export async function hasCode(client: PublicClient, address: Address): Promise<boolean> {
  const code = await client.getCode({ address });
  return code !== undefined && code !== "0x";
}

/**
 * Deploys `initCode` through the deterministic deployer (or `deployer`, a factory of the same kind) unless its
 * address already holds code. Idempotent: a second call finds the contract and sends nothing.
 */
export async function deployDeterministic(
  publicClient: PublicClient,
  walletClient: WalletClient,
  { salt, initCode, label, deployer = DETERMINISTIC_DEPLOYER }: { salt: Hex; initCode: Hex; label: string; deployer?: Address },
  log: (line: string) => void = () => {},
): Promise<DeterministicDeployment> {
  const address = deterministicAddress(salt, initCode, deployer);
  if (await hasCode(publicClient, address)) {
    log(`${label}: already at ${address}`);
    return { address };
  }
  if (!(await hasCode(publicClient, deployer))) {
    throw new DeploymentError(`the deterministic deployment proxy ${deployer} is not on chain ${await publicClient.getChainId()}`);
  }
  log(`${label}: deploying to ${address} …`);
  const account = walletClient.account;
  if (!account) throw new DeploymentError("the wallet client has no account");
  const transactionHash = await walletClient.sendTransaction({
    account,
    chain: walletClient.chain,
    to: deployer,
    data: concat([salt, initCode]),
  });
  const receipt = await publicClient.waitForTransactionReceipt({ hash: transactionHash });
  if (receipt.status !== "success" || !(await hasCode(publicClient, address))) {
    throw new DeploymentError(`${label}: deployment transaction ${transactionHash} did not create ${address}`);
  }
  log(`${label}: deployed at ${address} (tx ${transactionHash}, block ${receipt.blockNumber})`);
  return { address, transactionHash, blockNumber: receipt.blockNumber };
}

type CanonicalContract = { label: string; address: Address; salt: Hex; initCode: () => Hex };

/** salt ‖ init code, as the deterministic deployer takes it, split back into its two parts. */
function createCall(call: Hex): { salt: Hex; initCode: () => Hex } {
  return { salt: slice(call, 0, 32), initCode: () => slice(call, 32) };
}

const withEntryPoint = (bytecode: Hex, entryPoint: Address): Hex =>
  concat([bytecode, encodeAbiParameters([{ type: "address" }], [entryPoint])]);

/**
 * What a development chain needs for each EntryPoint version, in deployment order: the EntryPoint, its
 * SimpleAccountFactory and, from v0.8 on, Simple7702Account (the EIP-7702 delegate). v0.7 and the v0.8 EntryPoint
 * come from the @account-abstraction/contracts artifacts; the rest from the deployment calls vendored in
 * vendored/altoDeployments.ts.
 */
export const CANONICAL_CONTRACTS: Readonly<Record<EntryPointVersion, readonly CanonicalContract[]>> = {
  "0.7": [
    {
      label: "EntryPoint v0.7",
      address: ENTRY_POINT_V07,
      salt: ENTRY_POINT_V07_SALT,
      initCode: () => loadAccountAbstractionArtifact("EntryPoint").bytecode,
    },
    {
      label: "SimpleAccountFactory v0.7",
      address: SIMPLE_ACCOUNT_FACTORY_V07,
      salt: SIMPLE_ACCOUNT_FACTORY_V07_SALT,
      initCode: () => withEntryPoint(loadAccountAbstractionArtifact("SimpleAccountFactory").bytecode, ENTRY_POINT_V07),
    },
  ],
  "0.8": [
    {
      label: "EntryPoint v0.8",
      address: ENTRY_POINT_V08,
      salt: ENTRY_POINT_V08_SALT,
      initCode: () => loadAccountAbstractionArtifact("EntryPoint", "0.8").bytecode,
    },
    { label: "SimpleAccountFactory v0.8", address: SIMPLE_ACCOUNT_FACTORY_V08, ...createCall(SIMPLE_ACCOUNT_FACTORY_V08_CREATECALL) },
    { label: "Simple7702Account v0.8", address: SIMPLE_7702_ACCOUNT_V08, ...createCall(SIMPLE_7702_ACCOUNT_IMPLEMENTATION_V08_CREATECALL) },
  ],
  "0.9": [
    { label: "EntryPoint v0.9", address: ENTRY_POINT_V09, ...createCall(ENTRY_POINT_V09_CREATECALL) },
    { label: "SimpleAccountFactory v0.9", address: SIMPLE_ACCOUNT_FACTORY_V09, ...createCall(SIMPLE_ACCOUNT_FACTORY_V09_CREATECALL) },
    { label: "Simple7702Account v0.9", address: SIMPLE_7702_ACCOUNT_V09, ...createCall(SIMPLE_7702_ACCOUNT_IMPLEMENTATION_V09_CREATECALL) },
  ],
};

/**
 * Installs the EntryPoints of `versions` (default: all three) with their SimpleAccountFactory and Simple7702Account
 * at their canonical addresses. For local chains: public chains already have them. Idempotent.
 */
export async function installCanonicalContracts(
  publicClient: PublicClient,
  walletClient: WalletClient,
  log: (line: string) => void = () => {},
  versions: readonly EntryPointVersion[] = ENTRY_POINT_VERSIONS,
): Promise<{ entryPoint: Address; simpleAccountFactory: Address }> {
  for (const version of versions) {
    for (const contract of CANONICAL_CONTRACTS[version]) {
      const deployed = await deployDeterministic(
        publicClient,
        walletClient,
        { salt: contract.salt, initCode: contract.initCode(), label: contract.label },
        log,
      );
      if (!isAddressEqual(deployed.address, contract.address)) {
        throw new DeploymentError(`${contract.label}: the shipped code lands at ${deployed.address}, not at the canonical ${contract.address}`);
      }
    }
  }
  return { entryPoint: ENTRY_POINT_V07, simpleAccountFactory: SIMPLE_ACCOUNT_FACTORY_V07 };
}
