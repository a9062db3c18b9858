/**
 * The composition root: builds the whole service from a typed Config, so the wiring is visible in one place.
 */
import type { RequestListener } from "node:http";
import express from "express";
import { adminRouter } from "./admin/routes";
import { type ChainRuntime, createChainRuntime } from "./chain/chainRuntime";
import { DepositMonitor } from "./sponsorship/depositMonitor";
import { startSettlementWorker } from "./sponsorship/settlementWorker";
import type { Worker } from "./platform/every";
import { compileTrustProxy } from "./http/clientAddress";
import type { Config } from "./config/env";
import { type Database, openDatabase } from "./platform/db/database";
import { migrate } from "./platform/db/migrate";
import { requireAdminToken } from "./http/adminAuth";
import { requireJsonBody } from "./http/contentType";
import { type Logger, createLogger, requestLogging } from "./platform/logger";
import { type Metrics, createMetrics, httpMetrics } from "./platform/metrics";
import { PUBLIC_CORS_PATHS, publicCors } from "./http/cors";
import { probeRoutes } from "./http/probes";
import { AppError } from "./platform/errors";
import { publicConfigRoutes } from "./http/publicConfig";
import { problemHandler } from "./http/problem";
import { type RateLimiter, createRateLimiter } from "./platform/rateLimit";
import { type Readiness, createReadiness } from "./http/readiness";
import { serveWithShutdown } from "./http/server";
import { webRouter } from "./http/web";
import { accountRoutes } from "./ledger/routes";
import { startCallbackPurge } from "./payments/callbacks";
import { startTableMaintenance } from "./platform/db/maintenance";
import { createAlipayGateway } from "./payments/gateways/alipay";
import type { PaymentGateway, Provider } from "./payments/gateway";
import { type Reconciler, startReconciler } from "./payments/reconcile";
import { type ReconciliationScope, refreshGauges, startDailyReconciliation } from "./reconciliation/daily";
import { reconciliationRouter } from "./reconciliation/routes";
import { reconciliationScopes } from "./reconciliation/scopes";
import { withCircuitBreaker } from "./payments/gateways/circuitBreaker";
import { paymentsRouter } from "./payments/routes";
import { createWechatGateway } from "./payments/gateways/wechat";
import { createApiKey, createApiKeyAuthenticator } from "./sponsorship/apiKeys";
import { createHoldReserver } from "./sponsorship/holds";
import { rpcFastPath, rpcOffRouter, rpcRouter } from "./sponsorship/rpc";
import { AdmissionQueue, YieldToSponsorship } from "./payments/admission";
import { sponsorRoutes } from "./sponsorship/routes";
import { type PaymasterSigner, createLocalSigner } from "./sponsorship/signing/signer";
import { type SponsorService, createSponsorService } from "./sponsorship/service";

export type AppOptions = {
  db?: Database;
  log?: Logger;
  /** A signer other than the local key (a KMS). */
  signer?: PaymasterSigner;
  /** Replaceable clock for the sponsorship validity window (tests). */
  now?: () => Date;
  /** Do not start the background workers (tests drive them by hand). */
  workers?: boolean;
  /** Serve /rpc through express only, without the fast path in front (the /rpc tests run against both). */
  rpcFastPath?: boolean;
  /**
   * One of several server processes (server/cluster.ts): only the first runs the background work (settlement,
   * reconcilers, the callback purge); each watches the deposit. `/metrics` answers with `metricsText`.
   */
  process?: { index: number; metricsText: (metrics: Metrics) => () => Promise<string> };
};

export type App = {
  app: express.Express;
  /** What the HTTP server runs: the /rpc fast path in front of the express app. */
  handler: RequestListener;
  db: Database;
  gateways: ReadonlyMap<Provider, PaymentGateway>;
  reconciler?: Reconciler;
  /** What the daily reconciliation covers (each gateway, each chain and EntryPoint), and its schedule when on. */
  reconciliation: { scopes: readonly ReconciliationScope[]; schedule?: Worker };
  chains: ReadonlyMap<number, ChainRuntime>;
  sponsor?: SponsorService;
  /** Group-commit figures of the hold reserver: items / batches is the mean batch. */
  holdStats?: () => { batches: number; items: number; queued: number; running: number };
  metrics: Metrics;
  rateLimiter: RateLimiter;
  settlement?: Worker;
  depositMonitor: DepositMonitor;
  readiness: Readiness;
  log: Logger;
  /**
   * The first step of a graceful shutdown: readiness fails from now on and every answer carries
   * `Connection: close`, so keep-alive clients reconnect elsewhere while in-flight requests finish.
   */
  beginShutdown: () => void;
  /** Stops the workers and closes the database (after the HTTP server has stopped accepting). */
  close: () => Promise<void>;
};

const SPONSORSHIP_OFF = "sponsorship is not configured on this server (set CHAINS and SIGNER_PRIVATE_KEY)";

