/**
 * Table statistics where no autovacuum keeps them: PGlite (one backend inside this process, no autovacuum launcher)
 * and a PostgreSQL server run with `autovacuum = off`.
 *
 * Without them the hot path slows down as the tables grow, without bound. A plan PostgreSQL caches on a connection
 * — every foreign-key check, every prepared statement — is made once, from the statistics of the day, and made
 * again only when ANALYZE changes them. Made while `holds` was small, the check each signed operation runs on its
 * hold (`sponsored_operations.hold_id`) is a sequential scan, and stays one: measured on a database analysed while
 * `holds` was empty and not since, a batch of 32 holds took 7 ms at 6,400 holds and 42 ms at 32,000 on PostgreSQL, 28 ms and 77 ms at
 * 6,400 and 25,000 on PGlite; after one ANALYZE the batch costs the same at any size.
 */
import type { Logger } from "../logger";
import { every, type Worker } from "../every";
import type { Database } from "./database";

/** Analyse a table once this many rows, plus this share of the table, changed: migration 009's 2 %, autovacuum's 50. */
const ANALYZE_BASE_ROWS = 50;
const SCALE_FACTOR = 0.02;
/** Vacuum (PGlite only) once this many rows plus 2 % are dead, or 1,000 plus 2 % were inserted since the last. */
const VACUUM_DEAD_BASE_ROWS = 50;
const VACUUM_INSERT_BASE_ROWS = 1_000;
/** As often as autovacuum looks (autovacuum_naptime's default). */
export const MAINTENANCE_INTERVAL_MS = 60_000;
/** Advisory lock of the maintenance pass ("fpmaint"): one instance at a time analyses a shared server. */
const MAINTENANCE_LOCK = 0x66706d61696e74n;
/** ANALYZE reads a bounded sample (300 × default_statistics_target rows), yet on a slow disk it may need more than a request's statement timeout. */
const ANALYZE_TIMEOUT = "5min";

/** A table the pass analysed, and whether it vacuumed it too. */
export type TableMaintenance = { table: string; vacuumed: boolean };

/** Whether the database keeps its own statistics: PostgreSQL with autovacuum on. PGlite never runs autovacuum, whatever its setting says. */
export async function autovacuumRuns(db: Database): Promise<boolean> {
  if (db.kind === "pglite") return false;
  const { rows } = await db.query<{ on: boolean }>("SELECT current_setting('autovacuum') = 'on' AND current_setting('track_counts') = 'on' AS on");
  return rows[0]!.on;
}

/**
 * Analyses the tables whose rows changed by more than 50 + 2 % since they were last analysed (ANALYZE replaces the
 * cached plans that read them, on every connection); on PGlite, where nothing else can, vacuums those with many dead
 * or new rows too. Returns what it did.
 */
export async function maintainTables(db: Database): Promise<TableMaintenance[]> {
  const { rows } = await db.query<{ name: string; analyze: boolean; vacuum: boolean }>(
    `SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname) AS name,
            s.n_mod_since_analyze > $1 + $2 * greatest(c.reltuples, 0) AS analyze,
            (s.n_dead_tup > $3 + $2 * greatest(c.reltuples, 0) OR s.n_ins_since_vacuum > $4 + $2 * greatest(c.reltuples, 0)) AS vacuum
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE s.schemaname = current_schema()
      ORDER BY s.relname`,
    [ANALYZE_BASE_ROWS, SCALE_FACTOR, VACUUM_DEAD_BASE_ROWS, VACUUM_INSERT_BASE_ROWS],
  );
  const done: TableMaintenance[] = [];
  for (const row of rows) {
    const vacuum = db.kind === "pglite" && row.vacuum;
    if (!row.analyze && !vacuum) continue;
    if (vacuum) {
      // VACUUM cannot run in a transaction; PGlite has no statement timeout to lift
      await db.exec(`VACUUM (ANALYZE) ${row.name}`);
    } else {
      await db.transaction(async (tx) => {
        await tx.exec(`SET LOCAL statement_timeout = '${ANALYZE_TIMEOUT}'`);
        await tx.exec(`ANALYZE ${row.name}`);
      });
    }
    done.push({ table: row.name, vacuumed: vacuum });
  }
  return done;
}

/**
 * Every minute, maintainTables where autovacuum does not run (see the top of this file); nothing where it does
 * (asked at the first pass that reaches the database). On a PostgreSQL server with autovacuum off it warns once:
 * the server then keeps its statistics, but dead rows are left for the operator's VACUUM.
 */
export function startTableMaintenance(p: { db: Database; log: Logger; intervalMs?: number }): Worker {
  let needed: Promise<boolean> | undefined;
  const ask = async () => {
    const off = !(await autovacuumRuns(p.db));
    if (off && p.db.kind === "postgres") {
      p.log.warn(
        "autovacuum is off on the PostgreSQL server: the paymaster analyses its tables itself every minute (plans made from stale statistics slow sponsorship as holds grow), but dead rows are not reclaimed — turn autovacuum on, or VACUUM on a schedule",
      );
    }
    return off;
  };
  return every(p.intervalMs ?? MAINTENANCE_INTERVAL_MS, async () => {
    try {
      needed ??= ask().catch((error: unknown) => {
        needed = undefined;
        throw error;
      });
      if (!(await needed)) return;
      const run = await p.db.withAdvisoryLock(MAINTENANCE_LOCK, () => maintainTables(p.db));
      if (run.acquired && run.result.length > 0) p.log.debug({ tables: run.result }, "tables analysed");
    } catch (error) {
      p.log.warn({ err: (error as Error).message }, "analysing the tables failed; retrying in a minute");
    }
  });
}
