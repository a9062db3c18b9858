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
  /**
   * Runs several statements without parameters in one round trip and returns each one's rows, in order. Each
   * statement reads with its own snapshot (READ COMMITTED), as if sent one by one: a statement after one that
   * waited for a row lock sees what the lock holder committed. Values must be inlined: only ever from
   * `sqlTextArray` or constants.
   */
  script(sql: string): Promise<Array<Record<string, unknown>[]>>;
}

/**
 * A text[] literal for a script (Queryable.script) of values that `allowed` accepts (e.g. lower-case addresses):
 * anything else is refused, so nothing a caller sent is ever spliced into SQL unchecked.
 */
export function sqlTextArray(values: readonly string[], allowed: RegExp): string {
  for (const value of values) if (!allowed.test(value)) throw new Error(`refusing to inline ${JSON.stringify(value.slice(0, 60))} into SQL`);
  return `'{${values.join(",")}}'::text[]`;
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
   * `{ acquired: false }`. Lets any number of instances run a worker with one of them active at a time. The
   * lock lives as long as its connection: if that connection drops, `signal` aborts (another instance may take
   * the lock from then on), and `fn` should stop at its next step.
   */
  withAdvisoryLock<T>(key: bigint, fn: (signal: AbortSignal) => Promise<T>): Promise<{ acquired: true; result: T } | { acquired: false }>;
  close(): Promise<void>;
}

/**
 * The database cannot be reached or did not answer in time: a refused or dropped connection, a server shutting
 * down or restarting, a failover, too many connections, a statement or connection timeout. Callers answer 503
 * `unavailable` (the request may be retried) rather than 500; the pool reconnects by itself.
 */
export class DatabaseUnavailableError extends Error {
  override name = "DatabaseUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
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

/**
 * SQLSTATEs that say "the database, not this statement": connection exceptions (08), insufficient resources (53:
 * too many connections, out of memory or disk), operator intervention (57: shutdown, restart, cancelled by
 * statement_timeout), and a session killed for idling in a transaction.
 */
const UNAVAILABLE_STATES = /^(08|53|57)|^25P03$/;
/** What the drivers and the socket layer say when there is no usable connection (these carry no SQLSTATE). */
const UNAVAILABLE_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end|Client was closed|not queryable|PGlite is closed|the database is closed/i;
const UNAVAILABLE_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/** Whether `error` means the database is unreachable or unresponsive (as opposed to a bad statement or data). */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  const code = sqlState(error).code;
  if (code !== undefined && UNAVAILABLE_ERRNOS.has(code)) return true;
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_STATES.test(code);
  if (error instanceof AggregateError) return error.errors.some(isDatabaseUnavailable);
  return error instanceof Error && UNAVAILABLE_MESSAGES.test(error.message);
}

/** Rethrows a connection-level failure as DatabaseUnavailableError (with the driver's error as its cause). */
function classified(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError || !isDatabaseUnavailable(error)) return error;
  const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
  return new DatabaseUnavailableError(`the database is unavailable (${detail})`, { cause: error });
}

async function retrying<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= MAX_ATTEMPTS || !RETRYABLE.has(sqlState(error).code ?? "")) throw classified(error);
      await new Promise((r) => setTimeout(r, Math.random() * 10 * i));
    }
  }
}

export type PostgresOptions = {
  connectionString: string;
  max?: number;
  applicationName?: string;
  /** Longest wait for a connection (a new one, or a free one from a busy pool). */
  connectTimeoutMs?: number;
  /**
   * Longest a statement may run on the server (`statement_timeout`); the client gives up on an answer a second
   * later still (`query_timeout`), which is what bounds a wedged server or a network partition.
   */
  statementTimeoutMs?: number;
};

export const POSTGRES_DEFAULTS = { connectTimeoutMs: 5_000, statementTimeoutMs: 10_000 } as const;

