/**
 * Cross-origin access to the public API: a DApp's front end on its own origin, and web wallets that call our URL
 * from theirs (EIP-5792 `paymasterService`), may call `/rpc`, `/v1/sponsorships`, `/v1/quote`, `/v1/accounts/*`,
 * `/v1/orders*` and `/v1/config` (the public configuration: chains, providers, order limits). Any origin, never with credentials (no cookies: the API key travels in a header or the
 * query), preflights answered. Admin endpoints and the gateways' callbacks get no CORS headers at all, so no page
 * on another origin can read them.
 *
 * The /rpc fast path answers outside express: it sets the same headers on its answers (`setPublicCorsHeaders`);
 * preflights (OPTIONS) always reach express.
 */
import type { ServerResponse } from "node:http";
import cors, { type CorsOptions } from "cors";
import type { RequestHandler } from "express";

/** The paths a page on another origin may call. */
export const PUBLIC_CORS_PATHS = ["/rpc", "/v1/sponsorships", "/v1/quote", "/v1/accounts", "/v1/orders", "/v1/config"];

const EXPOSED_HEADERS = ["x-request-id", "retry-after"];

const PUBLIC_CORS: CorsOptions = {
  origin: "*",
  methods: ["GET", "POST"],
  allowedHeaders: ["content-type", "x-api-key", "x-request-id"],
  exposedHeaders: EXPOSED_HEADERS,
  credentials: false,
  maxAge: 600,
};

export function publicCors(): RequestHandler {
  return cors(PUBLIC_CORS);
}

/** What `cors` sets on an actual (non-preflight) answer, for answers written outside express. */
export function setPublicCorsHeaders(res: ServerResponse): void {
  res.setHeader("access-control-allow-origin", "*");
  res.setHeader("access-control-expose-headers", EXPOSED_HEADERS.join(","));
}
