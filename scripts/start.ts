/**
 * The local stack: `npm start`. anvil with EntryPoint v0.7, SimpleAccountFactory and FiatPaymaster (signer
 * added, deposited, staked); the gateway simulator (sandbox Alipay and WeChat Pay); the server on PGlite,
 * configured for the simulator. Ctrl-C stops everything.
 *
 *   ANVIL_PORT (8545), SIMULATOR_PORT (4010), PORT (3000), DATA_DIR (.data/pglite), SANDBOX_DIR (.data/sandbox),
 *   DEPLOYMENTS_DIR (deployments)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { privateKeyToAccount } from "viem/accounts";
import { SIMPLE_ACCOUNT_FACTORY_V07 } from "../server/chain/addresses";
import { startSimulator, writeSandboxDir } from "../server/simulator/server";
import { runMain } from "./lib/cli";
import { DEV_KEYS, startLocalChain } from "./lib/localChain";

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
  const serverPort = Number(env.PORT ?? 3000);
  const sandboxDir = path.resolve(env.SANDBOX_DIR ?? path.join(ROOT, ".data/sandbox"));
  const dataDir = path.resolve(env.DATA_DIR ?? path.join(ROOT, ".data/pglite"));

  console.log(`starting anvil on 127.0.0.1:${anvilPort} …`);
  const chain = await startLocalChain({
    port: anvilPort,
    deploymentsDir: path.resolve(env.DEPLOYMENTS_DIR ?? path.join(ROOT, "deployments")),
    log: (line) => console.log(`  ${line}`),
  });

  console.log("starting the gateway simulator …");
  const keysFile = path.join(sandboxDir, "simulator-keys.json");
  const simulator = await startSimulator({
    port: Number(env.SIMULATOR_PORT ?? 4010),
    timeScale: 0.01,
    sandbox: existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, "utf8")) : undefined,
  });
  writeSandboxDir(sandboxDir, simulator);

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
    await chain.stop();
  };
  try {
    await waitForReady(serverUrl, server, 60_000);
  } catch (error) {
    await stopAll();
    throw error;
  }

  console.log(`
fiat-paymaster local stack is up
  chain RPC              ${chain.anvil.rpcUrl} (chain id ${chain.anvil.chainId})
  EntryPoint v0.7        ${chain.deployment.entryPoint}
  SimpleAccountFactory   ${SIMPLE_ACCOUNT_FACTORY_V07}
  FiatPaymaster          ${chain.paymaster}
  owner                  ${chain.owner.account.address} (anvil key #0)
  sponsorship signer     ${privateKeyToAccount(DEV_KEYS.signer).address} (anvil key #1)
  gateway simulator      ${simulator.url} (sandbox Alipay and WeChat Pay)
  server                 ${serverUrl} (PGlite in ${path.relative(ROOT, dataDir) || dataDir})
  admin token            ${adminToken}

  try: curl -s -X POST ${serverUrl}/v1/orders -H 'content-type: application/json' \\
         -d '{"account":"0x${"11".repeat(20)}","amountFen":1000,"provider":"alipay"}'
       then open the qrCode URL it returns and press Pay.
  RPC_URL=${chain.anvil.rpcUrl} npm run paymaster -- status
Press Ctrl-C to stop.`);

  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      stopping = true;
      console.log(`\n${signal}: stopping …`);
      resolve();
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    for (const [name, child] of [["anvil", chain.anvil.process], ["server", server]] as const) {
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
