import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import type { Address, Hex } from "viem";
import { CANONICAL_ENTRY_POINTS, ENTRY_POINT_VERSIONS } from "../../server/chain/addresses";

const DEFAULT_ENTRY_POINTS: readonly Address[] = ENTRY_POINT_VERSIONS.map((version) => CANONICAL_ENTRY_POINTS[version]);
import { freePort } from "./anvil";

export type StartAltoParameters = {
  /** The chain alto bundles for (anvil's URL locally). */
  rpcUrl: string;
  /** Port to listen on; a free one is picked when omitted. */
  port?: number;
  /** Accounts that send the handleOps transactions; they pay the gas, so they need ETH. */
  executorKeys: Hex[];
  /**
   * Account that deploys alto's simulation contracts at startup (needs ETH). Defaults to the first executor key:
   * the deployment finishes before alto starts bundling, so the two never race for a nonce.
   */
  utilityKey?: Hex;
  /** The EntryPoints to bundle for (default: v0.7, v0.8 and v0.9 at their canonical addresses, as startLocalChain installs them). */
  entryPoints?: readonly Address[];
  /** Milliseconds to wait for alto to answer (default 60 s). */
  timeoutMs?: number;
  /** Called with each line alto prints (default: dropped). */
  onLine?: (line: string) => void;
};

export type Alto = { url: string; port: number; process: ChildProcess; stop: () => Promise<void> };

/** Thrown when alto cannot be found or does not come up; carries alto's last output lines. */
export class AltoError extends Error {
  override name = "AltoError";
}

/**
 * anvil's development key #3 (public knowledge, for local chains only): alto's utility account on the local chain.
 * It deploys alto's simulation contracts, which keeps DEV_KEYS.bundler's nonces for alto's executor alone.
 */
export const LOCAL_UTILITY_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

/**
 * Preloaded into alto: when its stdin, a pipe from us, closes because we exited (even by SIGKILL, which runs no
 * cleanup of ours), alto shuts down as on SIGTERM instead of living on as an orphan that holds the port. Only in
 * the main thread: preloads run in alto's logger worker too, whose stdin is empty and ends at once.
 */
const EXIT_WITH_PARENT = `data:text/javascript,${encodeURIComponent(
  `import { isMainThread } from "node:worker_threads";
  if (isMainThread) process.stdin.on("end", () => process.kill(process.pid, "SIGTERM")).resume();`,
)}`;

/** How many of alto's last output lines an AltoError quotes: enough for its error and stack, not its banner. */
const TAIL_LINES = 20;

/**
 * alto's CLI script as installed by npm: its package.json `bin.alto`, run with this node rather than through a
 * shim. The package's `exports` hide package.json from require.resolve, so it is looked up in the same
 * node_modules folders Node would search.
 */
export function altoCli(): string {
  const manifest = (require.resolve.paths("@pimlico/alto") ?? [])
    .map((dir) => path.join(dir, "@pimlico/alto/package.json"))
    .find((file) => existsSync(file));
  if (!manifest) throw new AltoError("@pimlico/alto is not installed: run `npm ci`");
  const bin = (JSON.parse(readFileSync(manifest, "utf8")) as { bin?: { alto?: string } }).bin?.alto;
  if (!bin) throw new AltoError(`${manifest} names no \`alto\` bin`);
  return path.resolve(path.dirname(manifest), bin);
}

/**
 * Flags for a local chain. Safe mode must be off: its ERC-7562 validation path fails every operation on anvil
 * (alto cannot decode the EntryPoint's DelegateAndRevert revert, "error signature 0x99410554 not found"), and its
 * rules guard a shared mempool, which a local chain does not have. alto deploys its own simulation contracts
 * through the deterministic deployer anvil ships with. Wallet refilling and the utility-wallet monitor would move
 * ETH between our dev accounts and poll in the background for nothing. Bundling needs no tuning: alto's default
 * 100 ms bundle interval already has an operation mined within a quarter of a second.
 *
 * Fees: by default alto bids a bundle at 90 % of what its operations pay per gas it uses (keeping a 10 %
 * commission), which is well above the network's price because operations pay for gas limits they do not use. On
 * a real chain that bid is one among many; on a local chain where alto's is the only transaction it sets the next
 * block's tip, anvil's priority-fee suggestion follows it, wallets' fees follow that, and every operation bids
 * ~1.8× the last until a fee ceiling refuses it. With the whole margin as commission (100) alto bids the network's
 * price, which then stays put.
 */
