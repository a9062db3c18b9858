/**
 * Callback throughput benchmark: how many signed payment notifications per second the service verifies, stores and
 * credits, against how many it could merely verify.
 *
 *   - verify, in-process, no database, over the same pre-built notifications the end-to-end passes send:
 *       crypto only:     the bare node:crypto work a notification needs (Alipay: RSA2 verify; WeChat: RSA-SHA256
 *                        verify + AES-256-GCM decrypt), with the keys already parsed — the floor;
 *       verifyCallback:  each provider's PaymentGateway.verifyCallback, exactly as the notify route calls it;
 *   - end to end: the real service on real PostgreSQL (startPaymentsStack), every notification POSTed to its notify
 *     endpoint over HTTP with a bounded number in flight. Each is verified, stored and credited in one
 *     transaction. A second pass re-sends them all: duplicates are verified and acknowledged, nothing is credited;
 *   - for scale, plain HTTP round trips (GET /healthz) at the same concurrency: what the service's HTTP stack and
 *     this load generator cost with no callback work at all.
 *
 * After the passes it checks that every order was credited exactly once and that the ledger is consistent.
 * Node runs the service, the simulator and the load generator on one event loop in this process, as one
 * single-threaded service instance would; PostgreSQL runs on the same machine. Figures also go to
 * bench/results/callbacks.json.
 *
 *   npm run bench:callbacks
 *   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); BENCH_ORDERS_PER_PROVIDER, BENCH_IN_FLIGHT,
 *   BENCH_POOL_SIZE override the defaults below.
 */
import { type KeyObject, createDecipheriv, createPublicKey, createVerify, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { checkLedger } from "../server/ledger/ledger";
import { formatBeijingTime } from "../server/payments/gateways/alipay";
import type { IncomingCallback, PaymentGateway, Provider } from "../server/payments/gateway";
import { createOrder } from "../server/payments/orders";
import { type AlipaySandbox, alipayPaymentFields, signNotification } from "../devtools/simulator/alipay";
import { TRANSACTION_SUCCESS, type WechatSandbox, buildWechatNotification, signWechatMessage, wechatPlatformSigner } from "../devtools/simulator/wechat";
import { type Stack, startPaymentsStack } from "../devtools/testing/paymentsStack";

const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";
/** Fail fast with a readable message rather than pg's default of waiting indefinitely. */
const CONNECT_TIMEOUT_MS = 5_000;
const PROVIDERS: readonly Provider[] = ["alipay", "wechat"];
const RESULTS_FILE = path.join(__dirname, "results", "callbacks.json");

type Settings = { databaseUrl: string; ordersPerProvider: number; inFlight: number; poolSize: number };
/** Creating orders is setup, not measured: parallel enough to be quick, gentle enough for the simulator. */
const SETUP_CONCURRENCY = 16;
/** Opens the pool's connections and warms the HTTP path before anything is timed. */
const WARMUP_REQUESTS = 500;
/** In-process verification is fast; more rounds over the same notifications steady its rate. One more runs untimed first (JIT). */
const VERIFY_ROUNDS = 3;
/** A failing run keeps a few examples in the results, not thousands of copies of one. */
const FAILURE_EXAMPLES = 5;
/** Amounts vary per order (1.00–500.99 yuan) so that crediting another order's amount would show. */
const MIN_AMOUNT_FEN = 100;
const AMOUNT_SPREAD_FEN = 50_000;

/** A setting the environment got wrong: reported as one line, not a stack trace. */
class SettingsError extends Error {
  override name = "SettingsError";
}

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const int = (name: string, fallback: number): number => {
    const text = env[name];
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 1) throw new SettingsError(`${name} must be a positive integer: got ${text}`);
    return value;
  };
  return {
    databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL,
    /** 2 × 1,000 orders: enough for stable rates, small enough to stay well under two minutes. */
    ordersPerProvider: int("BENCH_ORDERS_PER_PROVIDER", 1_000),
    /** A gateway delivering a burst (e.g. after an outage) keeps many notifications open at once. */
    inFlight: int("BENCH_IN_FLIGHT", 64),
    /** The service's own default (DATABASE_POOL_SIZE), so the figures describe an unconfigured deployment. */
    poolSize: int("BENCH_POOL_SIZE", 16),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Environment

type MachineInfo = { cores: number; cpuModel: string; memoryGiB: number; node: string; platform: string; loadAverage1m: number };
type DatabaseInfo = { url: string; version: string; synchronousCommit: string; fsync: string; maxConnections: number };

function machineInfo(): MachineInfo {
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    // anything else busy on the machine skews every figure; the load before the run says whether it was quiet
    loadAverage1m: os.loadavg()[0]!,
  };
}

