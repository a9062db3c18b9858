/**
 * The daily reconciliation's admin API (reconciliation/routes.ts): a day's report, the recent days, a run.
 */
import { DIFFERENCE_KINDS } from "../reconciliation/difference";
import { dateTimeOut, nullableDateTimeOut } from "./primitives";
import { z } from "./zod";

export const daySchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "must be a day as YYYY-MM-DD")
  .openapi({ description: "a calendar day in China Standard Time (UTC+8), the gateways' bill day", example: "2026-11-30" });

export const dayParams = z.object({ day: daySchema });

export const recentDaysQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(90).default(14).describe("how many days, newest first") });

export const runDayRequest = z
  .strictObject({
    scopes: z
      .array(z.string().min(1).max(120))
      .min(1)
      .optional()
      .describe('only these scopes: "alipay", "wechat", "chain" (every chain), "chain:<chainId>", or "chain:<chainId>:<entryPoint>"; default all'),
  })
  .openapi("ReconciliationRunRequest");

const statusSchema = z.enum(["ties_out", "differences", "not_ready", "failed"]);

export const scopeResultSchema = z
  .object({
    scope: z.string().describe('"alipay", "wechat" or "chain:<chainId>:<entryPoint>"'),
    day: daySchema,
    status: statusSchema.describe("ties_out; differences (listed); not_ready (the bill is not out, the chain has not settled past the day); failed (detail: why; the schedule retries)"),
    figures: z.record(z.string(), z.string()).describe("the totals both sides were summed to, as decimal strings (fen, wei, 1/1000 fen for fees, counts)"),
    differences: z.number().int().describe("differences the latest run found"),
    detail: z.string().nullable(),
    runs: z.number().int().describe("how often this day was reconciled for this scope"),
    startedAt: dateTimeOut,
    finishedAt: dateTimeOut,
  })
  .openapi("ReconciliationResult");

export const differenceSchema = z
  .object({
    id: z.string(),
    scope: z.string(),
    day: daySchema,
    kind: z.enum(DIFFERENCE_KINDS as [string, ...string[]]),
    reference: z.string().describe("the order id, refund id, userOpHash or `deposit` it concerns"),
    expected: z.string().optional().describe("what our side says"),
    actual: z.string().optional().describe("what the bill or the chain says"),
    cause: z.string(),
    resolution: z.string().optional().describe("what was done about it (a missing credit credited, a refund recorded as succeeded)"),
    firstSeenAt: dateTimeOut,
    lastSeenAt: dateTimeOut,
    clearedAt: nullableDateTimeOut.describe("a later run no longer found it"),
  })
  .openapi("ReconciliationDifference");

export const dayReportSchema = z
  .object({
    day: daySchema,
    tiesOut: z.boolean().describe("every scope reconciled and no difference open (resolved ones still tie out)"),
    pending: z.array(z.string()).describe("scopes without a final result for the day"),
    results: z.array(scopeResultSchema),
    differences: z.array(differenceSchema),
    text: z.string().describe("the same report as `npm run reconcile` prints"),
  })
  .openapi("ReconciliationDayReport");

export const recentDaysSchema = z.object({ days: z.array(dayReportSchema.omit({ text: true })) }).openapi("ReconciliationDays");