/** What the REST sponsorship routes call when sponsorship is not configured: every request is a 503. */
const sponsorshipOff: SponsorService = {
  getStubData: () => Promise.reject(new AppError(503, "sponsorship_off", SPONSORSHIP_OFF)),
  sponsor: () => Promise.reject(new AppError(503, "sponsorship_off", SPONSORSHIP_OFF)),
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
  const db =
    options.db ??
    (await openDatabase({
      databaseUrl: config.database.url,
      dataDir: config.database.dataDir,
      poolSize: config.database.poolSize,
      connectTimeoutMs: config.database.connectTimeoutMs,
      statementTimeoutMs: config.database.statementTimeoutMs,
    }));
  const applied = await migrate(db);
  if (applied.length) log.info({ applied }, "database migrated");
  const gateways = createGateways(config, log);
  const metrics = createMetrics();
  const sp = config.sponsorship;

  const chains = new Map<number, ChainRuntime>(
    sp.chains.map((c) => [
      c.chainId,
      createChainRuntime(c, {
        rpcRequestTimeoutMs: sp.rpcRequestTimeoutMs,
        onFeedError: (error) => log.warn({ chainId: c.chainId, err: error.message }, "price feed unusable; using the configured price"),
      }),
    ]),
  );
  // one limiter (one Redis connection) for every scope: sponsorship, top-up orders, unverifiable callbacks
  const rateLimiter = createRateLimiter({
    limits: {
      ip: sp.rateLimits.perIp,
      apiKey: sp.rateLimits.perApiKey,
      sender: sp.rateLimits.perSender,
      orderIp: config.orderRateLimits.perIp,
      orderAccount: config.orderRateLimits.perAccount,
      notifyIp: config.callbacks.unverifiedPerIpPerMinute,
    },
    redisUrl: sp.redisUrl,
    commandTimeoutMs: sp.redisCommandTimeoutMs,
  });
  const authenticate = createApiKeyAuthenticator(db);
  if (config.bootstrapApiKey) {
    const { apiKey } = await createApiKey(db, { name: "bootstrap", key: config.bootstrapApiKey });
    log.info({ apiKeyId: apiKey.id }, "bootstrap API key installed");
  }
  const signer = options.signer ?? (sp.signerKey ? createLocalSigner(sp.signerKey) : undefined);
  const holds = createHoldReserver(db);
  // the background work runs in one process of several; every process watches the deposit its sponsorships check
  const firstProcess = (options.process?.index ?? 0) === 0;
  const background = options.workers !== false && firstProcess;
  const workers = background && chains.size > 0;
  const depositMonitor = new DepositMonitor({ db, chains: [...chains.values()], log, metrics, intervalMs: sp.depositIntervalMs });
  if (options.workers !== false && chains.size > 0) depositMonitor.start();
  // callbacks are admitted here, and give way while sponsorship requests are served and the event loop runs late
  const callbackAdmission = new AdmissionQueue({ concurrency: config.callbacks.concurrency, maxWaitMs: config.callbacks.maxWaitMs });
  metrics.callbackConcurrency.set(callbackAdmission.limit);
  const yieldToSponsorship =
    config.callbacks.yieldLagMs > 0
      ? new YieldToSponsorship(callbackAdmission, config.callbacks.concurrency, { lagMs: config.callbacks.yieldLagMs, minConcurrency: config.callbacks.minConcurrency }, (limit, lagMs) => {
          metrics.callbackConcurrency.set(limit);
          metrics.eventLoopLag.set(lagMs / 1000);
        })
      : undefined;
  const sponsor =
    signer && chains.size > 0
      ? createSponsorService({
          db,
          chains,
          signer,
          holds,
          rateLimiter,
          metrics,
          sponsorName: config.sponsorName,
          sponsorIcon: config.sponsorIcon,
          validSeconds: sp.validSeconds,
          maxHoldsPerSender: sp.maxHoldsPerSender,
          maxHoldsPerSenderPerApiKey: sp.maxHoldsPerSenderPerApiKey,
          maxHoldsPerSenderPerIp: sp.maxHoldsPerSenderPerIp,
          deposits: depositMonitor,
          recheckTimeoutMs: sp.rpcRequestTimeoutMs,
          now: options.now,
          onRequest: yieldToSponsorship && (() => yieldToSponsorship.sponsorshipSeen()),
        })
      : undefined;
  if (signer) log.info({ signer: signer.address, chains: [...chains.keys()] }, "sponsorship signer ready");
  await Promise.all([...chains.values()].map((chain) => depositMonitor.check(chain)));
  const readiness = createReadiness({ db, chains: [...chains.values()], deposits: depositMonitor });
  const requireAdmin = requireAdminToken(config.adminToken);
  const trustProxy = compileTrustProxy(config.trustProxy);
  if (config.trustProxy === false && !config.sandbox && (chains.size > 0 || gateways.size > 0)) {
    log.warn(
      "TRUST_PROXY is off: per-client limits and hold caps see the connecting address; behind a load balancer that is the balancer for everyone — set TRUST_PROXY to its hop count",
    );
  }

  const app = express();
  app.disable("x-powered-by");
  // API answers are not cached by clients: skip hashing every response body for an ETag
  app.set("etag", false);
  // req.ip feeds the per-IP rate limit: only trust X-Forwarded-For hops the operator declared
  app.set("trust proxy", trustProxy);
  app.use(requestLogging(log));
  app.use(httpMetrics(metrics));
  // pages on other origins may call the public API (before the JSON-only rule, so preflights are answered)
  app.use(PUBLIC_CORS_PATHS, publicCors());
  // money endpoints take JSON only (a cross-origin "simple" POST must not create orders or holds)
  app.use(["/v1/orders", "/v1/refunds", "/v1/sponsorships", "/admin"], requireJsonBody());

  app.use(
    probeRoutes({
      metrics,
      metricsText: options.process?.metricsText(metrics),
      readiness,
      publicUrl: config.publicUrl,
      describe: () => ({ database: db.kind, providers: [...gateways.keys()], sponsorship: sponsor ? "on" : "off" }),
    }),
  );

  app.use(sponsor ? rpcRouter({ sponsor, authenticate, maxBodyBytes: sp.maxBodyBytes, log }) : rpcOffRouter(SPONSORSHIP_OFF));
  app.use(
    sponsorRoutes({
      sponsor: sponsor ?? sponsorshipOff,
      chains,
      db,
      authenticate,
      requireAdmin,
      maxBodyBytes: sp.maxBodyBytes,
    }),
  );
  app.use(adminRouter({ db, chains, deposits: depositMonitor, requireAdmin }));
  const scopes = reconciliationScopes({ db, gateways, chains: chains.values() });
  app.use(reconciliationRouter({ db, scopes, log, metrics, requireAdmin }));

  app.use(
    paymentsRouter({
      db,
      publicUrl: config.publicUrl,
      gateways,
      limits: config.orders,
      requireAdmin,
      callbackAdmission,
      callbackAnswerWithinMs: config.callbacks.answerWithinMs,
      rateLimiter,
      onCallback: (provider, result, req) =>
        req.log[result.outcome === "credited" || result.outcome === "already_credited" || result.outcome.startsWith("refund_") ? "info" : "warn"](
          { provider, outcome: result.outcome, orderId: result.orderId },
          "payment callback",
        ),
    }),
  );

  app.use(accountRoutes({ db }));
  app.use(publicConfigRoutes({ config, gateways, chains }));
  app.use(webRouter());

  app.use((req, _res, next) => next(new AppError(404, "not_found", `no route ${req.method} ${req.path}`)));
  app.use(problemHandler(log));

  const reconciler = config.reconcile.enabled && firstProcess
    ? startReconciler(
        { db, gateways, log },
        { afterMs: config.reconcile.afterSeconds * 1000, intervalMs: config.reconcile.intervalSeconds * 1000 },
      )
    : undefined;

  const fastPath = sponsor && options.rpcFastPath !== false ? rpcFastPath({ sponsor, authenticate, maxBodyBytes: sp.maxBodyBytes, log, metrics, trustProxy }) : undefined;
  const handler = serveWithShutdown(readiness, (req, res) => {
    if (!fastPath?.(req, res)) app(req, res);
  });


  const settlement = workers
    ? startSettlementWorker({ db, chains: [...chains.values()], log, metrics, intervalMs: sp.settleIntervalMs, holdGraceSeconds: sp.holdGraceSeconds })
    : undefined;
  // forged or broken callbacks are kept for the retention period only (one instance at a time does the purge)
  const dailyReconciliation =
    background && config.dailyReconciliation.enabled
      ? startDailyReconciliation(
          { db, scopes, log, metrics },
          { intervalMs: config.dailyReconciliation.intervalSeconds * 1000, lookbackDays: config.dailyReconciliation.lookbackDays },
        )
      : undefined;
  // every instance shows the stored results in its gauges, whichever instance ran the day
  if (!dailyReconciliation) void refreshGauges({ db, scopes, log, metrics });
  const callbackRetention = background ? startCallbackPurge({ db, log, retentionHours: config.callbacks.unverifiedRetentionHours }) : undefined;
  // where no autovacuum keeps the statistics (PGlite, or a server with it off), the server does
  const tableMaintenance = background ? startTableMaintenance({ db, log }) : undefined;

  return {
    app,
    handler,
    db,
    gateways,
    reconciler,
    reconciliation: { scopes, ...(dailyReconciliation ? { schedule: dailyReconciliation } : {}) },
    chains,
    sponsor,
    holdStats: holds.stats,
    metrics,
    rateLimiter,
    settlement,
    depositMonitor,
    readiness,
    log,
    beginShutdown: () => readiness.shutDown(),
    close: async () => {
      readiness.shutDown();
      yieldToSponsorship?.stop();
      await Promise.all([reconciler?.stop(), dailyReconciliation?.stop(), settlement?.stop(), depositMonitor.stop(), callbackRetention?.stop(), tableMaintenance?.stop()]);
      // the hold reserver's last batch commits before the pool goes
      await holds.drain();
      await rateLimiter.close();
      if (!options.db) await db.close();
    },
  };
}
