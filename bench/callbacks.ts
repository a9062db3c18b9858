/**
 * Callback throughput benchmark: signed payment notifications verified, stored and credited per second by the real
 * service, each figure beside the ceilings measured in the same run on the same machine.
 *
 * Three processes, so that nothing measured shares an event loop with anything else:
 *   - this one: sets up (database, orders, every notification built and signed before anything is timed), measures
 *     the ceilings that need no HTTP, reads the other processes' CPU from /proc, checks the outcome;
 *   - the service: `node --import tsx server/main.ts`, on its own PostgreSQL database (same machine, durable
 *     commits: synchronous_commit as the server has it), configured for the gateway simulator (SANDBOX_DIR);
 *   - the load generator (bench/load/loadGenerator.ts, driven through bench/load/client.ts): autocannon, sending
 *     every pre-signed notification once.
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
import { createDecipheriv, createPublicKey, createVerify } from "node:crypto";
import { fork } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { createGateways } from "../server/app";
import { loadConfig } from "../server/config/env";
import type { PaymentGateway, Provider } from "../server/payments/gateway";
import { newOrderId } from "../server/payments/orders";
import { type Database, connectPostgres } from "../server/platform/db/database";
import { migrate } from "../server/platform/db/migrate";
import { createLogger } from "../server/platform/logger";
import { type Simulator, startSimulator, writeSandboxDir } from "../devtools/simulator/server";
import { type LoadGenerator, type LoadJob, type LoadResult, type PreparedRequest, startLoadGenerator } from "./load/client";
import { backendsCpuMs, backendsCpuUsed, machineBusyMs, processCpuMs, treeCpuMs } from "./lib/cpu";
import { DEFAULT_DATABASE_URL, createBenchDatabase } from "./lib/database";
import { runBenchmark } from "./lib/run";
import { exited } from "./lib/exited";
import { type MachineInfo, loadAverage, machineInfo } from "./lib/machine";
import { type BenchOrder, NOTIFY_PATH, type OutcomeCheck, PROVIDERS, SUCCESS, checkOutcome, gatewaySigners, insertOrders, notificationsFor, outcomeProblems } from "./lib/payments";
import { type Service, startService } from "./lib/service";
import { SettingsError, integerSettings } from "./lib/settings";

const RESULTS_FILE = path.join(__dirname, "results", "callbacks.json");
const TARGET_FIRST_DELIVERIES_PER_SECOND = 1_000;
/** Orders of their own per provider, delivered (first and duplicate) untimed: JIT, pool connections, caches. */
const WARMUP_ORDERS = 500;
/** The bare crypto and the adapters run over this many of the prepared notifications, after an untimed round. */
const VERIFY_SAMPLE = 4_000;
/** How long the PostgreSQL insert ceiling runs. */
const INSERT_CEILING_MS = 3_000;
type Settings = { databaseUrl: string; ordersPerProvider: number; inFlight: number; poolSize: number; profileDir?: string };

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const int = integerSettings(env);
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
// CPU, read from /proc: the service's process, its PostgreSQL backends, the whole machine

type CpuSnapshot = { at: number; service: number; backends: Map<number, number>; machine: number };
type CpuUse = { serviceMsPerRequest: number; postgresMsPerRequest: number; machineBusyCores: number };

/** The service's processes and the PostgreSQL backends serving its database. */
async function cpuSnapshot(servicePid: number, db: Database, databaseName: string): Promise<CpuSnapshot> {
  return { at: performance.now(), service: treeCpuMs(servicePid), backends: await backendsCpuMs(db, databaseName), machine: machineBusyMs() };
}

