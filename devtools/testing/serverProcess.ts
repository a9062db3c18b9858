/** Test support: the server as its own process (`server/main.ts`), to kill it, restart it, and load it from outside. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../chain/anvil";
import { type Database, openPglite } from "../../server/platform/db/database";
import { createTestDatabase } from "./databases";
import { type Simulator, startSimulator, writeSandboxDir } from "../simulator/server";

const ROOT = path.resolve(__dirname, "../..");

export type ServerProcess = {
  url: string;
  port: number;
  child: ChildProcess;
  output: () => string;
  /** SIGTERM (graceful) or SIGKILL; resolves when the process has exited. */
  stop: (signal?: NodeJS.Signals) => Promise<void>;
};

export async function startServerProcess(env: Record<string, string>, port?: number): Promise<ServerProcess> {
  const chosen = port ?? (await freePort());
  const url = `http://127.0.0.1:${chosen}`;
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    // the tests' own Redis (REDIS_URL) is not this server's: it shares rate limits only when a test says so
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(chosen), PUBLIC_URL: url, LOG_LEVEL: "warn", REDIS_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  // about 10 s on PGlite on this machine (WASM start, migrations, tsx); far longer when the other test files load both cores
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`server did not become ready:\n${output}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port: chosen,
    child,
    output: () => output,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill(signal);
      await exited;
    },
  };
}

/**
 * The gateway simulator in this process and the server in a child process on a database of `kind`. For PGlite
 * the database is a folder only the server may open while it runs: `withDatabase` stops nothing itself, call it
 * when the server is stopped.
 */
export type ProcessStack = {
  simulator: Simulator;
  server: ServerProcess;
  env: Record<string, string>;
  restart: () => Promise<ServerProcess>;
  withDatabase: <T>(fn: (db: Database) => Promise<T>) => Promise<T>;
  close: () => Promise<void>;
};

export async function startProcessStack(kind: "pglite" | "postgres", options: { timeScale?: number } = {}): Promise<ProcessStack> {
  const dir = mkdtempSync(path.join(tmpdir(), "fiat-paymaster-stack-"));
  const simulator = await startSimulator({ timeScale: options.timeScale ?? 0.0005 });
  writeSandboxDir(path.join(dir, "sandbox"), simulator);
  const database = kind === "postgres" ? await createTestDatabase("postgres") : undefined;
  const env: Record<string, string> = {
    SANDBOX_DIR: path.join(dir, "sandbox"),
    RECONCILE: "off",
    RECONCILE_DAILY: "off",
    // storms create a thousand orders from 127.0.0.1: order limits have tests of their own
    RATE_LIMIT_ORDERS_IP_PER_MINUTE: "0",
    RATE_LIMIT_ORDERS_ACCOUNT_PER_MINUTE: "0",
    // an empty DATABASE_URL overrides the one the tests themselves run with: this server must use PGlite
    ...(database ? { DATABASE_URL: database.url!, DATABASE_POOL_SIZE: "24" } : { DATABASE_URL: "", DATA_DIR: path.join(dir, "pglite") }),
  };
  let server = await startServerProcess(env);
  const stack: ProcessStack = {
    simulator,
    get server() {
      return server;
    },
    env,
    restart: async () => {
      server = await startServerProcess(env, server.port);
      return server;
    },
    withDatabase: async (fn) => {
      if (database) return fn(database.db);
      const db = await openPglite(path.join(dir, "pglite"));
      try {
        return await fn(db);
      } finally {
        await db.close();
      }
    },
    close: async () => {
      await server.stop("SIGKILL");
      await simulator.close();
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}
