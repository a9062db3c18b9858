/**
 * Callback throughput benchmark: signed payment notifications verified, stored and credited per second by the real
 * service, each figure beside the ceilings measured in the same run on the same machine.
 *
 * Three processes, so that nothing measured shares an event loop with anything else:
 *   - this one: sets up (database, orders, every notification built and signed before anything is timed), measures
 *     the ceilings that need no HTTP, reads the other processes' CPU from /proc, checks the outcome;
 *   - the service: `node --import tsx server/main.ts`, on its own PostgreSQL database (same machine, durable
 *     commits: synchronous_commit as the server has it), configured for the gateway simulator (SANDBOX_DIR);
 *   - the load generator (bench/load/loadGenerator.ts): autocannon, sending every pre-signed notification once.
 *
 * Per provider: a first-delivery pass (every notification once: each credits its order) and a duplicate pass (every
 * one again: each is acknowledged, nothing credited). The ceilings:
 *   - HTTP: a bare node:http server (bench/load/bareHttpServer.ts) answering the same POSTs with the same autocannon
 *     settings — what this generator and Node's HTTP can do at all;
 *   - crypto: the bare node:crypto work one notification needs, keys parsed once (Alipay: RSA2 verify; WeChat:
 *     RSA-SHA256 verify + AES-256-GCM decrypt), one thread; and the gateway adapter's verifyCallback, one thread;
 *   - PostgreSQL: rows inserted with unnest() and committed durably, in batches of half the in-flight count on two
 *     connections (the callback group commit's shape), rows/s.
 * Afterwards every order must have been credited exactly once with its amount, and checkLedger must be clean; any
 * mismatch fails the run. Figures also go to bench/results/callbacks.json.
 *
 *   npm run bench:callbacks
 *   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_ORDERS_PER_PROVIDER (12000),
 *   BENCH_IN_FLIGHT (64), BENCH_POOL_SIZE (the service's DATABASE_POOL_SIZE, default 16),
 *   BENCH_PROFILE_DIR (write the service's V8 CPU profile there)
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { type KeyObject, createDecipheriv, createPrivateKey, createPublicKey, createVerify, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { createGateways } from "../server/app";
import { loadConfig } from "../server/config/env";
import { checkLedger } from "../server/ledger/ledger";
import type { PaymentGateway, Provider } from "../server/payments/gateway";
import { formatBeijingTime } from "../server/payments/gateways/alipay";
import { newOrderId } from "../server/payments/orders";
import { type Database, connectPostgres } from "../server/platform/db/database";
import { migrate } from "../server/platform/db/migrate";
import { createLogger } from "../server/platform/logger";
import { alipayPaymentFields, signNotification } from "../devtools/simulator/alipay";
import { type Simulator, startSimulator, writeSandboxDir } from "../devtools/simulator/server";
import { TRANSACTION_SUCCESS, buildWechatNotification, signWechatMessage, wechatPlatformSigner } from "../devtools/simulator/wechat";
import { freePort } from "../devtools/chain/anvil";
import type { LoadRequest, LoadResult, PreparedRequest } from "./load/loadGenerator";

const ROOT = path.resolve(__dirname, "..");
const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";
const RESULTS_FILE = path.join(__dirname, "results", "callbacks.json");
const PROVIDERS: readonly Provider[] = ["alipay", "wechat"];
const TARGET_FIRST_DELIVERIES_PER_SECOND = 1_000;
/** Fail fast with a readable message rather than pg's default of waiting indefinitely. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Orders of their own per provider, delivered (first and duplicate) untimed: JIT, pool connections, caches. */
const WARMUP_ORDERS = 500;
/** The bare crypto and the adapters run over this many of the prepared notifications, after an untimed round. */
const VERIFY_SAMPLE = 4_000;
/** How long the PostgreSQL insert ceiling runs. */
const INSERT_CEILING_MS = 3_000;
/** Amounts vary per order (1.00–500.99 yuan) so that crediting another order's amount would show. */
const MIN_AMOUNT_FEN = 100;
const AMOUNT_SPREAD_FEN = 50_000;
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** A setting the environment got wrong: reported as one line, not a stack trace. */
class SettingsError extends Error {
  override name = "SettingsError";
}

