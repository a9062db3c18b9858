/**
 * The composition root: builds the whole service from a typed Config, so the wiring is visible in one place.
 */
import express from "express";
import type { Config } from "./config";
import { type Database, openDatabase } from "./db/database";
import { migrate } from "./db/migrate";
import { requireAdminToken } from "./http/admin";
import { type Logger, createLogger, requestLogging } from "./http/logging";
import { HttpError, problemHandler, sendProblem } from "./http/problem";
import { getBalance, recentEntries } from "./ledger/ledger";
import { createAlipayGateway } from "./payments/alipay";
import type { PaymentGateway, Provider } from "./payments/gateway";
import { type Reconciler, startReconciler } from "./payments/reconcile";
import { withCircuitBreaker } from "./payments/resilientGateway";
import { accountSchema, paymentsRouter } from "./payments/routes";
import { createWechatGateway } from "./payments/wechat";

export type AppOptions = { db?: Database; log?: Logger };

export type App = {
  app: express.Express;
  db: Database;
  gateways: ReadonlyMap<Provider, PaymentGateway>;
  reconciler?: Reconciler;
  log: Logger;
  /** Stops the workers and closes the database (after the HTTP server has stopped accepting). */
  close: () => Promise<void>;
};

export function createGateways(config: Config, log: Logger): Map<Provider, PaymentGateway> {
  const gateways = new Map<Provider, PaymentGateway>();
  const resilience = {
    timeoutMs: config.gatewayTimeoutMs,
    onStateChange: (provider: string, state: string) => log.warn({ provider, state }, "gateway circuit changed state"),
  };
  if (config.alipay) gateways.set("alipay", withCircuitBreaker(createAlipayGateway(config.alipay), resilience));
  if (config.wechat) gateways.set("wechat", withCircuitBreaker(createWechatGateway(config.wechat), resilience));
  return gateways;
}

export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? createLogger(config.logLevel);
  const db = options.db ?? (await openDatabase({ databaseUrl: config.database.url, dataDir: config.database.dataDir, poolSize: config.database.poolSize }));
  const applied = await migrate(db);
  if (applied.length) log.info({ applied }, "database migrated");
  const gateways = createGateways(config, log);

  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", true);
  app.use(requestLogging(log));

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    try {
      await db.query("SELECT 1");
      res.json({ status: "ready", database: db.kind, providers: [...gateways.keys()] });
    } catch {
      sendProblem(res, 503, "not_ready", "the database does not answer");
    }
  });

  app.use(
    paymentsRouter({
      db,
      gateways,
      limits: config.orders,
      requireAdmin: requireAdminToken(config.adminToken),
      callbackAdmission: config.callbacks,
      onCallback: (provider, result, req) =>
        req.log[result.outcome === "credited" || result.outcome === "already_credited" ? "info" : "warn"](
          { provider, outcome: result.outcome, orderId: result.orderId },
          "payment callback",
        ),
    }),
  );

  app.get("/v1/accounts/:address", async (req, res) => {
    const address = accountSchema.parse(req.params.address).toLowerCase();
    const balance = await getBalance(db, address);
    const entries = await recentEntries(db, address, 20);
    res.json({
      account: address,
      availableFen: balance.availableFen.toString(),
      heldFen: balance.heldFen.toString(),
      entries: entries.map((e) => ({
        kind: e.kind,
        availableDeltaFen: e.availableDeltaFen.toString(),
        heldDeltaFen: e.heldDeltaFen.toString(),
        reference: e.reference,
        memo: e.memo,
        createdAt: e.createdAt.toISOString(),
      })),
    });
  });

  app.use((req, _res, next) => next(new HttpError(404, "not_found", `no route ${req.method} ${req.path}`)));
  app.use(problemHandler(log));

  const reconciler = config.reconcile.enabled
    ? startReconciler(
        { db, gateways, log: (event, data) => log.info(data, event) },
        { afterMs: config.reconcile.afterSeconds * 1000, intervalMs: config.reconcile.intervalSeconds * 1000 },
      )
    : undefined;

  return {
    app,
    db,
    gateways,
    reconciler,
    log,
    close: async () => {
      await reconciler?.stop();
      if (!options.db) await db.close();
    },
  };
}
