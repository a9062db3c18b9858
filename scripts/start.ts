/**
 * The local stack: `npm start`. anvil with EntryPoint v0.7, SimpleAccountFactory and FiatPaymaster (signer
 * added, deposited, staked); the alto bundler on that chain; the gateway simulator (sandbox Alipay and WeChat
 * Pay); the server on PGlite, configured for the simulator and the bundler. Ctrl-C stops everything.
 *
 *   ANVIL_PORT (8545), BUNDLER_PORT (4337), SIMULATOR_PORT (4010), PORT (3000), DATA_DIR (.data/pglite),
 *   SANDBOX_DIR (.data/sandbox), DEPLOYMENTS_DIR (deployments)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { privateKeyToAccount } from "viem/accounts";
import {
  ENTRY_POINT_V07,
  ENTRY_POINT_V08,
  ENTRY_POINT_V09,
  ENTRY_POINT_VERSIONS,
  SIMPLE_7702_ACCOUNT_V08,
  SIMPLE_7702_ACCOUNT_V09,
  SIMPLE_ACCOUNT_FACTORY_V07,
  SIMPLE_ACCOUNT_FACTORY_V08,
} from "../server/chain/addresses";
import { startSimulator, writeSandboxDir } from "../devtools/simulator/server";
import { generateApiKey } from "../server/sponsorship/apiKeys";
import { LOCAL_STACK_FILE, type LocalStackInfo } from "../devtools/localStack";
import { LOCAL_UTILITY_KEY, startAlto } from "../devtools/chain/alto";
import { runMain } from "./lib/cli";
import { DEV_KEYS, startLocalChain } from "../devtools/chain/localChain";

const ROOT = path.resolve(__dirname, "..");

async function waitForReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server did not become ready at ${url} within ${timeoutMs / 1000} s`);
}

async function main(): Promise<void> {
  const env = process.env;
  const anvilPort = Number(env.ANVIL_PORT ?? 8545);
  const bundlerPort = Number(env.BUNDLER_PORT ?? 4337);
  const serverPort = Number(env.PORT ?? 3000);
  const sandboxDir = path.resolve(env.SANDBOX_DIR ?? path.join(ROOT, ".data/sandbox"));
  const dataDir = path.resolve(env.DATA_DIR ?? path.join(ROOT, ".data/pglite"));
  const stackFile = path.resolve(env.LOCAL_STACK_FILE ?? LOCAL_STACK_FILE);

  console.log(`starting anvil on 127.0.0.1:${anvilPort} …`);
  const chain = await startLocalChain({
    port: anvilPort,
    // an idle chain's base fee falls by an eighth every block (each holds one bundle, far below the target), so
    // the same operation would cost less run by run; at 0 it stays put and an operation costs its tip
    args: ["--block-base-fee-per-gas", "0"],
    deploymentsDir: path.resolve(env.DEPLOYMENTS_DIR ?? path.join(ROOT, "deployments")),
    log: (line) => console.log(`  ${line}`),
  });

  console.log(`starting the alto bundler on 127.0.0.1:${bundlerPort} …`);
  const bundler = await startAlto({
    rpcUrl: chain.anvil.rpcUrl,
    port: bundlerPort,
    executorKeys: [DEV_KEYS.bundler],
    utilityKey: LOCAL_UTILITY_KEY,
    onLine: (line) => console.error(`  alto: ${line}`), // warnings and errors only
  }).catch(async (error: unknown) => {
    await chain.stop();
    throw error;
  });

  console.log("starting the gateway simulator …");
  const keysFile = path.join(sandboxDir, "simulator-keys.json");
  const simulator = await startSimulator({
    port: Number(env.SIMULATOR_PORT ?? 4010),
    timeScale: 0.01,
    sandbox: existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, "utf8")) : undefined,
  }).catch(async (error: unknown) => {
    await bundler.stop();
    await chain.stop();
    throw error;
  });
  writeSandboxDir(sandboxDir, simulator);

  // the demo API key survives restarts (the server installs it if missing), so a DApp's config keeps working
  const previous = existsSync(stackFile) ? (JSON.parse(readFileSync(stackFile, "utf8")) as { apiKey?: string }) : {};
  const apiKey = env.DEMO_API_KEY ?? previous.apiKey ?? generateApiKey().key;
  const chains = [
    {
      chainId: chain.anvil.chainId,
      name: "anvil",
      rpcUrl: chain.anvil.rpcUrl,
      bundlerUrl: bundler.url,
      // every EntryPoint the local chain has, each with its own paymaster
      entryPoints: ENTRY_POINT_VERSIONS.map((version) => ({ version, paymaster: chain.paymasters[version] })),
      // test ETH priced at ¥2,000 so that a ¥10 top-up pays for a few operations at anvil's ~1–2 gwei
      fenPerNative: "200000",
      markupBps: 500,
      confirmations: 0,
    },
  ];

  console.log("starting the server (PGlite) …");
  const adminToken = env.ADMIN_TOKEN ?? randomBytes(16).toString("hex");
  const serverUrl = `http://127.0.0.1:${serverPort}`;
  const server = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    env: {
      ...env,
      PORT: String(serverPort),
      HOST: "127.0.0.1",
      PUBLIC_URL: serverUrl,
      SANDBOX_DIR: sandboxDir,
      DATA_DIR: dataDir,
      ADMIN_TOKEN: adminToken,
      CHAINS: JSON.stringify(chains),
      SIGNER_PRIVATE_KEY: DEV_KEYS.signer,
      BOOTSTRAP_API_KEY: apiKey,
      SETTLE_INTERVAL_MS: "500",
      DEPOSIT_CHECK_INTERVAL_MS: "5000",
      RECONCILE_AFTER_SECONDS: "30",
      RECONCILE_INTERVAL_SECONDS: "10",
      LOG_LEVEL: env.LOG_LEVEL ?? "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  let stopping = false;
  const stopAll = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server.once("exit", resolve));
      server.kill("SIGTERM");
      await exited;
    }
    await simulator.close();
    await bundler.stop(); // after the server, which uses it; before the chain, which it polls
    await chain.stop();
  };
  try {
    await waitForReady(serverUrl, server, 60_000);
  } catch (error) {
    await stopAll();
    throw error;
  }
  const info: LocalStackInfo = { serverUrl, bundlerUrl: bundler.url, rpcUrl: chain.anvil.rpcUrl, chainId: chain.anvil.chainId, simulatorUrl: simulator.url, apiKey, paymaster: chain.paymaster };
  mkdirSync(path.dirname(stackFile), { recursive: true });
  writeFileSync(stackFile, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });

  console.log(`
fiat-paymaster local stack is up
  chain RPC              ${chain.anvil.rpcUrl} (chain id ${chain.anvil.chainId})
  EntryPoint v0.7        ${ENTRY_POINT_V07}  FiatPaymaster     ${chain.paymasters["0.7"]}
  EntryPoint v0.8        ${ENTRY_POINT_V08}  FiatPaymasterV08  ${chain.paymasters["0.8"]}
  EntryPoint v0.9        ${ENTRY_POINT_V09}  FiatPaymasterV09  ${chain.paymasters["0.9"]}
  SimpleAccountFactory   ${SIMPLE_ACCOUNT_FACTORY_V07} (v0.7), ${SIMPLE_ACCOUNT_FACTORY_V08} (v0.8)
  Simple7702Account      ${SIMPLE_7702_ACCOUNT_V08} (v0.8), ${SIMPLE_7702_ACCOUNT_V09} (v0.9)
  owner                  ${chain.owner.account.address} (anvil key #0)
  sponsorship signer     ${privateKeyToAccount(DEV_KEYS.signer).address} (anvil key #1)
  bundler (alto)         ${bundler.url} (executor ${privateKeyToAccount(DEV_KEYS.bundler).address}, anvil key #2)
  gateway simulator      ${simulator.url} (sandbox Alipay and WeChat Pay)
  server                 ${serverUrl} (PGlite in ${path.relative(ROOT, dataDir) || dataDir})
  admin token            ${adminToken}
  demo API key           ${apiKey}
  ERC-7677 paymaster     ${serverUrl}/rpc?apikey=${apiKey}
  OpenAPI                ${serverUrl}/openapi.json     metrics ${serverUrl}/metrics
  web pages              ${serverUrl}/dapp   ${serverUrl}/checkout   ${serverUrl}/dashboard (admin token above)

  try: npm run demo      (a zero-ETH account tops up ¥10 and sends a sponsored UserOperation through alto)

  try: curl -s -X POST ${serverUrl}/v1/orders -H 'content-type: application/json' \\
         -d '{"account":"0x${"11".repeat(20)}","amountFen":1000,"provider":"alipay"}'
       then open the qrCode URL it returns and press Pay.
  RPC_URL=${chain.anvil.rpcUrl} npm run paymaster -- status [--entry-point-version 0.8]
Press Ctrl-C to stop.`);

  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      stopping = true;
      console.log(`\n${signal}: stopping …`);
      resolve();
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    for (const [name, child] of [["anvil", chain.anvil.process], ["bundler", bundler.process], ["server", server]] as const) {
      child.once("exit", (code) => {
        if (stopping) return;
        console.error(`${name} exited unexpectedly (code ${code})`);
        process.exitCode = 1;
        resolve();
      });
    }
  });
  await stopAll();
  console.log("stopped.");
}

runMain(main);
