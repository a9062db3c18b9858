/**
 * The admin API the operations dashboard reads and acts through: orders with their callbacks and
 * refunds, accounts and their ledger, holds, settlements, chains (deposit, stake, signers, settlement lag),
 * reconciliation runs, time series, and manual adjustments (audited). Every route needs the admin token; refunds
 * are started with `POST /v1/refunds` (payments/routes.ts).
 *
 * Lists answer `{ items, nextBefore }`, newest first: `?limit=` (default 50, at most 500) and `?before=<the
 * previous page's nextBefore>`. Unknown query parameters are refused, so a misspelt filter cannot silently
 * answer everything.
 */
import express, { type RequestHandler, type Router } from "express";
import { z } from "zod";
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { AppError } from "../platform/errors";
import { PROVIDERS, type Provider } from "../payments/gateway";
import { accountSchema } from "../payments/routes";
import { applyAdjustment } from "./adjustments";
import type { DepositMonitor } from "../sponsorship/depositMonitor";
import { readChainStatus } from "./chainStatus";
import {
  callbacksOfOrder,
  findAccount,
  findOrder,
  listAccounts,
  listAdminActions,
  listCallbacks,
  listHolds,
  listLedgerEntries,
  listOrders,
  listReconciliationRuns,
  listRefunds,
  listSettlements,
  refundsOfOrder,
} from "./queries";
import { BUCKET_MS, DEFAULT_RANGE_BUCKETS, MAX_BUCKETS, type StatsBucket, bucketStart, readStats } from "./stats";

export type AdminRouterDeps = {
  db: Database;
  chains: ReadonlyMap<number, ChainRuntime>;
  /** Each chain's deposit health as the deposit monitor last read it. */
  deposits: Pick<DepositMonitor, "health">;
  requireAdmin: RequestHandler;
  /** How long GET /admin/chains waits for a chain's RPC before answering without the fresh reads. */
  chainReadTimeoutMs?: number;
};

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;

const limit = z
  .string()
  .regex(/^\d{1,3}$/, `must be a whole number from 1 to ${MAX_LIMIT}`)
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_LIMIT, `must be a whole number from 1 to ${MAX_LIMIT}`)
  .optional()
  .transform((n) => n ?? DEFAULT_LIMIT);
const serialCursor = z.string().regex(/^\d{1,19}$/, "must be the nextBefore of a previous page (an id)");
const orderId = z.string().regex(/^fp[0-9a-f]{24}$/, "is not an order id");
const refundId = z.string().regex(/^rf[0-9a-f]{24}$/, "is not a refund id");
const holdId = z.string().regex(/^h_[0-9a-f-]{36}$/, "is not a hold id");
const account = accountSchema.transform((a) => a.toLowerCase());
const chainId = z.string().regex(/^[1-9]\d{0,15}$/, "must be a chain id in decimal").transform(Number);
const flag = z.enum(["1", "0", "true", "false"], "must be 1 or 0").transform((v) => v === "1" || v === "true");
const provider = z.enum(PROVIDERS as [Provider, ...Provider[]]);

