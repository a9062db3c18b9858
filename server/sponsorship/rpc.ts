/**
 * ERC-7677 paymaster web service at `POST /rpc`: `pm_getPaymasterStubData` and `pm_getPaymasterData`, params
 * `[userOp, entryPoint, chainId, context]`. Every failure is a JSON-RPC error object (HTTP 200, as JSON-RPC
 * clients expect; 413 for an oversized body, 400 for one that cannot be decoded: a bad content-encoding or
 * charset) with a stable code and a message naming the problem — the body is
 * parsed here rather than by express so that even malformed JSON gets a JSON-RPC answer, never a 500.
 *
 * The body must be declared `application/json` (415 otherwise): a cross-origin page may send a "simple"
 * text/plain POST without a CORS preflight, and it must not take holds with a key it found. A notification (a
 * request without an `id`) is never executed — it could not receive its answer, so it must not sign or hold —
 * and gets no answer (HTTP 204 when nothing else is left to answer).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import express, { type Request, type Response, type Router } from "express";
import proxyAddr from "proxy-addr";
import { numberToHex } from "viem";
import type { TrustProxy } from "../http/clientAddress";
import { declaresJson } from "../http/contentType";
import { setPublicCorsHeaders } from "../http/cors";
import { type Logger, requestIdFrom } from "../platform/logger";
import { type Metrics, timeRequest } from "../platform/metrics";
import type { ApiKey } from "./apiKeys";
import { SponsorError, asSponsorError } from "./errors";
import type { PaymasterFields, SponsorService, SponsorshipParams } from "./service";

type JsonRpcId = string | number | null;
type JsonRpcResponse = { jsonrpc: "2.0"; id: JsonRpcId; result?: unknown; error?: { code: number; message: string; data?: unknown } };

/** The most requests one JSON-RPC batch may hold. */
export const MAX_BATCH = 20;

export const RPC_ERRORS = { parse: -32700, invalidRequest: -32600, methodNotFound: -32601, invalidParams: -32602, internal: -32603 } as const;

function rpcError(id: JsonRpcId, code: number, message: string, data?: unknown): JsonRpcResponse {
  return { jsonrpc: "2.0", id, error: data === undefined ? { code, message } : { code, message, data } };
}

/** ERC-7677 results carry quantities as hex. */
export function formatPaymasterFields(fields: PaymasterFields): Record<string, unknown> {
  return {
    paymaster: fields.paymaster,
    paymasterData: fields.paymasterData,
    // EntryPoint v0.9: the signature outside the userOpHash, as alto and viem take it
    ...(fields.paymasterSignature ? { paymasterSignature: fields.paymasterSignature } : {}),
    paymasterVerificationGasLimit: numberToHex(fields.paymasterVerificationGasLimit),
    paymasterPostOpGasLimit: numberToHex(fields.paymasterPostOpGasLimit),
    sponsor: fields.sponsor,
    isFinal: fields.isFinal,
  };
}

/**
 * The API key a request presents: the `x-api-key` header, else one `?apikey=` (a repeated parameter counts as
 * none). Both /rpc stacks and the REST routes read it here.
 */
export function presentedApiKey(headers: IncomingHttpHeaders, url: string): string | undefined {
  const header = headers["x-api-key"];
  if (typeof header === "string" && header) return header.trim();
  const q = url.indexOf("?");
  const values = q === -1 ? [] : new URLSearchParams(url.slice(q + 1)).getAll("apikey");
  return values.length === 1 ? values[0]!.trim() : undefined;
}

export function apiKeyOf(req: Request): string | undefined {
  return presentedApiKey(req.headers, req.originalUrl);
}

export type RpcRouterOptions = {
  sponsor: SponsorService;
  authenticate: (presented: string | undefined) => Promise<ApiKey | undefined>;
  maxBodyBytes: number;
  log: Logger;
};

/** Who sent a request, for rate limits and logs. */
type CallContext = { ip: string | undefined; origin: string | undefined; requestId: string; log: () => Logger };

/**
 * Answers one JSON-RPC body (already read as text): the value to send as JSON. Shared by the express route and
 * the fast path below, so both answer exactly the same.
 */
