/**
 * Sponsorship throughput benchmark: pm_getPaymasterData answered per second, with p50/p99 latency, by the real
 * server (`server/main.ts` in its own processes, SERVER_PROCESSES of them, on real PostgreSQL with durable
 * commits) — at 64 requests in flight for a minute (the server's RSS printed every 5 s) and at 8 in flight (a
 * wallet's latency) — with 100,000 holds already open in the database, beside the ceilings measured in this same
 * run on this machine:
 *   - a bare Node HTTP server (node:http, as many processes) answering the same requests from the same generator;
 *   - raw native signing: paymaster signatures per second on one core;
 *   - raw group-committed inserts on the same PostgreSQL: rows per second that 64 writers get, one row each,
 *     committed durably in group transactions.
 * Each figure is printed with its ratio to its ceiling.
 *
 * Every answered request did everything the service does: parse and check the userOp, API key, policy, gas
 * caps, fee, nonce (an eth_call), deposit, price, sign, and commit its hold and signed operation (group-committed)
 * before answering. Each request is a new operation (a nonce key of its own, round-robin over the senders).
 * Rate limits are off (0): one load generator from one IP would only measure the limiter refusing. The load
 * generator (autocannon, bench/load/loadGenerator.ts) runs in its own process. Afterwards the run checks that every signed
 * answer has its signed operation on record and that the ledger is consistent; a mismatch fails the run.
 *
 *   npm run bench:sponsorship
 *   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_SECONDS (60), BENCH_WARMUP_SECONDS (20,
 *   at BENCH_IN_FLIGHT, before the minute whose RSS is printed), BENCH_LOW_SECONDS (10),
 *   BENCH_CEILING_SECONDS (10), BENCH_IN_FLIGHT (64), BENCH_LOW_IN_FLIGHT (8), BENCH_SENDERS (20000),
 *   BENCH_OPEN_HOLDS (100000), BENCH_PROCESSES (server processes; default one per core), BENCH_POOL_SIZE (16 per
 *   process), BENCH_PROFILE_DIR (write the server processes' V8 CPU profiles there)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { keccak256, toHex } from "viem";
import { freePort } from "../devtools/chain/anvil";
import { DEV_KEYS } from "../devtools/chain/localChain";
import { connectPostgres, type Database } from "../server/platform/db/database";
import { GroupCommitter } from "../server/platform/db/groupCommit";
import { migrate } from "../server/platform/db/migrate";
import { checkLedger } from "../server/ledger/ledger";
import { generateApiKey } from "../server/sponsorship/apiKeys";
import { createLocalSigner } from "../server/sponsorship/signing/signer";
import { type LoadResult, startLoadGenerator } from "./load/client";
import { commandCpuMs, treeCpuMs } from "./lib/cpu";
import { DEFAULT_DATABASE_URL, createBenchDatabase } from "./lib/database";
import { runBenchmark } from "./lib/run";
import { exited } from "./lib/exited";
import { type Service, startService } from "./lib/service";
import { integerSettings } from "./lib/settings";
import { checkSignedAnswersOnRecord, maxCostWei, newSenders, seedSenders, sponsorshipEnv, sponsorshipJobs, startBenchChain } from "./lib/sponsorship";

const RESULTS_FILE = path.join(__dirname, "results", "sponsorship.json");
const TARGET = { perSecond: 3_000, p99Ms: 50, lowP50Ms: 5, lowP99Ms: 15 };
/** The server's RSS is read this often during the long run. */
const RSS_EVERY_MS = 5_000;

/** The range of RSS samples and their least-squares slope: a leak shows as a trend, GC cycles only as range. */
function trend(samples: ReadonlyArray<{ second: number; mib: number }>): { min: number; max: number; mibPerMinute: number } {
  const n = samples.length;
  const meanX = samples.reduce((sum, r) => sum + r.second, 0) / n;
  const meanY = samples.reduce((sum, r) => sum + r.mib, 0) / n;
  const sxx = samples.reduce((sum, r) => sum + (r.second - meanX) ** 2, 0);
  const sxy = samples.reduce((sum, r) => sum + (r.second - meanX) * (r.mib - meanY), 0);
  return { min: Math.min(...samples.map((r) => r.mib)), max: Math.max(...samples.map((r) => r.mib)), mibPerMinute: sxx > 0 ? (sxy / sxx) * 60 : 0 };
}

