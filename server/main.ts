/**
 * The server process: `npm run server`. Configuration from the environment (see README); shutdown in shutdown.ts.
 * With SERVER_PROCESSES > 1 this process is the primary of that many server processes (cluster.ts).
 */
import { type Server, createServer } from "node:http";
import { createApp } from "./app";
import { clusterMetrics, isClusterWorker, processIndex, runPrimary } from "./cluster";
import { shutDownOnSignals } from "./shutdown";
import { type Config, ConfigError, loadConfig } from "./config/env";
import { createLogger } from "./platform/logger";

async function serve(config: Config): Promise<void> {
  const clustered = isClusterWorker();
  const service = await createApp(
    config,
    clustered ? { log: createLogger(config.logLevel, { process: processIndex() }), process: { index: processIndex(), metricsText: (metrics) => clusterMetrics(metrics.registry) } } : {},
  );
  const server: Server = createServer(service.handler).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => server.once("listening", resolve).once("error", reject));
  service.log.info(
    {
      url: config.publicUrl,
      database: service.db.kind,
      providers: [...service.gateways.keys()],
      reconcile: config.reconcile.enabled,
      ...(clustered ? { pid: process.pid } : {}),
    },
    "fiat-paymaster listening",
  );

  shutDownOnSignals(service, server, { delayMs: config.shutdownDelayMs, drainMs: config.shutdownDrainMs });
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (config.serverProcesses > 1 && !isClusterWorker()) return runPrimary(config.serverProcesses, createLogger(config.logLevel));
  await serve(config);
}

main().catch((error: unknown) => {
  process.stderr.write(`fatal: ${(error as Error).message}\n`);
  process.exit(1);
});