function rpcAnswerer(options: RpcRouterOptions) {
  async function call(request: unknown, apiKey: ApiKey | undefined | SponsorError, ctx: CallContext): Promise<JsonRpcResponse | undefined> {
    if (typeof request !== "object" || request === null || Array.isArray(request)) return rpcError(null, RPC_ERRORS.invalidRequest, "a JSON-RPC request must be an object");
    // a notification has no id: it cannot receive a signature, so nothing runs for it (JSON-RPC 2.0 §4.1)
    const named = (request as Record<string, unknown>).method;
    if (!("id" in request) && typeof named === "string") return undefined;
    const { jsonrpc, id: rawId, method, params } = request as Record<string, unknown>;
    const id: JsonRpcId = typeof rawId === "string" || typeof rawId === "number" ? rawId : null;
    if (jsonrpc !== "2.0") return rpcError(id, RPC_ERRORS.invalidRequest, 'jsonrpc must be "2.0"');
    if (typeof method !== "string") return rpcError(id, RPC_ERRORS.invalidRequest, "method must be a string");
    if (method !== "pm_getPaymasterStubData" && method !== "pm_getPaymasterData") {
      return rpcError(id, RPC_ERRORS.methodNotFound, `method ${method.slice(0, 64)} is not supported; this endpoint serves pm_getPaymasterStubData and pm_getPaymasterData (ERC-7677)`);
    }
    if (apiKey instanceof SponsorError) return rpcError(id, apiKey.rpcCode, apiKey.message, { reason: apiKey.reason });
    if (!apiKey) return rpcError(id, new SponsorError("unauthorized", "").rpcCode, "a valid API key is required (x-api-key header or ?apikey=)", { reason: "unauthorized" });
    if (!Array.isArray(params) || params.length < 3 || params.length > 4) {
      return rpcError(id, RPC_ERRORS.invalidParams, "params must be [userOp, entryPoint, chainId, context?]");
    }
    const [userOp, entryPoint, chainId, context] = params as unknown[];
    const input: SponsorshipParams = { userOp, entryPoint, chainId, context };
    const caller = { apiKey, ip: ctx.ip, origin: ctx.origin };
    try {
      if (method === "pm_getPaymasterStubData") return { jsonrpc: "2.0", id, result: formatPaymasterFields(await options.sponsor.getStubData(input, caller)) };
      const sponsorship = await options.sponsor.sponsor(input, caller);
      const log = options.log.isLevelEnabled("info") ? ctx.log() : undefined;
      log?.info({ chainId: sponsorship.chainId, userOpHash: sponsorship.userOpHash, holdId: sponsorship.holdId, heldFen: sponsorship.quote.maxChargeFen.toString() }, "sponsored");
      return { jsonrpc: "2.0", id, result: formatPaymasterFields(sponsorship) };
    } catch (error) {
      const refusal = asSponsorError(error);
      if (refusal) return rpcError(id, refusal.rpcCode, refusal.message, { reason: refusal.reason, ...refusal.data });
      ctx.log().error({ err: error, method }, "sponsorship failed");
      return rpcError(id, RPC_ERRORS.internal, `internal error; request id ${ctx.requestId}`);
    }
  }

  /** The answer to send, or undefined when there is none (only notifications). */
  return async (body: string, presentedKey: string | undefined, ctx: CallContext): Promise<unknown> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return rpcError(null, RPC_ERRORS.parse, "the request body is not valid JSON");
    }
    // a key that cannot be looked up (the database is down) is not a wrong key: answer unavailable, not unauthorized
    const apiKey: ApiKey | undefined | SponsorError = await options.authenticate(presentedKey).catch((error: unknown) => {
      ctx.log().warn({ err: error }, "API key lookup failed");
      return asSponsorError(error) ?? new SponsorError("unavailable", "the API key could not be checked; retry shortly");
    });
    if (Array.isArray(parsed)) {
      if (parsed.length === 0 || parsed.length > MAX_BATCH) return rpcError(null, RPC_ERRORS.invalidRequest, `a batch must hold 1 to ${MAX_BATCH} requests`);
      const answers = (await Promise.all(parsed.map((r) => call(r, apiKey, ctx)))).filter((a) => a !== undefined);
      return answers.length > 0 ? answers : undefined;
    }
    return call(parsed, apiKey, ctx);
  };
}

function notJson(contentType: string | undefined): JsonRpcResponse {
  return rpcError(null, RPC_ERRORS.invalidRequest, `the body must be JSON with content-type application/json (got ${JSON.stringify((contentType ?? "none").slice(0, 100))})`);
}

function tooLarge(maxBodyBytes: number): JsonRpcResponse {
  return rpcError(null, RPC_ERRORS.invalidRequest, `the request body is larger than ${maxBodyBytes} bytes`);
}