/** A pool on a PostgreSQL server. */
export function connectPostgres(options: PostgresOptions): Database {
  const statementTimeoutMs = options.statementTimeoutMs ?? POSTGRES_DEFAULTS.statementTimeoutMs;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 16,
    application_name: options.applicationName ?? "fiat-paymaster",
    connectionTimeoutMillis: options.connectTimeoutMs ?? POSTGRES_DEFAULTS.connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 1_000,
    // a session left idle inside a transaction (a client that vanished mid-transaction) must not hold row locks
    idle_in_transaction_session_timeout: Math.max(statementTimeoutMs * 3, 30_000),
    keepAlive: true,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => BigInt(value) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection must not crash the process; the pool replaces it. A checked-out client
  // has no pool listener (pg-pool removes it on checkout), so `transaction` and `withAdvisoryLock` add their own.
  pool.on("error", () => {});
  let closed = false;
  const open = () => {
    if (closed) throw new DatabaseUnavailableError("the database is closed (the server is shutting down)");
  };
  const checkout = async (): Promise<pg.PoolClient> => {
    open();
    try {
      return await pool.connect();
    } catch (error) {
      throw classified(error);
    }
  };
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
    try {
      const result = params && params.length > 0 ? await client.query({ name: nameOf(sql), text: sql, values: params as unknown[] }) : await client.query(sql);
      return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
    } catch (error) {
      throw classified(error);
    }
  };
  /** A multi-statement simple query: pg answers one result per statement (a single result for one). */
  const runScript = async (client: pg.Pool | pg.PoolClient, sql: string): Promise<Array<Record<string, unknown>[]>> => {
    try {
      const result = (await client.query(sql)) as unknown as pg.QueryResult | pg.QueryResult[];
      return (Array.isArray(result) ? result : [result]).map((r) => r.rows as Record<string, unknown>[]);
    } catch (error) {
      throw classified(error);
    }
  };
  return {
    kind: "postgres",
    query: async (sql, params) => {
      open();
      return run(pool, sql, params);
    },
    exec: async (sql) => {
      open();
      await run(pool, sql);
    },
    script: async (sql) => {
      open();
      return runScript(pool, sql);
    },
    transaction: (fn) =>
      retrying(async () => {
        const client = await checkout();
        // the connection dropping mid-transaction fails the statement in flight; this listener only keeps the
        // client's 'error' event from being unhandled (which would end the process)
        let lost: unknown;
        const onError = (error: unknown) => (lost ??= error);
        client.on("error", onError);
        let failure: unknown;
        // BEGIN goes out with the transaction's first statement: a script carries it in the same round trip
        let begun = false;
        const begin = async () => {
          if (begun) return;
          begun = true;
          await client.query("BEGIN");
        };
        try {
          const result = await fn({
            query: async (sql, params) => {
              await begin();
              return run(client, sql, params);
            },
            exec: async (sql) => {
              await begin();
              await run(client, sql);
            },
            script: async (sql) => {
              if (begun) return runScript(client, sql);
              begun = true;
              return (await runScript(client, `BEGIN;\n${sql}`)).slice(1);
            },
          });
          if (begun) await client.query("COMMIT");
          return result;
        } catch (error) {
          failure = lost ?? error;
          // after a connection failure there is nothing to roll back (the server ends the transaction with the
          // session) and a ROLLBACK would only wait for the same dead socket
          if (begun && !isDatabaseUnavailable(failure)) await client.query("ROLLBACK").catch((e: unknown) => (failure = e));
          throw classified(error);
        } finally {
          client.release(failure !== undefined && isDatabaseUnavailable(failure) ? (failure as Error) : undefined);
          client.off("error", onError);
        }
      }),
    withAdvisoryLock: async (key, fn) => {
      const client = await checkout();
      const lockLost = new AbortController();
      const onError = (error: unknown) => {
        if (!lockLost.signal.aborted) lockLost.abort(new DatabaseUnavailableError("the connection holding the advisory lock dropped", { cause: error }));
      };
      client.on("error", onError);
      try {
        const { rows } = await run<{ locked: boolean }>(client, "SELECT pg_try_advisory_lock($1) AS locked", [key]);
        if (!rows[0]?.locked) return { acquired: false };
        try {
          return { acquired: true, result: await fn(lockLost.signal) };
        } finally {
          // with a dropped connection the lock went with the session
          if (!lockLost.signal.aborted) await run(client, "SELECT pg_advisory_unlock($1)", [key]).catch(onError);
        }
      } finally {
        client.release(lockLost.signal.aborted ? (lockLost.signal.reason as Error) : undefined);
        client.off("error", onError);
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
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
  let closed = false;
  const open = () => {
    if (closed) throw new DatabaseUnavailableError("the database is closed (the server is shutting down)");
  };
  const never = new AbortController().signal;
  return {
    kind: "pglite",
    query: async (sql, params) => {
      open();
      return run(db, sql, params);
    },
    exec: async (sql) => {
      open();
      await db.exec(sql);
    },
    script: async (sql) => {
      open();
      return (await db.exec(sql)).map((r) => r.rows as Record<string, unknown>[]);
    },
    transaction: async (fn) => {
      open();
      return db.transaction((tx) =>
        fn({
          query: (sql, params) => run(tx, sql, params),
          exec: async (sql) => {
            await tx.exec(sql);
          },
          script: async (sql) => (await tx.exec(sql)).map((r) => r.rows as Record<string, unknown>[]),
        }),
      );
    },
    withAdvisoryLock: async (key, fn) => {
      open();
      if (held.has(key)) return { acquired: false };
      held.add(key);
      try {
        return { acquired: true, result: await fn(never) };
      } finally {
        held.delete(key);
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}

/** PostgreSQL when `databaseUrl` is set, else PGlite in `dataDir`. */
export async function openDatabase(options: { databaseUrl?: string; dataDir?: string; poolSize?: number; connectTimeoutMs?: number; statementTimeoutMs?: number }): Promise<Database> {
  return options.databaseUrl
    ? connectPostgres({ connectionString: options.databaseUrl, max: options.poolSize, connectTimeoutMs: options.connectTimeoutMs, statementTimeoutMs: options.statementTimeoutMs })
    : openPglite(options.dataDir);
}