type Settings = { databaseUrl: string; ordersPerProvider: number; inFlight: number; poolSize: number; profileDir?: string };

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const int = (name: string, fallback: number, min = 1): number => {
    const text = env[name];
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new SettingsError(`${name} must be an integer of at least ${min}: got ${text}`);
    return value;
  };
  const inFlight = int("BENCH_IN_FLIGHT", 64, 2);
  // 12,000 per provider: over ten seconds of first deliveries at the target rate, the whole run well under two minutes
  const ordersPerProvider = int("BENCH_ORDERS_PER_PROVIDER", 12_000);
  if (ordersPerProvider < inFlight) throw new SettingsError(`BENCH_ORDERS_PER_PROVIDER (${ordersPerProvider}) must be at least BENCH_IN_FLIGHT (${inFlight}): every connection needs a notification to send`);
  return {
    databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL,
    ordersPerProvider,
    inFlight,
    poolSize: int("BENCH_POOL_SIZE", 16),
    profileDir: env.BENCH_PROFILE_DIR || undefined,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The machine, the database

type MachineInfo = { cores: number; cpuModel: string; memoryGiB: number; node: string; platform: string };
type DatabaseInfo = { url: string; version: string; synchronousCommit: string; fsync: string };

function machineInfo(): MachineInfo {
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** Anything else busy on the machine skews every figure: the load average at start and end says whether it was quiet. */
const loadAverage = (): [number, number, number] => os.loadavg() as [number, number, number];

/** The URL as printed: without its password. */
function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

class DatabaseUnreachableError extends Error {
  override name = "DatabaseUnreachableError";
}

/** A database of its own on the server, migrated; `drop` deletes it. */
async function createBenchDatabase(adminUrl: string): Promise<{ url: string; info: DatabaseInfo; drop: () => Promise<void> }> {
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await admin.connect();
  } catch (error) {
    throw new DatabaseUnreachableError(`PostgreSQL at ${redactedUrl(adminUrl)} is not reachable: ${(error as Error).message}`);
  }
  const { rows } = await admin.query<{ version: string; synchronous_commit: string; fsync: string }>(
    "SELECT current_setting('server_version') AS version, current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync",
  );
  const name = `fp_bench_callbacks_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const row = rows[0]!;
  return {
    url: url.toString(),
    info: { url: redactedUrl(adminUrl), version: row.version, synchronousCommit: row.synchronous_commit, fsync: row.fsync },
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// CPU, read from /proc: the service's process, its PostgreSQL backends, the whole machine

/** utime + stime of a process (all its threads), in ms. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** CPU time (ms) all cores spent busy since boot. */
function machineBusyMs(): number {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number) as number[];
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / CLOCK_TICKS;
}

type CpuSnapshot = { at: number; service: number; backends: Map<number, number>; machine: number };
type CpuUse = { serviceMsPerRequest: number; postgresMsPerRequest: number; machineBusyCores: number };

/** The service's process and the PostgreSQL backends serving its database (their pids from pg_stat_activity). */
async function cpuSnapshot(servicePid: number, db: Database, databaseName: string): Promise<CpuSnapshot> {
  const { rows } = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [databaseName]);
  const backends = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      backends.set(pid, processCpuMs(pid));
    } catch {
      // the backend ended meanwhile
    }
  }
  return { at: performance.now(), service: processCpuMs(servicePid), backends, machine: machineBusyMs() };
}

function cpuUse(before: CpuSnapshot, after: CpuSnapshot, requests: number): CpuUse {
  let postgres = 0;
  for (const [pid, ms] of after.backends) postgres += ms - (before.backends.get(pid) ?? 0);
  return {
    serviceMsPerRequest: (after.service - before.service) / requests,
    postgresMsPerRequest: postgres / requests,
    machineBusyCores: (after.machine - before.machine) / (after.at - before.at),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Orders and their notifications

type BenchOrder = { provider: Provider; id: string; account: string; amountFen: bigint };

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;
const amountFor = (index: number) => BigInt(MIN_AMOUNT_FEN + ((index * 7_919) % AMOUNT_SPREAD_FEN));

/**
 * Pending orders as createOrder leaves them once the gateway made the trade (a QR payload at the simulator), inserted
 * in bulk: the adapters and the credit path see exactly what they see for an order made through the API.
 */
async function insertOrders(db: Database, simulator: Simulator, provider: Provider, count: number): Promise<BenchOrder[]> {
  const orders = Array.from({ length: count }, (_, i): BenchOrder => ({ provider, id: newOrderId(), account: newAccount(), amountFen: amountFor(i) }));
  const CHUNK = 5_000;
  for (let i = 0; i < orders.length; i += CHUNK) {
    const chunk = orders.slice(i, i + CHUNK);
    await db.query(
      `INSERT INTO orders (id, account, provider, amount_fen, status, flow, qr_code, expires_at)
       SELECT id, account, $1, amount_fen, 'pending', 'qr', $2::text || id, now() + interval '2 hours'
         FROM unnest($3::text[], $4::text[], $5::bigint[]) AS t(id, account, amount_fen)`,
      [provider, `${simulator.url}/payer/${provider}/`, chunk.map((o) => o.id), chunk.map((o) => o.account), chunk.map((o) => o.amountFen.toString())],
    );
  }
  return orders;
}

type Signers = { alipay: KeyObject; wechat: KeyObject };

/** A trade_status_sync notification with the fields Alipay sends for a paid precreated trade. */
function alipayNotification(simulator: Simulator, key: KeyObject, order: BenchOrder): PreparedRequest {
  const { appId, sellerId } = simulator.sandbox.alipay;
  const now = new Date();
  const fields = alipayPaymentFields({
    appId,
    sellerId,
    orderId: order.id,
    tradeNo: `2026${randomBytes(10).toString("hex")}`,
    subject: "Gas quota top-up",
    amountFen: order.amountFen,
    createdAt: now,
    paidAt: now,
  });
  const signed = signNotification({ ...fields, notify_time: formatBeijingTime(now) }, key);
  return { headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" }, body: new URLSearchParams(signed).toString() };
}

/** A TRANSACTION.SUCCESS notification: the transaction AES-256-GCM-encrypted, the body signed by the platform key. */
function wechatNotification(simulator: Simulator, key: KeyObject, order: BenchOrder): PreparedRequest {
  const sandbox = simulator.sandbox.wechat;
  const total = Number(order.amountFen);
  const body = buildWechatNotification(sandbox.apiV3Key, TRANSACTION_SUCCESS, {
    appid: sandbox.appId,
    mchid: sandbox.mchId,
    out_trade_no: order.id,
    transaction_id: `4200${randomBytes(12).toString("hex")}`,
    trade_type: "NATIVE",
    trade_state: "SUCCESS",
    trade_state_desc: "支付成功",
    bank_type: "OTHERS",
    success_time: new Date().toISOString(),
    payer: { openid: `o-${randomBytes(8).toString("hex")}` },
    amount: { total, payer_total: total, currency: "CNY", payer_currency: "CNY" },
  });
  const signature = signWechatMessage(body, { ...wechatPlatformSigner(sandbox), privateKey: key });
  return { headers: { ...signature, "content-type": "application/json" }, body };
}

function notificationsFor(simulator: Simulator, signers: Signers, orders: readonly BenchOrder[]): PreparedRequest[] {
  return orders.map((o) => (o.provider === "alipay" ? alipayNotification(simulator, signers.alipay, o) : wechatNotification(simulator, signers.wechat, o)));
}

// ---------------------------------------------------------------------------------------------------------------
// Ceilings without HTTP: the crypto, the adapters, PostgreSQL

type Rate = { count: number; seconds: number; perSecond: number };

function timeEach<T>(items: readonly T[], work: (item: T) => void): Rate {
  for (const item of items.slice(0, 200)) work(item); // JIT
  const started = performance.now();
  for (const item of items) work(item);
  const seconds = (performance.now() - started) / 1000;
  return { count: items.length, seconds, perSecond: items.length / seconds };
}

/** Alipay's notification signing string: every field but sign and sign_type, sorted by name, `k=v&…`. */
function alipaySigningContent(form: Record<string, string>): string {
  return Object.keys(form)
    .filter((name) => name !== "sign" && name !== "sign_type")
    .sort()
    .map((name) => `${name}=${form[name]}`)
    .join("&");
}

/** The signing string, signature and sealed resource re-derived beforehand: only node:crypto's work is timed. */
function cryptoCeiling(provider: Provider, simulator: Simulator, requests: readonly PreparedRequest[]): Rate {
  const fail = () => {
    throw new Error(`${provider}: a prepared notification did not verify with bare node:crypto`);
  };
  if (provider === "alipay") {
    const key = createPublicKey(simulator.sandbox.alipay.alipayPublicKey);
    const work = requests.map((r) => {
      const form = Object.fromEntries(new URLSearchParams(r.body));
      return { content: alipaySigningContent(form), sign: form.sign! };
    });
    return timeEach(work, ({ content, sign }) => {
      if (!createVerify("RSA-SHA256").update(content, "utf8").verify(key, sign, "base64")) fail();
    });
  }
  const key = createPublicKey(simulator.sandbox.wechat.platformPublicKey);
  const apiV3Key = Buffer.from(simulator.sandbox.wechat.apiV3Key, "utf8");
  const work = requests.map((r) => {
    const resource = (JSON.parse(r.body) as { resource: { ciphertext: string; nonce: string; associated_data: string } }).resource;
    const sealed = Buffer.from(resource.ciphertext, "base64");
    return {
      message: `${r.headers["Wechatpay-Timestamp"]}\n${r.headers["Wechatpay-Nonce"]}\n${r.body}\n`,
      signature: r.headers["Wechatpay-Signature"]!,
      nonce: Buffer.from(resource.nonce, "utf8"),
      aad: Buffer.from(resource.associated_data, "utf8"),
      ciphertext: sealed.subarray(0, sealed.length - 16),
      tag: sealed.subarray(sealed.length - 16),
    };
  });
  return timeEach(work, (w) => {
    if (!createVerify("RSA-SHA256").update(w.message, "utf8").verify(key, w.signature, "base64")) fail();
    const decipher = createDecipheriv("aes-256-gcm", apiV3Key, w.nonce);
    decipher.setAuthTag(w.tag);
    decipher.setAAD(w.aad);
    decipher.update(w.ciphertext);
    decipher.final(); // throws unless the tag checks
  });
}

/** The gateway adapter's verifyCallback as the notify route calls it (header names lower-case, as Node gives them). */
async function adapterRate(gateway: PaymentGateway, requests: readonly PreparedRequest[]): Promise<Rate> {
  const callbacks = requests.map((r) => ({ headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), v])), rawBody: r.body }));
  const verify = async (callback: (typeof callbacks)[number]) => {
    const result = await gateway.verifyCallback(callback);
    if (!result.ok) throw new Error(`${gateway.provider}: verifyCallback refused a prepared notification: ${result.code} ${result.detail}`);
  };
  for (const c of callbacks.slice(0, 200)) await verify(c);
  const started = performance.now();
  for (const c of callbacks) await verify(c);
  const seconds = (performance.now() - started) / 1000;
  return { count: callbacks.length, seconds, perSecond: callbacks.length / seconds };
}

type InsertCeiling = Rate & { batchRows: number; connections: number; commitsPerSecond: number };

/**
 * Rows the size of a stored notification inserted with one unnest() statement per transaction and committed durably,
 * on `connections` connections at once for INSERT_CEILING_MS: what group commit on this PostgreSQL can write at best.
 */
async function insertCeiling(url: string, body: string, batchRows: number, connections: number): Promise<InsertCeiling> {
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  try {
    await clients[0]!.query("CREATE TABLE bench_group_commit (id bigserial PRIMARY KEY, order_id text NOT NULL, raw_body text NOT NULL, payload jsonb, received_at timestamptz NOT NULL DEFAULT now())");
    const payload = JSON.stringify({ body });
    let rows = 0;
    let commits = 0;
    const deadline = performance.now() + INSERT_CEILING_MS;
    const started = performance.now();
    await Promise.all(
      clients.map(async (client) => {
        while (performance.now() < deadline) {
          const ids = Array.from({ length: batchRows }, () => newOrderId());
          await client.query("BEGIN");
          await client.query({
            name: "bench_insert",
            text: "INSERT INTO bench_group_commit (order_id, raw_body, payload) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])",
            values: [ids, ids.map(() => body), ids.map(() => payload)],
          });
          await client.query("COMMIT");
          rows += batchRows;
          commits++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    await clients[0]!.query("DROP TABLE bench_group_commit");
    return { count: rows, seconds, perSecond: rows / seconds, batchRows, connections, commitsPerSecond: commits / seconds };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes: the load generator, the bare HTTP server, the service

type LoadGenerator = { pid: number; run: (request: Omit<LoadRequest, "id">) => Promise<LoadResult>; close: () => Promise<void> };

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()));
}

function startLoadGenerator(): LoadGenerator {
  const child = fork(path.join(__dirname, "load", "loadGenerator.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  child.on("message", (message: LoadResult | { id: number; error: string }) => {
    const pending = waiting.get(message.id);
    waiting.delete(message.id);
    if ("error" in message) pending?.reject(new Error(`load generator: ${message.error}`));
    else pending?.resolve(message);
  });
  child.on("exit", (code) => {
    for (const pending of waiting.values()) pending.reject(new Error(`the load generator exited (${code})`));
    waiting.clear();
  });
  return {
    pid: child.pid!,
    run: (request) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        child.send({ ...request, id });
      }),
    close: async () => {
      child.disconnect();
      await exited(child);
    },
  };
}

async function startBareHttpServer(): Promise<{ url: string; pid: number; close: () => Promise<void> }> {
  const child = fork(path.join(__dirname, "load", "bareHttpServer.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: { port: number }) => resolve(m.port));
    child.once("exit", (code) => reject(new Error(`the bare HTTP server exited (${code})`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    close: async () => {
      child.disconnect();
      await exited(child);
    },
  };
}

type Service = { url: string; pid: number; stop: () => Promise<void>; log: () => string };

async function startService(settings: Settings, databaseUrl: string, sandboxDir: string, logFile: string): Promise<Service> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = openSync(logFile, "w");
  const profile = settings.profileDir ? ["--cpu-prof", "--cpu-prof-dir", settings.profileDir] : [];
  const child = spawn(process.execPath, [...profile, "--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    // the service as deployed (its defaults: LOG_LEVEL info, CALLBACK_CONCURRENCY, rate limits in memory) but for
    // the workers, which would only add their own load
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_SIZE: String(settings.poolSize),
      SANDBOX_DIR: sandboxDir,
      HOST: "127.0.0.1",
      PORT: String(port),
      PUBLIC_URL: url,
      REDIS_URL: "",
      RECONCILE: "off",
      RECONCILE_DAILY: "off",
    },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const output = () => readFileSync(logFile, "utf8").slice(-4_000);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}):\n${output()}`);
    if (Date.now() > deadline) throw new Error(`the service did not become ready:\n${output()}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    pid: child.pid!,
    log: output,
    stop: async () => {
      child.kill("SIGTERM");
      await exited(child);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Passes

const NOTIFY_PATH = (provider: Provider) => `/v1/payments/${provider}/notify`;
/** The gateways' success replies: Alipay's failure reply is also 200, so its body is compared too. */
const SUCCESS: Record<Provider, LoadRequest["expected"]> = { alipay: { status: 200, body: "success" }, wechat: { status: 204 } };

type Pass = LoadResult & CpuUse & { transactions?: number };

async function measuredPass(
  generator: LoadGenerator,
  target: { url: string; pid: number },
  file: string,
  provider: Provider,
  inFlight: number,
  cpu: (pid: number) => Promise<CpuSnapshot>,
): Promise<Pass> {
  const before = await cpu(target.pid);
  const result = await generator.run({ url: target.url, path: NOTIFY_PATH(provider), file, connections: inFlight, expected: SUCCESS[provider] });
  const after = await cpu(target.pid);
  return { ...result, ...cpuUse(before, after, result.sent) };
}

// ---------------------------------------------------------------------------------------------------------------
// Checking the outcome

type OutcomeCheck = {
  orders: number;
  paid: number;
  creditedOnceWithItsAmount: number;
  balancesEqualToOrder: number;
  callbacksStoredAsCreditedThenDuplicate: number;
  topUpEntries: number;
  ledger: { accounts: number; entries: number; mismatches: number };
};

/** Every order's facts in one query: its status, its top-up entries, its account's balance, its stored callbacks. */
async function checkOutcome(db: Database, orders: readonly BenchOrder[]): Promise<OutcomeCheck> {
  const { rows } = await db.query<{ paid: bigint; credited_once: bigint; balances: bigint; callbacks: bigint }>(
    `SELECT count(*) FILTER (WHERE o.status = 'paid') AS paid,
            count(*) FILTER (WHERE t.entries = 1 AND t.credited = o.amount_fen AND t.account = o.account) AS credited_once,
            count(*) FILTER (WHERE a.available_fen = o.amount_fen AND a.held_fen = 0) AS balances,
            count(*) FILTER (WHERE c.credited = 1 AND c.duplicates = 1 AND c.total = 2) AS callbacks
       FROM orders o
       LEFT JOIN (SELECT reference, count(*) AS entries, sum(available_delta_fen) AS credited, min(account) AS account
                    FROM ledger_entries WHERE kind = 'topup' GROUP BY reference) t ON t.reference = o.id
       LEFT JOIN accounts a ON a.address = o.account
       LEFT JOIN (SELECT order_id, count(*) FILTER (WHERE outcome = 'credited') AS credited,
                         count(*) FILTER (WHERE outcome = 'already_credited') AS duplicates, count(*) AS total
                    FROM payment_callbacks WHERE verified GROUP BY order_id) c ON c.order_id = o.id
      WHERE o.id = ANY($1)`,
    [orders.map((o) => o.id)],
  );
  const topUps = await db.query<{ count: bigint }>("SELECT count(*) AS count FROM ledger_entries WHERE kind = 'topup'");
  const ledger = await checkLedger(db);
  const row = rows[0]!;
  return {
    orders: orders.length,
    paid: Number(row.paid),
    creditedOnceWithItsAmount: Number(row.credited_once),
    balancesEqualToOrder: Number(row.balances),
    callbacksStoredAsCreditedThenDuplicate: Number(row.callbacks),
    topUpEntries: Number(topUps.rows[0]!.count),
    ledger: { accounts: ledger.accounts, entries: ledger.entries, mismatches: ledger.mismatches.length },
  };
}

/**
 * How many transactions stored a pass's callbacks: received_at is the storing transaction's start (now()), so the
 * callbacks one transaction stored share it. Callbacks per transaction is the mean group-commit batch.
 */
async function transactionsOf(db: Database, orders: readonly BenchOrder[], outcome: "credited" | "already_credited"): Promise<number> {
  const { rows } = await db.query<{ n: bigint }>("SELECT count(DISTINCT received_at)::bigint AS n FROM payment_callbacks WHERE order_id = ANY($1::text[]) AND outcome = $2", [
    orders.map((o) => o.id),
    outcome,
  ]);
  return Number(rows[0]!.n);
}

function outcomeProblems(check: OutcomeCheck): string[] {
  const expect = (what: string, actual: number, wanted: number) => (actual === wanted ? [] : [`${what}: ${actual} of ${wanted}`]);
  return [
    ...expect("orders paid", check.paid, check.orders),
    ...expect("orders with exactly one top-up entry of their amount, to their account", check.creditedOnceWithItsAmount, check.orders),
    ...expect("accounts whose balance is their order's amount", check.balancesEqualToOrder, check.orders),
    ...expect("orders with one credited and one already_credited callback stored", check.callbacksStoredAsCreditedThenDuplicate, check.orders),
    ...expect("top-up entries in the ledger", check.topUpEntries, check.orders),
    ...expect("checkLedger mismatches", check.ledger.mismatches, 0),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

type ProviderFigures = { crypto: Rate; adapter: Rate; bareHttp: Pass; firstDelivery: Pass; duplicates: Pass };

const rate = (perSecond: number) => Math.round(perSecond).toLocaleString("en-US");
const ms = (value: number) => (Number.isNaN(value) ? "" : value < 10 ? value.toFixed(2) : value.toFixed(1));
const ratio = (value: number, ceiling: number) => (value / ceiling).toFixed(2);

function printTable(figures: Record<Provider, ProviderFigures>, inserts: InsertCeiling): void {
  const header = ["", "count", "per s", "p50 ms", "p99 ms", "server CPU ms/req", "PG CPU ms/req", "÷ bare HTTP", "÷ crypto", "÷ PG inserts"];
  const lines: string[][] = [];
  for (const provider of PROVIDERS) {
    const f = figures[provider];
    const pass = (name: string, p: Pass) => [
      `${provider}: ${name}`,
      p.sent.toLocaleString("en-US"),
      rate(p.perSecond),
      ms(p.p50Ms),
      ms(p.p99Ms),
      ms(p.serviceMsPerRequest),
      ms(p.postgresMsPerRequest),
      ratio(p.perSecond, f.bareHttp.perSecond),
      ratio(p.perSecond, f.crypto.perSecond),
      ratio(p.perSecond, inserts.perSecond),
    ];
    lines.push(
      pass("first deliveries credited", f.firstDelivery),
      pass("duplicates acknowledged", f.duplicates),
      [`${provider}: ceiling, bare node:http`, f.bareHttp.sent.toLocaleString("en-US"), rate(f.bareHttp.perSecond), ms(f.bareHttp.p50Ms), ms(f.bareHttp.p99Ms), ms(f.bareHttp.serviceMsPerRequest), "", "", "", ""],
      [`${provider}: ceiling, crypto (1 thread)`, f.crypto.count.toLocaleString("en-US"), rate(f.crypto.perSecond), "", "", ms(1000 / f.crypto.perSecond), "", "", "", ""],
      [`${provider}: adapter verifyCallback (1 thread)`, f.adapter.count.toLocaleString("en-US"), rate(f.adapter.perSecond), "", "", ms(1000 / f.adapter.perSecond), "", "", ratio(f.adapter.perSecond, f.crypto.perSecond), ""],
    );
  }
  lines.push([`ceiling, PG unnest inserts (${inserts.batchRows}/commit, ${inserts.connections} conns)`, inserts.count.toLocaleString("en-US"), rate(inserts.perSecond), "", "", "", "", "", "", ""]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(format(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const line of lines) console.log(format(line));
}

function printNotes(figures: Record<Provider, ProviderFigures>, inserts: InsertCeiling, settings: Settings, machine: MachineInfo): void {
  console.log(
    `\nper s: answered with the gateway's success reply per second of the pass; p50/p99: per request at ${settings.inFlight} in flight (queueing included).` +
      "\nserver CPU: the service's process (bare node:http for its row; ms per verification for the 1-thread rows); PG CPU: the service's PostgreSQL backends." +
      `\nPG inserts: ${rate(inserts.commitsPerSecond)} durable commits/s of ${inserts.batchRows} rows each.`,
  );
  for (const provider of PROVIDERS) {
    const f = figures[provider];
    const batch = (p: Pass) => `${(p.sent / p.transactions!).toFixed(1)} callbacks per transaction (${p.transactions!.toLocaleString("en-US")})`;
    console.log(`  ${provider}: first deliveries ${batch(f.firstDelivery)}; duplicates ${batch(f.duplicates)}`);
  }
  for (const provider of PROVIDERS) {
    const f = figures[provider];
    const busy = (p: Pass) => `machine ${p.machineBusyCores.toFixed(1)}/${machine.cores} cores busy, generator ${ms(p.generatorCpuMsPerRequest)} ms CPU/req`;
    console.log(`  ${provider}: first deliveries ${busy(f.firstDelivery)}; duplicates ${busy(f.duplicates)}; bare HTTP ${busy(f.bareHttp)}`);
  }
}

