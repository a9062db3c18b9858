/** The server process: `npm run server`. Configuration from the environment (see README). */
import { type Server, createServer } from "node:http";
import { createApp } from "./app";
import { ConfigError, loadConfig } from "./config";

/** How long in-flight requests get to finish on SIGTERM before their connections are closed. */
const SHUTDOWN_GRACE_MS = 5_000;

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

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    service.log.info({ signal }, "shutting down: finishing in-flight requests");
    // stop accepting, let in-flight requests finish (connections that never sent a request are cut after a
    // grace period), then stop workers and close the pool
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS).unref();
    await closed;
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
