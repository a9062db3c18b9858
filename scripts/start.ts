/**
 * The local stack: `npm start`. Today: anvil with EntryPoint v0.7, SimpleAccountFactory and FiatPaymaster
 * (signer added, deposited, staked). Ctrl-C stops everything.
 */
import path from "node:path";
import { privateKeyToAccount } from "viem/accounts";
import { SIMPLE_ACCOUNT_FACTORY_V07 } from "../server/chain/addresses";
import { runMain } from "./lib/cli";
import { DEV_KEYS, startLocalChain } from "./lib/localChain";

async function main(): Promise<void> {
  const port = Number(process.env.ANVIL_PORT ?? 8545);
  console.log(`starting anvil on 127.0.0.1:${port} …`);
  const chain = await startLocalChain({
    port,
    deploymentsDir: path.resolve(process.env.DEPLOYMENTS_DIR ?? path.join(__dirname, "../deployments")),
    log: (line) => console.log(`  ${line}`),
  });
  console.log(`
fiat-paymaster local stack is up
  chain RPC              ${chain.anvil.rpcUrl} (chain id ${chain.anvil.chainId})
  EntryPoint v0.7        ${chain.deployment.entryPoint}
  SimpleAccountFactory   ${SIMPLE_ACCOUNT_FACTORY_V07}
  FiatPaymaster          ${chain.paymaster}
  owner                  ${chain.owner.account.address} (anvil key #0)
  sponsorship signer     ${privateKeyToAccount(DEV_KEYS.signer).address} (anvil key #1)

  RPC_URL=${chain.anvil.rpcUrl} npm run paymaster -- status
Press Ctrl-C to stop.`);

  let stopping = false;
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      stopping = true;
      console.log(`\n${signal}: stopping …`);
      resolve();
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    chain.anvil.process.once("exit", (code) => {
      if (stopping) return;
      console.error(`anvil exited unexpectedly (code ${code})`);
      process.exitCode = 1;
      resolve();
    });
  });
  await chain.stop();
  console.log("stopped.");
}

runMain(main);