function printCheck(check: OutcomeCheck, problems: readonly string[]): void {
  console.log(
    `\nCheck: ${check.paid}/${check.orders} orders paid, ${check.creditedOnceWithItsAmount} credited exactly once with their amount, ` +
      `${check.topUpEntries} top-up entries; checkLedger: ${check.ledger.accounts} accounts, ${check.ledger.entries} entries, ` +
      `${check.ledger.mismatches} mismatches — ${problems.length === 0 ? "OK" : "FAILED"}`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The run

async function main(): Promise<void> {
  const settings = readSettings(process.env);
  const machine = machineInfo();
  const loadAtStart = loadAverage();
  const database = await createBenchDatabase(settings.databaseUrl);
  const databaseName = new URL(database.url).pathname.slice(1);
  const db = connectPostgres({ connectionString: database.url, max: 4 });
  const dir = mkdtempSync(path.join(os.tmpdir(), "fiat-paymaster-bench-callbacks-"));
  const simulator = await startSimulator();
  const generator = startLoadGenerator();
  let service: Service | undefined;
  try {
    await migrate(db);
    const sandboxDir = path.join(dir, "sandbox");
    writeSandboxDir(sandboxDir, simulator);
    const { ordersPerProvider, inFlight } = settings;
    console.log(
      `\nCallback throughput: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}; ` +
        `load average ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} at start`,
    );
    console.log(
      `PostgreSQL ${database.info.version} at ${database.info.url} (same machine; synchronous_commit=${database.info.synchronousCommit}, fsync=${database.info.fsync}); ` +
        `service pool ${settings.poolSize}; ${inFlight} in flight; ${ordersPerProvider.toLocaleString("en-US")} orders per provider\n`,
    );

    // Setup, not measured: orders in bulk, every notification built and signed (keys parsed once), written to files
    const setupStarted = performance.now();
    const signers: Signers = { alipay: createPrivateKey(simulator.sandbox.alipay.alipayPrivateKey), wechat: createPrivateKey(simulator.sandbox.wechat.platformPrivateKey) };
    const timedOrders = {} as Record<Provider, BenchOrder[]>;
    const warmUpOrders = {} as Record<Provider, BenchOrder[]>;
    const files = {} as Record<Provider, { warmUp: string; timed: string }>;
    const prepared = {} as Record<Provider, PreparedRequest[]>;
    for (const provider of PROVIDERS) {
      warmUpOrders[provider] = await insertOrders(db, simulator, provider, WARMUP_ORDERS);
      timedOrders[provider] = await insertOrders(db, simulator, provider, ordersPerProvider);
      prepared[provider] = notificationsFor(simulator, signers, timedOrders[provider]);
      files[provider] = { warmUp: path.join(dir, `${provider}-warmup.json`), timed: path.join(dir, `${provider}.json`) };
      writeFileSync(files[provider].warmUp, JSON.stringify(notificationsFor(simulator, signers, warmUpOrders[provider])));
      writeFileSync(files[provider].timed, JSON.stringify(prepared[provider]));
    }
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    console.log(`setup (not measured): ${(2 * (ordersPerProvider + WARMUP_ORDERS)).toLocaleString("en-US")} orders inserted, their notifications built and signed, in ${setupSeconds.toFixed(1)} s`);

    // Ceilings without HTTP, while nothing else runs
    const gateways = createGateways(loadConfig({ SANDBOX_DIR: sandboxDir, LOG_LEVEL: "silent" }), createLogger("silent"));
    const crypto = {} as Record<Provider, Rate>;
    const adapter = {} as Record<Provider, Rate>;
    for (const provider of PROVIDERS) {
      const sample = prepared[provider].slice(0, VERIFY_SAMPLE);
      crypto[provider] = cryptoCeiling(provider, simulator, sample);
      adapter[provider] = await adapterRate(gateways.get(provider)!, sample);
    }
    const inserts = await insertCeiling(database.url, prepared.alipay[0]!.body, Math.max(1, Math.floor(inFlight / 2)), 2);

    // The HTTP ceiling: the same requests, the same generator settings, a bare node:http server
    const bare = await startBareHttpServer();
    const bareHttp = {} as Record<Provider, Pass>;
    try {
      const processOnly = async (pid: number): Promise<CpuSnapshot> => ({ at: performance.now(), service: processCpuMs(pid), backends: new Map(), machine: machineBusyMs() });
      for (const provider of PROVIDERS) await generator.run({ url: bare.url, path: NOTIFY_PATH(provider), file: files[provider].warmUp, connections: inFlight, expected: SUCCESS[provider] });
      for (const provider of PROVIDERS) bareHttp[provider] = await measuredPass(generator, bare, files[provider].timed, provider, inFlight, processOnly);
    } finally {
      await bare.close();
    }

    // The service
    service = await startService(settings, database.url, sandboxDir, path.join(dir, "service.log"));
    const cpu = (pid: number) => cpuSnapshot(pid, db, databaseName);
    for (const provider of PROVIDERS) {
      // first and duplicate deliveries of orders of their own: JIT, the pool's connections, the generator's too
      for (let pass = 0; pass < 2; pass++) {
        const warm = await generator.run({ url: service.url, path: NOTIFY_PATH(provider), file: files[provider].warmUp, connections: inFlight, expected: SUCCESS[provider] });
        if (warm.failures > 0) throw new Error(`warm-up: ${warm.failures} ${provider} notifications not acknowledged, e.g. ${warm.failureExamples[0]}\n${service.log()}`);
      }
    }
    const delivered = {} as Record<Provider, { firstDelivery: Pass; duplicates: Pass }>;
    for (const provider of PROVIDERS) {
      const firstDelivery = await measuredPass(generator, service, files[provider].timed, provider, inFlight, cpu);
      const duplicates = await measuredPass(generator, service, files[provider].timed, provider, inFlight, cpu);
      delivered[provider] = { firstDelivery, duplicates };
    }
    await service.stop();
    const loadAtEnd = loadAverage();
    for (const provider of PROVIDERS) {
      delivered[provider].firstDelivery.transactions = await transactionsOf(db, timedOrders[provider], "credited");
      delivered[provider].duplicates.transactions = await transactionsOf(db, timedOrders[provider], "already_credited");
    }

    const figures = Object.fromEntries(
      PROVIDERS.map((p) => [p, { crypto: crypto[p], adapter: adapter[p], bareHttp: bareHttp[p], ...delivered[p] }]),
    ) as Record<Provider, ProviderFigures>;
    console.log("");
    printTable(figures, inserts);
    printNotes(figures, inserts, settings, machine);
    console.log(`\nload average ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} at start, ${loadAtEnd.map((l) => l.toFixed(2)).join(" ")} at end (1, 5, 15 min)`);
    for (const provider of PROVIDERS) {
      const perSecond = figures[provider].firstDelivery.perSecond;
      console.log(`target ≥ ${rate(TARGET_FIRST_DELIVERIES_PER_SECOND)} first deliveries credited/s, ${provider}: ${rate(perSecond)}/s — ${perSecond >= TARGET_FIRST_DELIVERIES_PER_SECOND ? "MET" : "MISSED"}`);
    }

    const allOrders = PROVIDERS.flatMap((p) => [...timedOrders[p], ...warmUpOrders[p]]);
    const check = await checkOutcome(db, allOrders);
    const unanswered = PROVIDERS.flatMap((p) => [delivered[p].firstDelivery, delivered[p].duplicates]).filter((p) => p.failures > 0);
    const problems = [...unanswered.map((p) => `${p.failures} requests not answered with success, e.g. ${p.failureExamples[0] ?? "(no answer)"}`), ...outcomeProblems(check)];
    printCheck(check, problems);

    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(
      RESULTS_FILE,
      `${JSON.stringify(
        {
          generatedAt: new Date().toISOString(),
          machine: { ...machine, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAtEnd },
          database: database.info,
          settings: { ordersPerProvider, inFlight, poolSize: settings.poolSize, warmUpOrdersPerProvider: WARMUP_ORDERS, verifySample: VERIFY_SAMPLE },
          setupSeconds,
          providers: figures,
          postgresInsertCeiling: inserts,
          targetFirstDeliveriesPerSecond: TARGET_FIRST_DELIVERIES_PER_SECOND,
          check: { ...check, problems },
        },
        null,
        2,
      )}\n`,
    );
    console.log(`Results written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
    if (problems.length > 0) throw new Error(`the callbacks were not all credited exactly once:\n  ${problems.join("\n  ")}`);
  } finally {
    await service?.stop();
    await generator.close();
    await simulator.close();
    await db.close();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  if (error instanceof DatabaseUnreachableError) console.error(`${error.message}\nStart PostgreSQL or set DATABASE_URL.`);
  else if (error instanceof SettingsError) console.error(error.message);
  else console.error(error);
  process.exitCode = 1;
});
