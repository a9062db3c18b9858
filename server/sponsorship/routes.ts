/**
 * The sponsorship REST API: `POST /v1/sponsorships` (the same checks and hold as pm_getPaymasterData, with
 * the locked quote in the answer), `GET /v1/quote`, and the admin routes for API keys. Errors are
 * `application/problem+json` whose `type` is the SponsorError reason.
 */
import express, { type RequestHandler, type Router } from "express";
import { numberToHex } from "viem";
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { AppError } from "../platform/errors";
import {
  ADMIN,
  ADMIN_SECURITY,
  API_KEY_SECURITY,
  type ApiRegistry,
  INTERNAL,
  NOT_FOUND,
  SPONSOR_BODY_LIMIT,
  SPONSOR_REASON_LIST,
  answer,
  jsonAnswer,
  jsonBody,
  jsonRequest,
  problems,
  sponsorCases,
} from "../http/openapiResponses";
import { policySchema } from "../schemas/policy";
import {
  type ApiKeyView,
  type CreatedApiKeyView,
  type QuoteView,
  type SponsorshipView,
  apiKeyListSchema,
  apiKeyParams,
  apiKeyRequest,
  apiKeySchema,
  createdApiKeySchema,
  quoteQuery,
  quoteSchema,
  sponsorshipRequest,
  sponsorshipSchema,
} from "../schemas/sponsorship";
import { type ApiKey, createApiKey, listApiKeys, revokeApiKey, updateApiKeyPolicy } from "./apiKeys";
import { SponsorError } from "./errors";
import { policyToJson } from "./policy";
import { chargeFen } from "./pricing";
import { apiKeyOf } from "./rpc";
import type { SponsorService } from "./service";
import { parseChainId } from "./userOperation";

export type SponsorRoutesOptions = {
  sponsor: SponsorService;
  chains: ReadonlyMap<number, ChainRuntime>;
  db: Database;
  authenticate: (presented: string | undefined) => Promise<ApiKey | undefined>;
  requireAdmin: RequestHandler;
  maxBodyBytes: number;
};

export function apiKeyView(key: ApiKey): ApiKeyView {
  return { id: key.id, name: key.name, policy: policyToJson(key.policy), createdAt: key.createdAt.toISOString(), revokedAt: key.revokedAt?.toISOString() ?? null };
}

export function sponsorRoutes(options: SponsorRoutesOptions): Router {
  const router = express.Router();
  const json = express.json({ limit: options.maxBodyBytes });

  router.post("/v1/sponsorships", json, async (req, res) => {
    const apiKey = await options.authenticate(apiKeyOf(req));
    if (!apiKey) throw new SponsorError("unauthorized", "a valid API key is required (x-api-key header or ?apikey=)");
    const body = sponsorshipRequest.parse(req.body);
    const s = await options.sponsor.sponsor(body, { apiKey, ip: req.ip, origin: req.headers.origin });
    req.log.info({ chainId: s.chainId, userOpHash: s.userOpHash, holdId: s.holdId }, "sponsored");
    res.status(201).json({
      paymaster: s.paymaster,
      paymasterData: s.paymasterData,
      ...(s.paymasterSignature ? { paymasterSignature: s.paymasterSignature } : {}),
      paymasterVerificationGasLimit: numberToHex(s.paymasterVerificationGasLimit),
      paymasterPostOpGasLimit: numberToHex(s.paymasterPostOpGasLimit),
      sponsor: s.sponsor,
      chainId: s.chainId,
      userOpHash: s.userOpHash,
      holdId: s.holdId,
      validUntil: s.validUntil,
      validAfter: s.validAfter,
      quote: {
        fenPerNative: s.quote.fenPerNative.toString(),
        markupBps: s.quote.markupBps,
        maxChargeFen: s.quote.maxChargeFen.toString(),
        heldFen: s.quote.heldFen.toString(),
        availableFen: s.quote.availableFen.toString(),
        validUntil: new Date(s.validUntil * 1000).toISOString(),
      },
    } satisfies SponsorshipView);
  });

  router.get("/v1/quote", async (req, res) => {
    const query = quoteQuery.parse(req.query);
    const chainId = parseChainId(query.chainId);
    const chain = options.chains.get(chainId);
    if (!chain) throw new SponsorError("unsupported_chain", `chain ${chainId} is not sponsored here; supported: ${[...options.chains.keys()].join(", ") || "none"}`);
    let gasPrice: bigint;
    try {
      gasPrice = await chain.gasPrice();
    } catch {
      throw new SponsorError("unavailable", `chain ${chainId}'s RPC does not answer`);
    }
    const quote = await chain.quote();
    const gas = BigInt(query.gas);
    res.json({
      chainId,
      fenPerNative: quote.fenPerNative.toString(),
      markupBps: quote.markupBps,
      gasPrice: gasPrice.toString(),
      gas: gas.toString(),
      costWei: (gas * gasPrice).toString(),
      chargeFen: chargeFen(gas * gasPrice, quote).toString(),
      note: "an estimate at the current gas price; a sponsorship locks its quote and holds the worst case",
    } satisfies QuoteView);
  });

  router.get("/admin/api-keys", options.requireAdmin, async (_req, res) => {
    res.json({ apiKeys: (await listApiKeys(options.db)).map(apiKeyView) });
  });
  router.post("/admin/api-keys", options.requireAdmin, json, async (req, res) => {
    const body = apiKeyRequest.parse(req.body);
    const { apiKey, key } = await createApiKey(options.db, body);
    req.log.info({ apiKeyId: apiKey.id }, "API key created");
    res.status(201).json({ ...apiKeyView(apiKey), key, note: "the key is shown once; only its hash is stored" } satisfies CreatedApiKeyView);
  });
  router.put("/admin/api-keys/:id/policy", options.requireAdmin, json, async (req, res) => {
    const key = await updateApiKeyPolicy(options.db, String(req.params.id), req.body);
    if (!key) throw new AppError(404, "not_found", `no API key ${req.params.id}`);
    res.json(apiKeyView(key));
  });
  router.delete("/admin/api-keys/:id", options.requireAdmin, async (req, res) => {
    if (!(await revokeApiKey(options.db, String(req.params.id)))) throw new AppError(404, "not_found", `no live API key ${req.params.id}`);
    req.log.info({ apiKeyId: req.params.id }, "API key revoked");
    res.status(204).end();
  });

  return router;
}

