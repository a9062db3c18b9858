/**
 * `GET /v1/accounts/{address}`: an account's quota, public (anyone may look up an address). Amounts, kinds, times
 * and order ids only — never an operator's memo (an adjustment's reason may name a person) or internal references.
 */
import express, { type Router } from "express";
import { INTERNAL, type ApiRegistry, jsonAnswer, problems } from "../http/openapiResponses";
import type { Database } from "../platform/db/database";
import { type AccountView, accountParams, accountSchemaOut } from "../schemas/accounts";
import { accountSchema } from "../schemas/primitives";
import { listHolds } from "../sponsorship/holds";
import { getBalance, recentEntries } from "./ledger";

/** How many open holds and ledger entries the public view shows. */
const RECENT = 20;

export function accountRoutes(deps: { db: Database }): Router {
  const router = express.Router();
  router.get("/v1/accounts/:address", async (req, res) => {
    const address = accountSchema.parse(req.params.address);
    const balance = await getBalance(deps.db, address);
    const [entries, holds] = await Promise.all([recentEntries(deps.db, address, RECENT), listHolds(deps.db, address, { status: "open" })]);
    res.json({
      account: address,
      availableFen: balance.availableFen.toString(),
      heldFen: balance.heldFen.toString(),
      openHolds: holds.map((h) => ({
        id: h.id,
        chainId: h.chainId,
        nonce: h.nonce,
        amountFen: h.amountFen.toString(),
        validUntil: h.validUntil.toISOString(),
        createdAt: h.createdAt.toISOString(),
      })),
      entries: entries.map((e) => ({
        kind: e.kind,
        availableDeltaFen: e.availableDeltaFen.toString(),
        heldDeltaFen: e.heldDeltaFen.toString(),
        ...(e.kind === "topup" ? { orderId: e.reference } : {}),
        createdAt: e.createdAt.toISOString(),
      })),
    } satisfies AccountView);
  });
  return router;
}

/** The OpenAPI path of `accountRoutes`. */
export function registerAccountPaths(registry: ApiRegistry): void {
  registry.registerPath({
    method: "get",
    path: "/v1/accounts/{address}",
    tags: ["payments"],
    operationId: "getAccount",
    summary: "An account's quota",
    description:
      "Its balance in fen, its open holds and its latest ledger entries: amounts, kinds, times and top-up order ids only (anyone may read it; operators' memos and internal references are on the admin API). An account never seen has a zero balance.",
    request: { params: accountParams },
    responses: {
      "200": jsonAnswer("the account", accountSchemaOut),
      ...problems([{ status: 400, type: "invalid_request", when: "not an address, or a wrong EIP-55 checksum" }, INTERNAL]),
    },
  });
}
