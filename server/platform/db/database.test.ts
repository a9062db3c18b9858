import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startFaultProxy } from "../../../devtools/testing/faultProxy";
import { type Database, DatabaseUnavailableError, connectPostgres, sqlTextArray } from "./database";
import { loadMigrations, migrate } from "./migrate";
import { createTestDatabase, describeWithDatabases } from "../../../devtools/testing/databases";
import { skipWithoutPostgres } from "../../../devtools/testing/services";

describeWithDatabases("database", (db, kind) => {
  it("migrations are recorded and applied once; running them again does nothing", async () => {
    const versions = loadMigrations().map((m) => m.version);
    const { rows } = await db().query<{ version: string }>("SELECT version FROM schema_migrations ORDER BY version");
    assert.deepEqual(rows.map((r) => r.version), versions);
    assert.deepEqual(await migrate(db()), []);
  });

  it("the tables that only grow are analysed and vacuumed after 2 % of them changed, not autovacuum's default 10–20 %", async () => {
    const { rows } = await db().query<{ relname: string; reloptions: string[] | null }>(
      "SELECT relname, reloptions FROM pg_class WHERE relname IN ('holds', 'sponsored_operations', 'ledger_entries') ORDER BY relname",
    );
    assert.equal(rows.length, 3);
    for (const row of rows) {
      const options = new Map((row.reloptions ?? []).map((o) => o.split("=") as [string, string]));
      assert.equal(options.get("autovacuum_analyze_scale_factor"), "0.02", `${row.relname}: ${row.reloptions}`);
      assert.equal(options.get("autovacuum_vacuum_insert_scale_factor"), "0.02", `${row.relname}: ${row.reloptions}`);
    }
  });

  it("int8 columns come back as bigint, beyond 2^53 too", async () => {
    const { rows } = await db().query<{ small: bigint; big: bigint }>("SELECT 5::bigint AS small, $1::bigint AS big", [9_007_199_254_740_993n]);
    assert.equal(rows[0]!.small, 5n);
    assert.equal(rows[0]!.big, 9_007_199_254_740_993n);
  });

  it("a failed transaction leaves nothing behind", async () => {
    await assert.rejects(
      db().transaction(async (tx) => {
        await tx.query("INSERT INTO accounts (address) VALUES ($1)", [`0x${"ab".repeat(20)}`]);
        throw new Error("abort");
      }),
      /abort/,
    );
    assert.equal((await db().query("SELECT 1 FROM accounts WHERE address = $1", [`0x${"ab".repeat(20)}`])).rowCount, 0);
  });

  it("a script answers each statement's rows; in a transaction it carries the BEGIN and rolls back with it", async () => {
    const address = `0x${"cd".repeat(20)}`;
    const [first, second] = await db().script("SELECT 1::int AS one; SELECT 2::bigint AS two, 'x' AS text");
    assert.deepEqual(first, [{ one: 1 }]);
    assert.equal(BigInt(second![0]!.two as bigint), 2n);
    await assert.rejects(
      db().transaction(async (tx) => {
        const [inserted, seen] = await tx.script(`INSERT INTO accounts (address) VALUES ('${address}') RETURNING address; SELECT count(*)::int AS n FROM accounts WHERE address = '${address}'`);
        assert.deepEqual(inserted, [{ address }]);
        assert.deepEqual(seen, [{ n: 1 }], "the second statement sees the first one's row");
        throw new Error("abort");
      }),
      /abort/,
    );
    assert.equal((await db().query("SELECT 1 FROM accounts WHERE address = $1", [address])).rowCount, 0, "the script's insert was rolled back");
    assert.throws(() => sqlTextArray(["0xab", "x'); DROP TABLE accounts; --"], /^0x[0-9a-f]+$/), /refusing to inline/);
    assert.equal(sqlTextArray(["0xab", "0xcd"], /^0x[0-9a-f]+$/), "'{0xab,0xcd}'::text[]");
  });

  // PGlite is one connection: nothing else can commit between a script's statements there
  if (kind === "postgres") it("each statement of a script reads with its own snapshot: one after a row lock wait sees what the lock holder committed", async () => {
    const address = `0x${"ef".repeat(20)}`;
    const other = `0x${"fe".repeat(20)}`;
    await db().query("INSERT INTO accounts (address) VALUES ($1)", [address]);
    let release!: () => void;
    const locked = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const holder = db().transaction(async (tx) => {
      await tx.query("SELECT 1 FROM accounts WHERE address = $1 FOR UPDATE", [address]);
      holding();
      await locked;
      await tx.query("INSERT INTO accounts (address) VALUES ($1)", [other]);
    });
    await held;
    const waiter = db().transaction((tx) =>
      tx.script(`SELECT address FROM accounts WHERE address = '${address}' FOR UPDATE; SELECT count(*)::int AS n FROM accounts WHERE address = '${other}'`),
    );
    await new Promise((r) => setTimeout(r, 200)); // the waiter is blocked on the row lock now
    release();
    await holder;
    const [, entries] = await waiter;
    assert.deepEqual(entries, [{ n: 1 }]);
  });

  it("only one holder of an advisory lock runs at a time", async () => {
    // on PostgreSQL a second instance is another pool on the same database: other sessions
    let other = db();
    if (kind === "postgres") {
      const { rows } = await db().query<{ name: string }>("SELECT current_database() AS name");
      const url = new URL(process.env.DATABASE_URL!);
      url.pathname = `/${rows[0]!.name}`;
      other = connectPostgres({ connectionString: url.toString(), max: 2 });
    }
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = db().withAdvisoryLock(42n, () => held.then(() => "first"));
    await new Promise((r) => setTimeout(r, 20));
    try {
      const second = await other.withAdvisoryLock(42n, async () => "second");
      release();
      assert.deepEqual(second, { acquired: false });
      assert.deepEqual(await first, { acquired: true, result: "first" });
      assert.deepEqual(await other.withAdvisoryLock(42n, async () => "third"), { acquired: true, result: "third" });
    } finally {
      release();
      if (other !== db()) await other.close();
    }
  });
});

