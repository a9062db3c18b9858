/**
 * SERVER_PROCESSES: the server as the primary of two processes behind one port, on PostgreSQL. Connections are
 * spread over both, `/metrics` adds up both processes' counters, a process killed with SIGKILL is replaced while
 * the other keeps answering, and SIGTERM stops them all and exits 0. PGlite refuses more than one process.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { createTestDatabase } from "../devtools/testing/databases";
import { type ServerProcess, startServerProcess } from "../devtools/testing/serverProcess";
import { skipWithoutPostgres } from "../devtools/testing/services";
import { loadConfig } from "./config/env";

/** The Node processes whose parent is `pid` (tsx's esbuild service is a child too). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        return stat.includes("(node)") && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** GET on a new connection each time (no keep-alive), so each request may reach another process. */
const fresh = (url: string) => fetch(url, { headers: { connection: "close" }, signal: AbortSignal.timeout(10_000) });

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("several server processes behind one port (SERVER_PROCESSES)", { skip: skipWithoutPostgres }, () => {
  let server: ServerProcess;
  let dropDatabase: () => Promise<void>;
  before(async () => {
    const database = await createTestDatabase("postgres");
    dropDatabase = database.drop;
    server = await startServerProcess({ DATABASE_URL: database.url!, SERVER_PROCESSES: "2", LOG_LEVEL: "info", RECONCILE: "off", RECONCILE_DAILY: "off" });
    await until("both processes to listen", () => (server.output().includes("every server process listens") ? true : undefined), 60_000);
  });
  after(async () => {
    await server?.stop("SIGKILL");
    await dropDatabase?.();
  });

  it("spreads connections over both processes, and /metrics counts the requests of both", async () => {
    const before = server.output().length;
    for (let i = 0; i < 20; i++) assert.equal((await fresh(`${server.url}/healthz`)).status, 200);
    const healthz = () =>
      server
        .output()
        .slice(before)
        .split("\n")
        .filter((l) => l.includes('"path":"/healthz"'))
        .map((l) => JSON.parse(l) as { process: number });
    // each process writes its request log lines to the pipe as they finish
    const lines = await until("the 20 request log lines", () => (healthz().length >= 20 ? healthz() : undefined));
    assert.equal(lines.length, 20);
    const perProcess = [0, 1].map((p) => lines.filter((l) => l.process === p).length);
    assert.ok(perProcess[0]! >= 5 && perProcess[1]! >= 5, `round-robin over both processes: ${perProcess.join(" / ")}`);

    const text = await (await fresh(`${server.url}/metrics`)).text();
    const counted = /fiat_paymaster_http_requests_total\{[^}]*route="\/healthz"[^}]*status="200"[^}]*\} (\d+)/.exec(text);
    assert.ok(counted, "the healthz counter is in the metrics");
    assert.ok(Number(counted[1]) >= 20, `both processes' requests are counted: ${counted[1]}`);
  });

  it("a process killed with SIGKILL is started again, and the port keeps answering meanwhile", async () => {
    const primary = server.child.pid!;
    const workers = childrenOf(primary);
    assert.equal(workers.length, 2, `two server processes: ${workers.join(", ")}`);
    process.kill(workers[0]!, "SIGKILL");
    // once the primary has seen the death (a connection it handed over in that instant is lost with the process),
    // the other process answers every new connection while the dead one is replaced
    await until("the primary to see the death", () => (/a server process died; starting another/.test(server.output()) ? true : undefined));
    for (let i = 0; i < 10; i++) assert.equal((await fresh(`${server.url}/healthz`)).status, 200);
    const replaced = await until("a replacement process", () => {
      const now = childrenOf(primary);
      return now.length === 2 && !now.includes(workers[0]!) ? now : undefined;
    });
    assert.ok(replaced.includes(workers[1]!), "the surviving process was left alone");
    await until("the replacement to listen", () => (server.output().split('"msg":"fiat-paymaster listening"').length - 1 >= 3 ? true : undefined), 60_000);
  });

  it("SIGTERM stops every process gracefully and the primary exits 0", async () => {
    const primary = server.child.pid!;
    const workers = childrenOf(primary);
    const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
    server.child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.equal(server.output().split('"msg":"stopped"').length - 1 >= 2, true, "each process shut down gracefully");
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), "no server process outlives the primary");
  });
});

describe("SERVER_PROCESSES configuration", () => {
  it("refuses more than one process on the embedded PGlite, and reads auto and numbers", () => {
    assert.throws(() => loadConfig({ SERVER_PROCESSES: "2" }), /SERVER_PROCESSES=2 needs DATABASE_URL/);
    assert.throws(() => loadConfig({ SERVER_PROCESSES: "many" }), /SERVER_PROCESSES must be auto or a whole number/);
    assert.equal(loadConfig({ SERVER_PROCESSES: "3", DATABASE_URL: "postgres://x@127.0.0.1/db" }).serverProcesses, 3);
    assert.ok(loadConfig({ SERVER_PROCESSES: "auto", DATABASE_URL: "postgres://x@127.0.0.1/db" }).serverProcesses >= 1);
    assert.equal(loadConfig({}).serverProcesses, 1);
  });
});
