/**
 * One small interface over the two drivers: `pg` (a real PostgreSQL server, production) and PGlite
 * (PostgreSQL compiled to WASM, the embedded default when no DATABASE_URL is set). The same SQL runs on both.
 * int8 columns come back as `bigint` from both.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";

export type QueryResult<T> = { rows: T[]; rowCount: number };

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: "postgres" | "pglite";
  /**
   * Runs `fn` in one transaction (READ COMMITTED) and commits, or rolls back if it throws. Serialization
   * failures and deadlocks are retried.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` only if this process wins the session advisory lock `key` (no waiting); otherwise returns
   * `{ acquired: false }`. Lets any number of instances run a worker with one of them active at a time.
   */
  withAdvisoryLock<T>(key: bigint, fn: () => Promise<T>): Promise<{ acquired: true; result: T } | { acquired: false }>;
  close(): Promise<void>;
}

const INT8_OID = 20;
const RETRYABLE = new Set(["40001", "40P01"]); // serialization_failure, deadlock_detected
const MAX_ATTEMPTS = 5;

/** A constraint or SQL error from either driver, with the SQLSTATE code and constraint name kept. */
export function sqlState(error: unknown): { code?: string; constraint?: string } {
  const e = error as { code?: unknown; constraint?: unknown };
  return {
    code: typeof e?.code === "string" ? e.code : undefined,
    constraint: typeof e?.constraint === "string" ? e.constraint : undefined,
  };
}

async function retrying<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= MAX_ATTEMPTS || !RETRYABLE.has(sqlState(error).code ?? "")) throw error;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * i));
    }
  }
}

export type PostgresOptions = { connectionString: string; max?: number; applicationName?: string };

/** A pool on a PostgreSQL server. */
export function connectPostgres(options: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 16,
    application_name: options.applicationName ?? "fiat-paymaster",
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => BigInt(value) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
    },
  });
  // an idle client losing its connection must not crash the process; the pool replaces it
  pool.on("error", () => {});
  // Parameterised statements are prepared once per connection (named after their text): the hot paths run a few
  // fixed statements thousands of times a second, and re-parsing and re-planning them is PostgreSQL CPU the
  // application shares the machine with. Every statement text in the code is a constant, so the set is bounded.
  const names = new Map<string, string>();
  const nameOf = (sql: string) => {
    let name = names.get(sql);
    if (!name) names.set(sql, (name = `fp_${createHash("sha1").update(sql).digest("hex").slice(0, 16)}`));
    return name;
  };
  const run = async <T>(client: pg.Pool | pg.PoolClient, sql: string, params?: readonly unknown[]) => {
    const result = params && params.length > 0 ? await client.query({ name: nameOf(sql), text: sql, values: params as unknown[] }) : await client.query(sql);
    return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
  };
  return {
    kind: "postgres",
    query: (sql, params) => run(pool, sql, params),
    exec: async (sql) => {
      await pool.query(sql);
    },
    transaction: (fn) =>
      retrying(async () => {
        const client = await pool.connect();
        try {
          await client.query("BEGIN");
          const result = await fn({
            query: (sql, params) => run(client, sql, params),
            exec: async (sql) => {
              await client.query(sql);
            },
          });
          await client.query("COMMIT");
          return result;
        } catch (error) {
          await client.query("ROLLBACK").catch(() => {});
          throw error;
        } finally {
          client.release();
        }
      }),
    withAdvisoryLock: async (key, fn) => {
      const client = await pool.connect();
      try {
        const { rows } = await client.query("SELECT pg_try_advisory_lock($1) AS locked", [key]);
        if (!rows[0]?.locked) return { acquired: false };
        try {
          return { acquired: true, result: await fn() };
        } finally {
          await client.query("SELECT pg_advisory_unlock($1)", [key]);
        }
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * PGlite in `dataDir` (created if missing), or in memory when `dataDir` is undefined. PGlite is a single
 * connection: its own mutex serializes statements, and `transaction` holds it for the whole transaction.
 */
export async function openPglite(dataDir?: string): Promise<Database> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir, parsers: { [INT8_OID]: (value: string) => BigInt(value) } });
  const run = async <T>(q: Pick<PGlite, "query">, sql: string, params?: readonly unknown[]) => {
    const result = await q.query<T>(sql, params as unknown[] | undefined);
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  };
  // one process owns a PGlite folder, so an in-process flag is the lock
  const held = new Set<bigint>();
  return {
    kind: "pglite",
    query: (sql, params) => run(db, sql, params),
    exec: async (sql) => {
      await db.exec(sql);
    },
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({
          query: (sql, params) => run(tx, sql, params),
          exec: async (sql) => {
            await tx.exec(sql);
          },
        }),
      ),
    withAdvisoryLock: async (key, fn) => {
      if (held.has(key)) return { acquired: false };
      held.add(key);
      try {
        return { acquired: true, result: await fn() };
      } finally {
        held.delete(key);
      }
    },
    close: () => db.close(),
  };
}

/** PostgreSQL when `databaseUrl` is set, else PGlite in `dataDir`. */
export async function openDatabase(options: { databaseUrl?: string; dataDir?: string; poolSize?: number }): Promise<Database> {
  return options.databaseUrl
    ? connectPostgres({ connectionString: options.databaseUrl, max: options.poolSize })
    : openPglite(options.dataDir);
}
