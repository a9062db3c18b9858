import { randomUUID } from "node:crypto";
import express, { type RequestHandler } from "express";
import pino from "pino";

export type Logger = pino.Logger;

declare module "express-serve-static-core" {
  interface Request {
    id: string;
    log: Logger;
  }
}

/** JSON logs. Secrets never reach them: credentials are not logged, and these paths are redacted anyway. */
/**
 * Standard output, written asynchronously: at the default level every sponsorship logs a line, and a write system
 * call per line was a twentieth of a sponsorship's CPU; lines written while one write is under way go out together.
 * pino flushes what is buffered when the process exits.
 */
const LOG_DESTINATION = pino.destination({ dest: 1, sync: false });

/** The service's logger; `base` adds fields to every line (one of several server processes: its index). */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: "fiat-paymaster", ...base },
    redact: { paths: ["req.headers.authorization", "req.headers['x-api-key']", "*.privateKey", "*.apiV3Key", "*.token"], censor: "[redacted]" },
  }, LOG_DESTINATION);
}

const BASE_LOG = Symbol("baseLog");
const CHILD_LOG = Symbol("childLog");
type LazyLogRequest = express.Request & { [BASE_LOG]?: Logger; [CHILD_LOG]?: Logger };

Object.defineProperty(express.request, "log", {
  configurable: true,
  get(this: LazyLogRequest): Logger {
    return (this[CHILD_LOG] ??= this[BASE_LOG]!.child({ reqId: this.id }));
  },
  set(this: LazyLogRequest, value: Logger) {
    this[CHILD_LOG] = value;
  },
});

/** The request id of a request: the caller's `x-request-id` when it is a sane token, else a new one. */
export function requestIdFrom(incoming: string | string[] | undefined): string {
  return typeof incoming === "string" && /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
}

/** A request id (the caller's `x-request-id`, or a new one), a child logger, and one log line per request. */
export function requestLogging(log: Logger): RequestHandler {
  return (req, res, next) => {
    req.id = requestIdFrom(req.headers["x-request-id"]);
    // the child logger is made on first use (see the getter below): at level warn most requests never log
    (req as LazyLogRequest)[BASE_LOG] = log;
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
