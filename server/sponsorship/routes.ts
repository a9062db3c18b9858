/**
 * The sponsorship REST API: `POST /v1/sponsorships` (the same checks and hold as pm_getPaymasterData, with
 * the locked quote in the answer), `GET /v1/quote`, and the admin routes for API keys. Errors are
 * `application/problem+json` whose `type` is the SponsorError reason.
 */
import express, { type RequestHandler, type Router } from "express";
import { numberToHex } from "viem";
import { z } from "zod";
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { AppError } from "../platform/errors";
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

const sponsorshipSchema = z.strictObject({
  userOp: z.record(z.string(), z.unknown()),
  entryPoint: z.string(),
  chainId: z.union([z.string(), z.number()]),
  context: z.unknown().optional(),
});

const quoteSchema = z.object({
  chainId: z.string(),
  gas: z.string().regex(/^\d{1,12}$/, "must be a whole number of gas units"),
});

const apiKeySchema = z.strictObject({ name: z.string().min(1).max(100), policy: z.record(z.string(), z.unknown()).optional() });

export function apiKeyView(key: ApiKey) {
  return { id: key.id, name: key.name, policy: policyToJson(key.policy), createdAt: key.createdAt.toISOString(), revokedAt: key.revokedAt?.toISOString() ?? null };
}

export function sponsorRoutes(options: SponsorRoutesOptions): Router {
  const router = express.Router();
  const json = express.json({ limit: options.maxBodyBytes });

  router.post("/v1/sponsorships", json, async (req, res) => {
    const apiKey = await options.authenticate(apiKeyOf(req));
    if (!apiKey) throw new SponsorError("unauthorized", "a valid API key is required (x-api-key header or ?apikey=)");
    const body = sponsorshipSchema.parse(req.body);
    const s = await options.sponsor.sponsor(body, { apiKey, ip: req.ip });
    req.log.info({ chainId: s.chainId, userOpHash: s.userOpHash, holdId: s.holdId }, "sponsored");
    res.status(201).json({
      paymaster: s.paymaster,
      paymasterData: s.paymasterData,
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
    });
  });

  router.get("/v1/quote", async (req, res) => {
    const query = quoteSchema.parse(req.query);
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
    });
  });

  router.get("/admin/api-keys", options.requireAdmin, async (_req, res) => {
    res.json({ apiKeys: (await listApiKeys(options.db)).map(apiKeyView) });
  });
  router.post("/admin/api-keys", options.requireAdmin, json, async (req, res) => {
    const body = apiKeySchema.parse(req.body);
    const { apiKey, key } = await createApiKey(options.db, body);
    req.log.info({ apiKeyId: apiKey.id }, "API key created");
    res.status(201).json({ ...apiKeyView(apiKey), key, note: "the key is shown once; only its hash is stored" });
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