function settings(env: NodeJS.ProcessEnv) {
  const int = integerSettings(env);
  return {
    databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL,
    seconds: int("BENCH_SECONDS", 60),
    // V8 sizes its heap to the allocation rate over the first 15–25 s under load (RSS climbs, then oscillates
    // with major GCs around a level): the minute whose RSS is printed starts after that
    warmUpSeconds: int("BENCH_WARMUP_SECONDS", 20),
    lowSeconds: int("BENCH_LOW_SECONDS", 10),
    ceilingSeconds: int("BENCH_CEILING_SECONDS", 10),
    inFlight: int("BENCH_IN_FLIGHT", 64),
    lowInFlight: int("BENCH_LOW_IN_FLIGHT", 8),
    senders: int("BENCH_SENDERS", 20_000),
    openHolds: int("BENCH_OPEN_HOLDS", 100_000, 0),
    processes: int("BENCH_PROCESSES", os.availableParallelism()),
    poolSize: int("BENCH_POOL_SIZE", 16),
  };
}

/** Paymaster signatures per second on this core for `ms` milliseconds. */
async function signingRate(native: boolean, ms: number): Promise<number> {
  const signer = createLocalSigner(DEV_KEYS.signer, { native });
  const hashes = Array.from({ length: 256 }, (_, i) => keccak256(toHex(i)));
  for (let i = 0; i < 200; i++) await signer.signHash(hashes[i % 256]!); // warm up
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 50; i++) await signer.signHash(hashes[count++ % 256]!);
  }
  return count / ((performance.now() - start) / 1000);
}

function rssMiB(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

type CpuSample = { server: number; postgres: number; anvil: number; at: number };
function cpuSample(serverPid: number): CpuSample {
  return { server: treeCpuMs(serverPid) / 1000, postgres: commandCpuMs("postgres") / 1000, anvil: commandCpuMs("anvil") / 1000, at: performance.now() };
}
function cpuShares(a: CpuSample, b: CpuSample) {
  const s = (b.at - a.at) / 1000;
  return { server: (b.server - a.server) / s, postgres: (b.postgres - a.postgres) / s, anvil: (b.anvil - a.anvil) / s };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const stopped = exited(child);
  child.kill("SIGTERM");
  await stopped;
}

/**
 * The HTTP ceiling: a bare node:http server (as many processes, node:cluster) that reads each POST's JSON body and
 * answers a JSON-RPC result of the size the service answers, with nothing else.
 */
const BARE_SERVER = `
const cluster = require("node:cluster");
const http = require("node:http");
const n = Number(process.env.PROCESSES);
if (cluster.isPrimary && n > 1) { for (let i = 0; i < n; i++) cluster.fork(); }
else {
  const answer = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { paymaster: "0x" + "ab".repeat(20), paymasterData: "0x" + "cd".repeat(77), paymasterVerificationGasLimit: "0xea60", paymasterPostOpGasLimit: "0x88b8", sponsor: { name: "fiat-paymaster" }, isFinal: false } });
  http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const text = answer.replace('"id":1', '"id":' + JSON.stringify(body.id));
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  }).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("bare listening"));
}`;

async function startBareServer(processes: number, dir: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const file = path.join(dir, "bare-server.cjs");
  writeFileSync(file, BARE_SERVER);
  const child = spawn(process.execPath, [file], { env: { ...process.env, PORT: String(port), PROCESSES: String(processes) }, stdio: ["ignore", "pipe", "inherit"] });
  let listening = 0;
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (c: Buffer) => {
      listening += c.toString().split("bare listening").length - 1;
      if (listening >= processes) resolve();
    });
    child.once("exit", (code) => reject(new Error(`the bare server exited (${code})`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

/**
 * The database ceiling: `writers` concurrent writers each inserting one row at a time (about the size of a hold
 * and its signed operation), group-committed (server/platform/db/groupCommit.ts, as the holds are) on `db`.
 */
async function groupCommitRate(db: Database, writers: number, ms: number): Promise<{ perSecond: number; meanBatch: number }> {
  await db.query("CREATE TABLE bench_rows (id text PRIMARY KEY, account text NOT NULL, amount_fen bigint NOT NULL, user_op_hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
  const committer = new GroupCommitter<{ id: string; account: string; hash: string }, true>(
    async (items) =>
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO bench_rows (id, account, amount_fen, user_op_hash) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])", [
          items.map((i) => i.id),
          items.map((i) => i.account),
          items.map(() => "123456"),
          items.map((i) => i.hash),
        ]);
        return items.map(() => true as const);
      }),
    { maxBatch: 256, maxConcurrent: 2 },
  );
  let n = 0;
  const end = performance.now() + ms;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < end) {
        const i = n++;
        await committer.submit({ id: `r${i}`, account: `0x${i.toString(16).padStart(40, "0")}`, hash: `0x${i.toString(16).padStart(64, "0")}` });
      }
    }),
  );
  const stats = committer.stats();
  return { perSecond: n / ((performance.now() - started) / 1000), meanBatch: stats.items / Math.max(1, stats.batches) };
}

