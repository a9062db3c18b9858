/**
 * The daily three-way reconciliation: for a day, every scope (each gateway's bill against our orders, refunds and
 * ledger; each chain and EntryPoint's events against our settlements, charges and deposit) is reconciled under its
 * own advisory lock, its result and differences stored, alerted and counted. Running a day again is safe: bills
 * are re-read, a missing credit is credited once, the stored result is replaced.
 *
 * The scheduled run looks at the last few days every interval and reconciles each scope whose day has no final
 * result yet (the gateways publish a day's bill the next morning; the chain's day is over once settled past it).
 */
import { createHash } from "node:crypto";
import type { Database } from "../platform/db/database";
import { type Worker, every } from "../platform/every";
import type { Logger } from "../platform/logger";
import type { createMetrics } from "../platform/metrics";
import { DIFFERENCE_KINDS, type ScopeResult, dayBounds, dayOf } from "./difference";
import { finalDays, openDifferenceCounts, recentResults, recordResult } from "./store";

/**
 * One thing reconciled per day: a gateway, or a (chain, EntryPoint). `signal` aborts on shutdown (or when the
 * advisory lock's connection is lost): a scope gives up before it writes anything (`untilAborted`, ./abortable.ts).
 */
export type ReconciliationScope = { scope: string; reconcile: (day: string, signal?: AbortSignal) => Promise<ScopeResult> };

export type DailyDeps = {
  db: Database;
  scopes: readonly ReconciliationScope[];
  log?: Logger;
  metrics?: ReturnType<typeof createMetrics>;
};

/** What one run of a scope came to: its result, or why there is none (`busy`: another instance holds its lock). */
export type ScopeRun = ScopeResult | { scope: string; day: string; status: "failed" | "busy" | "stopped"; figures: Record<string, string>; differences: []; detail: string };

export type DayRun = { day: string; runs: ScopeRun[] };

/** The advisory lock of one (scope, day): two instances never reconcile the same day of the same scope at once. */
export function reconciliationLockKey(scope: string, day: string): bigint {
  return createHash("sha256").update(`fiat-paymaster:reconcile:${scope}:${day}`).digest().readBigInt64BE(0);
}

/** Reconciles `day` for every scope (or those named), one after another; never throws for one scope's failure. */
export async function reconcileDay(deps: DailyDeps, day: string, options: { scopes?: readonly string[]; signal?: AbortSignal } = {}): Promise<DayRun> {
  dayBounds(day); // a bad day is the caller's error, before anything runs
  const wanted = deps.scopes.filter((s) => !options.scopes || options.scopes.some((name) => s.scope === name || s.scope.startsWith(`${name}:`)));
  const runs: ScopeRun[] = [];
  for (const scope of wanted) runs.push(await reconcileScope(deps, scope, day, options.signal));
  await refreshGauges(deps);
  return { day, runs };
}

async function reconcileScope(deps: DailyDeps, scope: ReconciliationScope, day: string, stop?: AbortSignal): Promise<ScopeRun> {
  const startedAt = new Date();
  const base = { scope: scope.scope, day, figures: {}, differences: [] as [] };
  if (stop?.aborted) return { ...base, status: "stopped", detail: "the server is stopping" };
  let run: ScopeRun;
  try {
    const locked = await deps.db.withAdvisoryLock(reconciliationLockKey(scope.scope, day), (lockLost) =>
      scope.reconcile(day, stop ? AbortSignal.any([stop, lockLost]) : lockLost),
    );
    if (!locked.acquired) return { ...base, status: "busy", detail: "another instance is reconciling this day" };
    run = locked.result;
  } catch (error) {
    // stopped mid-run: nothing was written after the abort, and the next start runs the day again
    if (stop?.aborted) return { ...base, status: "stopped", detail: "the server is stopping" };
    run = { ...base, status: "failed", detail: (error as Error).message };
  }
  try {
    await recordResult(deps.db, run as ScopeResult, startedAt);
  } catch (error) {
    deps.log?.warn({ scope: scope.scope, day, err: (error as Error).message }, "reconciliation result could not be stored; the next run repeats it");
  }
  deps.metrics?.reconciliationRuns.inc({ scope: scope.scope, status: run.status });
  if (run.status === "failed") deps.log?.warn({ scope: scope.scope, day, err: run.detail }, "reconciliation failed; the next run retries");
  for (const d of run.differences) {
    deps.log?.warn({ alert: true, scope: scope.scope, day, kind: d.kind, reference: d.reference, expected: d.expected, actual: d.actual, resolution: d.resolution }, `ALERT: reconciliation difference: ${d.cause}`);
  }
  if (run.status === "ties_out") deps.log?.info({ scope: scope.scope, day, figures: run.figures }, "reconciliation ties out");
  return run;
}

/** Sets the gauges from what is stored (so every instance shows the same, whichever ran the day). */
export async function refreshGauges(deps: DailyDeps): Promise<void> {
  const metrics = deps.metrics;
  if (!metrics) return;
  try {
    const counts = await openDifferenceCounts(deps.db);
    metrics.reconciliationDifferences.reset();
    for (const s of deps.scopes) for (const kind of DIFFERENCE_KINDS) metrics.reconciliationDifferences.set({ scope: s.scope, kind }, 0);
    for (const c of counts) metrics.reconciliationDifferences.set({ scope: c.scope, kind: c.kind }, c.count);
    const latest = new Map<string, { day: string; tiesOut: boolean }>();
    for (const r of await recentResults(deps.db, 14)) {
      if ((r.status === "ties_out" || r.status === "differences") && !latest.has(r.scope)) latest.set(r.scope, { day: r.day, tiesOut: r.status === "ties_out" });
    }
    for (const [scope, { day, tiesOut }] of latest) {
      metrics.reconciliationTiesOut.set({ scope }, tiesOut ? 1 : 0);
      metrics.reconciliationLastDay.set({ scope }, dayBounds(day).start.getTime() / 1000);
    }
  } catch (error) {
    deps.log?.warn({ err: (error as Error).message }, "reconciliation gauges could not be read");
  }
}

/** The CST days before today's, oldest first: `lookbackDays` of them. */
export function daysToReconcile(now: Date, lookbackDays: number): string[] {
  const today = dayBounds(dayOf(now)).start.getTime();
  return Array.from({ length: lookbackDays }, (_, i) => dayOf(new Date(today - (lookbackDays - i) * 86_400_000)));
}

export type DailyScheduleOptions = { intervalMs: number; lookbackDays: number; now?: () => Date };

/** Every interval, reconciles each scope's recent days that have no final result yet. */
export function startDailyReconciliation(deps: DailyDeps, options: DailyScheduleOptions): Worker {
  // stopping aborts the pass in flight: a bill download can take minutes against a slow gateway, and shutdown must not wait for it
  const stopping = new AbortController();
  const pass = async () => {
    const days = daysToReconcile(options.now?.() ?? new Date(), options.lookbackDays);
    for (const scope of deps.scopes) {
      if (stopping.signal.aborted) return;
      let done: Set<string>;
      try {
        done = await finalDays(deps.db, scope.scope, days);
      } catch (error) {
        deps.log?.warn({ err: (error as Error).message }, "scheduled reconciliation could not read its results; retrying later");
        return;
      }
      for (const day of days) {
        if (stopping.signal.aborted) return;
        if (!done.has(day)) await reconcileScope(deps, scope, day, stopping.signal);
      }
    }
    await refreshGauges(deps);
  };
  const worker = every(options.intervalMs, pass);
  return {
    tick: worker.tick,
    stop: async () => {
      stopping.abort(new Error("the server is stopping"));
      await worker.stop();
    },
  };
}
