/**
 * Test support: the real service (createApp) on a real database, talking to the gateway simulator through the
 * real alipay-sdk and wechatpay-node-v3 clients, over HTTP on 127.0.0.1.
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type App, createApp } from "../../server/app";
import { type Config, loadConfig } from "../../server/config/env";
import type { Database } from "../../server/platform/db/database";
import { type DatabaseKind, createTestDatabase } from "./databases";
import type { Provider } from "../../server/payments/gateway";
import type { NotificationFaults } from "../simulator/notifier";
import { type Simulator, startSimulator } from "../simulator/server";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

export type StackOptions = {
  /** CALLBACK_ANSWER_WITHIN_MS (default 4500; the admission wait is half of it when set). */
  callbackAnswerWithinMs?: number;
  timeScale?: number;
  faults?: NotificationFaults;
  wechatSignWith?: "certificate" | "publicKey";
  ttlSeconds?: number;
  alipayCheckout?: "qr" | "page";
  /** The flows each gateway has on (default: the default flow alone, as in production). */
  alipayFlows?: ("qr" | "page" | "wap")[];
  wechatFlows?: ("qr" | "h5" | "jsapi")[];
  /** Sandbox mode: /v1/config then names the simulator's WeixinJSBridge stand-in. */
  sandbox?: boolean;
  poolSize?: number;
  /** Off (0) unless a test is about them: every test creates orders and sends callbacks from 127.0.0.1. */
  unverifiedCallbacksPerIpPerMinute?: number;
  orderRateLimits?: { perIp: number; perAccount: number };
  /** The simulator's business clock (trade, payment and refund times, bill days): tests play past days with it. */
  clock?: () => Date;
  /** X-Forwarded-For hops to believe (tests that need several client IPs). */
  trustProxy?: number;
  /** A migrated database of the caller's (e.g. reached through a fault proxy) instead of a fresh one; the caller closes it. */
  db?: Database;
};

export type Stack = {
  url: string;
  simulator: Simulator;
  service: App;
  db: Database;
  /** The PostgreSQL database's URL (postgres stacks only), for a child process that works on the same data. */
  databaseUrl?: string;
  config: Config;
  /** How many HTTP requests reached each path (callbacks shed with 503 included). */
  requestsByPath: Map<string, number>;
  request: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON answers
    Promise<{ status: number; body: any; text: string; headers: Headers }>;
  close: () => Promise<void>;
};

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

export async function startPaymentsStack(kind: DatabaseKind, options: StackOptions = {}): Promise<Stack> {
  const simulator = await startSimulator({ timeScale: options.timeScale ?? 0.0005, faults: options.faults, wechatSignWith: options.wechatSignWith, clock: options.clock });
  const database = options.db ? { db: options.db, drop: async () => {} } : await createTestDatabase(kind, { poolSize: options.poolSize });
  const http = createServer();
  const port = await listen(http);
  const url = `http://127.0.0.1:${port}`;
  const config: Config = {
    // every setting this stack does not choose keeps its default (sponsorship off: no chains)
    ...loadConfig({}),
    host: "127.0.0.1",
    port,
    publicUrl: url,
    logLevel: "silent",
    database: { ...loadConfig({}).database, dataDir: "", poolSize: 16 },
    adminToken: ADMIN_TOKEN,
    orders: { minFen: 100n, maxFen: 500_000n, ttlSeconds: options.ttlSeconds ?? 900 },
    reconcile: { enabled: false, afterSeconds: 0, intervalSeconds: 3600 },
    dailyReconciliation: { enabled: false, intervalSeconds: 3600, lookbackDays: 3 },
    gatewayTimeoutMs: 5_000,
    callbacks: { concurrency: 16, maxWaitMs: options.callbackAnswerWithinMs ? Math.floor(options.callbackAnswerWithinMs / 2) : 3_000, answerWithinMs: options.callbackAnswerWithinMs ?? 4_500, yieldLagMs: 20, minConcurrency: 4, unverifiedPerIpPerMinute: options.unverifiedCallbacksPerIpPerMinute ?? 0, unverifiedRetentionHours: 168 },
    orderRateLimits: options.orderRateLimits ?? { perIp: 0, perAccount: 0 },
    trustProxy: options.trustProxy ?? false,
    alipay: {
      ...simulator.serverSandbox.alipay!,
      notifyUrl: `${url}/v1/payments/alipay/notify`,
      checkout: options.alipayCheckout ?? "qr",
      ...(options.alipayFlows ? { flows: options.alipayFlows } : {}),
      wapReturnUrl: `${url}/checkout`,
      quitUrl: `${url}/checkout`,
      timeoutMs: 5_000,
    },
    wechat: { ...simulator.serverSandbox.wechat!, notifyUrl: `${url}/v1/payments/wechat/notify`, ...(options.wechatFlows ? { flows: options.wechatFlows } : {}), timeoutMs: 5_000 },
    sandbox: options.sandbox ?? false,
  };
  const service = await createApp(config, { db: database.db });
  const requestsByPath = new Map<string, number>();
  http.on("request", (req) => {
    const path = (req.url ?? "").split("?")[0]!;
    requestsByPath.set(path, (requestsByPath.get(path) ?? 0) + 1);
  });
  http.on("request", service.handler);

  const request: Stack["request"] = async (method, path, body, headers = {}) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed, text, headers: response.headers };
  };

  return {
    url,
    simulator,
    service,
    db: database.db,
    ...("url" in database && database.url ? { databaseUrl: database.url } : {}),
    config,
    requestsByPath,
    request,
    close: async () => {
      await simulator.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await service.close();
      await database.drop();
    },
  };
}

/** What a payer does: open the QR payload's page (Alipay only creates the trade when it is scanned), press Pay. */
export async function payOnPayerPage(provider: Provider, payerUrl: string): Promise<string> {
  const page = await fetch(payerUrl);
  const html = await page.text();
  if (!page.ok) throw new Error(`payer page ${payerUrl} answered ${page.status}: ${html}`);
  const response =
    provider === "alipay"
      ? await fetch(payerUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "action=pay" })
      : await fetch(`${payerUrl}/pay`, { method: "POST" });
  if (!response.ok) throw new Error(`pressing Pay on ${payerUrl} answered ${response.status}: ${await response.text()}`);
  return html;
}

/** Polls until `check` returns true (or fails after `timeoutMs`). */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
