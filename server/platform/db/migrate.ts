import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import type { Database } from "./database";

const MIGRATIONS_DIR = path.join(__dirname, "migrations");
/** Advisory lock key for migrations ("fpmigrat" as ASCII): instances starting together apply them once. */
const MIGRATION_LOCK = 0x66706d6967726174n;

export type Migration = { version: string; sql: string };

/** `NNN_name.sql` files in version order. */
export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: f.replace(/\.sql$/, ""), sql: readFileSync(path.join(dir, f), "utf8") }));
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, all in one transaction under a transaction
 * advisory lock: a second instance waits, then finds nothing to do. Returns the versions it applied.
 */
export async function migrate(db: Database, migrations = loadMigrations()): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const { rows } = await tx.query<{ version: string }>("SELECT version FROM schema_migrations");
    const applied = new Set(rows.map((r) => r.version));
    const pending = migrations.filter((m) => !applied.has(m.version));
    for (const migration of pending) {
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO schema_migrations (version) VALUES ($1)", [migration.version]);
    }
    return pending.map((m) => m.version);
  });
}
