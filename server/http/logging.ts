import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import pino from "pino";

export type Logger = pino.Logger;

declare module "express-serve-static-core" {
  interface Request {
    id: string;
    log: Logger;
  }
}

/** JSON logs. Secrets never reach them: credentials are not logged, and these paths are redacted anyway. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "fiat-paymaster" },
    redact: { paths: ["req.headers.authorization", "req.headers['x-api-key']", "*.privateKey", "*.apiV3Key", "*.token"], censor: "[redacted]" },
  });
}

/** A request id (the caller's `x-request-id`, or a new one), a child logger, and one log line per request. */
export function requestLogging(log: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.header("x-request-id");
    req.id = incoming && /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    // the child logger is made on first use: on the hot path at level warn most requests never log
    let child: Logger | undefined;
    Object.defineProperty(req, "log", { configurable: true, get: () => (child ??= log.child({ reqId: req.id })) });
    res.setHeader("x-request-id", req.id);
    if (log.isLevelEnabled("info")) {
      const start = process.hrtime.bigint();
      res.on("finish", () => {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        req.log.info({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, "request");
      });
    }
    next();
  };
}