const fmt = (n: number) => Math.round(n).toLocaleString("en");
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function main(): Promise<void> {
  const s = settings(process.env);
  const cpu = os.cpus();
  console.log(`sponsorship benchmark: ${cpu.length} cores (${cpu[0]?.model}), Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`  ${s.seconds} s at ${s.inFlight} in flight and ${s.lowSeconds} s at ${s.lowInFlight}, over ${fmt(s.senders)} senders with ${fmt(s.openHolds)} holds open; ${s.processes} server process(es), pool ${s.poolSize} each\n`);

  console.log("ceiling: paymaster signatures per second on one core …");
  const nativeRate = await signingRate(true, 2_000);

  const database = await createBenchDatabase(s.databaseUrl, "fp_bench");
  const db = connectPostgres({ connectionString: database.url, max: 8 });
  const chain = await startBenchChain();
  const work = mkdtempSync(path.join(os.tmpdir(), "fp-bench-"));
  const generator = startLoadGenerator();
  let server: Service | undefined;
  let bare: Awaited<ReturnType<typeof startBareServer>> | undefined;
  try {
    await migrate(db);
    const gasPrice = await chain.client.getGasPrice();
    console.log(`funding ${fmt(s.senders)} senders and opening ${fmt(s.openHolds)} holds …`);
    const senders = newSenders(s.senders);
    await seedSenders(db, senders, s.openHolds, chain.anvil.chainId, maxCostWei(gasPrice));

    const { key: apiKey } = generateApiKey();
    server = await startService({
      env: { DATABASE_URL: database.url, DATABASE_POOL_SIZE: String(s.poolSize), LOG_LEVEL: "info", RECONCILE: "off", RECONCILE_DAILY: "off", ...sponsorshipEnv(chain, apiKey) },
      processes: s.processes,
      logFile: path.join(work, "server.log"),
      profileDir: process.env.BENCH_PROFILE_DIR || undefined,
    });
    const serverPids = server.pids;
    const jobs = sponsorshipJobs({ dir: work, senders, apiKey, chainId: chain.anvil.chainId, gasPrice });
    const load = (connections: number, seconds: number, url: string, record = true) => generator.run(jobs.job({ url, connections, seconds, record }));

    console.log(`warming up (${s.warmUpSeconds} s) …`);
    const warmUp = await load(s.inFlight, s.warmUpSeconds, server.url);
    console.log(`measuring ${s.seconds} s at ${s.inFlight} in flight …`);
    const rss: Array<{ second: number; mib: number }> = [];
    const startedAt = performance.now();
    const readRss = () => rss.push({ second: Math.round((performance.now() - startedAt) / 1000), mib: serverPids().reduce((sum, pid) => sum + rssMiB(pid), 0) });
    readRss();
    const rssTimer = setInterval(readRss, RSS_EVERY_MS);
    const cpu0 = cpuSample(server.pid);
    const high = await load(s.inFlight, s.seconds, server.url);
    const cpu1 = cpuSample(server.pid);
    clearInterval(rssTimer);
    readRss();
    console.log(`measuring ${s.lowSeconds} s at ${s.lowInFlight} in flight …`);
    const low = await load(s.lowInFlight, s.lowSeconds, server.url);
    const openHolds = Number((await db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM holds WHERE status = 'open'")).rows[0]!.n);
    await server.stop();
    server = undefined;

    console.log("ceiling: the bare Node HTTP server, same requests, same generator …");
    bare = await startBareServer(s.processes, work);
    await load(s.inFlight, 2, bare.url, false);
    const bareHigh = await load(s.inFlight, s.ceilingSeconds, bare.url, false);
    const bareLow = await load(s.lowInFlight, Math.min(s.ceilingSeconds, s.lowSeconds), bare.url, false);
    await stop(bare.child);
    bare = undefined;

    console.log("ceiling: group-committed inserts on the same PostgreSQL …");
    const dbCeiling = await groupCommitRate(db, s.inFlight, 5_000);

    // every signed answer has its hold and signed operation on record (by the nonce it was asked for); the
    // generator stops with requests in flight, which the server may have committed without the answer being read
    const { answeredOnRecord, onRecord } = await checkSignedAnswersOnRecord(db, jobs.okFiles());
    const signedAnswers = warmUp.ok + high.ok + low.ok;
    const abandoned = onRecord - signedAnswers;
    const inFlightAtStops = s.inFlight * 2 + s.lowInFlight;
    const ledger = await checkLedger(db);
    const shares = cpuShares(cpu0, cpu1);
    const generatorShare = high.cpuMs / 1000 / high.seconds;
    const pass = high.okPerSecond >= TARGET.perSecond && high.latencyMs.p99 < TARGET.p99Ms && low.latencyMs.p50 <= TARGET.lowP50Ms && low.latencyMs.p99 <= TARGET.lowP99Ms;
    const rssTrend = trend(rss);
    const failed = (r: LoadResult) => (r.failed + r.errors + r.timeouts > 0 ? `; failed ${r.failed}, errors ${r.errors}, timeouts ${r.timeouts}${r.failureExamples.length ? ` (${r.failureExamples[0]})` : ""}` : "");

    console.log(`
                                       answered/s   p50        p99        ceiling          ratio
  ${String(s.inFlight).padStart(3)} in flight, ${s.seconds} s                ${fmt(high.okPerSecond).padStart(8)}   ${ms(high.latencyMs.p50).padEnd(9)}  ${ms(high.latencyMs.p99).padEnd(9)}  bare HTTP ${fmt(bareHigh.okPerSecond).padStart(6)}/s  ${(high.okPerSecond / bareHigh.okPerSecond).toFixed(3)}
  ${String(s.lowInFlight).padStart(3)} in flight, ${s.lowSeconds} s                ${fmt(low.okPerSecond).padStart(8)}   ${ms(low.latencyMs.p50).padEnd(9)}  ${ms(low.latencyMs.p99).padEnd(9)}  bare HTTP ${fmt(bareLow.okPerSecond).padStart(6)}/s  ${(low.okPerSecond / bareLow.okPerSecond).toFixed(3)}  (bare p50 ${ms(bareLow.latencyMs.p50)}, p99 ${ms(bareLow.latencyMs.p99)})
  bare Node HTTP, ${s.inFlight} in flight              ${fmt(bareHigh.okPerSecond).padStart(8)}   ${ms(bareHigh.latencyMs.p50).padEnd(9)}  ${ms(bareHigh.latencyMs.p99).padEnd(9)}
  raw native signing, one core          ${fmt(nativeRate).padStart(8)}/s                         sponsorships / signatures on ${s.processes} core(s): ${(high.okPerSecond / (nativeRate * s.processes)).toFixed(3)}
  raw group-committed inserts           ${fmt(dbCeiling.perSecond).padStart(8)}/s  (${s.inFlight} writers, mean batch ${dbCeiling.meanBatch.toFixed(1)})   sponsorships / rows: ${(high.okPerSecond / dbCeiling.perSecond).toFixed(3)}

  CPU during the ${s.inFlight}-in-flight run (cores): server ${shares.server.toFixed(2)} (${((shares.server * 1000) / high.okPerSecond).toFixed(3)} ms per sponsorship), PostgreSQL ${shares.postgres.toFixed(2)}, anvil ${shares.anvil.toFixed(2)}, load generator ${generatorShare.toFixed(2)}
  server RSS (all processes), every ${RSS_EVERY_MS / 1000} s: ${rss.map((r) => `${r.mib.toFixed(0)}`).join(" ")} MiB — ${rssTrend.min.toFixed(0)}–${rssTrend.max.toFixed(0)} MiB, trend ${rssTrend.mibPerMinute >= 0 ? "+" : ""}${rssTrend.mibPerMinute.toFixed(1)} MiB/min (least squares)
  open holds at the end: ${fmt(openHolds)} (${fmt(s.openHolds)} seeded)
  signed answers ${fmt(signedAnswers)} (all phases), ${fmt(answeredOnRecord)} of them on record; signed operations on record ${fmt(onRecord)} (${abandoned} committed for requests the generator left in flight at its stops, at most ${inFlightAtStops}); ledger mismatches: ${ledger.mismatches.length}${failed(high)}${failed(low)}
  PostgreSQL fsync=${database.info.fsync} server_version=${database.info.version} synchronous_commit=${database.info.synchronousCommit}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}
  targets ≥ ${fmt(TARGET.perSecond)}/s with p99 < ${TARGET.p99Ms} ms at ${s.inFlight}; p50 ≤ ${TARGET.lowP50Ms} ms, p99 ≤ ${TARGET.lowP99Ms} ms at ${s.lowInFlight}: ${pass ? "PASS" : "MISS"}`);
    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(
      RESULTS_FILE,
      JSON.stringify({ at: new Date().toISOString(), settings: { ...s, databaseUrl: undefined }, high, low, bareHigh, bareLow, nativeSignaturesPerSecond: nativeRate, dbCeiling, cpu: { ...shares, generator: generatorShare }, rss, rssTrend, openHolds, signedAnswers, answeredOnRecord, onRecord, ledgerMismatches: ledger.mismatches.length, pass }, null, 2),
    );
    if (ledger.mismatches.length > 0 || answeredOnRecord !== signedAnswers || abandoned < 0 || abandoned > inFlightAtStops) {
      console.error("FAILED: a signed answer without its record, or a ledger mismatch");
      process.exitCode = 1;
    }
  } finally {
    if (server) await server.stop();
    if (bare) await stop(bare.child);
    await generator.close();
    await chain.stop();
    await db.close();
    await database.drop();
    rmSync(work, { recursive: true, force: true });
  }
}

runBenchmark(main);
