/**
 * Errors become RFC 9457 `application/problem+json` answers with a stable `type` and a message that names the
 * problem. Domains throw `AppError`s (server/platform/errors.ts), which carry their own status and type, so this
 * file knows no domain. Unknown errors are logged with their stack and answered with a bare 500 that reveals nothing.
 */
import type { ErrorRequestHandler, Response } from "express";
import { ZodError } from "zod";
import { isDatabaseUnavailable } from "../platform/db/database";
import { AppError } from "../platform/errors";
import type { Logger } from "../platform/logger";

export function sendProblem(res: Response, status: number, type: string, detail: string, extra: Record<string, unknown> = {}): void {
  res.status(status).type("application/problem+json").send(JSON.stringify({ type, title: titles[status] ?? "Error", status, detail, ...extra }));
}

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

function describeZod(error: ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "body"}: ${i.message}`).join("; ");
}

export function problemHandler(log: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (res.headersSent) return;
    if (error instanceof AppError) {
      if (error.retryAfterSeconds !== undefined) res.setHeader("retry-after", String(error.retryAfterSeconds));
      return sendProblem(res, error.status, error.type, error.detail, error.details);
    }
    if (error instanceof ZodError) return sendProblem(res, 400, "invalid_request", describeZod(error));
    if (isDatabaseUnavailable(error)) {
      res.setHeader("retry-after", "5");
      return sendProblem(res, 503, "unavailable", "the database is unavailable; retry shortly");
    }
    // body-parser's errors carry a status and a type
    const e = error as { status?: number; type?: string; message?: string };
    if (e?.type === "entity.parse.failed") return sendProblem(res, 400, "invalid_json", "the body is not valid JSON");
    if (e?.type === "entity.too.large") return sendProblem(res, 413, "too_large", "the body is too large");
    if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) return sendProblem(res, e.status, "invalid_request", e.message ?? "bad request");
    log.error({ err: error, reqId: req.id }, "unhandled error");
    sendProblem(res, 500, "internal", "internal error; the request id identifies it in the logs", { requestId: req.id });
  };
}
