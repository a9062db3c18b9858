/**
 * Where daily reconciliation results live: one row per (scope, day) in daily_reconciliations, one per difference in
 * reconciliation_differences. Running a day again replaces its result: differences found again are refreshed, ones
 * no longer found are cleared, ones that were acted on (a missing credit credited) stay, flagged.
 */
import type { Database, Queryable } from "../platform/db/database";
import type { Difference, DifferenceKind, ScopeResult } from "./difference";

export type StoredStatus = ScopeResult["status"] | "failed";

export type StoredDifference = Difference & { id: string; scope: string; day: string; firstSeenAt: Date; lastSeenAt: Date; clearedAt: Date | null };

export type StoredResult = {
  scope: string;
  day: string;
  status: StoredStatus;
  figures: Record<string, string>;
  /** Differences found by the latest run. */
  differences: number;
  detail: string | null;
  runs: number;
  startedAt: Date;
  finishedAt: Date;
};

/** Records one run's result for its (scope, day), in one transaction. */
export async function recordResult(db: Database, result: ScopeResult | (Omit<ScopeResult, "status"> & { status: "failed" }), startedAt: Date): Promise<void> {
  await db.transaction(async (tx) => {
    const seenAt = new Date();
    await tx.query(
      `INSERT INTO daily_reconciliations (scope, day, status, figures, differences, detail, started_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (scope, day) DO UPDATE SET status = EXCLUDED.status, figures = EXCLUDED.figures, differences = EXCLUDED.differences,
         detail = EXCLUDED.detail, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, runs = daily_reconciliations.runs + 1`,
      [result.scope, result.day, result.status, JSON.stringify(result.figures), result.differences.length, result.detail ?? null, startedAt, seenAt],
    );
    // a run that could not look (not ready, failed) says nothing about earlier differences
    if (result.status === "not_ready" || result.status === "failed") return;
    for (const d of result.differences) {
      await tx.query(
        `INSERT INTO reconciliation_differences (scope, day, kind, reference, expected, actual, cause, resolution, first_seen_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         ON CONFLICT (scope, day, kind, reference) DO UPDATE SET expected = EXCLUDED.expected, actual = EXCLUDED.actual, cause = EXCLUDED.cause,
           resolution = COALESCE(reconciliation_differences.resolution, EXCLUDED.resolution), last_seen_at = EXCLUDED.last_seen_at, cleared_at = NULL`,
        [result.scope, result.day, d.kind, d.reference, d.expected ?? null, d.actual ?? null, d.cause, d.resolution ?? null, seenAt],
      );
    }
    await tx.query(
      `UPDATE reconciliation_differences SET cleared_at = $3
        WHERE scope = $1 AND day = $2 AND cleared_at IS NULL AND resolution IS NULL AND last_seen_at < $3`,
      [result.scope, result.day, seenAt],
    );
  });
}

type ResultRow = {
  scope: string;
  day: string;
  status: StoredStatus;
  figures: Record<string, string>;
  differences: number;
  detail: string | null;
  runs: number;
  started_at: Date;
  finished_at: Date;
};

const RESULT_COLUMNS = "scope, to_char(day, 'YYYY-MM-DD') AS day, status, figures, differences, detail, runs, started_at, finished_at";

const toResult = (r: ResultRow): StoredResult => ({
  scope: r.scope,
  day: r.day,
  status: r.status,
  figures: r.figures,
  differences: r.differences,
  detail: r.detail,
  runs: r.runs,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

/** The results of one day, every scope. */
export async function resultsOfDay(db: Queryable, day: string): Promise<StoredResult[]> {
  const { rows } = await db.query<ResultRow>(`SELECT ${RESULT_COLUMNS} FROM daily_reconciliations WHERE day = $1 ORDER BY scope`, [day]);
  return rows.map(toResult);
}

/** The latest days reconciled, newest first, with their results. */
export async function recentResults(db: Queryable, limit: number): Promise<StoredResult[]> {
  const { rows } = await db.query<ResultRow>(
    `SELECT ${RESULT_COLUMNS} FROM daily_reconciliations WHERE day IN (SELECT DISTINCT day FROM daily_reconciliations ORDER BY day DESC LIMIT $1)
      ORDER BY day DESC, scope`,
    [limit],
  );
  return rows.map(toResult);
}

type DifferenceRow = {
  id: string;
  scope: string;
  day: string;
  kind: DifferenceKind;
  reference: string;
  expected: string | null;
  actual: string | null;
  cause: string;
  resolution: string | null;
  first_seen_at: Date;
  last_seen_at: Date;
  cleared_at: Date | null;
};

/** A day's differences: those still found, and those acted on (resolved); cleared ones only when asked. */
export async function differencesOfDay(db: Queryable, day: string, options: { includeCleared?: boolean } = {}): Promise<StoredDifference[]> {
  const { rows } = await db.query<DifferenceRow>(
    `SELECT id::text, scope, to_char(day, 'YYYY-MM-DD') AS day, kind, reference, expected, actual, cause, resolution, first_seen_at, last_seen_at, cleared_at
       FROM reconciliation_differences WHERE day = $1 ${options.includeCleared ? "" : "AND cleared_at IS NULL"} ORDER BY scope, kind, reference`,
    [day],
  );
  return rows.map((r) => ({
    id: r.id,
    scope: r.scope,
    day: r.day,
    kind: r.kind,
    reference: r.reference,
    ...(r.expected === null ? {} : { expected: r.expected }),
    ...(r.actual === null ? {} : { actual: r.actual }),
    cause: r.cause,
    ...(r.resolution === null ? {} : { resolution: r.resolution }),
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    clearedAt: r.cleared_at,
  }));
}

/** Differences still open (found by their day's latest run, not acted on), per scope and kind: what the gauges show. */
export async function openDifferenceCounts(db: Queryable): Promise<{ scope: string; kind: DifferenceKind; count: number }[]> {
  const { rows } = await db.query<{ scope: string; kind: DifferenceKind; count: string }>(
    `SELECT scope, kind, count(*)::text AS count FROM reconciliation_differences WHERE cleared_at IS NULL AND resolution IS NULL GROUP BY scope, kind ORDER BY scope, kind`,
  );
  return rows.map((r) => ({ scope: r.scope, kind: r.kind, count: Number(r.count) }));
}

/** Days (of those asked) whose result is final: reconciled, with or without differences. */
export async function finalDays(db: Queryable, scope: string, days: readonly string[]): Promise<Set<string>> {
  if (days.length === 0) return new Set();
  const sorted = [...days].sort();
  const { rows } = await db.query<{ day: string }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM daily_reconciliations WHERE scope = $1 AND status IN ('ties_out', 'differences') AND day >= $2 AND day <= $3`,
    [scope, sorted[0], sorted.at(-1)],
  );
  return new Set(rows.map((r) => r.day));
}
