/**
 * The server as its own process under SIGTERM and under dropped database connections. A TCP fault proxy in front
 * of the gateway simulator keeps a top-up order in flight: on SIGTERM readiness fails first, keep-alive answers
 * say Connection: close, the order finishes (or is cut after SHUTDOWN_DRAIN_MS), then the workers and the pool
 * close, and the process exits 0 without a pool error. On PostgreSQL, every backend of the server is terminated
 * again and again (pg_terminate_backend) while it serves and its reconciler holds its advisory lock: it never
 * crashes and serves again at once.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createTestDatabase } from "../devtools/testing/databases";
import { type FaultProxy, startFaultProxy } from "../devtools/testing/faultProxy";
import { type ServerProcess, startServerProcess } from "../devtools/testing/serverProcess";
import { skipWithoutPostgres } from "../devtools/testing/services";
import { type Simulator, startSimulator, writeSandboxDir } from "../devtools/simulator/server";

type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** One HTTP request over `agent` (keep-alive), so a test sees what a pooled client sees. */
function send(agent: Agent, url: string, method: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: body === undefined ? {} : { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const exitOf = (server: ServerProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) resolve({ code: server.child.exitCode, signal: server.child.signalCode });
    else server.child.once("exit", (code, signal) => resolve({ code, signal }));
  });

describe("graceful shutdown on SIGTERM", () => {
  let simulator: Simulator;
  let gateway: FaultProxy;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "fiat-paymaster-shutdown-"));
    simulator = await startSimulator({ timeScale: 0.0005 });
    gateway = await startFaultProxy({ port: Number(new URL(simulator.url).port) });
    writeSandboxDir(path.join(dir, "sandbox"), simulator);
    // the server reaches WeChat Pay through the fault proxy
    const file = path.join(dir, "sandbox", "sandbox.json");
    const sandbox = JSON.parse(readFileSync(file, "utf8")) as { wechat: { baseUrl: string } };
    sandbox.wechat.baseUrl = `http://127.0.0.1:${gateway.port}`;
    writeFileSync(file, JSON.stringify(sandbox));
  });
  after(async () => {
    await gateway?.close();
    await simulator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (extra: Record<string, string>) =>
    startServerProcess({ SANDBOX_DIR: path.join(dir, "sandbox"), RECONCILE: "off", DATABASE_URL: "", DATA_DIR: mkdtempSync(path.join(dir, "pglite-")), GATEWAY_TIMEOUT_MS: "30000", LOG_LEVEL: "info", ...extra });
  const order = { account: `0x${"ab".repeat(20)}`, amountFen: 500, provider: "wechat" };

  it("readiness fails first, keep-alive answers say Connection: close, the in-flight order finishes, then the process exits 0", async () => {
    const server = await start({ SHUTDOWN_DELAY_MS: "1500", SHUTDOWN_DRAIN_MS: "10000" });
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      assert.equal((await send(agent, `${server.url}/readyz`, "GET")).status, 200);
      await gateway.setMode("blackhole");
      const inFlight = send(agent, `${server.url}/v1/orders`, "POST", order);
      await new Promise((r) => setTimeout(r, 300));
      const exited = exitOf(server);
      server.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 300));

      const ready = await send(agent, `${server.url}/readyz`, "GET");
      assert.equal(ready.status, 503, "readiness fails as soon as shutdown begins");
      assert.match(ready.body, /shutting down/);
      assert.equal(ready.headers.connection, "close", `keep-alive clients are told to reconnect elsewhere: ${JSON.stringify(ready.headers)}`);

      await gateway.setMode("forward");
      const answered = await inFlight;
      assert.equal(answered.status, 201, `the in-flight request finished: ${answered.body}`);
      assert.equal(answered.headers.connection, "close");
      assert.deepEqual(await exited, { code: 0, signal: null });
      const output = server.output();
      assert.match(output, /"msg":"stopped"/);
      assert.doesNotMatch(output, /Cannot use a pool|Unhandled|"level":50/);
    } finally {
      agent.destroy();
      await gateway.setMode("forward");
      await server.stop("SIGKILL");
    }
  });

  it("a request still running after SHUTDOWN_DRAIN_MS is cut, and the process still stops cleanly", async () => {
    const server = await start({ SHUTDOWN_DRAIN_MS: "1000" });
    const agent = new Agent({ keepAlive: true });
    try {
      await gateway.setMode("blackhole");
      const inFlight = send(agent, `${server.url}/v1/orders`, "POST", order).then(
        (answer) => ({ answer }),
        (error: Error) => ({ error }),
      );
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const exited = exitOf(server);
      server.child.kill("SIGTERM");
      const outcome = await inFlight;
      assert.ok("error" in outcome, "the connection was closed under it");
      assert.deepEqual(await exited, { code: 0, signal: null });
      assert.ok(Date.now() - started < 8_000, `stopped ${Date.now() - started} ms after SIGTERM`);
      assert.doesNotMatch(server.output(), /Cannot use a pool|Unhandled/);
    } finally {
      agent.destroy();
      await gateway.setMode("forward");
      await server.stop("SIGKILL");
    }
  });
});

describe("dropped PostgreSQL connections under a running server process", { skip: skipWithoutPostgres }, () => {
  let simulator: Simulator;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "fiat-paymaster-terminate-"));
    simulator = await startSimulator({ timeScale: 0.0005 });
    writeSandboxDir(path.join(dir, "sandbox"), simulator);
    database = await createTestDatabase("postgres");
  });
  after(async () => {
    await simulator?.close();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("terminating every backend of the server, over and over while it serves and its reconciler holds its lock, never crashes it", async () => {
    const server = await startServerProcess({
      SANDBOX_DIR: path.join(dir, "sandbox"),
      DATABASE_URL: database.url!,
      RECONCILE: "on",
      RECONCILE_INTERVAL_SECONDS: "1",
      RECONCILE_AFTER_SECONDS: "0",
      RATE_LIMIT_ORDERS_IP_PER_MINUTE: "0",
      RATE_LIMIT_ORDERS_ACCOUNT_PER_MINUTE: "0",
    });
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      const name = new URL(database.url!).pathname.slice(1);
      let terminated = 0;
      const statuses = new Map<number, number>();
      const deadline = Date.now() + 4_000;
      while (Date.now() < deadline) {
        const load = Array.from({ length: 4 }, (_, i) =>
          fetch(`${server.url}/v1/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ account: `0x${String(i).repeat(40)}`, amountFen: 300, provider: "alipay" }) }).then(
            (r) => statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1),
            () => statuses.set(0, (statuses.get(0) ?? 0) + 1),
          ),
        );
        const { rowCount } = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name = 'fiat-paymaster'", [name]);
        terminated += rowCount ?? 0;
        await Promise.all(load);
        await new Promise((r) => setTimeout(r, 150));
      }
      assert.ok(terminated > 10, `terminated ${terminated} backends`);
      assert.equal(server.child.exitCode, null, `the server died:\n${server.output()}`);
      assert.ok(![...statuses.keys()].some((s) => s === 500 || s === 0), `answers: ${JSON.stringify([...statuses])}`);
      const after = await fetch(`${server.url}/v1/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ account: `0x${"cd".repeat(20)}`, amountFen: 300, provider: "alipay" }) });
      assert.equal(after.status, 201, "it serves again at once");
      assert.doesNotMatch(server.output(), /Unhandled 'error' event/);
    } finally {
      await admin.end();
      await server.stop("SIGKILL");
    }
  });
});
