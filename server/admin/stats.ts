/**
 * Time series for the dashboard's charts, in UTC buckets of an hour or a day: top-ups credited (ledger `topup`
 * entries) and sponsored operations settled (the settlements table, by when the settlement worker recorded them;
 * reorged ones excluded). Every bucket of the range is answered, empty ones as zeros, so a chart needs no gap
 * filling. Settlement lag is a present-tense figure: see the chains' status.
 */
import type { Queryable } from "../platform/db/database";

export type StatsBucket = "hour" | "day";

export const BUCKET_MS: Record<StatsBucket, number> = { hour: 3_600_000, day: 86_400_000 };
/** The range a request covers when it names no `since`. */
export const DEFAULT_RANGE_BUCKETS: Record<StatsBucket, number> = { hour: 48, day: 30 };
export const MAX_BUCKETS = 1_000;

export type StatsPoint = {
  /** The bucket's first instant (UTC). */
  start: string;
  topUpCount: number;
  topUpFen: string;
  /** Operations our paymaster paid for, settled in the bucket (unknown ones included). */
  settledCount: number;
  /** Of those, operations we never signed (no hold: alerted). */
  unknownCount: number;
  chargedFen: string;
  /** What the paymaster's deposit paid for them: the sum of actualGasCost. */
  gasCostWei: string;
};

export type Stats = {
  bucket: StatsBucket;
  since: string;
  until: string;
  series: StatsPoint[];
  totals: Omit<StatsPoint, "start">;
};

/** The start of the UTC bucket holding `t`. */
export function bucketStart(t: Date, bucket: StatsBucket): Date {
  return new Date(Math.floor(t.getTime() / BUCKET_MS[bucket]) * BUCKET_MS[bucket]);
}

// date_trunc of a timestamptz truncates in the session's time zone: truncate the UTC wall time instead, and turn
// it back into a timestamptz (both drivers read timestamptz as an instant; a bare timestamp would be local time).
const BUCKET_SQL: Record<StatsBucket, string> = {
  hour: "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
  day: "date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
};

/** Buckets from the one holding `since` up to the one holding `until` (exclusive of `until` itself). */
export async function readStats(db: Queryable, p: { bucket: StatsBucket; since: Date; until: Date }): Promise<Stats> {
  const from = bucketStart(p.since, p.bucket);
  const bucketSql = BUCKET_SQL[p.bucket];
  const [topUps, settled] = await Promise.all([
    db.query<{ bucket: Date; n: bigint; fen: bigint }>(
      `SELECT ${bucketSql} AS bucket, count(*)::bigint AS n, COALESCE(sum(available_delta_fen), 0)::bigint AS fen
         FROM ledger_entries WHERE kind = 'topup' AND created_at >= $1 AND created_at < $2 GROUP BY 1`,
      [from, p.until],
    ),
    db.query<{ bucket: Date; n: bigint; unknown: bigint; fen: bigint; wei: string }>(
      `SELECT ${bucketSql} AS bucket, count(*)::bigint AS n, count(*) FILTER (WHERE hold_id IS NULL)::bigint AS unknown,
              COALESCE(sum(charged_fen), 0)::bigint AS fen, COALESCE(sum(actual_gas_cost_wei), 0)::text AS wei
         FROM settlements WHERE status = 'settled' AND created_at >= $1 AND created_at < $2 GROUP BY 1`,
      [from, p.until],
    ),
  ]);
  const points = new Map<number, { topUpCount: number; topUpFen: bigint; settledCount: number; unknownCount: number; chargedFen: bigint; gasCostWei: bigint }>();
  const step = BUCKET_MS[p.bucket];
  for (let t = from.getTime(); t < p.until.getTime(); t += step) {
    points.set(t, { topUpCount: 0, topUpFen: 0n, settledCount: 0, unknownCount: 0, chargedFen: 0n, gasCostWei: 0n });
  }
  for (const r of topUps.rows) {
    const point = points.get(r.bucket.getTime());
    if (point) Object.assign(point, { topUpCount: Number(r.n), topUpFen: r.fen });
  }
  for (const r of settled.rows) {
    const point = points.get(r.bucket.getTime());
    if (point) Object.assign(point, { settledCount: Number(r.n), unknownCount: Number(r.unknown), chargedFen: r.fen, gasCostWei: BigInt(r.wei) });
  }
  const totals = { topUpCount: 0, topUpFen: 0n, settledCount: 0, unknownCount: 0, chargedFen: 0n, gasCostWei: 0n };
  const series: StatsPoint[] = [];
  for (const [t, v] of points) {
    totals.topUpCount += v.topUpCount;
    totals.topUpFen += v.topUpFen;
    totals.settledCount += v.settledCount;
    totals.unknownCount += v.unknownCount;
    totals.chargedFen += v.chargedFen;
    totals.gasCostWei += v.gasCostWei;
    series.push({ start: new Date(t).toISOString(), ...money(v) });
  }
  return { bucket: p.bucket, since: from.toISOString(), until: p.until.toISOString(), series, totals: money(totals) };
}

function money(v: { topUpCount: number; topUpFen: bigint; settledCount: number; unknownCount: number; chargedFen: bigint; gasCostWei: bigint }): Omit<StatsPoint, "start"> {
  return {
    topUpCount: v.topUpCount,
    topUpFen: v.topUpFen.toString(),
    settledCount: v.settledCount,
    unknownCount: v.unknownCount,
    chargedFen: v.chargedFen.toString(),
    gasCostWei: v.gasCostWei.toString(),
  };
}
