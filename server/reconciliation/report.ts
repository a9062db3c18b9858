/**
 * The reconciliation report as text: what the CLI prints and the README shows. Built from what is stored, so it
 * says the same whichever instance ran the day.
 */
import type { StoredDifference, StoredResult } from "./store";

export type DayReport = {
  day: string;
  /** Every scope reconciled and no difference still open (a resolved one, e.g. a missing credit credited, still counts as tying out). */
  tiesOut: boolean;
  /** Scopes with no final result yet (not ready, failed, never run). */
  pending: string[];
  results: StoredResult[];
  differences: StoredDifference[];
};

/** Puts a day's stored results together; `expectedScopes` are the scopes that should have one. */
export function dayReport(day: string, results: StoredResult[], differences: StoredDifference[], expectedScopes: readonly string[]): DayReport {
  const final = new Set(results.filter((r) => r.status === "ties_out" || r.status === "differences").map((r) => r.scope));
  const pending = [...new Set([...expectedScopes, ...results.map((r) => r.scope)])].filter((s) => !final.has(s)).sort();
  const open = differences.filter((d) => !d.resolution && !d.clearedAt);
  return { day, tiesOut: pending.length === 0 && open.length === 0, pending, results, differences };
}

const FIGURE_LABELS: Record<string, string> = {
  billPayments: "bill payments",
  billPaymentFen: "bill paid fen",
  creditedOrders: "orders credited",
  creditedFen: "credited fen",
  creditedNowFen: "credited by this reconciliation fen",
  billRefunds: "bill refunds",
  billRefundFen: "bill refunded fen",
  succeededRefunds: "refunds succeeded",
  refundedFen: "refunded fen",
  feeMilliFen: "fees (1/1000 fen)",
  fundFlowIncomeFen: "fund-flow income fen",
  fundFlowExpenseFen: "fund-flow expense fen",
};

export function formatDayReport(report: DayReport): string {
  const lines = [`Reconciliation of ${report.day} (China Standard Time)`, ""];
  for (const r of report.results) {
    const state = r.status === "ties_out" ? "ties out" : r.status === "differences" ? `${r.differences} difference${r.differences === 1 ? "" : "s"}` : r.status.replace("_", " ");
    lines.push(`${r.scope}: ${state}${r.detail ? ` (${r.detail})` : ""}`);
    // in the labels' order (a jsonb object comes back in its own key order), others after
    const order = Object.keys(FIGURE_LABELS);
    const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : order.length);
    const figures = Object.entries(r.figures)
      .sort(([a], [b]) => rank(a) - rank(b))
      .map(([k, v]) => `${FIGURE_LABELS[k] ?? k} ${v}`);
    if (figures.length > 0) lines.push(`  ${figures.join(" · ")}`);
    for (const d of report.differences.filter((x) => x.scope === r.scope)) {
      const sides = [d.expected !== undefined ? `ours: ${d.expected}` : "", d.actual !== undefined ? `theirs: ${d.actual}` : ""].filter(Boolean).join("; ");
      lines.push(`  - ${d.kind} ${d.reference}${sides ? ` (${sides})` : ""}`);
      lines.push(`    cause: ${d.cause}`);
      if (d.resolution) lines.push(`    resolved: ${d.resolution}`);
    }
  }
  for (const scope of report.pending.filter((s) => !report.results.some((r) => r.scope === s))) lines.push(`${scope}: not run yet`);
  const open = report.differences.filter((d) => !d.resolution && !d.clearedAt).length;
  const resolved = report.differences.filter((d) => d.resolution).length;
  lines.push("");
  if (report.tiesOut) lines.push(`RESULT: ties out${resolved ? ` (${resolved} difference${resolved === 1 ? "" : "s"} found and resolved)` : ""}`);
  else if (open > 0) lines.push(`RESULT: ${open} open difference${open === 1 ? "" : "s"}${resolved ? `, ${resolved} resolved` : ""}${report.pending.length ? `; not final: ${report.pending.join(", ")}` : ""}`);
  else lines.push(`RESULT: not final yet: ${report.pending.join(", ")}`);
  return lines.join("\n");
}
