import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";

export type StartAnvilParameters = {
  /** Port to listen on; a free one is picked when omitted. */
  port?: number;
  chainId?: number;
  /** Seconds between blocks; omitted = a block per transaction. */
  blockTime?: number;
  /** Extra command-line flags. */
  args?: string[];
  /** Called with each line anvil prints (default: dropped). */
  onLine?: (line: string) => void;
};

export type Anvil = { rpcUrl: string; port: number; chainId: number; process: ChildProcess; stop: () => Promise<void> };

/** Thrown when anvil cannot be found or does not come up. */
export class AnvilError extends Error {
  override name = "AnvilError";
}

/**
 * The anvil binary that npm installed with @foundry-rs/anvil. The binary sits in a per-platform optional
 * package, so no postinstall download is needed.
 */
export function anvilBinary(): string {
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`;
  let dir: string;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new AnvilError(`${pkg} is not installed: run \`npm ci\` (anvil ships in that optional package)`);
  }
  const binary = path.join(dir, "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
  if (!existsSync(binary)) throw new AnvilError(`anvil binary missing at ${binary}`);
  return binary;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForRpc(rpcUrl: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new AnvilError(`anvil exited with code ${child.exitCode} while starting`);
    try {
      const response = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new AnvilError(`anvil did not answer at ${rpcUrl} within ${timeoutMs} ms`);
}

/** Starts a local anvil chain (its deterministic deployer is preinstalled) and waits until it answers. */
export async function startAnvil(parameters: StartAnvilParameters = {}): Promise<Anvil> {
  const port = parameters.port ?? (await freePort());
  const chainId = parameters.chainId ?? 31337;
  const args = ["--host", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId), "--silent"];
  if (parameters.blockTime !== undefined) args.push("--block-time", String(parameters.blockTime));
  args.push(...(parameters.args ?? []));
  const child = spawn(anvilBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) parameters.onLine?.(line);
  };
  child.stdout?.on("data", forward);
  child.stderr?.on("data", forward);
  const rpcUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForRpc(rpcUrl, child, 15_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { rpcUrl, port, chainId, process: child, stop };
}
