import { type Address, type Hex, type PublicClient, createPublicClient, createWalletClient, http, parseEther } from "viem";
import { foundry } from "viem/chains";
import { privateKeyToAccount } from "viem/accounts";
import { type Anvil, type StartAnvilParameters, startAnvil } from "./anvil";
import { ENTRY_POINT_VERSIONS, type EntryPointVersion } from "../../server/chain/addresses";
import { installCanonicalContracts } from "../../server/chain/canonical";
import { type PaymasterDeployment, deployPaymaster } from "../../server/chain/deploy";
import type { OperatorWallet } from "../../server/chain/operator";

/**
 * anvil's well-known development keys (mnemonic "test test … junk"). Public knowledge: for local chains only.
 * #0 deploys and owns the paymaster, #1 signs sponsorships, #2 acts as the bundler.
 */
export const DEV_KEYS = {
  owner: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  signer: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  bundler: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
} as const satisfies Record<string, Hex>;

export type LocalChain = {
  anvil: Anvil;
  client: PublicClient;
  owner: OperatorWallet;
  /** The v0.7 paymaster (FiatPaymaster). */
  paymaster: Address;
  deployment: PaymasterDeployment;
  /** Each EntryPoint version's paymaster, all deployed, with the dev signer, deposited and staked alike. */
  paymasters: Record<EntryPointVersion, Address>;
  stop: () => Promise<void>;
};

export type StartLocalChainParameters = StartAnvilParameters & {
  deploymentsDir?: string;
  log?: (line: string) => void;
  /** Initial EntryPoint deposit of the paymaster (default 10 ETH). */
  deposit?: bigint;
  /** Initial stake (default 1 ETH). */
  stake?: bigint;
};

export function localClients(rpcUrl: string, chainId: number, key: Hex = DEV_KEYS.owner) {
  const chain = { ...foundry, id: chainId, rpcUrls: { default: { http: [rpcUrl] } } };
  const transport = http(rpcUrl);
  const client = createPublicClient({ chain, transport, pollingInterval: 50 }) as PublicClient;
  const wallet: OperatorWallet = createWalletClient({ chain, transport, account: privateKeyToAccount(key) });
  return { client, wallet };
}

/**
 * anvil with EntryPoint v0.7, v0.8 and v0.9 (each with its SimpleAccountFactory; Simple7702Account from v0.8) at
 * their canonical addresses and each version's paymaster deployed, the dev signer added, deposited and staked:
 * what `npm start` and the tests run against.
 */
export async function startLocalChain(parameters: StartLocalChainParameters = {}): Promise<LocalChain> {
  const log = parameters.log ?? (() => {});
  const anvil = await startAnvil(parameters);
  try {
    const { client, wallet } = localClients(anvil.rpcUrl, anvil.chainId);
    await installCanonicalContracts(client, wallet, log);
    const deployments = {} as Record<EntryPointVersion, PaymasterDeployment>;
    for (const entryPointVersion of ENTRY_POINT_VERSIONS) {
      deployments[entryPointVersion] = await deployPaymaster(client, wallet, {
        entryPointVersion,
        signers: [privateKeyToAccount(DEV_KEYS.signer).address],
        minDeposit: parameters.deposit ?? parseEther("10"),
        minStake: parameters.stake ?? parseEther("1"),
        deploymentsDir: parameters.deploymentsDir,
        log,
      });
    }
    const deployment = deployments["0.7"];
    const paymasters = Object.fromEntries(ENTRY_POINT_VERSIONS.map((v) => [v, deployments[v].paymaster])) as Record<EntryPointVersion, Address>;
    return { anvil, client, owner: wallet, paymaster: deployment.paymaster, deployment, paymasters, stop: anvil.stop };
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}
