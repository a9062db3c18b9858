/**
 * Test support: the outside services some tests need — a PostgreSQL server, a Redis server, a Chromium — and
 * whether this machine has them. A test of one runs when it is configured and is otherwise reported by node:test
 * as skipped, with the reason and the command that enables it: `npm test` passes on a machine with only Node, and
 * `.ci/run` configures all of them and fails if anything was skipped.
 *
 *   PostgreSQL  DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); PGlite runs every database test anyway
 *   Redis       REDIS_URL (e.g. redis://127.0.0.1:6379)
 *   Chromium    CHROMIUM_PATH, the only place looked at when set (so CHROMIUM_PATH=/nonexistent turns the browser
 *               tests off); unset, Debian's and Ubuntu's usual paths
 *
 * With FIAT_TEST_ALL_SERVICES=1 (.ci/run sets it) a service that is not configured is an error at once rather
 * than a skip. Test servers (devtools/testing/serverProcess.ts) never inherit REDIS_URL: the tests' own Redis is
 * not theirs.
 */
import { existsSync } from "node:fs";

/** The reason a test is skipped, or false when it runs; under FIAT_TEST_ALL_SERVICES a reason is an error. */
function skipUnless(configured: boolean, reason: string): string | false {
  if (configured) return false;
  if (process.env.FIAT_TEST_ALL_SERVICES === "1") throw new Error(`FIAT_TEST_ALL_SERVICES=1, but a test ${reason}`);
  return reason;
}

const POSTGRES_EXAMPLE = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_EXAMPLE = "redis://127.0.0.1:6379";
const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The PostgreSQL server the tests may create databases on (DATABASE_URL), if any. */
export function postgresUrl(): string | undefined {
  return process.env.DATABASE_URL || undefined;
}

/** `{ skip }` for a test of the real PostgreSQL server: false when DATABASE_URL is set, else why and how to enable it. */
export const skipWithoutPostgres = skipUnless(postgresUrl() !== undefined, `needs PostgreSQL — run with DATABASE_URL=${POSTGRES_EXAMPLE} to enable`);

/** The Redis server the tests may use (REDIS_URL), if any. */
export function redisUrl(): string | undefined {
  return process.env.REDIS_URL || undefined;
}

/** That Redis server's address, e.g. for a fault proxy in front of it. */
export function redisAddress(): { host: string; port: number } {
  const url = redisUrl();
  if (!url) throw new Error(`REDIS_URL is not set (${skipWithoutRedis})`);
  const { hostname, port } = new URL(url);
  return { host: hostname.replace(/^\[|\]$/g, ""), port: Number(port || 6379) };
}

export const skipWithoutRedis = skipUnless(redisUrl() !== undefined, `needs Redis — run with REDIS_URL=${REDIS_EXAMPLE} to enable`);

/** The Chromium the browser tests drive: CHROMIUM_PATH if set (and nothing else), else the first usual path found. */
export function chromiumPath(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) return existsSync(configured) ? configured : undefined;
  return CHROMIUM_CANDIDATES.find((p) => existsSync(p));
}

export const skipWithoutChromium = skipUnless(
  chromiumPath() !== undefined,
  process.env.CHROMIUM_PATH
    ? `needs Chromium — CHROMIUM_PATH=${process.env.CHROMIUM_PATH} does not exist; point it at a Chromium to enable`
    : "needs Chromium — install Debian's chromium (apt-get install chromium) or run with CHROMIUM_PATH=/path/to/chromium to enable",
);
