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
import type { z } from "zod";
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { ADMIN, ADMIN_SECURITY, INTERNAL, NOT_FOUND, type ApiRegistry, type ProblemCase, jsonAnswer, jsonBody, jsonRequest, problems } from "../http/openapiResponses";
import { AppError } from "../platform/errors";
import { parseInput } from "../http/parseInput";
import {
  DEFAULT_LIMIT,
  MAX_LIMIT,
  accountAddressParams,
  accountLedgerSchema,
  accountsQuery,
  adjustmentRequest,
  adjustmentSchema,
  adminAccountPage,
  adminActionPage,
  adminHoldPage,
  adminOrderDetailSchema,
  adminOrderPage,
  auditQuery,
  callbacksQuery,
  chainAdminStatusList,
  holdsQuery,
  ledgerQuery,
  orderIdParams,
  orderQuery,
  ordersQuery,
  pageQuery,
  paymentCallbackPage,
  reconciliationRunPage,
  refundPage,
  refundsQuery,
  settlementPage,
  settlementsQuery,
  statsQuery,
  statsSchema,
} from "../schemas/admin";
import { accountSchema, orderIdSchema } from "../schemas/primitives";
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

export { DEFAULT_LIMIT, MAX_LIMIT };

export type AdminRouterDeps = {
  db: Database;
  chains: ReadonlyMap<number, ChainRuntime>;
  /** Each chain's deposit health as the deposit monitor last read it. */
  deposits: Pick<DepositMonitor, "health">;
  requireAdmin: RequestHandler;
  /** How long GET /admin/chains waits for a chain's RPC before answering without the fresh reads. */
  chainReadTimeoutMs?: number;
};

/** What a route answers, checked against its response schema when it compiles. */
type Answer<T extends z.ZodType> = z.input<T>;

export function adminRouter(deps: AdminRouterDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: "16kb" });
  const { db } = deps;

  router.get("/admin/orders", deps.requireAdmin, async (req, res) => {
    res.json((await listOrders(db, parseInput(ordersQuery, req.query, "query"))) satisfies Answer<typeof adminOrderPage>);
  });

  router.get("/admin/orders/:id", deps.requireAdmin, async (req, res) => {
    const id = parseInput(orderIdSchema, req.params.id, "id");
    const { raw = false } = parseInput(orderQuery, req.query, "query");
    const order = await findOrder(db, id);
    if (!order) throw new AppError(404, "not_found", `no order ${id}`);
    const [callbacks, refunds] = await Promise.all([callbacksOfOrder(db, id, raw), refundsOfOrder(db, id)]);
    res.json({ order, callbacks, refunds } satisfies Answer<typeof adminOrderDetailSchema>);
  });

  router.get("/admin/callbacks", deps.requireAdmin, async (req, res) => {
    const { raw = false, ...query } = parseInput(callbacksQuery, req.query, "query");
    res.json((await listCallbacks(db, { ...query, raw })) satisfies Answer<typeof paymentCallbackPage>);
  });

  router.get("/admin/accounts", deps.requireAdmin, async (req, res) => {
    res.json((await listAccounts(db, parseInput(accountsQuery, req.query, "query"))) satisfies Answer<typeof adminAccountPage>);
  });

  router.get("/admin/accounts/:address/ledger", deps.requireAdmin, async (req, res) => {
    const address = parseInput(accountSchema, req.params.address, "address");
    const query = parseInput(ledgerQuery, req.query, "query");
    const [balance, page] = await Promise.all([findAccount(db, address), listLedgerEntries(db, { ...query, account: address })]);
    res.json({ account: address, availableFen: balance?.availableFen ?? "0", heldFen: balance?.heldFen ?? "0", ...page } satisfies Answer<typeof accountLedgerSchema>);
  });

  router.get("/admin/holds", deps.requireAdmin, async (req, res) => {
    res.json((await listHolds(db, parseInput(holdsQuery, req.query, "query"))) satisfies Answer<typeof adminHoldPage>);
  });

  router.get("/admin/settlements", deps.requireAdmin, async (req, res) => {
    res.json((await listSettlements(db, parseInput(settlementsQuery, req.query, "query"))) satisfies Answer<typeof settlementPage>);
  });

  router.get("/admin/refunds", deps.requireAdmin, async (req, res) => {
    res.json((await listRefunds(db, parseInput(refundsQuery, req.query, "query"))) satisfies Answer<typeof refundPage>);
  });

  router.get("/admin/reconciliation-runs", deps.requireAdmin, async (req, res) => {
    res.json((await listReconciliationRuns(db, parseInput(pageQuery, req.query, "query"))) satisfies Answer<typeof reconciliationRunPage>);
  });

  router.get("/admin/audit", deps.requireAdmin, async (req, res) => {
    res.json((await listAdminActions(db, parseInput(auditQuery, req.query, "query"))) satisfies Answer<typeof adminActionPage>);
  });

  router.post("/admin/adjustments", deps.requireAdmin, json, async (req, res) => {
    const input = adjustmentRequest.parse(req.body ?? {});
    const adjustment = await applyAdjustment(db, input, { requestId: req.id, ip: req.ip });
    req.log.info({ adjustmentId: adjustment.adjustmentId, account: adjustment.account, amountFen: adjustment.amountFen, applied: adjustment.applied }, "manual adjustment");
    res.status(adjustment.applied ? 201 : 200).json(adjustment satisfies Answer<typeof adjustmentSchema>);
  });

  router.get("/admin/chains", deps.requireAdmin, async (_req, res) => {
    const timeoutMs = deps.chainReadTimeoutMs ?? 5_000;
    const targets = [...deps.chains.values()].flatMap((chain) => chain.entryPoints.map((entryPoint) => ({ chain, entryPoint })));
    res.json({
      chains: await Promise.all(
        targets.map(({ chain, entryPoint }) => readChainStatus(db, chain, entryPoint, { timeoutMs, deposit: deps.deposits.health(chain.config.chainId, entryPoint.address) })),
      ),
    } satisfies Answer<typeof chainAdminStatusList>);
  });

  router.get("/admin/stats", deps.requireAdmin, async (req, res) => {
    const query = parseInput(statsQuery, req.query, "query");
    const bucket: StatsBucket = query.bucket;
    const step = BUCKET_MS[bucket];
    // by default up to the end of the current bucket, so the latest point is the bucket in progress
    const until = query.until ? new Date(query.until) : new Date(bucketStart(new Date(), bucket).getTime() + step);
    const since = query.since ? new Date(query.since) : new Date(until.getTime() - DEFAULT_RANGE_BUCKETS[bucket] * step);
    if (since.getTime() >= until.getTime()) throw new AppError(400, "invalid_request", "since must be before until");
    const buckets = Math.ceil((until.getTime() - bucketStart(since, bucket).getTime()) / step);
    if (buckets > MAX_BUCKETS) throw new AppError(400, "invalid_request", `the range spans ${buckets} ${bucket}s; at most ${MAX_BUCKETS} per request`);
    res.json((await readStats(db, { bucket, since, until })) satisfies Answer<typeof statsSchema>);
  });

  return router;
}

