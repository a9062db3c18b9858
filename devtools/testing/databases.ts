/**
 * Test support: every database test runs on PGlite (in memory) and, when DATABASE_URL is set (CI sets it), on
 * the real PostgreSQL server too, each in a database of its own that is dropped afterwards; without it the
 * PostgreSQL suites of `describeWithDatabases` are reported as skipped (./services.ts).
 */
import { randomBytes } from "node:crypto";
import { after, before, describe } from "node:test";
import pg from "pg";
import { type Database, connectPostgres, openPglite } from "../../server/platform/db/database";
import { migrate } from "../../server/platform/db/migrate";
import { postgresUrl, skipWithoutPostgres } from "./services";

export type DatabaseKind = "pglite" | "postgres";

export function testedDatabaseKinds(): DatabaseKind[] {
  return postgresUrl() ? ["pglite", "postgres"] : ["pglite"];
}

/** A fresh, migrated database of `kind`; `drop` closes and deletes it. */
export async function createTestDatabase(kind: DatabaseKind, options: { poolSize?: number } = {}): Promise<{ db: Database; url?: string; drop: () => Promise<void> }> {
  if (kind === "pglite") {
    const db = await openPglite();
    await migrate(db);
    return { db, drop: () => db.close() };
  }
  const adminUrl = postgresUrl()!;
  const name = `fp_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = connectPostgres({ connectionString: url.toString(), max: options.poolSize ?? 16 });
  await migrate(db);
  return {
    db,
    url: url.toString(),
    drop: async () => {
      await db.close();
      const cleanup = new pg.Client({ connectionString: adminUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

/**
 * `describe(name)` once per tested database kind; `body` gets a getter for that suite's migrated database.
 */
export function describeWithDatabases(name: string, body: (db: () => Database, kind: DatabaseKind) => void, options: { poolSize?: number } = {}): void {
  for (const kind of testedDatabaseKinds()) {
    describe(`${name} [${kind}]`, () => {
      let handle: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
      before(async () => {
        handle = await createTestDatabase(kind, options);
      });
      after(async () => {
        await handle?.drop();
      });
      body(() => handle!.db, kind);
    });
  }
  if (skipWithoutPostgres) describe(`${name} [postgres]`, { skip: skipWithoutPostgres }, () => {});
}