const ordersQuery = z.strictObject({
  status: z.enum(["created", "pending", "paid", "closed"]).optional(),
  provider: provider.optional(),
  account: account.optional(),
  limit,
  before: orderId.optional(),
});
const orderQuery = z.strictObject({ raw: flag.optional() });
const callbacksQuery = z.strictObject({
  provider: provider.optional(),
  outcome: z.string().regex(/^[a-z_]{1,40}$/, "is not a callback outcome").optional(),
  verified: flag.optional(),
  orderId: orderId.optional(),
  raw: flag.optional(),
  limit,
  before: serialCursor.optional(),
});
const accountsQuery = z.strictObject({ limit, before: account.optional() });
const ledgerQuery = z.strictObject({
  kind: z.enum(["topup", "hold", "release", "charge", "refund", "adjust"]).optional(),
  limit,
  before: serialCursor.optional(),
});
const holdsQuery = z.strictObject({
  status: z.enum(["open", "settled", "released", "merged"]).optional(),
  account: account.optional(),
  chainId: chainId.optional(),
  limit,
  before: holdId.optional(),
});
const settlementsQuery = z.strictObject({
  chainId: chainId.optional(),
  status: z.enum(["settled", "reorged"]).optional(),
  unknown: flag.optional(),
  account: account.optional(),
  limit,
  before: serialCursor.optional(),
});
const refundsQuery = z.strictObject({
  status: z.enum(["requested", "succeeded", "failed"]).optional(),
  account: account.optional(),
  orderId: orderId.optional(),
  limit,
  before: refundId.optional(),
});
const pageQuery = z.strictObject({ limit, before: serialCursor.optional() });
const auditQuery = z.strictObject({ action: z.string().regex(/^[a-z_]{1,40}$/, "is not an action name").optional(), limit, before: serialCursor.optional() });
const statsQuery = z.strictObject({
  bucket: z.enum(["hour", "day"]).optional().transform((b): StatsBucket => b ?? "hour"),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

const adjustmentSchema = z.strictObject({
  account,
  amountFen: z
    .union([z.number().int("must be a whole number of fen").safe(), z.string().regex(/^-?\d{1,15}$/, "must be a whole number of fen")])
    .transform((v) => BigInt(v))
    .refine((v) => v !== 0n, "must not be zero"),
  reason: z.string().trim().min(3, "must be at least 3 characters").max(200, "must be at most 200 characters"),
  idempotencyKey: z
    .string()
    .regex(/^[\w.:-]{1,128}$/, "must be 1–128 characters of letters, digits and _ . : -")
    .optional(),
});

/** Parses a query or a path parameter; the detail names each bad parameter (`where` when the issue has no path). */
function parseInput<T extends z.ZodType>(schema: T, input: unknown, where: string): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new AppError(400, "invalid_request", result.error.issues.map((i) => `${i.path.length ? i.path.map(String).join(".") : where}: ${i.message}`).join("; "));
}

export function adminRouter(deps: AdminRouterDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: "16kb" });
  const { db } = deps;

  router.get("/admin/orders", deps.requireAdmin, async (req, res) => {
    res.json(await listOrders(db, parseInput(ordersQuery, req.query, "query")));
  });

  router.get("/admin/orders/:id", deps.requireAdmin, async (req, res) => {
    const id = parseInput(orderId, req.params.id, "id");
    const { raw = false } = parseInput(orderQuery, req.query, "query");
    const order = await findOrder(db, id);
    if (!order) throw new AppError(404, "not_found", `no order ${id}`);
    const [callbacks, refunds] = await Promise.all([callbacksOfOrder(db, id, raw), refundsOfOrder(db, id)]);
    res.json({ order, callbacks, refunds });
  });

  router.get("/admin/callbacks", deps.requireAdmin, async (req, res) => {
    const { raw = false, ...query } = parseInput(callbacksQuery, req.query, "query");
    res.json(await listCallbacks(db, { ...query, raw }));
  });

  router.get("/admin/accounts", deps.requireAdmin, async (req, res) => {
    res.json(await listAccounts(db, parseInput(accountsQuery, req.query, "query")));
  });

  router.get("/admin/accounts/:address/ledger", deps.requireAdmin, async (req, res) => {
    const address = parseInput(account, req.params.address, "address");
    const query = parseInput(ledgerQuery, req.query, "query");
    const [balance, page] = await Promise.all([findAccount(db, address), listLedgerEntries(db, { ...query, account: address })]);
    res.json({ account: address, availableFen: balance?.availableFen ?? "0", heldFen: balance?.heldFen ?? "0", ...page });
  });

  router.get("/admin/holds", deps.requireAdmin, async (req, res) => {
    res.json(await listHolds(db, parseInput(holdsQuery, req.query, "query")));
  });

  router.get("/admin/settlements", deps.requireAdmin, async (req, res) => {
    res.json(await listSettlements(db, parseInput(settlementsQuery, req.query, "query")));
  });

  router.get("/admin/refunds", deps.requireAdmin, async (req, res) => {
    res.json(await listRefunds(db, parseInput(refundsQuery, req.query, "query")));
  });

  router.get("/admin/reconciliation-runs", deps.requireAdmin, async (req, res) => {
    res.json(await listReconciliationRuns(db, parseInput(pageQuery, req.query, "query")));
  });

  router.get("/admin/audit", deps.requireAdmin, async (req, res) => {
    res.json(await listAdminActions(db, parseInput(auditQuery, req.query, "query")));
  });

  router.post("/admin/adjustments", deps.requireAdmin, json, async (req, res) => {
    const input = adjustmentSchema.parse(req.body ?? {});
    const adjustment = await applyAdjustment(db, input, { requestId: req.id, ip: req.ip });
    req.log.info({ adjustmentId: adjustment.adjustmentId, account: adjustment.account, amountFen: adjustment.amountFen, applied: adjustment.applied }, "manual adjustment");
    res.status(adjustment.applied ? 201 : 200).json(adjustment);
  });

  router.get("/admin/chains", deps.requireAdmin, async (_req, res) => {
    const timeoutMs = deps.chainReadTimeoutMs ?? 5_000;
    res.json({ chains: await Promise.all([...deps.chains.values()].map((chain) => readChainStatus(db, chain, { timeoutMs, deposit: deps.deposits.health(chain.config.chainId) }))) });
  });

  router.get("/admin/stats", deps.requireAdmin, async (req, res) => {
    const query = parseInput(statsQuery, req.query, "query");
    const step = BUCKET_MS[query.bucket];
    // by default up to the end of the current bucket, so the latest point is the bucket in progress
    const until = query.until ? new Date(query.until) : new Date(bucketStart(new Date(), query.bucket).getTime() + step);
    const since = query.since ? new Date(query.since) : new Date(until.getTime() - DEFAULT_RANGE_BUCKETS[query.bucket] * step);
    if (since.getTime() >= until.getTime()) throw new AppError(400, "invalid_request", "since must be before until");
    const buckets = Math.ceil((until.getTime() - bucketStart(since, query.bucket).getTime()) / step);
    if (buckets > MAX_BUCKETS) throw new AppError(400, "invalid_request", `the range spans ${buckets} ${query.bucket}s; at most ${MAX_BUCKETS} per request`);
    res.json(await readStats(db, { bucket: query.bucket, since, until }));
  });

  return router;
}
