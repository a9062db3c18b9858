import { type Address, type Hex, type PublicClient, type WalletClient, concat, encodeAbiParameters, getContractAddress } from "viem";
import {
  DETERMINISTIC_DEPLOYER,
  ENTRY_POINT_V07,
  ENTRY_POINT_V07_SALT,
  SIMPLE_ACCOUNT_FACTORY_V07,
  SIMPLE_ACCOUNT_FACTORY_V07_SALT,
} from "./addresses";
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

/**
 * Installs EntryPoint v0.7 and its SimpleAccountFactory at their canonical addresses, from the artifacts
 * @account-abstraction/contracts@0.7.0 ships. For local chains: public chains already have both.
 */
export async function installCanonicalContracts(
  publicClient: PublicClient,
  walletClient: WalletClient,
  log: (line: string) => void = () => {},
): Promise<{ entryPoint: Address; simpleAccountFactory: Address }> {
  const entryPoint = await deployDeterministic(
    publicClient,
    walletClient,
    { salt: ENTRY_POINT_V07_SALT, initCode: loadAccountAbstractionArtifact("EntryPoint").bytecode, label: "EntryPoint v0.7" },
    log,
  );
  const factoryInitCode = concat([
    loadAccountAbstractionArtifact("SimpleAccountFactory").bytecode,
    encodeAbiParameters([{ type: "address" }], [ENTRY_POINT_V07]),
  ]);
  const factory = await deployDeterministic(
    publicClient,
    walletClient,
    { salt: SIMPLE_ACCOUNT_FACTORY_V07_SALT, initCode: factoryInitCode, label: "SimpleAccountFactory v0.7" },
    log,
  );
  if (entryPoint.address !== ENTRY_POINT_V07 || factory.address !== SIMPLE_ACCOUNT_FACTORY_V07) {
    throw new DeploymentError("the shipped artifacts no longer produce the canonical addresses");
  }
  return { entryPoint: entryPoint.address, simpleAccountFactory: factory.address };
}