/**
 * Connection faults on a real PostgreSQL server (skipped without DATABASE_URL): backends terminated with
 * pg_terminate_backend, as a restart, a failover or a pooler restart does, and a server that stops answering
 * (a TCP proxy that stops forwarding). None of them may crash the process; each surfaces as
 * DatabaseUnavailableError within the configured timeouts, and the pool recovers by itself.
 */
describe("PostgreSQL connection faults", { skip: skipWithoutPostgres }, () => {
  let handle: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: Database;
  before(async () => {
    handle = await createTestDatabase("postgres");
    admin = connectPostgres({ connectionString: handle.url!, max: 2 });
  });
  after(async () => {
    await admin?.close();
    await handle?.drop();
  });
  const terminate = (pid: number) => admin.query("SELECT pg_terminate_backend($1)", [pid]);

  it("a backend terminated in the middle of a transaction fails that transaction as unavailable; the process lives and the next query works", async () => {
    const outcome = handle.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await terminate(rows[0]!.pid);
      // the socket closes while the transaction waits for its next statement
      await new Promise((r) => setTimeout(r, 100));
      await tx.query("SELECT 1");
    });
    await assert.rejects(outcome, (error: unknown) => error instanceof DatabaseUnavailableError);
    const { rows } = await handle.db.query<{ one: number }>("SELECT 1 AS one");
    assert.equal(rows[0]!.one, 1);
  });

  it("a backend terminated while a transaction sits idle (no statement in flight) does not crash the process", async () => {
    let pid = 0;
    const outcome = handle.db.transaction(async (tx) => {
      pid = (await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      await terminate(pid);
      // the client's 'error' event fires now, with nothing awaiting the connection
      await new Promise((r) => setTimeout(r, 300));
    });
    await assert.rejects(outcome, (error: unknown) => error instanceof DatabaseUnavailableError);
    assert.ok(pid > 0);
    assert.equal((await handle.db.query("SELECT 1")).rowCount, 1);
  });

  it("the backend holding a worker's advisory lock is terminated: the worker's signal aborts, nothing crashes, and the lock can be taken again", async () => {
    const other = connectPostgres({ connectionString: handle.url!, max: 2 });
    try {
      const run = handle.db.withAdvisoryLock(77n, async (signal) => {
        const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 77 AND granted");
        await terminate(rows[0]!.pid);
        for (let i = 0; i < 50 && !signal.aborted; i++) await new Promise((r) => setTimeout(r, 20));
        return signal.aborted;
      });
      assert.deepEqual(await run, { acquired: true, result: true });
      assert.deepEqual(await other.withAdvisoryLock(77n, async () => "taken"), { acquired: true, result: "taken" });
      assert.deepEqual(await handle.db.withAdvisoryLock(77n, async () => "again"), { acquired: true, result: "again" });
    } finally {
      await other.close();
    }
  });

  it("a server that stops answering fails queries and new connections within the timeouts, and they work again when it answers", async () => {
    const url = new URL(handle.url!);
    const proxy = await startFaultProxy({ port: Number(url.port || 5432) });
    url.port = String(proxy.port);
    const db = connectPostgres({ connectionString: url.toString(), max: 2, connectTimeoutMs: 500, statementTimeoutMs: 500 });
    try {
      assert.equal((await db.query("SELECT 1")).rowCount, 1);
      await proxy.setMode("blackhole");
      let started = Date.now();
      await assert.rejects(db.query("SELECT 1"), (error: unknown) => error instanceof DatabaseUnavailableError);
      assert.ok(Date.now() - started < 5_000, "a wedged connection is given up within statement + 1 s");
      started = Date.now();
      await assert.rejects(db.transaction(async (tx) => tx.query("SELECT 1")), (error: unknown) => error instanceof DatabaseUnavailableError);
      assert.ok(Date.now() - started < 5_000);
      await proxy.setMode("refuse");
      await assert.rejects(db.query("SELECT 1"), (error: unknown) => error instanceof DatabaseUnavailableError);
      await proxy.setMode("forward");
      let recovered = false;
      for (let i = 0; i < 50 && !recovered; i++) {
        recovered = await db.query("SELECT 1").then(
          () => true,
          () => new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
        );
      }
      assert.ok(recovered, "the pool reconnects by itself");
    } finally {
      await db.close();
      await proxy.close();
    }
  });

  it("a closed database answers unavailable, not the driver's 'Cannot use a pool after calling end'", async () => {
    const db = connectPostgres({ connectionString: handle.url!, max: 1 });
    await db.close();
    await assert.rejects(db.query("SELECT 1"), (error: unknown) => error instanceof DatabaseUnavailableError && /closed/.test(error.message));
  });
});
