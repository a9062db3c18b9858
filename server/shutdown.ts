/**
 * Graceful shutdown of the server process, in the order that loses nothing:
 *   1. readiness fails and every answer from now on says `Connection: close`, so load balancers and keep-alive
 *      clients move to other instances (behind a load balancer, serving goes on for SHUTDOWN_DELAY_MS, until its
 *      readiness probes have seen the failure);
 *   2. the server stops accepting; idle keep-alive connections close now, busy ones after their answer; whatever
 *      is still running after SHUTDOWN_DRAIN_MS is cut;
 *   3. then the workers (each finishes its pass), the hold reserver's last batch, and only then the pool.
 */
import type { Server } from "node:http";
import type { App } from "./app";

export type ShutdownOptions = { delayMs: number; drainMs: number };

/** Counts the requests in flight, for the shutdown log lines. */
export function countInFlight(server: Server): () => number {
  let inFlight = 0;
  server.on("request", (_req, res) => {
    inFlight++;
    res.once("close", () => inFlight--);
  });
  return () => inFlight;
}

/** Installs SIGTERM and SIGINT handlers that shut `service` and `server` down once, then exit 0. */
export function shutDownOnSignals(service: App, server: Server, options: ShutdownOptions): void {
  const inFlight = countInFlight(server);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    service.beginShutdown();
    service.log.info({ signal, inFlight: inFlight(), delayMs: options.delayMs, drainMs: options.drainMs }, "shutting down: readiness fails, finishing in-flight requests");
    if (options.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const cut = setTimeout(() => {
      service.log.warn({ inFlight: inFlight() }, "drain time over: closing the connections still open");
      server.closeAllConnections();
    }, options.drainMs);
    await closed;
    clearTimeout(cut);
    await service.close();
    service.log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}