// ---- OpenAPI ------------------------------------------------------------------------------------------------

/** The OpenAPI paths of `sponsorRoutes`. */
export function registerSponsorshipPaths(registry: ApiRegistry): void {
  registry.registerPath({
    method: "post",
    path: "/v1/sponsorships",
    tags: ["sponsorship"],
    operationId: "createSponsorship",
    summary: "Sponsor a UserOperation (REST)",
    description:
      "The same checks, hold and signature as `pm_getPaymasterData`, answered with the locked quote and the hold. The operation's worst-case cost is held from the sender's quota until it settles on chain (or the signature expires); asking again for the same sender and nonce replaces the hold. The body is read before the API key is checked.",
    security: API_KEY_SECURITY,
    request: { body: jsonRequest(sponsorshipRequest) },
    responses: {
      "201": jsonAnswer("signed: set these paymaster fields on the operation and send it before validUntil", sponsorshipSchema),
      ...problems([
        ...jsonBody(SPONSOR_BODY_LIMIT),
        { status: 400, type: "invalid_request", when: "the body is not { userOp, entryPoint, chainId, context? }" },
        ...sponsorCases(SPONSOR_REASON_LIST),
        { status: 503, type: "sponsorship_off" },
        INTERNAL,
      ]),
    },
  });
  registry.registerPath({
    method: "get",
    path: "/v1/quote",
    tags: ["sponsorship"],
    operationId: "getQuote",
    summary: "What an amount of gas would cost in fen now",
    description: "An estimate at the chain's current gas price and the current fen price; a sponsorship locks its own quote and holds the worst case.",
    request: { query: quoteQuery },
    responses: {
      "200": jsonAnswer("the estimate", quoteSchema),
      ...problems([
        { status: 400, type: "invalid_request", when: "chainId or gas is missing, repeated, or gas is not 1–12 digits" },
        ...sponsorCases(["invalid_params", "unsupported_chain", "unavailable"], { invalid_params: "chainId is not a positive chain id" }),
        INTERNAL,
      ]),
    },
  });
  registry.registerPath({
    method: "get",
    path: "/admin/api-keys",
    tags: ["admin"],
    operationId: "listApiKeys",
    summary: "List API keys (admin)",
    description: "Every key, revoked ones included, oldest first. The secrets cannot be read back.",
    security: ADMIN_SECURITY,
    responses: { "200": jsonAnswer("the keys", apiKeyListSchema), ...problems([...ADMIN, INTERNAL]) },
  });
  registry.registerPath({
    method: "post",
    path: "/admin/api-keys",
    tags: ["admin"],
    operationId: "createApiKey",
    summary: "Create an API key (admin)",
    security: ADMIN_SECURITY,
    request: { body: jsonRequest(apiKeyRequest) },
    responses: {
      "201": jsonAnswer("the key, with its secret shown once", createdApiKeySchema),
      ...problems([...ADMIN, { status: 400, type: "invalid_request", when: "the body does not match the schema, the name is blank, or the policy is invalid (the detail names each bad field)" }, ...jsonBody(SPONSOR_BODY_LIMIT), INTERNAL]),
    },
  });
  registry.registerPath({
    method: "put",
    path: "/admin/api-keys/{id}/policy",
    tags: ["admin"],
    operationId: "updateApiKeyPolicy",
    summary: "Replace an API key's policy (admin)",
    description: "The body is the whole new policy (`{}` lifts every restriction). Takes effect everywhere within a few seconds (the key cache).",
    security: ADMIN_SECURITY,
    request: { params: apiKeyParams, body: jsonRequest(policySchema) },
    responses: {
      "200": jsonAnswer("the key with its new policy", apiKeySchema),
      ...problems([...ADMIN, { status: 400, type: "invalid_request", when: "the policy is invalid or missing (the detail names each bad field)" }, ...jsonBody(SPONSOR_BODY_LIMIT), { ...NOT_FOUND, when: "no such key" }, INTERNAL]),
    },
  });
  registry.registerPath({
    method: "delete",
    path: "/admin/api-keys/{id}",
    tags: ["admin"],
    operationId: "revokeApiKey",
    summary: "Revoke an API key (admin)",
    description: "Takes effect everywhere within a few seconds (the key cache).",
    security: ADMIN_SECURITY,
    request: { params: apiKeyParams },
    responses: { "204": answer("revoked"), ...problems([...ADMIN, { ...NOT_FOUND, when: "no such key, or it is already revoked" }, INTERNAL]) },
  });
}
