/**
 * The service under test: `node --import tsx server/main.ts` as its own processes (SERVER_PROCESSES of them), its
 * output in a log file, ready once every server process listens and /readyz answers ready.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "../../devtools/chain/anvil";
import { exited } from "./exited";
import { processTree } from "./cpu";

const ROOT = path.resolve(__dirname, "..", "..");
const START_TIMEOUT_MS = 90_000;

export type Service = {
  url: string;
  /** The first process: the cluster's primary when there are several. */
  pid: number;
  /** Every process of the service (the primary and its server processes). */
  pids: () => number[];
  /** The end of its output. */
  log: () => string;
  stop: () => Promise<void>;
};

export type StartServiceParameters = {
  /** The service's configuration, over this process's environment (HOST, PORT, PUBLIC_URL and SERVER_PROCESSES are set here). */
  env: NodeJS.ProcessEnv;
  processes: number;
  logFile: string;
  /** Write the processes' V8 CPU profiles there. */
  profileDir?: string;
};

export async function startService({ env, processes, logFile, profileDir }: StartServiceParameters): Promise<Service> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = openSync(logFile, "w");
  const profile = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
  const child = spawn(process.execPath, [...profile, "--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, ...env, HOST: "127.0.0.1", PORT: String(port), PUBLIC_URL: url, SERVER_PROCESSES: String(processes) },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const output = () => readFileSync(logFile, "utf8").slice(-4_000);
  const listening = () => readFileSync(logFile, "utf8").includes(processes > 1 ? "every server process listens" : "fiat-paymaster listening");
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await exited(child);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}):\n${output()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the service did not become ready:\n${output()}`);
    }
    if (listening() && (await fetch(`${url}/readyz`).then((r) => r.ok, () => false))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, pid: child.pid!, pids: () => processTree(child.pid!), log: output, stop };
}
