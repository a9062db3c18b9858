/** The server process: `npm run server`. Configuration from the environment (see README). */
import { type Server, createServer } from "node:http";
import { createApp } from "./app";
import { ConfigError, loadConfig } from "./config/env";

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
  const service = await createApp(config);
  const server: Server = createServer(service.handler).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => server.once("listening", resolve).once("error", reject));
  service.log.info(
    { url: config.publicUrl, database: service.db.kind, providers: [...service.gateways.keys()], reconcile: config.reconcile.enabled },
    "fiat-paymaster listening",
  );

  let inFlight = 0;
  server.on("request", (_req, res) => {
    inFlight++;
    res.once("close", () => inFlight--);
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // 1. readiness fails and every answer from now on says Connection: close, so load balancers and keep-alive
    //    clients move to other instances
    service.beginShutdown();
    service.log.info({ signal, inFlight, delayMs: config.shutdownDelayMs, drainMs: config.shutdownDrainMs }, "shutting down: readiness fails, finishing in-flight requests");
    // (behind a load balancer: keep serving for SHUTDOWN_DELAY_MS, until its readiness probes have seen the failure)
    if (config.shutdownDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
    // 2. stop accepting; idle keep-alive connections close now, busy ones after their answer; whatever is still
    //    running after the drain time is cut
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const cut = setTimeout(() => {
      service.log.warn({ inFlight }, "drain time over: closing the connections still open");
      server.closeAllConnections();
    }, config.shutdownDrainMs);
    await closed;
    clearTimeout(cut);
    // 3. then the workers (each finishes its pass), the hold reserver's last batch, and only then the pool
    await service.close();
    service.log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`fatal: ${(error as Error).message}\n`);
  process.exit(1);
});
