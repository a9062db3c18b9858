/**
 * Sponsorship throughput benchmark: pm_getPaymasterData answered per second, with p50/p99 latency, by the real
 * server (its own process, on real PostgreSQL with a pool of 64 and durable commits) under 64 requests in
 * flight spread over many funded senders — next to the baseline measured in this same run: how many paymaster
 * signatures one core makes per second with the native secp256k1 binding (and with viem's pure JS).
 *
 * Every answered request did everything the service does: parse and check the userOp, API key, policy, gas
 * caps, fee, deposit, price, sign, and commit its hold and signed operation (group-committed) before answering.
 * (Rate limits are set to 0, off: one load generator from one IP would only measure the limiter refusing.)
 * Afterwards the run checks that every signed answer has its signed operation on record and that the ledger is
 * consistent; a mismatch fails the run.
 *
 *   npm run bench:sponsorship
 *   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_SECONDS (10), BENCH_IN_FLIGHT (64),
 *   BENCH_SENDERS (2000), BENCH_POOL_SIZE (64), BENCH_INSTANCES (1: server processes behind the load generator),
 *   BENCH_PROFILE_DIR (write the server processes' V8 CPU profiles there)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { keccak256, parseEther, toHex } from "viem";
import { freePort } from "../devtools/chain/anvil";
import { DEV_KEYS, startLocalChain } from "../devtools/chain/localChain";
import { createApp } from "../server/app";
import { ENTRY_POINT_V07 } from "../server/chain/addresses";
import { type Config, loadConfig } from "../server/config/env";
import { connectPostgres } from "../server/platform/db/database";
import { migrate } from "../server/platform/db/migrate";
import { checkLedger, creditTopUp } from "../server/ledger/ledger";
import { createApiKeyAuthenticator, generateApiKey } from "../server/sponsorship/apiKeys";
import { createLocalSigner } from "../server/sponsorship/signing/signer";

const ROOT = path.resolve(__dirname, "..");
const RESULTS_FILE = path.join(__dirname, "results", "sponsorship.json");
const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";
const TARGET = { perSecond: 2_000, p99Ms: 50 };

class SettingsError extends Error {
  override name = "SettingsError";
}

function settings(env: NodeJS.ProcessEnv) {
  const int = (name: string, fallback: number): number => {
    const text = env[name];
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 1) throw new SettingsError(`${name} must be a positive integer: got ${text}`);
    return value;
  };
  return {
    databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL,
    seconds: int("BENCH_SECONDS", 10),
    inFlight: int("BENCH_IN_FLIGHT", 64),
    senders: int("BENCH_SENDERS", 2_000),
    poolSize: int("BENCH_POOL_SIZE", 64),
    instances: int("BENCH_INSTANCES", 1),
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

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function waitReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${output()}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server did not become ready:\n${output()}`);
}

async function main(): Promise<void> {
  const s = settings(process.env);
  console.log(`sponsorship benchmark: ${os.cpus().length} cores (${os.cpus()[0]?.model}), Node ${process.version}`);
  console.log(`  ${s.seconds} s at ${s.inFlight} requests in flight over ${s.senders} senders; PostgreSQL pool ${s.poolSize}; ${s.instances} server process(es)\n`);

  console.log("baseline: paymaster signatures per second on one core …");
  const nativeRate = await signingRate(true, 2_000);
  const viemRate = await signingRate(false, 1_000);
  console.log(`  native secp256k1: ${Math.round(nativeRate).toLocaleString("en")}/s   viem (pure JS): ${Math.round(viemRate).toLocaleString("en")}/s\n`);

  const benchDb = `fp_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: s.databaseUrl, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new SettingsError(`cannot reach PostgreSQL at ${s.databaseUrl.replace(/:[^:@/]*@/, ":***@")}: ${(error as Error).message}`);
  }
  const { rows: pgSettings } = await admin.query<{ name: string; setting: string }>(
    "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'server_version')",
  );
  await admin.query(`CREATE DATABASE ${benchDb}`);
  const url = new URL(s.databaseUrl);
  url.pathname = `/${benchDb}`;
  const databaseUrl = url.toString();
  const db = connectPostgres({ connectionString: databaseUrl, max: 8 });
  // a deposit that covers every hold this run makes (nothing lands on chain, so holds only grow)
  const chain = await startLocalChain({ deposit: parseEther("5000"), args: ["--balance", "100000"] });
  const servers: ChildProcess[] = [];
  try {
    await migrate(db);
    console.log(`funding ${s.senders} senders (one top-up ledger entry each) …`);
    const senders = Array.from({ length: s.senders }, () => `0x${randomBytes(20).toString("hex")}`);
    for (let i = 0; i < senders.length; i += 250) {
      await db.transaction(async (tx) => {
        for (const account of senders.slice(i, i + 250)) await creditTopUp(tx, { account, orderId: `bench-${account}`, amountFen: 10n ** 12n });
      });
    }

    const { key: apiKey } = generateApiKey();
    const gasPrice = await chain.client.getGasPrice();
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_SIZE: String(s.poolSize),
      CHAINS: JSON.stringify([{ chainId: chain.anvil.chainId, rpcUrl: chain.anvil.rpcUrl, paymaster: chain.paymaster, fenPerNative: "2000000", markupBps: 500, confirmations: 0, minDepositWei: "1" }]),
      SIGNER_PRIVATE_KEY: DEV_KEYS.signer,
      BOOTSTRAP_API_KEY: apiKey,
      RECONCILE: "off",
      // holds pile up (nothing lands on chain in this run): allow them, and take rate limits out of the measurement
      MAX_HOLDS_PER_SENDER: "1000",
      MAX_HOLDS_PER_SENDER_PER_API_KEY: "1000",
      MAX_HOLDS_PER_SENDER_PER_IP: "1000",
      RATE_LIMIT_IP_PER_MINUTE: "0",
      RATE_LIMIT_API_KEY_PER_MINUTE: "0",
      RATE_LIMIT_SENDER_PER_MINUTE: "0",
      LOG_LEVEL: "warn",
      HOST: "127.0.0.1",
    };
    // the service alone, in this process, without HTTP: what the checks, signing and group-committed holds cost
    const inProcess = await measureInProcess(loadConfig(env), senders, gasPrice, chain.anvil.chainId, s);
    console.log(`  in-process sponsor service: ${Math.round(inProcess.perSecond).toLocaleString("en")}/s, p99 ${inProcess.p99.toFixed(1)} ms, mean group commit ${inProcess.meanBatch.toFixed(1)} holds\n`);

    const ports: number[] = [];
    for (let i = 0; i < s.instances; i++) {
      const port = await freePort();
      ports.push(port);
      let output = "";
      const profile = process.env.BENCH_PROFILE_DIR ? ["--cpu-prof", "--cpu-prof-dir", process.env.BENCH_PROFILE_DIR] : [];
      const child = spawn(process.execPath, [...profile, "--import", "tsx", "server/main.ts"], { cwd: ROOT, env: { ...env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
      child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
      child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
      servers.push(child);
      await waitReady(`http://127.0.0.1:${port}`, child, () => output);
    }

    const agent = new http.Agent({ keepAlive: true, maxSockets: s.inFlight });
    const nonces = new Map<string, number>();
    const body = (sender: string): string => {
      const nonce = nonces.get(sender) ?? 0;
      nonces.set(sender, nonce + 1);
      return JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "pm_getPaymasterData",
        params: [
          {
            sender,
            // sequence 0 of its own nonce key: the sender's next nonce for that key, as the server requires
            nonce: toHex(BigInt(nonce) << 64n),
            callData: "0xb61d27f6" + "00".repeat(128),
            callGasLimit: "0x186a0",
            verificationGasLimit: "0x7a120",
            preVerificationGas: "0xc350",
            maxFeePerGas: toHex(gasPrice * 2n),
            maxPriorityFeePerGas: toHex(gasPrice),
            paymasterVerificationGasLimit: "0xea60",
            signature: "0x",
          },
          ENTRY_POINT_V07,
          toHex(chain.anvil.chainId),
          null,
        ],
      });
    };
    const post = (port: number, payload: string): Promise<{ ok: boolean; code?: number }> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, path: "/rpc", method: "POST", agent, headers: { "content-type": "application/json", "x-api-key": apiKey, "content-length": Buffer.byteLength(payload) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const answer = JSON.parse(Buffer.concat(chunks).toString()) as { result?: unknown; error?: { code: number } };
            resolve(answer.result ? { ok: true } : { ok: false, code: answer.error?.code });
          });
        });
        req.on("error", reject);
        req.end(payload);
      });

    let next = 0;
    const run = async (ms: number) => {
      const latencies: number[] = [];
      const errors = new Map<number | undefined, number>();
      let ok = 0;
      const end = performance.now() + ms;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: s.inFlight }, async (_, worker) => {
          const port = ports[worker % ports.length]!;
          while (performance.now() < end) {
            const payload = body(senders[next++ % senders.length]!);
            const t0 = performance.now();
            const answer = await post(port, payload);
            latencies.push(performance.now() - t0);
            if (answer.ok) ok++;
            else errors.set(answer.code, (errors.get(answer.code) ?? 0) + 1);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const sorted = Float64Array.from(latencies).sort();
      return { ok, errors, seconds, perSecond: ok / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
    };

    console.log("warming up (2 s) …");
    const warmUp = await run(2_000);
    console.log(`measuring (${s.seconds} s) …`);
    const result = await run(s.seconds * 1_000);
    agent.destroy();

    const { rows: holdRows } = await db.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM sponsored_operations");
    const signedAnswers = inProcess.signed + warmUp.ok + result.ok;
    const onRecord = Number(holdRows[0]!.n);
    const ledger = await checkLedger(db);
    const errorText = [...result.errors].map(([code, n]) => `${n} × code ${code}`).join(", ") || "none";
    const ratio = result.perSecond / nativeRate;
    const pass = result.perSecond >= TARGET.perSecond && result.p99 <= TARGET.p99Ms;
    console.log(`
  pm_getPaymasterData, end to end        ${Math.round(result.perSecond).toLocaleString("en")}/s   p50 ${result.p50.toFixed(1)} ms   p99 ${result.p99.toFixed(1)} ms
  the service in-process, no HTTP         ${Math.round(inProcess.perSecond).toLocaleString("en")}/s   p50 ${inProcess.p50.toFixed(1)} ms   p99 ${inProcess.p99.toFixed(1)} ms
  raw native signing, one core            ${Math.round(nativeRate).toLocaleString("en")}/s
  ratio (sponsorships / raw signatures)   ${ratio.toFixed(3)}
  viem pure-JS signing, one core          ${Math.round(viemRate).toLocaleString("en")}/s

  answered ${result.ok.toLocaleString("en")} signed in ${result.seconds.toFixed(1)} s; refused/failed: ${errorText}
  signed answers ${signedAnswers.toLocaleString("en")} (all phases), signed operations on record ${onRecord.toLocaleString("en")}; ledger mismatches: ${ledger.mismatches.length}
  PostgreSQL ${pgSettings.map((r) => `${r.name}=${r.setting}`).join(" ")}
  target ≥ ${TARGET.perSecond.toLocaleString("en")}/s with p99 < ${TARGET.p99Ms} ms: ${pass ? "PASS" : "MISS"}`);
    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(
      RESULTS_FILE,
      JSON.stringify(
        {
          at: new Date().toISOString(),
          settings: s,
          perSecond: result.perSecond,
          inProcess,
          p50Ms: result.p50,
          p99Ms: result.p99,
          nativeSignaturesPerSecond: nativeRate,
          viemSignaturesPerSecond: viemRate,
          ratio,
          errors: Object.fromEntries(result.errors),
          ledgerMismatches: ledger.mismatches.length,
          pass,
        },
        null,
        2,
      ),
    );
    if (ledger.mismatches.length > 0 || onRecord !== signedAnswers) {
      console.error("FAILED: a signed answer without its record, or a ledger mismatch");
      process.exitCode = 1;
    }
  } finally {
    for (const child of servers) child.kill("SIGTERM");
    await Promise.all(servers.map((c) => (c.exitCode === null ? new Promise((r) => c.once("exit", r)) : undefined)));
    await chain.stop();
    await db.close();
    await admin.query(`DROP DATABASE IF EXISTS ${benchDb} WITH (FORCE)`);
    await admin.end();
  }
}

async function measureInProcess(config: Config, senders: string[], gasPrice: bigint, chainId: number, s: ReturnType<typeof settings>) {
  const app = await createApp(config, { workers: false });
  try {
    const apiKey = (await createApiKeyAuthenticator(app.db)(config.bootstrapApiKey))!;
    const params = (sender: string, nonce: number) => ({
      userOp: {
        sender,
        nonce: toHex(BigInt(1_000_000 + nonce) << 64n),
        callData: "0xb61d27f6" + "00".repeat(128),
        callGasLimit: "0x186a0",
        verificationGasLimit: "0x7a120",
        preVerificationGas: "0xc350",
        maxFeePerGas: toHex(gasPrice * 2n),
        maxPriorityFeePerGas: toHex(gasPrice),
        signature: "0x",
      },
      entryPoint: ENTRY_POINT_V07,
      chainId: toHex(chainId),
    });
    let next = 0;
    let signed = 0;
    const run = async (ms: number) => {
      const latencies: number[] = [];
      const end = performance.now() + ms;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: s.inFlight }, async () => {
          while (performance.now() < end) {
            const n = next++;
            const t0 = performance.now();
            await app.sponsor!.sponsor(params(senders[n % senders.length]!, n), { apiKey, ip: "127.0.0.1" });
            latencies.push(performance.now() - t0);
            signed++;
          }
        }),
      );
      const sorted = Float64Array.from(latencies).sort();
      return { perSecond: latencies.length / ((performance.now() - started) / 1000), p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
    };
    await run(1_000);
    const before = app.holdStats!();
    const result = await run(Math.min(5, s.seconds) * 1_000);
    const after = app.holdStats!();
    return { ...result, signed, meanBatch: (after.items - before.items) / Math.max(1, after.batches - before.batches) };
  } finally {
    await app.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof SettingsError ? `error: ${error.message}` : error);
  process.exit(1);
});

