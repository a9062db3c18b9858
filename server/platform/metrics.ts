/**
 * Prometheus metrics (`GET /metrics`). One registry per app, so tests that build several apps in one process
 * do not collide. Names follow Prometheus conventions; amounts in fen are counters of integers. With several
 * server processes (server/cluster.ts) counters and histograms are summed over them; a gauge of shared state
 * (the deposit, open holds, reconciliation) is not: each says how its processes' figures combine.
 */
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "fiat_paymaster_" });
  const metrics = {
    registry,
    httpRequests: new Counter({ name: "fiat_paymaster_http_requests_total", help: "HTTP requests by route and status", labelNames: ["method", "route", "status"], registers: [registry] }),
    httpDuration: new Histogram({
      name: "fiat_paymaster_http_request_duration_seconds",
      help: "HTTP request latency by route",
      labelNames: ["method", "route"],
      // 5 s: WeChat Pay's wait for a callback's answer
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    sponsorships: new Counter({ name: "fiat_paymaster_sponsorships_total", help: "Sponsorship answers by method and outcome (signed, stub, or the refusal reason)", labelNames: ["chain", "entry_point", "method", "outcome"], registers: [registry] }),
    heldFen: new Counter({ name: "fiat_paymaster_held_fen_total", help: "Fen reserved by holds", labelNames: ["chain", "entry_point"], registers: [registry] }),
    chargedFen: new Counter({ name: "fiat_paymaster_charged_fen_total", help: "Fen charged for settled operations", labelNames: ["chain"], registers: [registry] }),
    releasedFen: new Counter({ name: "fiat_paymaster_released_fen_total", help: "Fen released from holds (settlement rest and expiry)", labelNames: ["chain", "why"], registers: [registry] }),
    settlements: new Counter({
      name: "fiat_paymaster_settlements_total",
      help: "UserOperationEvents settled, by result (success, reverted, late: after its own hold was closed)",
      labelNames: ["chain", "result"],
      registers: [registry],
    }),
    shortfallFen: new Counter({
      name: "fiat_paymaster_settlement_shortfall_fen_total",
      help: "Fen of landed operations that neither a hold nor the account's available quota covered (alert): the paymaster's deposit paid them",
      labelNames: ["chain"],
      registers: [registry],
    }),
    settlementFailures: new Counter({
      name: "fiat_paymaster_settlement_failures_total",
      help: "Events (settle) or reorg undos (undo) that failed on their own and were recorded in settlement_failures (alert)",
      labelNames: ["chain", "kind"],
      registers: [registry],
    }),
    settlementPassErrors: new Counter({ name: "fiat_paymaster_settlement_pass_errors_total", help: "Settlement passes that failed (an RPC or database outage); nothing is released meanwhile", labelNames: ["chain"], registers: [registry] }),
    settlementCursorAgeSeconds: new Gauge({
      name: "fiat_paymaster_settlement_cursor_age_seconds",
      help: "Wall-clock age of the newest block settlement has read: holds expire only on chain time this far behind",
      labelNames: ["chain"],
      aggregator: "max", registers: [registry],
    }),
    unknownOperations: new Counter({ name: "fiat_paymaster_unknown_operations_total", help: "Operations our paymaster paid for with no hold (alert)", labelNames: ["chain"], registers: [registry] }),
    reorgs: new Counter({ name: "fiat_paymaster_reorgs_total", help: "Settlements undone by a reorg", labelNames: ["chain"], registers: [registry] }),
    settlementLagBlocks: new Gauge({ name: "fiat_paymaster_settlement_lag_blocks", help: "Chain head minus the settlement cursor", labelNames: ["chain"], aggregator: "max", registers: [registry] }),
    depositWei: new Gauge({ name: "fiat_paymaster_deposit_wei", help: "The paymaster's EntryPoint deposit", labelNames: ["chain", "entry_point"], aggregator: "max", registers: [registry] }),
    outstandingWei: new Gauge({ name: "fiat_paymaster_outstanding_holds_wei", help: "Worst-case cost of open holds", labelNames: ["chain", "entry_point"], aggregator: "max", registers: [registry] }),
    depositHealthy: new Gauge({ name: "fiat_paymaster_deposit_healthy", help: "1 while the deposit covers open holds plus the threshold; 0 refuses sponsorship", labelNames: ["chain", "entry_point"], aggregator: "min", registers: [registry] }),
    reconciliationDifferences: new Gauge({
      name: "fiat_paymaster_reconciliation_differences",
      help: "Daily reconciliation differences still open (found by their day's latest run, not acted on), by scope and kind (alert above 0)",
      labelNames: ["scope", "kind"],
      aggregator: "max", registers: [registry],
    }),
    reconciliationTiesOut: new Gauge({ name: "fiat_paymaster_reconciliation_ties_out", help: "1 when the scope's latest reconciled day tied out, 0 when it has differences", labelNames: ["scope"], aggregator: "min", registers: [registry] }),
    reconciliationLastDay: new Gauge({
      name: "fiat_paymaster_reconciliation_last_day_timestamp_seconds",
      help: "Start (China Standard Time midnight, as Unix time) of the latest day the scope was reconciled: alert when it falls behind",
      labelNames: ["scope"],
      aggregator: "max", registers: [registry],
    }),
    reconciliationRuns: new Counter({ name: "fiat_paymaster_reconciliation_runs_total", help: "Daily reconciliation runs by scope and status (ties_out, differences, not_ready, failed, busy)", labelNames: ["scope", "status"], registers: [registry] }),
    callbackConcurrency: new Gauge({
      name: "fiat_paymaster_callback_concurrency_limit",
      help: "Payment callbacks this process processes at once now (CALLBACK_CONCURRENCY, less while they yield to sponsorship)",
      registers: [registry],
    }),
    eventLoopLag: new Gauge({
      name: "fiat_paymaster_event_loop_lag_p99_seconds",
      help: "The event loop's p99 delay over the last 200 ms, which callback admission reacts to",
      aggregator: "max",
      registers: [registry],
    }),
    openHolds: new Gauge({ name: "fiat_paymaster_open_holds", help: "Open holds", labelNames: ["chain", "entry_point"], aggregator: "max", registers: [registry] }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Starts timing a request; the returned function records its duration and counts it, under its route pattern. */
export function timeRequest(metrics: Metrics | undefined): (labels: { method: string; route: string }, status: number) => void {
  const end = metrics?.httpDuration.startTimer();
  return (labels, status) => {
    end?.(labels);
    metrics?.httpRequests.inc({ ...labels, status: String(status) });
  };
}

/** Counts and times each request under its route pattern (not the raw path: addresses would explode labels). */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const done = timeRequest(metrics);
    res.on("finish", () => {
      const route = (req.route?.path as string | undefined) ?? (res.statusCode === 404 ? "unmatched" : req.baseUrl || "other");
      done({ method: req.method, route: `${req.baseUrl}${route === req.baseUrl ? "" : route}` }, res.statusCode);
    });
    next();
  };
}
