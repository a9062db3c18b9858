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

/** The address the deterministic deployer gives `initCode` with `salt`: the same on every chain. */
export function deterministicAddress(salt: Hex, initCode: Hex): Address {
  return getContractAddress({ opcode: "CREATE2", from: DETERMINISTIC_DEPLOYER, salt, bytecode: initCode });
}

export async function hasCode(client: PublicClient, address: Address): Promise<boolean> {
  const code = await client.getCode({ address });
  return code !== undefined && code !== "0x";
}

/**
 * Deploys `initCode` through the deterministic deployer unless its address already holds code.
 * Idempotent: a second call finds the contract and sends nothing.
 */
export async function deployDeterministic(
  publicClient: PublicClient,
  walletClient: WalletClient,
  { salt, initCode, label }: { salt: Hex; initCode: Hex; label: string },
  log: (line: string) => void = () => {},
): Promise<DeterministicDeployment> {
  const address = deterministicAddress(salt, initCode);
  if (await hasCode(publicClient, address)) {
    log(`${label}: already at ${address}`);
    return { address };
  }
  if (!(await hasCode(publicClient, DETERMINISTIC_DEPLOYER))) {
    throw new DeploymentError(
      `the deterministic deployment proxy ${DETERMINISTIC_DEPLOYER} is not on chain ${await publicClient.getChainId()}`,
    );
  }
  log(`${label}: deploying to ${address} …`);
  const account = walletClient.account;
  if (!account) throw new DeploymentError("the wallet client has no account");
  const transactionHash = await walletClient.sendTransaction({
    account,
    chain: walletClient.chain,
    to: DETERMINISTIC_DEPLOYER,
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
