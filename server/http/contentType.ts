/**
 * Money endpoints take JSON only. A browser on any origin may send a "simple" cross-origin POST (text/plain,
 * form-encoded) without a CORS preflight: its answer is unreadable to the page, but the request itself would
 * still create an order or a hold. Requiring `application/json` forces a preflight, which CORS then decides.
 */
import type { IncomingMessage } from "node:http";
import type { RequestHandler } from "express";
import { sendProblem } from "./problem";

/** Whether the request declares a JSON body (`application/json`, or a `+json` type), charset allowed. */
export function declaresJson(req: IncomingMessage): boolean {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || /^application\/[\w.+-]+\+json$/.test(type);
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

/** 415 for a POST, PUT or PATCH with a body that is not declared as JSON. */
export function requireJsonBody(): RequestHandler {
  return (req, res, next) => {
    if (!["POST", "PUT", "PATCH"].includes(req.method) || !hasBody(req) || declaresJson(req)) return next();
    sendProblem(res, 415, "unsupported_media_type", `the body must be JSON with content-type application/json (got ${JSON.stringify((req.headers["content-type"] ?? "none").slice(0, 100))})`);
  };
}
