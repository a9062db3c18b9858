/**
 * The daily run's own rules, on both databases: the schedule reconciles each recent day until its result is final
 * and leaves final days alone; one (scope, day) is never reconciled twice at once (an advisory lock); the gauges
 * come from what is stored.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { createMetrics } from "../platform/metrics";
import { untilAborted } from "./abortable";
import { type ReconciliationScope, daysToReconcile, reconcileDay, startDailyReconciliation } from "./daily";
import type { ScopeResult } from "./difference";
import { resultsOfDay } from "./store";

const tiesOut = (scope: string, day: string): ScopeResult => ({ scope, day, status: "ties_out", figures: { billPayments: "0" }, differences: [] });

it("the days to reconcile are the CST days before today's", () => {
  // 2026-12-03 01:00 in Beijing is still 2026-12-02 in UTC
  assert.deepEqual(daysToReconcile(new Date("2026-12-02T17:00:00Z"), 3), ["2026-11-30", "2026-12-01", "2026-12-02"]);
});

describeWithDatabases("the daily reconciliation run", (getDb) => {
  it("the schedule reconciles each recent day until it is final, and leaves final days alone", async () => {
    const db = getDb();
    const calls: string[] = [];
    let billOut = false;
    const scopes: ReconciliationScope[] = [
      { scope: "sched-a", reconcile: async (day) => (calls.push(`a ${day}`), tiesOut("sched-a", day)) },
      {
        scope: "sched-b",
        reconcile: async (day) => {
          calls.push(`b ${day}`);
          return billOut ? tiesOut("sched-b", day) : { scope: "sched-b", day, status: "not_ready", figures: {}, differences: [], detail: "the bill is not out yet" };
        },
      },
    ];
    const metrics = createMetrics();
    const worker = startDailyReconciliation({ db, scopes, metrics }, { intervalMs: 3_600_000, lookbackDays: 2, now: () => new Date("2026-06-10T04:00:00Z") });
    try {
      // the first pass runs at once when the schedule starts
      for (let i = 0; i < 200 && calls.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(calls.sort(), ["a 2026-06-08", "a 2026-06-09", "b 2026-06-08", "b 2026-06-09"]);
      calls.length = 0;
      billOut = true;
      await worker.tick();
      assert.deepEqual(calls.sort(), ["b 2026-06-08", "b 2026-06-09"], "only the days without a final result run again");
      calls.length = 0;
      await worker.tick();
      assert.deepEqual(calls, [], "final days are left alone");
    } finally {
      await worker.stop();
    }
    const stored = await resultsOfDay(db, "2026-06-09");
    assert.deepEqual(stored.map((r) => [r.scope, r.status, r.runs]), [["sched-a", "ties_out", 1], ["sched-b", "ties_out", 2]]);
    const text = await metrics.registry.metrics();
    assert.match(text, /fiat_paymaster_reconciliation_ties_out\{scope="sched-b"\} 1/);
    assert.match(text, /fiat_paymaster_reconciliation_last_day_timestamp_seconds\{scope="sched-a"\} 1780934400/);
    assert.match(text, /fiat_paymaster_reconciliation_runs_total\{scope="sched-b",status="not_ready"\} 2/);
  });

  it("one (scope, day) is reconciled by one run at a time: a second run meanwhile is busy and changes nothing", async () => {
    const db = getDb();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let calls = 0;
    const scopes: ReconciliationScope[] = [
      {
        scope: "locked",
        reconcile: async (day) => {
          calls++;
          entered();
          await gate;
          return tiesOut("locked", day);
        },
      },
    ];
    const first = reconcileDay({ db, scopes }, "2026-06-01");
    await inside;
    const second = await reconcileDay({ db, scopes }, "2026-06-01");
    assert.equal(second.runs[0]!.status, "busy");
    release();
    assert.equal((await first).runs[0]!.status, "ties_out");
    assert.equal(calls, 1);
    assert.equal((await resultsOfDay(db, "2026-06-01"))[0]!.runs, 1);
  });

  it("stopping the schedule while a scope waits on a gateway that never answers returns at once, and stores nothing for it", async () => {
    const db = getDb();
    let started!: () => void;
    const waiting = new Promise<void>((resolve) => (started = resolve));
    const scopes: ReconciliationScope[] = [
      {
        scope: "hangs",
        // a bill download against a blackholed gateway: never settles
        reconcile: (_day, signal) => {
          started();
          return untilAborted(new Promise<ScopeResult>(() => {}), signal);
        },
      },
    ];
    const worker = startDailyReconciliation({ db, scopes }, { intervalMs: 3_600_000, lookbackDays: 1, now: () => new Date("2026-05-10T04:00:00Z") });
    await waiting;
    const before = Date.now();
    await worker.stop();
    assert.ok(Date.now() - before < 5_000, `stopped in ${Date.now() - before} ms`);
    assert.deepEqual(await resultsOfDay(db, "2026-05-09"), [], "a stopped run is not a failed day");
  });
});