// ---- OpenAPI ------------------------------------------------------------------------------------------------

const ADMIN_LIST_PROBLEMS: ProblemCase[] = [
  ...ADMIN,
  { status: 400, type: "invalid_request", when: "a query parameter is unknown, repeated or malformed, or `before` names no row (the detail names it)" },
  INTERNAL,
];

type AdminGet = {
  path: string;
  operationId: string;
  summary: string;
  description: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  ok: { description: string; body: z.ZodType };
  extra?: ProblemCase[];
};

/** A GET of the admin API: the admin token, 401/403, 400 for bad parameters, 500. */
function registerAdminGet(registry: ApiRegistry, g: AdminGet): void {
  registry.registerPath({
    method: "get",
    path: g.path,
    tags: ["admin"],
    operationId: g.operationId,
    summary: `${g.summary} (admin)`,
    description: g.description,
    security: ADMIN_SECURITY,
    request: { params: g.params, query: g.query },
    responses: { "200": jsonAnswer(g.ok.description, g.ok.body), ...problems([...ADMIN_LIST_PROBLEMS, ...(g.extra ?? [])]) },
  });
}

/** The OpenAPI paths of `adminRouter`. */
export function registerAdminPaths(registry: ApiRegistry): void {
  const get = (g: AdminGet) => registerAdminGet(registry, g);
  get({ path: "/admin/orders", operationId: "adminListOrders", summary: "Orders", description: "Top-up orders, newest first.", query: ordersQuery, ok: { description: "a page of orders", body: adminOrderPage } });
  get({
    path: "/admin/orders/{id}",
    operationId: "adminGetOrder",
    summary: "An order with its callbacks and refunds",
    description:
      "The order, every payment callback stored for it with its verification outcome (oldest first), and its refunds. A callback whose signature did not verify is attached to no order: see GET /admin/callbacks.",
    params: orderIdParams,
    query: orderQuery,
    ok: { description: "the order", body: adminOrderDetailSchema },
    extra: [{ ...NOT_FOUND, when: "no such order" }],
  });
  get({
    path: "/admin/callbacks",
    operationId: "adminListCallbacks",
    summary: "Payment callbacks",
    description: "Every payment notification that reached the server, valid or not, newest first: forged and unverifiable ones too (they belong to no order).",
    query: callbacksQuery,
    ok: { description: "a page of callbacks", body: paymentCallbackPage },
  });
  get({ path: "/admin/accounts", operationId: "adminListAccounts", summary: "Accounts", description: "Accounts with their balances, most recently changed first.", query: accountsQuery, ok: { description: "a page of accounts", body: adminAccountPage } });
  get({
    path: "/admin/accounts/{address}/ledger",
    operationId: "adminListLedgerEntries",
    summary: "An account's ledger",
    description: "The account's balance and its ledger entries, newest first. An account never seen has a zero balance and no entries.",
    params: accountAddressParams,
    query: ledgerQuery,
    ok: { description: "the account's balance and a page of its entries", body: accountLedgerSchema },
  });
  get({ path: "/admin/holds", operationId: "adminListHolds", summary: "Holds", description: "Sponsorship holds, newest first.", query: holdsQuery, ok: { description: "a page of holds", body: adminHoldPage } });
  get({
    path: "/admin/settlements",
    operationId: "adminListSettlements",
    summary: "Settlements",
    description: "UserOperationEvents our paymaster paid for, newest first.",
    query: settlementsQuery,
    ok: { description: "a page of settlements", body: settlementPage },
  });
  get({
    path: "/admin/refunds",
    operationId: "adminListRefunds",
    summary: "Refunds",
    description: "Refunds, newest first. A refund is started with POST /v1/refunds.",
    query: refundsQuery,
    ok: { description: "a page of refunds", body: refundPage },
  });
  get({
    path: "/admin/reconciliation-runs",
    operationId: "adminListReconciliationRuns",
    summary: "Reconciliation runs",
    description: "The reconciliation worker's runs that found something to do, newest first.",
    query: pageQuery,
    ok: { description: "a page of runs", body: reconciliationRunPage },
  });
  get({
    path: "/admin/audit",
    operationId: "adminListActions",
    summary: "Audit of admin actions",
    description: "What operators did through the admin API (manual adjustments), newest first, with the request id and IP that did it.",
    query: auditQuery,
    ok: { description: "a page of admin actions", body: adminActionPage },
  });
  registry.registerPath({
    method: "post",
    path: "/admin/adjustments",
    tags: ["admin"],
    operationId: "adminCreateAdjustment",
    summary: "Adjust an account's available quota (admin)",
    description:
      "Credits (positive) or debits (negative) the account's available balance with a reason, in one transaction with its `adjust` ledger entry (memo = the reason) and an audit row (GET /admin/audit) naming the request id and IP. A debit beyond the available balance is refused; held fen cannot be adjusted. The same idempotencyKey applies an adjustment once: a repeat answers 200 with `applied: false`.",
    security: ADMIN_SECURITY,
    request: { body: jsonRequest(adjustmentRequest) },
    responses: {
      "201": jsonAnswer("applied", adjustmentSchema),
      "200": jsonAnswer("already applied by an earlier request with the same idempotencyKey; nothing changed", adjustmentSchema),
      ...problems([
        ...ADMIN,
        { status: 400, type: "invalid_request", when: "the body does not match the schema: no reason, a reason outside 3–200 characters, amountFen zero or not a whole number, a malformed account, an unknown field" },
        ...jsonBody("16 KiB"),
        { status: 409, type: "insufficient_balance", when: "a debit larger than the available balance (`availableFen`, `requestedFen`)" },
        { status: 409, type: "conflict", when: "the idempotencyKey was used for another adjustment (`adjustmentId`)" },
        INTERNAL,
      ]),
    },
  });
  get({
    path: "/admin/chains",
    operationId: "adminListChains",
    summary: "Chains: deposit, stake, signers, settlement lag",
    description:
      "Each configured chain's paymaster status. Chain reads have a deadline of a few seconds; a chain whose RPC does not answer is reported with `rpc.ok: false` and what the database and the deposit monitor know.",
    ok: { description: "the chains, in configuration order", body: chainAdminStatusList },
  });
  get({
    path: "/admin/stats",
    operationId: "adminStats",
    summary: "Time series for charts",
    description: `Top-ups and settled operations per UTC hour or day. By default the last ${DEFAULT_RANGE_BUCKETS.hour} hours or ${DEFAULT_RANGE_BUCKETS.day} days up to the end of the current bucket; at most ${MAX_BUCKETS} buckets. Settlement lag is a present-tense figure: see GET /admin/chains.`,
    query: statsQuery,
    ok: { description: "the series", body: statsSchema },
  });
}
