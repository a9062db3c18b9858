/**
 * The daily reconciliation's admin API: a day's report (`GET /admin/reconciliation/days/:day`), the recent days
 * (`GET /admin/reconciliation/days`), and a run now (`POST /admin/reconciliation/days/:day/run`, what
 * `npm run reconcile` does). The dashboard's reconciliation page reads these.
 */
import express, { type RequestHandler, type Router } from "express";
import type { z } from "zod";
import { parseInput } from "../http/parseInput";
import { ADMIN, ADMIN_SECURITY, INTERNAL, type ApiRegistry, jsonAnswer, jsonBody, jsonRequest, problems } from "../http/openapiResponses";
import type { Database } from "../platform/db/database";
import { AppError } from "../platform/errors";
import { dayParams, dayReportSchema, recentDaysQuery, recentDaysSchema, runDayRequest } from "../schemas/reconciliation";
import { type DailyDeps, reconcileDay } from "./daily";
import { dayBounds, dayOf } from "./difference";
import { type DayReport, dayReport, formatDayReport } from "./report";
import { type StoredDifference, type StoredResult, differencesOfDay, recentResults, resultsOfDay } from "./store";

export type ReconciliationRouterDeps = DailyDeps & { requireAdmin: RequestHandler };

type ReportView = z.input<typeof dayReportSchema>;

function checkedDay(day: string): string {
  try {
    dayBounds(day);
  } catch (error) {
    throw new AppError(400, "invalid_request", `day: ${(error as Error).message}`);
  }
  if (day >= dayOf(new Date())) throw new AppError(400, "invalid_request", `day: ${day} is not over yet in China Standard Time: reconcile a day before ${dayOf(new Date())}`);
  return day;
}

const resultView = (r: StoredResult) => ({ ...r, startedAt: r.startedAt.toISOString(), finishedAt: r.finishedAt.toISOString() });
const differenceView = (d: StoredDifference) => ({
  ...d,
  firstSeenAt: d.firstSeenAt.toISOString(),
  lastSeenAt: d.lastSeenAt.toISOString(),
  clearedAt: d.clearedAt?.toISOString() ?? null,
});

function reportView(report: DayReport): ReportView {
  return { ...report, results: report.results.map(resultView), differences: report.differences.map(differenceView), text: formatDayReport(report) };
}

/** A day's report as stored: every scope's result, and the differences still open or acted on. */
export async function readDayReport(db: Database, day: string, scopes: readonly string[]): Promise<DayReport> {
  return dayReport(day, await resultsOfDay(db, day), await differencesOfDay(db, day), scopes);
}

export function reconciliationRouter(deps: ReconciliationRouterDeps): Router {
  const router = express.Router();
  const scopes = deps.scopes.map((s) => s.scope);

  router.get("/admin/reconciliation/days", deps.requireAdmin, async (req, res) => {
    const { limit } = parseInput(recentDaysQuery, req.query, "query");
    const results = await recentResults(deps.db, limit);
    const days = [...new Set(results.map((r) => r.day))];
    const reports = await Promise.all(days.map(async (day) => dayReport(day, results.filter((r) => r.day === day), await differencesOfDay(deps.db, day), scopes)));
    res.json({ days: reports.map((r) => ({ ...r, results: r.results.map(resultView), differences: r.differences.map(differenceView) })) } satisfies z.input<typeof recentDaysSchema>);
  });

  router.get("/admin/reconciliation/days/:day", deps.requireAdmin, async (req, res) => {
    const { day } = parseInput(dayParams, req.params, "day");
    res.json(reportView(await readDayReport(deps.db, checkedDay(day), scopes)));
  });

  router.post("/admin/reconciliation/days/:day/run", deps.requireAdmin, express.json({ limit: "16kb" }), async (req, res) => {
    const { day } = parseInput(dayParams, req.params, "day");
    const input = parseInput(runDayRequest, req.body ?? {}, "body");
    const known = input.scopes?.filter((s) => !deps.scopes.some((x) => x.scope === s || x.scope.startsWith(`${s}:`)));
    if (known?.length) throw new AppError(400, "invalid_request", `scopes: ${known.join(", ")} ${known.length === 1 ? "is" : "are"} not reconciled here; there are ${scopes.join(", ") || "none"}`);
    await reconcileDay(deps, checkedDay(day), { scopes: input.scopes });
    req.log.info({ day, scopes: input.scopes ?? "all" }, "reconciliation run by an admin");
    res.json(reportView(await readDayReport(deps.db, day, scopes)));
  });

  return router;
}

const DAY_PROBLEMS = [{ status: 400, type: "invalid_request" as const, when: "the day is not a YYYY-MM-DD calendar day, or is not over yet in China Standard Time" }];

export function registerReconciliationPaths(registry: ApiRegistry): void {
  registry.registerPath({
    method: "get",
    path: "/admin/reconciliation/days",
    tags: ["admin"],
    operationId: "adminListReconciliationDays",
    summary: "Recent days' reconciliation (admin)",
    description: "The latest days reconciled, newest first: each scope's result and the day's differences (open and resolved).",
    security: ADMIN_SECURITY,
    request: { query: recentDaysQuery },
    responses: { "200": jsonAnswer("the days", recentDaysSchema), ...problems([...ADMIN, { status: 400, type: "invalid_request" }, INTERNAL]) },
  });
  registry.registerPath({
    method: "get",
    path: "/admin/reconciliation/days/{day}",
    tags: ["admin"],
    operationId: "adminGetReconciliationDay",
    summary: "A day's reconciliation report (admin)",
    description: "What is stored for the day: every scope's result with its figures, the differences with their causes, and the report as text. A scope not run yet is listed in `pending`.",
    security: ADMIN_SECURITY,
    request: { params: dayParams },
    responses: { "200": jsonAnswer("the report", dayReportSchema), ...problems([...ADMIN, ...DAY_PROBLEMS, INTERNAL]) },
  });
  registry.registerPath({
    method: "post",
    path: "/admin/reconciliation/days/{day}/run",
    tags: ["admin"],
    operationId: "adminRunReconciliationDay",
    summary: "Reconcile a day now (admin)",
    description:
      "Downloads the gateways' bills for the day, reads the chains, and reconciles each scope under its own advisory lock (a scope another instance is running is skipped); then answers the stored report. Safe to repeat: a missing credit is credited once.",
    security: ADMIN_SECURITY,
    request: { params: dayParams, body: jsonRequest(runDayRequest) },
    responses: { "200": jsonAnswer("the report after the run", dayReportSchema), ...problems([...ADMIN, ...DAY_PROBLEMS, ...jsonBody("16 KiB"), INTERNAL]) },
  });
}