const RPC_ROUTE = { method: "POST", route: "/rpc" };

export function rpcRouter(options: RpcRouterOptions): Router {
  const router = express.Router();
  const body = express.text({ type: () => true, limit: options.maxBodyBytes });
  const answer = rpcAnswerer(options);

  router.post("/rpc", (req, res, next) => {
    if (!declaresJson(req)) return void res.status(415).json(notJson(req.headers["content-type"]));
    body(req, res, (error?: unknown) => {
      if (!error) return next();
      const e = error as { type?: string };
      if (e.type === "entity.too.large") return void res.status(413).json(tooLarge(options.maxBodyBytes));
      res.status(400).json(rpcError(null, RPC_ERRORS.parse, "the request body could not be read"));
    });
  });

  router.post("/rpc", async (req: Request, res: Response) => {
    // req.ip: express applies the same compiled TRUST_PROXY function the fast path gives proxyAddr
    const value = await answer(typeof req.body === "string" ? req.body : "", apiKeyOf(req), { ip: req.ip, origin: req.headers.origin, requestId: req.id, log: () => req.log });
    if (value === undefined) res.status(204).end();
    else res.json(value);
  });

  return router;
}

/** `POST /rpc` on a server without sponsorship configured: every request answers `unavailable` (503). */
export function rpcOffRouter(message: string): Router {
  const router = express.Router();
  router.post("/rpc", (_req, res) => {
    res.status(503).json(rpcError(null, new SponsorError("unavailable", "").rpcCode, message));
  });
  return router;
}

/**
 * The sponsorship hot path without express: a plain `POST /rpc` with an identity-encoded body is answered
 * straight from the Node request, which saves express' routing, middleware and body-parser work on every call
 * (a large share of a sponsorship's CPU). Anything else — another route, a compressed body, an odd method —
 * returns false and goes to express, where the same answerer runs behind the usual middleware. Both stacks take
 * the request id (`requestIdFrom`), the API key (`presentedApiKey`), the client IP (one compiled TRUST_PROXY
 * function), the body limit and its answer, and the metrics (`timeRequest`) from the same code; the /rpc tests run
 * against both.
 */
export function rpcFastPath(options: RpcRouterOptions & { metrics?: Metrics; trustProxy: TrustProxy }) {
  const answer = rpcAnswerer(options);
  const send = (res: ServerResponse, status: number, value: unknown, requestId: string) => {
    if (value === undefined) {
      setPublicCorsHeaders(res);
      res.writeHead(204, { "x-request-id": requestId });
      res.end();
      return;
    }
    const text = JSON.stringify(value);
    setPublicCorsHeaders(res);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "x-request-id": requestId });
    res.end(text);
  };
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? "";
    if (!(url === "/rpc" || url.startsWith("/rpc?")) || req.method?.toUpperCase() !== "POST") return false;
    const encoding = req.headers["content-encoding"];
    if (encoding !== undefined && encoding.toLowerCase() !== "identity") return false;
    const charset = /charset=([^;\s]+)/i.exec(req.headers["content-type"] ?? "")?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") return false;
    const done = timeRequest(options.metrics);
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    let child: Logger | undefined;
    const ctx: CallContext = { ip: proxyAddr(req, options.trustProxy), origin: req.headers.origin, requestId, log: () => (child ??= options.log.child({ reqId: requestId })) };
    const finish = (status: number, value: unknown) => {
      send(res, status, value, requestId);
      done(RPC_ROUTE, status);
    };
    if (!declaresJson(req)) {
      finish(415, notJson(req.headers["content-type"]));
      req.resume();
      return true;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > options.maxBodyBytes) {
      finish(413, tooLarge(options.maxBodyBytes));
      req.resume();
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > options.maxBodyBytes) {
        refused = true;
        finish(413, tooLarge(options.maxBodyBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", () => {
      if (!refused && !res.headersSent) res.destroy();
      refused = true;
    });
    req.on("end", () => {
      if (refused) return;
      answer(Buffer.concat(chunks).toString("utf8"), presentedApiKey(req.headers, url), ctx).then(
        (value) => finish(value === undefined ? 204 : 200, value),
        (error: unknown) => {
          ctx.log().error({ err: error }, "rpc failed");
          finish(200, rpcError(null, RPC_ERRORS.internal, `internal error; request id ${requestId}`));
        },
      );
    });
    return true;
  };
}
