/**
 * Hold reservation benchmark: the transaction every sponsorship commits before its signature leaves (lock the
 * sender, read its open holds, write the hold, the signed operation and the ledger entry, commit durably), timed
 * from the caller through `createHoldReserver` — the group committer the server uses — on real PostgreSQL:
 *   - one at a time (a lone wallet: every batch is a batch of one, so nothing is shared);
 *   - BENCH_IN_FLIGHT at once (batches form while one commits).
 * Beside each, the ceilings measured in this run on the same database: one durable row in one autocommit statement
 * (one round trip, one WAL flush: the least any durable write costs) and one row group-committed the way holds are
 * (BEGIN, INSERT, COMMIT). Each figure is printed with its ratio to them, with the CPU PostgreSQL's backends and
 * this process spent per item. Afterwards every reservation is checked against the database (its hold and signed
 * operation on record) and the ledger must be consistent; a mismatch fails the run.
 *
 *   npm run bench:holds
 *   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_HOLDS (3000 per phase),
 *   BENCH_SENDERS (2000), BENCH_OPEN_HOLDS (0: holds open beforehand), BENCH_IN_FLIGHT (8),
 *   BENCH_COMMITS_IN_FLIGHT (the group committer's transactions at once; default the server's)
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import type { Hex } from "viem";
import { ENTRY_POINT_V07 } from "../server/chain/addresses";
import { checkLedger } from "../server/ledger/ledger";
import { connectPostgres, type Database } from "../server/platform/db/database";
import { GroupCommitter } from "../server/platform/db/groupCommit";
import { migrate } from "../server/platform/db/migrate";
import { type HoldRequest, createHoldReserver } from "../server/sponsorship/holds";
import { backendsCpuMs, backendsCpuUsed } from "./lib/cpu";
import { DEFAULT_DATABASE_URL, createBenchDatabase } from "./lib/database";
import { formatLoadAverage, loadAverage } from "./lib/machine";
import { runBenchmark } from "./lib/run";
import { integerSettings } from "./lib/settings";
import { percentile } from "./lib/stats";
import { maxCostWei, newSenders, seedSenders } from "./lib/sponsorship";

const CHAIN_ID = 31337;
const GAS_PRICE = 2_000_000_000n;

type Phase = { items: number; seconds: number; p50: number; p99: number; pgCpuMs: number; clientCpuMs: number; meanBatch?: number };

function settings(env: NodeJS.ProcessEnv) {
  const int = integerSettings(env);
  return { databaseUrl: env.DATABASE_URL || DEFAULT_DATABASE_URL, holds: int("BENCH_HOLDS", 3_000), senders: int("BENCH_SENDERS", 2_000), openHolds: int("BENCH_OPEN_HOLDS", 0, 0), inFlight: int("BENCH_IN_FLIGHT", 8), commits: env.BENCH_COMMITS_IN_FLIGHT ? int("BENCH_COMMITS_IN_FLIGHT", 2) : undefined };
}


/** Runs `count` calls of `one(i)`, `inFlight` at a time, timing each; with the CPU the database's backends and this process spent. */
async function measure(monitor: Database, databaseName: string, count: number, inFlight: number, one: (i: number) => Promise<void>): Promise<Phase> {
  const latencies: number[] = [];
  let next = 0;
  const pg0 = await backendsCpuMs(monitor, databaseName);
  const client0 = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t = performance.now();
        await one(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const client = process.cpuUsage(client0);
  const pgCpuMs = backendsCpuUsed(pg0, await backendsCpuMs(monitor, databaseName));
  latencies.sort((a, b) => a - b);
  return { items: count, seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), pgCpuMs, clientCpuMs: (client.user + client.system) / 1000 };
}

