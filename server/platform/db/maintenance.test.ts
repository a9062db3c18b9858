import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { it } from "node:test";
import { Writable } from "node:stream";
import pino from "pino";
import { describeWithDatabases } from "../../../devtools/testing/databases";
import { creditTopUps } from "../../ledger/ledger";
import { type HoldRequest, reserveHolds } from "../../sponsorship/holds";
import type { Database } from "./database";
import { autovacuumRuns, maintainTables, startTableMaintenance } from "./maintenance";

const ENTRY_POINT = "0x0000000071727de22e5e9d8baf0edac6f37da032";
const senders = Array.from({ length: 64 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}`);
let nonce = 0n;

const holdRequests = (count: number): HoldRequest[] =>
  Array.from({ length: count }, (_, i) => ({
    chainId: 31337,
    entryPoint: ENTRY_POINT,
    account: senders[i % senders.length]!,
    nonce: nonce++,
    amountFen: 1n,
    maxCostWei: 10n ** 12n,
    validUntil: new Date(Date.now() + 3_600_000),
    apiKeyId: null,
    userOpHash: `0x${randomBytes(32).toString("hex")}`,
    quote: { fenPerNative: 1_000n, markupBps: 0 },
    maxHolds: 100_000,
  }));

/** Makes this connection report its statistics when it next goes idle (they are else sent at most once a second). */
async function flushStatistics(db: Database): Promise<void> {
  await db.query("SELECT pg_stat_force_next_flush()");
}

/** Sequential scans of `holds` so far, as this connection's statistics report them. */
async function holdSeqScans(db: Database): Promise<bigint> {
  await flushStatistics(db);
  const { rows } = await db.query<{ seq_scan: bigint }>("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'holds'");
  return BigInt(rows[0]!.seq_scan);
}

/** Bulk rows no hold batch wrote: the table grows under plans made while it was small. */
async function insertHolds(db: Database, count: number): Promise<void> {
  await db.query(
    `INSERT INTO holds (id, chain_id, entry_point, account, nonce, status, amount_fen, max_cost_wei, revision, valid_until)
     SELECT 'h_bulk_' || $2 || '_' || g, 31337, $3, $1, 'bulk-' || $2 || '-' || g, 'settled', 1, 1, 1, now() FROM generate_series(1, $4::int) g`,
    [senders[0], randomBytes(4).toString("hex"), ENTRY_POINT, count],
  );
}

// one connection, so the plans it caches are the ones measured
describeWithDatabases(
  "table maintenance",
  (db, kind) => {
    it("a hold batch checks its signed operations' holds by index once the grown table is analysed, not by scanning it", async () => {
      await db().transaction((tx) => creditTopUps(tx, senders.map((account) => ({ account, orderId: `o_${account}`, amountFen: 1_000_000n }))));
      // holds analysed while small (as autovacuum's first pass, or an operator, does), then a few batches: the
      // foreign-key check's plan is made from those statistics and cached on the connection — a scan of one page
      await db().transaction((tx) => reserveHolds(tx, holdRequests(32)));
      await db().exec("ANALYZE holds");
      for (let i = 0; i < 3; i++) await db().transaction((tx) => reserveHolds(tx, holdRequests(32)));
      await insertHolds(db(), 20_000);
      await flushStatistics(db());
      assert.ok((await maintainTables(db())).some((t) => t.table === "public.holds"));
      const before = await holdSeqScans(db());
      await db().transaction((tx) => reserveHolds(tx, holdRequests(32)));
      const scans = (await holdSeqScans(db())) - before;
      // without the ANALYZE each of the 32 checks scans all 20,000 rows
      assert.ok(scans < 4n, `${scans} sequential scans of holds for one batch of 32`);
    });

    it("analyses a table once more than 50 rows plus 2 % of it changed, and not before", async () => {
      await maintainTables(db());
      await insertHolds(db(), 40);
      await flushStatistics(db());
      const quiet = await maintainTables(db());
      assert.equal(quiet.find((t) => t.table.endsWith(".holds")), undefined, JSON.stringify(quiet));
      await insertHolds(db(), 2_000);
      await flushStatistics(db());
      const done = await maintainTables(db());
      assert.deepEqual(
        done.find((t) => t.table.endsWith(".holds")),
        { table: "public.holds", vacuumed: kind === "pglite" },
      );
      const { rows } = await db().query<{ reltuples: number; count: bigint }>("SELECT reltuples, (SELECT count(*) FROM holds) AS count FROM pg_class WHERE relname = 'holds'");
      assert.equal(BigInt(Math.round(rows[0]!.reltuples)), rows[0]!.count);
    });
  },
  { poolSize: 1 },
);

// the pass holds an advisory lock on one connection while it works on others
describeWithDatabases("table maintenance in the background", (db, kind) => {
  it("the background pass runs only where autovacuum does not, and warns once on a PostgreSQL server with it off", async () => {
    const lines: string[] = [];
    const log = pino({ level: "debug" }, new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
    await db().transaction((tx) => creditTopUps(tx, [{ account: senders[0]!, orderId: "o_background", amountFen: 1n }]));
    await maintainTables(db());
    await insertHolds(db(), 1_000);
    await flushStatistics(db());
    const autovacuum = await autovacuumRuns(db());
    assert.equal(autovacuum, kind === "postgres" ? (await db().query<{ v: string }>("SELECT current_setting('autovacuum') AS v")).rows[0]!.v === "on" : false);
    const worker = startTableMaintenance({ db: db(), log, intervalMs: 3_600_000 });
    await new Promise((resolve) => setImmediate(resolve)); // the first pass starts at once
    await worker.tick();
    await worker.stop();
    const messages = lines.map((l) => JSON.parse(l) as { level: number; msg: string; tables?: Array<{ table: string }> });
    const analysed = messages.filter((m) => m.msg === "tables analysed").flatMap((m) => m.tables!.map((t) => t.table));
    assert.equal(analysed.includes("public.holds"), !autovacuum, JSON.stringify(messages));
    const warnings = messages.filter((m) => m.msg.startsWith("autovacuum is off"));
    assert.equal(warnings.length, kind === "postgres" && !autovacuum ? 1 : 0, JSON.stringify(messages));
  });
});
