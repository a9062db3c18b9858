/** The server process: `npm run server`. Configuration from the environment (see README); shutdown in shutdown.ts. */
import { type Server, createServer } from "node:http";
import { createApp } from "./app";
import { shutDownOnSignals } from "./shutdown";
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

  shutDownOnSignals(service, server, { delayMs: config.shutdownDelayMs, drainMs: config.shutdownDrainMs });
}

main().catch((error: unknown) => {
  process.stderr.write(`fatal: ${(error as Error).message}\n`);
  process.exit(1);
});