async function main(): Promise<void> {
  const s = settings(process.env);
  const cpu = os.cpus();
  console.log(`hold reservation benchmark: ${cpu.length} cores (${cpu[0]?.model}), Node ${process.version}, load average ${formatLoadAverage(loadAverage())}`);
  console.log(`  ${s.holds.toLocaleString("en")} reservations one at a time and ${s.holds.toLocaleString("en")} at ${s.inFlight} in flight, over ${s.senders.toLocaleString("en")} senders with ${s.openHolds.toLocaleString("en")} holds open\n`);
  const database = await createBenchDatabase(s.databaseUrl, "fp_bench_holds");
  const db = connectPostgres({ connectionString: database.url, max: 8 });
  // the backends' CPU is read over a connection of its own (backendsCpuMs leaves out the one it asks on)
  const monitor = connectPostgres({ connectionString: database.url, max: 1 });
  try {
    await migrate(db);
    const senders = newSenders(s.senders);
    await seedSenders(db, senders, s.openHolds, CHAIN_ID, maxCostWei(GAS_PRICE));
    await db.query("CREATE TABLE bench_rows (id text PRIMARY KEY, account text NOT NULL, amount_fen bigint NOT NULL, user_op_hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
    await db.query("ANALYZE");

    const row = (prefix: string, i: number) => [`${prefix}${i}`, senders[i % senders.length]!, "123456", `0x${randomBytes(32).toString("hex")}`];
    const autocommit = (prefix: string) => async (i: number) => {
      await db.query("INSERT INTO bench_rows (id, account, amount_fen, user_op_hash) VALUES ($1, $2, $3, $4)", row(prefix, i));
    };
    const grouped = () => {
      const committer = new GroupCommitter<unknown[], true>(
        (items) =>
          db.transaction(async (tx) => {
            await tx.query("INSERT INTO bench_rows (id, account, amount_fen, user_op_hash) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])", [0, 1, 2, 3].map((k) => items.map((item) => item[k])));
            return items.map(() => true as const);
          }),
        { maxBatch: 256, maxConcurrent: 2 },
      );
      return { committer, one: (prefix: string) => async (i: number) => void (await committer.submit(row(prefix, i))) };
    };
    const reserver = createHoldReserver(db, { maxConcurrent: s.commits });
    const validUntil = new Date(Date.now() + 3_600_000);
    let answered = 0;
    const reserve = (round: number) => async (i: number) => {
      const request: HoldRequest = {
        chainId: CHAIN_ID,
        entryPoint: ENTRY_POINT_V07.toLowerCase(),
        account: senders[i % senders.length]!,
        // a nonce of its own per reservation: key `round`, sequence i
        nonce: (BigInt(round + 1) << 64n) + BigInt(i),
        amountFen: 2_000n,
        maxCostWei: maxCostWei(GAS_PRICE),
        validUntil,
        apiKeyId: null,
        clientIp: "127.0.0.1",
        userOpHash: `0x${randomBytes(32).toString("hex")}` as Hex,
        quote: { fenPerNative: 2_000_000n, markupBps: 500 },
        maxHolds: 1_000_000,
      };
      await reserver.reserve(request);
      answered++;
    };

    // warm the connections and the prepared statements, then alternate ceiling and reservations per phase
    await measure(monitor, database.name, 200, 2, autocommit("w"));
    await measure(monitor, database.name, 200, 2, reserve(0));
    console.log("one at a time …");
    const loneAutocommit = await measure(monitor, database.name, s.holds, 1, autocommit("a"));
    const loneGroupedCommitter = grouped();
    const loneGrouped = await measure(monitor, database.name, s.holds, 1, loneGroupedCommitter.one("g"));
    const loneHolds = await measure(monitor, database.name, s.holds, 1, reserve(1));
    console.log(`${s.inFlight} in flight …`);
    const manyAutocommit = await measure(monitor, database.name, s.holds, s.inFlight, autocommit("A"));
    const manyGroupedCommitter = grouped();
    const manyGrouped = await measure(monitor, database.name, s.holds, s.inFlight, manyGroupedCommitter.one("G"));
    const before = reserver.stats();
    const manyHolds = await measure(monitor, database.name, s.holds, s.inFlight, reserve(2));
    const after = reserver.stats();
    const groupedStats = manyGroupedCommitter.committer.stats();
    manyGrouped.meanBatch = groupedStats.items / Math.max(1, groupedStats.batches);
    manyHolds.meanBatch = (after.items - before.items) / Math.max(1, after.batches - before.batches);

    // every reservation answered has its hold and signed operation; the ledger adds up
    const { rows } = await db.query<{ holds: bigint; signed: bigint }>(
      "SELECT (SELECT count(*) FROM holds WHERE id NOT LIKE 'h_seed_%') AS holds, (SELECT count(*) FROM sponsored_operations) AS signed",
    );
    const ledger = await checkLedger(db);

    const line = (name: string, p: Phase, ceiling?: Phase) =>
      `  ${name.padEnd(38)} ${Math.round(p.items / p.seconds).toLocaleString("en").padStart(7)}/s  ${p.p50.toFixed(2).padStart(6)} ms  ${p.p99.toFixed(2).padStart(6)} ms  ${(p.pgCpuMs / p.items).toFixed(3).padStart(6)} ms  ${(p.clientCpuMs / p.items).toFixed(3).padStart(6)} ms  ${p.meanBatch === undefined ? "      " : p.meanBatch.toFixed(1).padStart(6)}  ${ceiling ? `${(ceiling.p50 / p.p50).toFixed(3)} (p50), ${(p.items / p.seconds / (ceiling.items / ceiling.seconds)).toFixed(3)} (per s)` : ""}`;
    console.log(`
                                           per s      p50        p99      PG CPU   this CPU   batch  ratio to the grouped insert
                                                                          per item per item
  one at a time
${line("durable autocommit insert (ceiling)", loneAutocommit)}
${line("group-committed insert (ceiling)", loneGrouped)}
${line("hold reservation", loneHolds, loneGrouped)}
  ${s.inFlight} in flight
${line("durable autocommit insert (ceiling)", manyAutocommit)}
${line("group-committed insert (ceiling)", manyGrouped)}
${line("hold reservation", manyHolds, manyGrouped)}

  a lone reservation against one autocommit row: p50 ${(loneHolds.p50 / loneAutocommit.p50).toFixed(2)}×
  reservations answered ${answered.toLocaleString("en")}, holds on record ${rows[0]!.holds}, signed operations ${rows[0]!.signed}; ledger mismatches ${ledger.mismatches.length}
  PostgreSQL fsync=${database.info.fsync} server_version=${database.info.version} synchronous_commit=${database.info.synchronousCommit}; load average ${formatLoadAverage(loadAverage())}`);
    if (ledger.mismatches.length > 0 || BigInt(answered) !== rows[0]!.holds || BigInt(answered) !== rows[0]!.signed) {
      console.error("FAILED: a reservation without its record, or a ledger mismatch");
      process.exitCode = 1;
    }
  } finally {
    await monitor.close();
    await db.close();
    await database.drop();
  }
}

runBenchmark(main);
