/** A PostgreSQL database of the benchmark's own: created on the server DATABASE_URL names, dropped at the end. */
import { randomBytes } from "node:crypto";
import pg from "pg";

export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";
/** Fail fast with a readable message rather than pg's default of waiting indefinitely. */
const CONNECT_TIMEOUT_MS = 5_000;

export type DatabaseInfo = { url: string; version: string; synchronousCommit: string; fsync: string };

export class DatabaseUnreachableError extends Error {
  override name = "DatabaseUnreachableError";
}

/** The URL as printed: without its password. */
export function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

export type BenchDatabase = { url: string; name: string; info: DatabaseInfo; drop: () => Promise<void> };

/** A new, empty database `<prefix>_<random>` beside the one `adminUrl` names; `drop` deletes it. */
export async function createBenchDatabase(adminUrl: string, prefix: string): Promise<BenchDatabase> {
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await admin.connect();
  } catch (error) {
    throw new DatabaseUnreachableError(`PostgreSQL at ${redactedUrl(adminUrl)} is not reachable: ${(error as Error).message}`);
  }
  const { rows } = await admin.query<{ version: string; synchronous_commit: string; fsync: string }>(
    "SELECT current_setting('server_version') AS version, current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync",
  );
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const row = rows[0]!;
  return {
    url: url.toString(),
    name,
    info: { url: redactedUrl(adminUrl), version: row.version, synchronousCommit: row.synchronous_commit, fsync: row.fsync },
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