/** The URL as printed: without its password. */
function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

class DatabaseUnreachableError extends Error {
  override name = "DatabaseUnreachableError";
}

/** Connects once before anything else so an absent server is one clear line, not a stack trace from deep in setup. */
async function probeDatabase(url: string): Promise<DatabaseInfo> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await client.connect();
    const { rows } = await client.query<{ version: string; synchronous_commit: string; fsync: string; max_connections: string }>(
      `SELECT current_setting('server_version') AS version, current_setting('synchronous_commit') AS synchronous_commit,
              current_setting('fsync') AS fsync, current_setting('max_connections') AS max_connections`,
    );
    const row = rows[0]!;
    return { url: redactedUrl(url), version: row.version, synchronousCommit: row.synchronous_commit, fsync: row.fsync, maxConnections: Number(row.max_connections) };
  } catch (error) {
    throw new DatabaseUnreachableError(`PostgreSQL at ${redactedUrl(url)} is not reachable: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Orders and their notifications

type BenchOrder = { provider: Provider; id: string; account: string; amountFen: bigint };

/** A notification as the gateway would send it: header names lower-case, as Node hands them to the route. */
type PreparedCallback = { provider: Provider; orderId: string; headers: Record<string, string>; rawBody: string };

const newAccount = () => `0x${randomBytes(20).toString("hex")}`;
const amountFor = (index: number) => BigInt(MIN_AMOUNT_FEN + ((index * 7_919) % AMOUNT_SPREAD_FEN));

/** Runs `work` over `items` with at most `limit` at a time; results keep the items' order. */
async function mapConcurrently<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Real orders through the service's own createOrder, so each has its trade at the simulated gateway too. */
async function createOrders(stack: Stack, provider: Provider, count: number): Promise<BenchOrder[]> {
  const deps = { db: stack.db, gateways: stack.service.gateways, limits: stack.config.orders };
  const indexes = Array.from({ length: count }, (_, i) => i);
  return mapConcurrently(indexes, SETUP_CONCURRENCY, async (index) => {
    const order = await createOrder(deps, { account: newAccount(), amountFen: amountFor(index), provider });
    return { provider, id: order.id, account: order.account, amountFen: order.amountFen };
  });
}

/** A trade_status_sync notification with the fields Alipay sends for a paid precreated trade. */
function alipayNotification(sandbox: AlipaySandbox, order: BenchOrder): PreparedCallback {
  const now = new Date();
  const fields = alipayPaymentFields({
    appId: sandbox.appId,
    sellerId: sandbox.sellerId,
    orderId: order.id,
    tradeNo: `2026${randomBytes(10).toString("hex")}`,
    subject: "Gas quota top-up",
    amountFen: order.amountFen,
    createdAt: now,
    paidAt: now,
  });
  const signed = signNotification({ ...fields, notify_time: formatBeijingTime(now) }, sandbox.alipayPrivateKey);
  return {
    provider: "alipay",
    orderId: order.id,
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    rawBody: new URLSearchParams(signed).toString(),
  };
}

/** A TRANSACTION.SUCCESS notification: the transaction AES-256-GCM-encrypted, the body signed by the platform key. */
function wechatNotification(sandbox: WechatSandbox, order: BenchOrder): PreparedCallback {
  const total = Number(order.amountFen);
  const rawBody = buildWechatNotification(sandbox.apiV3Key, TRANSACTION_SUCCESS, {
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
  const signature = signWechatMessage(rawBody, wechatPlatformSigner(sandbox));
  const headers = Object.fromEntries(Object.entries(signature).map(([name, value]) => [name.toLowerCase(), value]));
  return { provider: "wechat", orderId: order.id, headers: { ...headers, "content-type": "application/json" }, rawBody };
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring

/** A rate over `count` operations, with per-operation latency percentiles (ms). */
type Timing = { count: number; seconds: number; perSecond: number; p50Ms: number; p99Ms: number };

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)] ?? Number.NaN;
}

function timingOf(durationsMs: number[], elapsedMs: number): Timing {
  const sorted = [...durationsMs].sort((a, b) => a - b);
  return {
    count: durationsMs.length,
    seconds: elapsedMs / 1000,
    perSecond: durationsMs.length / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}

/**
 * Runs `operation` over every item, one after another, VERIFY_ROUNDS times after an untimed round (verification is
 * synchronous CPU work on the one thread: parallelism adds nothing).
 */
async function timeSequentially<T>(items: readonly T[], operation: (item: T) => Promise<void> | void): Promise<Timing> {
  for (const item of items) await operation(item);
  const durations: number[] = [];
  const started = performance.now();
  for (let round = 0; round < VERIFY_ROUNDS; round++) {
    for (const item of items) {
      const before = performance.now();
      await operation(item);
      durations.push(performance.now() - before);
    }
  }
  return timingOf(durations, performance.now() - started);
}

const incoming = (callback: PreparedCallback): IncomingCallback => ({ headers: callback.headers, rawBody: callback.rawBody });

/** The adapter as the notify route calls it; every notification must verify or the figure means nothing. */
function measureVerifyCallback(gateway: PaymentGateway, callbacks: readonly PreparedCallback[]): Promise<Timing> {
  return timeSequentially(callbacks, async (callback) => {
    const result = await gateway.verifyCallback(incoming(callback));
    if (!result.ok) throw new Error(`${gateway.provider} notification for ${callback.orderId} did not verify: ${result.code} ${result.detail}`);
  });
}

// The crypto floor re-derives what the signatures cover, so that only the cryptographic operations are timed.

/** Alipay's notification signing string: every non-empty field but sign and sign_type, sorted by name, `k=v&…`. */
function alipaySigningContent(form: Record<string, string>): string {
  return Object.keys(form)
    .filter((name) => name !== "sign" && name !== "sign_type" && form[name] !== "")
    .sort()
    .map((name) => `${name}=${form[name]}`)
    .join("&");
}

type CryptoWork = () => boolean;

function alipayCryptoWork(callback: PreparedCallback, publicKey: KeyObject): CryptoWork {
  const form = Object.fromEntries(new URLSearchParams(callback.rawBody));
  const content = alipaySigningContent(form);
  return () => createVerify("RSA-SHA256").update(content, "utf8").verify(publicKey, form.sign!, "base64");
}

/** WeChat Pay signs `timestamp\nnonce\nbody\n`; the resource is base64(ciphertext ‖ 16-byte GCM tag). */
function wechatCryptoWork(callback: PreparedCallback, publicKey: KeyObject, apiV3Key: Buffer): CryptoWork {
  const { headers, rawBody } = callback;
  const message = `${headers["wechatpay-timestamp"]}\n${headers["wechatpay-nonce"]}\n${rawBody}\n`;
  const resource = (JSON.parse(rawBody) as { resource: { ciphertext: string; nonce: string; associated_data: string } }).resource;
  const sealed = Buffer.from(resource.ciphertext, "base64");
  const tagAt = sealed.length - 16;
  return () => {
    const verified = createVerify("RSA-SHA256").update(message, "utf8").verify(publicKey, headers["wechatpay-signature"]!, "base64");
    const decipher = createDecipheriv("aes-256-gcm", apiV3Key, Buffer.from(resource.nonce, "utf8"));
    decipher.setAuthTag(sealed.subarray(tagAt));
    decipher.setAAD(Buffer.from(resource.associated_data, "utf8"));
    decipher.update(sealed.subarray(0, tagAt));
    decipher.final(); // throws unless the tag checks
    return verified;
  };
}

function cryptoWorkFor(stack: Stack, callbacks: readonly PreparedCallback[]): CryptoWork[] {
  const { alipay, wechat } = stack.simulator.sandbox;
  const alipayKey = createPublicKey(alipay.alipayPublicKey);
  const wechatKey = createPublicKey(wechat.platformPublicKey);
  const apiV3Key = Buffer.from(wechat.apiV3Key, "utf8");
  return callbacks.map((c) => (c.provider === "alipay" ? alipayCryptoWork(c, alipayKey) : wechatCryptoWork(c, wechatKey, apiV3Key)));
}

function measureCrypto(work: readonly CryptoWork[]): Promise<Timing> {
  return timeSequentially(work, (verify) => {
    if (!verify()) throw new Error("a notification's signature did not verify");
  });
}

/**
 * How busy things were during a pass: event-loop utilization 1.0 means the one JavaScript thread never waited
 * (Node itself was the bottleneck); this process's CPU per request counts all its threads (GC, libuv) and includes
 * the load generator's share; the machine's busy cores include PostgreSQL (and anything else running).
 */
type Pass = Timing & { eventLoopUtilization: number; cpuMsPerRequest: number; machineBusyCores: number; failures: string[] };

/** CPU time (ms) all cores spent not idle since boot. */
function machineBusyMs(): number {
  return os.cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);
}

/** Sends every request with at most `inFlight` open; a request that fails or gets another answer is a failure. */
async function runPass(inFlight: number, requests: readonly (() => Promise<string | undefined>)[]): Promise<Pass> {
  const durations: number[] = [];
  const failures: string[] = [];
  const loopBefore = performance.eventLoopUtilization();
  const cpuBefore = process.cpuUsage();
  const machineBefore = machineBusyMs();
  const started = performance.now();
  await mapConcurrently(requests, inFlight, async (send) => {
    const before = performance.now();
    const failure = await send().catch((error: unknown) => `request failed: ${(error as Error).message}`);
    durations.push(performance.now() - before);
    if (failure !== undefined) failures.push(failure);
  });
  const elapsed = performance.now() - started;
  const loop = performance.eventLoopUtilization(loopBefore);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMsPerRequest = (cpu.user + cpu.system) / 1000 / requests.length;
  const machineBusyCores = (machineBusyMs() - machineBefore) / elapsed;
  return { ...timingOf(durations, elapsed), eventLoopUtilization: loop.utilization, cpuMsPerRequest, machineBusyCores, failures };
}

/** POSTs the notification to its notify endpoint; undefined when the answer is the gateway's success reply. */
function deliver(stack: Stack, callback: PreparedCallback): () => Promise<string | undefined> {
  const expected = stack.service.gateways.get(callback.provider)!.successReply();
  return async () => {
    const response = await fetch(`${stack.url}/v1/payments/${callback.provider}/notify`, { method: "POST", headers: callback.headers, body: callback.rawBody });
    const body = await response.text();
    if (response.status === expected.status && body === expected.body) return undefined;
    return `${callback.provider} ${callback.orderId}: HTTP ${response.status} ${body.slice(0, 120)}`;
  };
}

/** A GET that must answer 2xx; the body is read so the connection is reused. */
function getOk(stack: Stack, urlPath: string): () => Promise<string | undefined> {
  return async () => {
    const response = await fetch(`${stack.url}${urlPath}`);
    await response.text();
    return response.ok ? undefined : `GET ${urlPath}: HTTP ${response.status}`;
  };
}

/** /readyz queries the database, so a burst of it opens every pooled connection before the timed passes. */
async function warmUp(stack: Stack, inFlight: number): Promise<void> {
  const pass = await runPass(inFlight, Array.from({ length: WARMUP_REQUESTS }, () => getOk(stack, "/readyz")));
  if (pass.failures.length > 0) throw new Error(`warm-up failed: ${pass.failures[0]}`);
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
async function checkOutcome(stack: Stack, orders: readonly BenchOrder[]): Promise<OutcomeCheck> {
  const { rows } = await stack.db.query<{ paid: bigint; credited_once: bigint; balances: bigint; callbacks: bigint }>(
    `SELECT count(*) FILTER (WHERE o.status = 'paid') AS paid,
            count(*) FILTER (WHERE t.entries = 1 AND t.credited = o.amount_fen) AS credited_once,
            count(*) FILTER (WHERE a.available_fen = o.amount_fen AND a.held_fen = 0) AS balances,
            count(*) FILTER (WHERE c.credited = 1 AND c.duplicates = 1 AND c.total = 2) AS callbacks
       FROM orders o
       LEFT JOIN (SELECT reference, count(*) AS entries, sum(available_delta_fen) AS credited
                    FROM ledger_entries WHERE kind = 'topup' GROUP BY reference) t ON t.reference = o.id
       LEFT JOIN accounts a ON a.address = o.account
       LEFT JOIN (SELECT order_id, count(*) FILTER (WHERE outcome = 'credited') AS credited,
                         count(*) FILTER (WHERE outcome = 'already_credited') AS duplicates, count(*) AS total
                    FROM payment_callbacks WHERE verified GROUP BY order_id) c ON c.order_id = o.id
      WHERE o.id = ANY($1)`,
    [orders.map((o) => o.id)],
  );
  const topUps = await stack.db.query<{ count: bigint }>("SELECT count(*) AS count FROM ledger_entries WHERE kind = 'topup'");
  const ledger = await checkLedger(stack.db);
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

function outcomeProblems(check: OutcomeCheck): string[] {
  const expect = (what: string, actual: number, wanted: number) => (actual === wanted ? [] : [`${what}: ${actual} of ${wanted}`]);
  return [
    ...expect("orders paid", check.paid, check.orders),
    ...expect("orders with exactly one top-up entry of their amount", check.creditedOnceWithItsAmount, check.orders),
    ...expect("accounts whose balance is their order's amount", check.balancesEqualToOrder, check.orders),
    ...expect("orders with one credited and one already_credited callback stored", check.callbacksStoredAsCreditedThenDuplicate, check.orders),
    ...expect("top-up entries in the ledger", check.topUpEntries, check.orders),
    ...expect("checkLedger mismatches", check.ledger.mismatches, 0),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

type Row = { metric: string; timing: Timing; latency: boolean; versusCrypto?: number; versusVerify?: number };

const formatRate = (perSecond: number) => Math.round(perSecond).toLocaleString("en-US");
const formatMs = (ms: number) => (ms < 1 ? ms.toFixed(3) : ms.toFixed(1));
const formatRatio = (ratio: number | undefined) => (ratio === undefined ? "" : ratio.toFixed(3));

function printTable(rows: readonly Row[]): void {
  const header = ["metric", "count", "rate/s", "p50 ms", "p99 ms", "÷ crypto", "÷ verifyCallback"];
  const lines = rows.map((r) => [
    r.metric,
    r.timing.count.toLocaleString("en-US"),
    formatRate(r.timing.perSecond),
    r.latency ? formatMs(r.timing.p50Ms) : "",
    r.latency ? formatMs(r.timing.p99Ms) : "",
    formatRatio(r.versusCrypto),
    formatRatio(r.versusVerify),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  // the metric column reads left to right; the figures line up on their last digit
  const format = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(format(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const line of lines) console.log(format(line));
}

/** A pass as written to the results: its failures counted, a few kept as examples. */
function summarized({ failures, ...pass }: Pass): Omit<Pass, "failures"> & { failures: number; failureExamples: string[] } {
  return { ...pass, failures: failures.length, failureExamples: failures.slice(0, FAILURE_EXAMPLES) };
}

function writeResults(results: object): void {
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// The run

type ProviderFigures = { crypto: Timing; verifyCallback: Timing; firstDelivery: Pass; duplicates: Pass };

/** `make` for each provider in turn: one at a time, so that no measurement shares the CPU with another. */
async function perProvider<T>(make: (provider: Provider) => Promise<T>): Promise<Record<Provider, T>> {
  const entries: [Provider, T][] = [];
  for (const provider of PROVIDERS) entries.push([provider, await make(provider)]);
  return Object.fromEntries(entries) as Record<Provider, T>;
}

type Prepared = { orders: Record<Provider, BenchOrder[]>; callbacks: Record<Provider, PreparedCallback[]>; setupSeconds: number };

async function prepare(stack: Stack, ordersPerProvider: number): Promise<Prepared> {
  const started = performance.now();
  const { alipay, wechat } = stack.simulator.sandbox;
  const orders = await perProvider((provider) => createOrders(stack, provider, ordersPerProvider));
  const callbacks = await perProvider(async (provider) =>
    orders[provider].map((order) => (provider === "alipay" ? alipayNotification(alipay, order) : wechatNotification(wechat, order))),
  );
  return { orders, callbacks, setupSeconds: (performance.now() - started) / 1000 };
}

/** In-process, before any HTTP traffic, so nothing else competes for the thread. */
function measureVerification(stack: Stack, callbacks: Record<Provider, PreparedCallback[]>) {
  return perProvider(async (provider) => ({
    crypto: await measureCrypto(cryptoWorkFor(stack, callbacks[provider])),
    verifyCallback: await measureVerifyCallback(stack.service.gateways.get(provider)!, callbacks[provider]),
  }));
}

/** Every notification once (each credits its order), then every one again (each a duplicate). */
function measureDelivery(stack: Stack, callbacks: Record<Provider, PreparedCallback[]>, inFlight: number) {
  return perProvider(async (provider) => {
    const requests = callbacks[provider].map((c) => deliver(stack, c));
    const firstDelivery = await runPass(inFlight, requests);
    const duplicates = await runPass(inFlight, requests);
    return { firstDelivery, duplicates };
  });
}

function tableRows(figures: Record<Provider, ProviderFigures>, http: Pass): Row[] {
  const rows: Row[] = [];
  for (const provider of PROVIDERS) {
    const f = figures[provider];
    const versus = (pass: Pass) => ({ versusCrypto: pass.perSecond / f.crypto.perSecond, versusVerify: pass.perSecond / f.verifyCallback.perSecond });
    rows.push(
      { metric: `${provider}: verify, crypto only (1 thread)`, timing: f.crypto, latency: true },
      { metric: `${provider}: verifyCallback (1 thread)`, timing: f.verifyCallback, latency: true },
      { metric: `${provider}: end to end, first delivery (credits)`, timing: f.firstDelivery, latency: true, ...versus(f.firstDelivery) },
      { metric: `${provider}: end to end, duplicate (acknowledged)`, timing: f.duplicates, latency: true, ...versus(f.duplicates) },
    );
  }
  rows.push({ metric: "HTTP round trip only (GET /healthz)", timing: http, latency: true });
  return rows;
}

function printHeader(settings: Settings, machine: MachineInfo, database: DatabaseInfo): void {
  const { ordersPerProvider, inFlight, poolSize } = settings;
  console.log(
    `\nCallback throughput: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}, ` +
      `load average ${machine.loadAverage1m.toFixed(2)} before the run`,
  );
  console.log(
    `PostgreSQL ${database.version} at ${database.url} (same machine; synchronous_commit=${database.synchronousCommit}, fsync=${database.fsync}), ` +
      `service pool ${poolSize} connections, ${inFlight} callbacks in flight, ${ordersPerProvider.toLocaleString("en-US")} orders per provider\n`,
  );
}

function printLoad(figures: Record<Provider, ProviderFigures>, http: Pass, inFlight: number, machine: MachineInfo): void {
  console.log("\nrate/s of an end-to-end row ÷ the same provider's in-process verify rate; p50/p99 are per request, with");
  console.log(`${inFlight} in flight (queueing included). This process (service + load generator) during each pass:`);
  const busy = (pass: Pass) =>
    `event loop ${(pass.eventLoopUtilization * 100).toFixed(0)}% busy, ${pass.cpuMsPerRequest.toFixed(2)} ms CPU per request, ` +
    `machine ${pass.machineBusyCores.toFixed(1)}/${machine.cores} cores busy`;
  for (const provider of PROVIDERS) {
    const { firstDelivery, duplicates } = figures[provider];
    console.log(`  ${provider}: first delivery ${busy(firstDelivery)}; duplicates ${busy(duplicates)}`);
  }
  console.log(`  GET /healthz: ${busy(http)}`);
}

function printCheck(check: OutcomeCheck, problems: readonly string[]): void {
  console.log(
    `\nCheck: ${check.paid}/${check.orders} orders paid, ${check.creditedOnceWithItsAmount} credited exactly once with their amount, ` +
      `${check.topUpEntries} top-up entries; checkLedger: ${check.ledger.accounts} accounts, ${check.ledger.entries} entries, ` +
      `${check.ledger.mismatches} mismatches — ${problems.length === 0 ? "OK" : "FAILED"}`,
  );
}

async function runBench(stack: Stack, settings: Settings, machine: MachineInfo, database: DatabaseInfo): Promise<void> {
  const { ordersPerProvider, inFlight } = settings;
  printHeader(settings, machine, database);
  const { orders, callbacks, setupSeconds } = await prepare(stack, ordersPerProvider);
  console.log(`setup (not measured): ${2 * ordersPerProvider} orders created and notifications signed in ${setupSeconds.toFixed(1)} s\n`);

  const verification = await measureVerification(stack, callbacks);
  await warmUp(stack, inFlight);
  const http = await runPass(inFlight, Array.from({ length: 2 * ordersPerProvider }, () => getOk(stack, "/healthz")));
  const delivery = await measureDelivery(stack, callbacks, inFlight);
  const figures = await perProvider(async (p): Promise<ProviderFigures> => ({ ...verification[p], ...delivery[p] }));

  printTable(tableRows(figures, http));
  printLoad(figures, http, inFlight, machine);

  const passes = [...PROVIDERS.flatMap((p) => [figures[p].firstDelivery, figures[p].duplicates]), http];
  const failures = passes.flatMap((pass) => pass.failures);
  const check = await checkOutcome(stack, PROVIDERS.flatMap((p) => orders[p]));
  const problems = [...(failures.length > 0 ? [`${failures.length} requests not answered with success, e.g. ${failures[0]}`] : []), ...outcomeProblems(check)];
  printCheck(check, problems);

  writeResults({
    generatedAt: new Date().toISOString(),
    machine,
    database,
    settings: { ordersPerProvider, inFlight, poolSize: settings.poolSize, setupConcurrency: SETUP_CONCURRENCY, verifyRounds: VERIFY_ROUNDS },
    setupSeconds,
    providers: await perProvider(async (p) => ({ ...figures[p], firstDelivery: summarized(figures[p].firstDelivery), duplicates: summarized(figures[p].duplicates) })),
    httpRoundTrip: summarized(http),
    check: { ...check, problems },
  });
  console.log(`Results written to ${path.relative(process.cwd(), RESULTS_FILE)}`);
  if (problems.length > 0) throw new Error(`the callbacks were not all credited exactly once:\n  ${problems.join("\n  ")}`);
}

async function main(): Promise<void> {
  const settings = readSettings(process.env);
  const database = await probeDatabase(settings.databaseUrl);
  // startPaymentsStack creates (and drops) its own database on the server DATABASE_URL names
  process.env.DATABASE_URL = settings.databaseUrl;
  const stack = await startPaymentsStack("postgres", { poolSize: settings.poolSize });
  try {
    await runBench(stack, settings, machineInfo(), database);
  } finally {
    await stack.close();
  }
}

main().catch((error: unknown) => {
  if (error instanceof DatabaseUnreachableError) console.error(`${error.message}\nStart PostgreSQL or set DATABASE_URL.`);
  else if (error instanceof SettingsError) console.error(error.message);
  else console.error(error);
  process.exitCode = 1;
});
