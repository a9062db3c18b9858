/**
 * ERC-7677 paymaster web service at `POST /rpc`: `pm_getPaymasterStubData` and `pm_getPaymasterData`, params
 * `[userOp, entryPoint, chainId, context]`. Every failure is a JSON-RPC error object (HTTP 200, as JSON-RPC
 * clients expect; 413 for an oversized body, 400 for one that cannot be decoded: a bad content-encoding or
 * charset) with a stable code and a message naming the problem — the body is
 * parsed here rather than by express so that even malformed JSON gets a JSON-RPC answer, never a 500.
 */
import express, { type Request, type Response, type Router } from "express";
import { numberToHex } from "viem";
import type { Logger } from "../http/logging";
import type { ApiKey } from "./apiKeys";
import { SponsorError } from "./errors";
import type { PaymasterFields, SponsorService, SponsorshipParams } from "./sponsor";

type JsonRpcId = string | number | null;
type JsonRpcResponse = { jsonrpc: "2.0"; id: JsonRpcId; result?: unknown; error?: { code: number; message: string; data?: unknown } };

const MAX_BATCH = 20;

export const RPC_ERRORS = { parse: -32700, invalidRequest: -32600, methodNotFound: -32601, invalidParams: -32602, internal: -32603 } as const;

function rpcError(id: JsonRpcId, code: number, message: string, data?: unknown): JsonRpcResponse {
  return { jsonrpc: "2.0", id, error: data === undefined ? { code, message } : { code, message, data } };
}

/** ERC-7677 results carry quantities as hex. */
export function formatPaymasterFields(fields: PaymasterFields): Record<string, unknown> {
  return {
    paymaster: fields.paymaster,
    paymasterData: fields.paymasterData,
    paymasterVerificationGasLimit: numberToHex(fields.paymasterVerificationGasLimit),
    paymasterPostOpGasLimit: numberToHex(fields.paymasterPostOpGasLimit),
    sponsor: fields.sponsor,
    isFinal: fields.isFinal,
  };
}

export function apiKeyOf(req: Request): string | undefined {
  const header = req.header("x-api-key");
  if (header) return header.trim();
  const query = req.query.apikey;
  return typeof query === "string" ? query.trim() : undefined;
}

export type RpcRouterOptions = {
  sponsor: SponsorService;
  authenticate: (presented: string | undefined) => Promise<ApiKey | undefined>;
  maxBodyBytes: number;
  log: Logger;
};

export function rpcRouter(options: RpcRouterOptions): Router {
  const router = express.Router();
  const body = express.text({ type: () => true, limit: options.maxBodyBytes });

  async function call(request: unknown, apiKey: ApiKey | undefined, req: Request): Promise<JsonRpcResponse> {
    if (typeof request !== "object" || request === null || Array.isArray(request)) return rpcError(null, RPC_ERRORS.invalidRequest, "a JSON-RPC request must be an object");
    const { jsonrpc, id: rawId, method, params } = request as Record<string, unknown>;
    const id: JsonRpcId = typeof rawId === "string" || typeof rawId === "number" ? rawId : null;
    if (jsonrpc !== "2.0") return rpcError(id, RPC_ERRORS.invalidRequest, 'jsonrpc must be "2.0"');
    if (typeof method !== "string") return rpcError(id, RPC_ERRORS.invalidRequest, "method must be a string");
    if (method !== "pm_getPaymasterStubData" && method !== "pm_getPaymasterData") {
      return rpcError(id, RPC_ERRORS.methodNotFound, `method ${method.slice(0, 64)} is not supported; this endpoint serves pm_getPaymasterStubData and pm_getPaymasterData (ERC-7677)`);
    }
    if (!apiKey) return rpcError(id, new SponsorError("unauthorized", "").rpcCode, "a valid API key is required (x-api-key header or ?apikey=)");
    if (!Array.isArray(params) || params.length < 3 || params.length > 4) {
      return rpcError(id, RPC_ERRORS.invalidParams, "params must be [userOp, entryPoint, chainId, context?]");
    }
    const [userOp, entryPoint, chainId, context] = params as unknown[];
    const input: SponsorshipParams = { userOp, entryPoint, chainId, context };
    const caller = { apiKey, ip: req.ip };
    try {
      if (method === "pm_getPaymasterStubData") return { jsonrpc: "2.0", id, result: formatPaymasterFields(await options.sponsor.getStubData(input, caller)) };
      const sponsorship = await options.sponsor.sponsor(input, caller);
      req.log.info({ chainId: sponsorship.chainId, userOpHash: sponsorship.userOpHash, holdId: sponsorship.holdId, heldFen: sponsorship.quote.maxChargeFen.toString() }, "sponsored");
      return { jsonrpc: "2.0", id, result: formatPaymasterFields(sponsorship) };
    } catch (error) {
      if (error instanceof SponsorError) return rpcError(id, error.rpcCode, error.message, { reason: error.reason, ...error.data });
      req.log.error({ err: error, method }, "sponsorship failed");
      return rpcError(id, RPC_ERRORS.internal, `internal error; request id ${req.id}`);
    }
  }

  router.post("/rpc", (req, res, next) => {
    body(req, res, (error?: unknown) => {
      if (!error) return next();
      const e = error as { type?: string };
      if (e.type === "entity.too.large") return void res.status(413).json(rpcError(null, RPC_ERRORS.invalidRequest, `the request body is larger than ${options.maxBodyBytes} bytes`));
      res.status(400).json(rpcError(null, RPC_ERRORS.parse, "the request body could not be read"));
    });
  });

  router.post("/rpc", async (req: Request, res: Response) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(typeof req.body === "string" ? req.body : "");
    } catch {
      return void res.json(rpcError(null, RPC_ERRORS.parse, "the request body is not valid JSON"));
    }
    const apiKey = await options.authenticate(apiKeyOf(req)).catch((error: unknown) => {
      req.log.error({ err: error }, "API key lookup failed");
      return undefined;
    });
    if (Array.isArray(parsed)) {
      if (parsed.length === 0 || parsed.length > MAX_BATCH) return void res.json(rpcError(null, RPC_ERRORS.invalidRequest, `a batch must hold 1 to ${MAX_BATCH} requests`));
      return void res.json(await Promise.all(parsed.map((r) => call(r, apiKey, req))));
    }
    res.json(await call(parsed, apiKey, req));
  });

  return router;
}
