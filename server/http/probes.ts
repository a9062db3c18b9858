/**
 * The operations endpoints: `/healthz` (the process answers), `/readyz` (it can serve: database, each chain's
 * RPC; 503 `not_ready` otherwise, and from the first moment of a shutdown), `/metrics` (Prometheus) and
 * `/openapi.json`.
 */
import express, { type Router } from "express";
import type { Metrics } from "../platform/metrics";
import { openApiDocument } from "./openapi";
import { sendProblem } from "./problem";
import type { Readiness } from "./readiness";

export type ProbeRoutesOptions = {
  metrics: Metrics;
  /** What `/metrics` answers (default: this process's registry; several processes: all of theirs, server/cluster.ts). */
  metricsText?: () => Promise<string>;
  readiness: Readiness;
  publicUrl: string;
  /** What a ready answer reports besides the chains: the database kind, the providers, whether sponsorship is on. */
  describe: () => { database: string; providers: string[]; sponsorship: "on" | "off" };
};

export function probeRoutes(options: ProbeRoutesOptions): Router {
  const router = express.Router();
  const metricsText = options.metricsText ?? (() => options.metrics.registry.metrics());
  router.get("/metrics", async (_req, res) => {
    let text: string;
    try {
      text = await metricsText();
    } catch (error) {
      return sendProblem(res, 503, "unavailable", `metrics are not available: ${(error as Error).message}`);
    }
    res.type(options.metrics.registry.contentType).send(text);
  });
  router.get("/openapi.json", (_req, res) => {
    res.json(openApiDocument(options.publicUrl));
  });
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const report = await options.readiness.check();
    res.setHeader("cache-control", "no-store");
    if (!report.ready) return sendProblem(res, 503, "not_ready", report.reason, { chains: report.chains });
    res.json({ status: "ready", ...options.describe(), chains: report.chains });
  });
  return router;
}