function cpuUse(before: CpuSnapshot, after: CpuSnapshot, requests: number): CpuUse {
  return {
    serviceMsPerRequest: (after.service - before.service) / requests,
    postgresMsPerRequest: backendsCpuUsed(before.backends, after.backends) / requests,
    machineBusyCores: (after.machine - before.machine) / (after.at - before.at),
  };
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
// Child processes: the bare HTTP server, the service

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

/**
 * The service as deployed (its defaults: LOG_LEVEL info, CALLBACK_CONCURRENCY, rate limits in memory, one process)
 * but for the workers, which would only add their own load.
 */
function startCallbackService(settings: Settings, databaseUrl: string, sandboxDir: string, logFile: string): Promise<Service> {
  return startService({
    env: { DATABASE_URL: databaseUrl, DATABASE_POOL_SIZE: String(settings.poolSize), SANDBOX_DIR: sandboxDir, REDIS_URL: "", RECONCILE: "off", RECONCILE_DAILY: "off" },
    processes: 1,
    logFile,
    profileDir: settings.profileDir,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Passes

type Pass = LoadResult & CpuUse & { transactions?: number };

/** Every notification in `file` sent once to `provider`'s notify path, each expected to get the success reply. */
const notificationJob = (url: string, file: string, provider: Provider, connections: number): LoadJob => ({
  url,
  path: NOTIFY_PATH(provider),
  connections,
  bodies: { kind: "prepared", file },
  expected: SUCCESS[provider],
});

/** Requests not answered with the success reply, answered otherwise or not at all. */
const notAcknowledged = (p: LoadResult) => p.sent - p.ok;

async function measuredPass(
  generator: LoadGenerator,
  target: { url: string; pid: number },
  file: string,
  provider: Provider,
  inFlight: number,
  cpu: (pid: number) => Promise<CpuSnapshot>,
): Promise<Pass> {
  const before = await cpu(target.pid);
  const result = await generator.run(notificationJob(target.url, file, provider, inFlight));
  const after = await cpu(target.pid);
  return { ...result, ...cpuUse(before, after, result.sent) };
}

// ---------------------------------------------------------------------------------------------------------------
// Checking the outcome

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
      rate(p.okPerSecond),
      ms(p.latencyMs.p50),
      ms(p.latencyMs.p99),
      ms(p.serviceMsPerRequest),
      ms(p.postgresMsPerRequest),
      ratio(p.okPerSecond, f.bareHttp.okPerSecond),
      ratio(p.okPerSecond, f.crypto.perSecond),
      ratio(p.okPerSecond, inserts.perSecond),
    ];
    lines.push(
      pass("first deliveries credited", f.firstDelivery),
      pass("duplicates acknowledged", f.duplicates),
      [`${provider}: ceiling, bare node:http`, f.bareHttp.sent.toLocaleString("en-US"), rate(f.bareHttp.okPerSecond), ms(f.bareHttp.latencyMs.p50), ms(f.bareHttp.latencyMs.p99), ms(f.bareHttp.serviceMsPerRequest), "", "", "", ""],
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
    const busy = (p: Pass) => `machine ${p.machineBusyCores.toFixed(1)}/${machine.cores} cores busy, generator ${ms(p.cpuMsPerRequest)} ms CPU/req`;
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
  const database = await createBenchDatabase(settings.databaseUrl, "fp_bench_callbacks");
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
    const signers = gatewaySigners(simulator);
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
      for (const provider of PROVIDERS) await generator.run(notificationJob(bare.url, files[provider].warmUp, provider, inFlight));
      for (const provider of PROVIDERS) bareHttp[provider] = await measuredPass(generator, bare, files[provider].timed, provider, inFlight, processOnly);
    } finally {
      await bare.close();
    }

    // The service
    service = await startCallbackService(settings, database.url, sandboxDir, path.join(dir, "service.log"));
    const cpu = (pid: number) => cpuSnapshot(pid, db, database.name);
    for (const provider of PROVIDERS) {
      // first and duplicate deliveries of orders of their own: JIT, the pool's connections, the generator's too
      for (let pass = 0; pass < 2; pass++) {
        const warm = await generator.run(notificationJob(service.url, files[provider].warmUp, provider, inFlight));
        if (notAcknowledged(warm) > 0) throw new Error(`warm-up: ${notAcknowledged(warm)} ${provider} notifications not acknowledged, e.g. ${warm.failureExamples[0]}\n${service.log()}`);
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
      const perSecond = figures[provider].firstDelivery.okPerSecond;
      console.log(`target ≥ ${rate(TARGET_FIRST_DELIVERIES_PER_SECOND)} first deliveries credited/s, ${provider}: ${rate(perSecond)}/s — ${perSecond >= TARGET_FIRST_DELIVERIES_PER_SECOND ? "MET" : "MISSED"}`);
    }

    const allOrders = PROVIDERS.flatMap((p) => [...timedOrders[p], ...warmUpOrders[p]]);
    const check = await checkOutcome(db, allOrders, { duplicatesPerOrder: 1 });
    const unanswered = PROVIDERS.flatMap((p) => [delivered[p].firstDelivery, delivered[p].duplicates]).filter((p) => notAcknowledged(p) > 0);
    const problems = [...unanswered.map((p) => `${notAcknowledged(p)} requests not answered with success, e.g. ${p.failureExamples[0] ?? "(no answer)"}`), ...outcomeProblems(check)];
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

runBenchmark(main);
