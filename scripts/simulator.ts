/**
 * The gateway simulator on its own: `npm run simulator`. Writes the matching merchant configuration to
 * SANDBOX_DIR (default .data/sandbox) so a server started with SANDBOX_DIR set talks to it. Keys are kept in
 * that folder, so a restart keeps the same identities.
 *
 *   SIMULATOR_PORT (default 4010), SIMULATOR_TIME_SCALE (default 0.01: retries 100× faster),
 *   SIMULATOR_WECHAT_SIGN_WITH=certificate|publicKey (default certificate)
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { startSimulator, writeSandboxDir } from "../devtools/simulator/server";
import { runMain } from "./lib/cli";

async function main(): Promise<void> {
  const dir = path.resolve(process.env.SANDBOX_DIR ?? ".data/sandbox");
  const keysFile = path.join(dir, "simulator-keys.json");
  const signWith = process.env.SIMULATOR_WECHAT_SIGN_WITH === "publicKey" ? "publicKey" : "certificate";
  const simulator = await startSimulator({
    port: Number(process.env.SIMULATOR_PORT ?? 4010),
    timeScale: Number(process.env.SIMULATOR_TIME_SCALE ?? 0.01),
    wechatSignWith: signWith,
    sandbox: existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, "utf8")) : undefined,
  });
  writeSandboxDir(dir, simulator);
  console.log(`gateway simulator at ${simulator.url}
  Alipay gateway   ${simulator.url}/alipay/gateway.do
  WeChat Pay v3    ${simulator.url}/v3
  merchant config  ${path.join(dir, "sandbox.json")} (start the server with SANDBOX_DIR=${dir})
Press Ctrl-C to stop.`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await simulator.close();
}

runMain(main);
