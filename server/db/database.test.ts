import assert from "node:assert/strict";
import { it } from "node:test";
import { connectPostgres } from "./database";
import { loadMigrations, migrate } from "./migrate";
import { describeWithDatabases } from "./testing";

describeWithDatabases("database", (db, kind) => {
  it("migrations are recorded and applied once; running them again does nothing", async () => {
    const versions = loadMigrations().map((m) => m.version);
    const { rows } = await db().query<{ version: string }>("SELECT version FROM schema_migrations ORDER BY version");
    assert.deepEqual(rows.map((r) => r.version), versions);
    assert.deepEqual(await migrate(db()), []);
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