function altoArgs(p: StartAltoParameters, port: number): string[] {
  return [
    ...["--entrypoints", (p.entryPoints ?? DEFAULT_ENTRY_POINTS).join(",")],
    ...["--rpc-url", p.rpcUrl],
    ...["--port", String(port)],
    ...["--executor-private-keys", p.executorKeys.join(",")],
    ...["--utility-private-key", p.utilityKey ?? p.executorKeys[0]!],
    ...["--safe-mode", "false"],
    // the demo DApp page (served by our server on another port) calls the bundler from the browser
    ...["--enable-cors", "true"],
    ...["--deploy-simulations-contract", "true"],
    ...["--refilling-wallets", "false"],
    ...["--utility-wallet-monitor", "false"],
    ...["--max-resubmits", "3"],
    ...["--bundler-initial-commission", "100"],
    ...["--min-entity-stake", "1"],
    ...["--min-entity-unstake-delay", "1"],
    ...["--log-level", "warn"],
    ...["--public-client-log-level", "warn"],
    ...["--wallet-client-log-level", "warn"],
  ];
}

/** Whether alto answers JSON-RPC at `url` and serves every one of `entryPoints`. One request, not a batch: alto rejects batches. */
async function servesEntryPoints(url: string, entryPoints: readonly Address[]): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_supportedEntryPoints", params: [] }),
      signal: AbortSignal.timeout(1000), // something that accepts but never answers would hold fetch for minutes
    });
    const { result } = (await response.json()) as { result?: string[] };
    return entryPoints.every((entryPoint) => result?.some((address) => address.toLowerCase() === entryPoint.toLowerCase()) ?? false);
  } catch {
    return false; // not listening yet
  }
}

/**
 * Fails fast when `port` is taken. alto itself would not exit (it logs EADDRINUSE and hangs in its shutdown), and
 * another bundler on the port would answer our readiness probe for it. alto listens on all interfaces, so that is
 * where we check.
 */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(new AltoError(`port ${port} is in use (${error.code}): alto cannot listen there`)),
    );
    server.listen(port, "0.0.0.0", () => server.close(() => resolve()));
  });
}

/**
 * Starts the alto bundler against `rpcUrl` and waits until it serves the EntryPoints. alto deploys its simulation
 * contracts on startup, so the chain must already have the EntryPoint and the utility account must hold ETH.
 */
export async function startAlto(parameters: StartAltoParameters): Promise<Alto> {
  if (parameters.executorKeys.length === 0) throw new AltoError("alto needs at least one executor key");
  const port = parameters.port ?? (await freePort());
  await assertPortFree(port);
  const entryPoints = parameters.entryPoints ?? DEFAULT_ENTRY_POINTS;
  const timeoutMs = parameters.timeoutMs ?? 60_000;
  // alto takes any ALTO_* variable as a flag we did not pass: keep the caller's environment from reconfiguring it
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("ALTO_")));
  const child = spawn(process.execPath, ["--import", EXIT_WITH_PARENT, altoCli(), ...altoArgs(parameters, port)], {
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });

  const tail: string[] = [];
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      parameters.onLine?.(line);
    }
  };
  child.stdout?.on("data", forward);
  child.stderr?.on("data", forward);
  const failure = (what: string) => new AltoError(`alto ${what}${tail.length ? `; its last output:\n${tail.join("\n")}` : " (no output)"}`);

  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // "close" comes after the output pipes drain: an error then quotes alto's last words, not the lines before them
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await closed;
        throw failure(`exited with ${child.exitCode ?? child.signalCode} while starting`);
      }
      if (await servesEntryPoints(url, entryPoints)) break;
      if (Date.now() > deadline) throw failure(`did not serve ${entryPoints.join(", ")} at ${url} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, port, process: child, stop };
}
