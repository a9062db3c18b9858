/**
 * `npm run reconcile -- --date YYYY-MM-DD [--scope alipay|wechat|chain|chain:<id>[:<entryPoint>]]... [--server URL] [--json]`
 *
 * Reconciles one day (China Standard Time): downloads Alipay's and WeChat Pay's bills and checks them against the
 * orders, refunds and ledger; reads each chain's UserOperationEvents and checks settlements, charges and the
 * paymaster's deposit. Prints the report. Safe to repeat: a missing credit is credited once.
 *
 * Without --server it works on the database directly, with the server's own configuration (the same environment:
 * DATABASE_URL or DATA_DIR, the gateways, CHAINS) — with the embedded PGlite stop the server first (PGlite is
 * single-process). With --server it asks a running server (POST /admin/reconciliation/days/:day/run, ADMIN_TOKEN).
 *
 * Exit code: 0 ties out, 1 differences open, 2 not final (a bill not out yet, a chain not settled past the day, a
 * gateway or RPC failing), 3 could not run at all (the server or the database unreachable, the token refused), 64 bad
 * usage.
 */
import { createApp } from "../server/app";
import { loadConfig } from "../server/config/env";
import { reconcileDay } from "../server/reconciliation/daily";
import { dayBounds, dayOf } from "../server/reconciliation/difference";
import { type DayReport, formatDayReport } from "../server/reconciliation/report";
import { readDayReport } from "../server/reconciliation/routes";
import { UsageError, runMain } from "./lib/cli";

const USAGE = "usage: npm run reconcile -- --date YYYY-MM-DD [--scope alipay|wechat|chain|chain:<chainId>[:<entryPoint>]]... [--server URL] [--json]";

type Args = { day: string; scopes?: string[]; server?: string; json: boolean };

export function parseArgs(argv: readonly string[], now = new Date()): Args {
  let day: string | undefined;
  const scopes: string[] = [];
  let server: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    if (arg === "--date") day = value();
    else if (arg === "--scope") scopes.push(value());
    else if (arg === "--server") server = value();
    else if (arg === "--json") json = true;
    else throw new UsageError(`unknown argument ${arg}\n${USAGE}`);
  }
  if (!day) throw new UsageError(`--date is required\n${USAGE}`);
  try {
    dayBounds(day);
  } catch (error) {
    throw new UsageError(`--date: ${(error as Error).message}`);
  }
  if (day >= dayOf(now)) throw new UsageError(`--date ${day} is not over yet in China Standard Time (today there is ${dayOf(now)})`);
  if (server !== undefined && !/^https?:\/\//.test(server)) throw new UsageError(`--server must be an http(s) URL: got ${server}`);
  return { day, ...(scopes.length ? { scopes } : {}), ...(server ? { server } : {}), json };
}

function exitCode(report: DayReport): number {
  if (report.tiesOut) return 0;
  return report.differences.some((d) => !d.resolution && !d.clearedAt) ? 1 : 2;
}

async function viaServer(args: Args, token: string | undefined): Promise<{ report: DayReport; text: string }> {
  if (!token) throw new UsageError("--server needs ADMIN_TOKEN in the environment");
  let response: Response;
  try {
    response = await fetch(`${args.server!.replace(/\/+$/, "")}/admin/reconciliation/days/${args.day}/run`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(args.scopes ? { scopes: args.scopes } : {}),
      signal: AbortSignal.timeout(10 * 60_000),
    });
  } catch (error) {
    throw new Error(`the server at ${args.server} did not answer: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => undefined)) as (DayReport & { text: string; detail?: string }) | undefined;
  if (!response.ok || !body) throw new Error(`the server answered HTTP ${response.status}${body?.detail ? `: ${body.detail}` : ""}`);
  return { report: body, text: body.text };
}

async function direct(args: Args): Promise<{ report: DayReport; text: string }> {
  const config = loadConfig(process.env);
  const service = await createApp({ ...config, logLevel: process.env.LOG_LEVEL ?? "warn" }, { workers: false });
  try {
    const known = args.scopes?.filter((s) => !service.reconciliation.scopes.some((x) => x.scope === s || x.scope.startsWith(`${s}:`)));
    if (known?.length) throw new UsageError(`--scope ${known.join(", ")}: not configured here; there are ${service.reconciliation.scopes.map((s) => s.scope).join(", ") || "none"}`);
    process.stderr.write(`reconciling ${args.day} (${(args.scopes ?? service.reconciliation.scopes.map((s) => s.scope)).join(", ")}) on ${service.db.kind}…\n`);
    await reconcileDay({ db: service.db, scopes: service.reconciliation.scopes, log: service.log }, args.day, { scopes: args.scopes });
    const report = await readDayReport(service.db, args.day, service.reconciliation.scopes.map((s) => s.scope));
    return { report, text: formatDayReport(report) };
  } finally {
    await service.close();
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const { report, text } = args.server ? await viaServer(args, process.env.ADMIN_TOKEN) : await direct(args);
  process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : `${text}\n`);
  return exitCode(report);
}

if (require.main === module) {
  runMain(async () => {
    try {
      return await main();
    } catch (error) {
      process.stderr.write(`${error instanceof UsageError ? "" : "error: "}${(error as Error).message}\n`);
      return error instanceof UsageError ? 64 : 3;
    }
  });
}
