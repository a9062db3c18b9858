/**
 * The admin API (admin/routes.ts): the query parameters of its lists and what they answer. Lists answer
 * `{ items, nextBefore }`, newest first; unknown query parameters are refused.
 */
import { ENTRY_POINT_VERSIONS } from "../chain/addresses";
import type { CallbackOutcome } from "../payments/callbacks";
import { ledgerKindSchema } from "./accounts";
import { orderStatusSchema, providerSchema, refundSchema, refundStatusSchema } from "./payments";
import {
  accountSchema,
  addressOut,
  bytes32Out,
  chainIdParam,
  dateTimeOut,
  decimalOut,
  fenOut,
  holdIdSchema,
  idempotencyKeySchema,
  lowerAddressOut,
  nullableDateTimeOut,
  nullableFenOut,
  nullableSignedWeiOut,
  nullableWeiOut,
  orderIdSchema,
  refundIdSchema,
  signedFenOut,
  signedFenSchema,
  weiOut,
} from "./primitives";
import { z } from "./zod";

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;

// ---- Query parameters -------------------------------------------------------------------------------------

const limit = z
  .string()
  .regex(/^\d{1,3}$/, `must be a whole number from 1 to ${MAX_LIMIT}`)
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_LIMIT, `must be a whole number from 1 to ${MAX_LIMIT}`)
  .optional()
  .transform((n) => n ?? DEFAULT_LIMIT)
  .openapi({ type: "integer", minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, param: { description: `items per page, ${DEFAULT_LIMIT} by default` } });
const serialCursor = z.string().regex(/^\d{1,19}$/, "must be the nextBefore of a previous page (an id)");
const before = <T extends z.ZodType>(schema: T, what: string) => schema.optional().openapi({ param: { description: `the previous page's nextBefore (${what})` } });
const accountFilter = (what: string) => accountSchema.optional().openapi({ param: { description: `only ${what} of this account (lower-case, or EIP-55 checksummed)` } });
const flag = (description: string) =>
  z
    .enum(["1", "0", "true", "false"], "must be 1 or 0")
    .transform((v) => v === "1" || v === "true")
    .optional()
    .openapi({ param: { description } });
const filter = <T extends z.ZodType>(schema: T, description: string) => schema.optional().openapi({ param: { description } });

export const holdStatusSchema = z.enum(["open", "settled", "released", "merged"]);
export const settlementStatusSchema = z.enum(["settled", "reorged"]);

/** The outcomes a stored payment callback records, whether the gateway was acknowledged, and when. */
export const CALLBACK_OUTCOMES: Record<CallbackOutcome, { acknowledged: boolean; when: string }> = {
  credited: { acknowledged: true, when: "the order is now paid and its account credited" },
  already_credited: { acknowledged: true, when: "a repeat of a notification already credited" },
  not_paid: { acknowledged: true, when: "authentic, but the trade is not paid (nothing to do)" },
  not_a_payment: { acknowledged: true, when: "authentic, but neither a payment nor a refund (nothing to do)" },
  refund_updated: { acknowledged: true, when: "a refund notification: the refund became what the gateway says (succeeded, failed, or still pending as ABNORMAL); nothing credited" },
  refund_already_final: { acknowledged: true, when: "a refund notification for a refund already succeeded or failed" },
  refund_unknown: { acknowledged: true, when: "a refund notification for a refund we never asked for (e.g. from the merchant console): kept; the daily reconciliation lists it" },
  bad_request: { acknowledged: false, when: "not parseable, or fields missing" },
  bad_signature: { acknowledged: false, when: "the signature is missing or wrong" },
  unknown_certificate: { acknowledged: false, when: "signed with a WeChat Pay certificate serial we do not hold" },
  stale_timestamp: { acknowledged: false, when: "the WeChat Pay timestamp is more than 5 minutes off" },
  decrypt_failed: { acknowledged: false, when: "the WeChat Pay resource does not decrypt with our APIv3 key" },
  merchant_mismatch: { acknowledged: false, when: "the app id / merchant id is not ours" },
  unknown_order: { acknowledged: false, when: "no such order for this provider" },
  amount_mismatch: { acknowledged: false, when: "the amount paid differs from the order's" },
};
const callbackOutcomeSchema = z.enum(Object.keys(CALLBACK_OUTCOMES) as [keyof typeof CALLBACK_OUTCOMES, ...(keyof typeof CALLBACK_OUTCOMES)[]]);

export const ordersQuery = z.strictObject({
  status: filter(orderStatusSchema, "only orders in this state"),
  provider: filter(providerSchema, "only orders of this gateway"),
  account: accountFilter("orders"),
  limit,
  before: before(orderIdSchema, "an order id"),
});
export const orderIdParams = z.object({ id: orderIdSchema.openapi({ param: { description: "the order id" } }) });
export const orderQuery = z.strictObject({ raw: flag("1: include each callback's payload, headers and raw body") });
export const callbacksQuery = z.strictObject({
  provider: filter(providerSchema, "only this gateway's"),
  outcome: filter(z.string().regex(/^[a-z_]{1,40}$/, "is not a callback outcome").openapi({ enum: callbackOutcomeSchema.options }), "only callbacks with this outcome"),
  verified: flag("1: only those whose signature verified; 0: only those whose did not"),
  orderId: filter(orderIdSchema, "only callbacks about this order"),
  raw: flag("1: include payload, headers and raw body"),
  limit,
  before: before(serialCursor, "a callback id"),
});
export const accountsQuery = z.strictObject({ limit, before: before(accountSchema, "an account address") });
export const accountAddressParams = z.object({ address: accountSchema.openapi({ param: { description: "the account: lower-case, or with a correct EIP-55 checksum" } }) });
export const ledgerQuery = z.strictObject({
  kind: filter(ledgerKindSchema, "only entries of this kind"),
  limit,
  before: before(serialCursor, "an entry id"),
});
export const holdsQuery = z.strictObject({
  status: filter(holdStatusSchema, "only holds in this state"),
  account: accountFilter("holds"),
  chainId: filter(chainIdParam, "only holds on this chain"),
  limit,
  before: before(holdIdSchema, "a hold id"),
});
export const settlementsQuery = z.strictObject({
  chainId: filter(chainIdParam, "only this chain's"),
  status: filter(settlementStatusSchema, "only settlements in this state"),
  unknown: flag("1: only operations we never signed (no hold); 0: only ours"),
  account: accountFilter("operations"),
  limit,
  before: before(serialCursor, "a settlement id"),
});
export const refundsQuery = z.strictObject({
  status: filter(refundStatusSchema, "only refunds in this state"),
  account: accountFilter("refunds"),
  orderId: filter(orderIdSchema, "only this order's"),
  limit,
  before: before(refundIdSchema, "a refund id"),
});
export const pageQuery = z.strictObject({ limit, before: before(serialCursor, "a run id") });
export const auditQuery = z.strictObject({
  action: filter(z.string().regex(/^[a-z_]{1,40}$/, "is not an action name"), "only this action"),
  limit,
  before: before(serialCursor, "an action id"),
});
export const statsQuery = z.strictObject({
  bucket: z
    .enum(["hour", "day"])
    .optional()
    .transform((b) => b ?? "hour")
    .openapi({ param: { description: "the bucket size" } }),
  since: filter(z.iso.datetime({ offset: true }), "the range's start (the bucket holding it is the first), ISO 8601 with a time zone"),
  until: filter(z.iso.datetime({ offset: true }), "the range's end, exclusive (default: the end of the current bucket)"),
});

export const adjustmentRequest = z
  .strictObject({
    account: accountSchema,
    amountFen: signedFenSchema
      .refine((v) => v !== 0n, "must not be zero")
      .describe("signed whole fen, not zero: positive credits the available balance, negative debits it (at most what is available)"),
    reason: z.string().trim().min(3, "must be at least 3 characters").max(200, "must be at most 200 characters").describe("why (3–200 characters once trimmed): the ledger entry's memo and the audit row keep it"),
    idempotencyKey: idempotencyKeySchema.optional(),
  })
  .openapi("AdjustmentRequest");

// ---- Answers ----------------------------------------------------------------------------------------------

/** A page of a list: `items`, and the cursor of the next page. */
const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextBefore: z.string().nullable().describe("send as `before` for the next page; null on the last page") });
const serialId = (what: string) => decimalOut.describe(`the ${what}'s id (a serial number, as a string): a page cursor`);

export const adminOrderSchema = z
  .object({
    id: orderIdSchema,
    account: lowerAddressOut,
    provider: providerSchema,
    amountFen: fenOut,
    status: orderStatusSchema,
    refundedFen: fenOut.describe("refunded or being refunded"),
    gatewayTradeNo: z.string().nullable().describe("the gateway's trade number (Alipay trade_no, WeChat Pay transaction_id), once paid"),
    idempotencyKey: z.string().nullable(),
    qrCode: z.string().nullable().describe("the QR code payload shown to the payer"),
    payUrl: z.string().nullable().describe("the payment page, for page checkout"),
    expiresAt: dateTimeOut,
    paidAt: nullableDateTimeOut,
    closedAt: nullableDateTimeOut.describe("when it was closed unpaid"),
    createdAt: dateTimeOut,
    updatedAt: dateTimeOut,
  })
  .openapi("AdminOrder", { description: "An order as the operators see it: the public fields and the gateway's trade number, the idempotency key, and when it closed." });

export const paymentCallbackSchema = z
  .object({
    id: serialId("callback"),
    provider: providerSchema,
    orderId: z.string().nullable().describe("the order it is about; null when it could not be verified (the order a forged callback names is not trusted)"),
    outcome: callbackOutcomeSchema.describe(
      Object.entries(CALLBACK_OUTCOMES)
        .map(([name, o]) => `\`${name}\`: ${o.when}`)
        .join("; "),
    ),
    verified: z.boolean().describe("the signature (and, for WeChat Pay, the decryption) checked out"),
    detail: z.string().nullable().describe("why it was refused, when it was"),
    receivedAt: dateTimeOut,
    payload: z.unknown().optional().describe("what was decoded from it once verified (null otherwise); `raw=1` only"),
    headers: z.record(z.string(), z.unknown()).optional().describe("its HTTP headers; `raw=1` only"),
    rawBody: z.string().optional().describe("its body as received (what the signature covers); `raw=1` only"),
  })
  .openapi("PaymentCallback", { description: "A payment notification as it reached us, valid or not, with what verification made of it. payload, headers and rawBody only with `raw=1`." });

export const adminOrderDetailSchema = z
  .object({
    order: adminOrderSchema,
    callbacks: z.array(paymentCallbackSchema).describe("every callback stored for the order, oldest first"),
    refunds: z.array(refundSchema).describe("its refunds, oldest first"),
  })
  .openapi("AdminOrderDetail");

export const adminAccountSchema = z
  .object({
    account: lowerAddressOut,
    availableFen: fenOut.describe("what sponsorships can hold"),
    heldFen: fenOut.describe("held by operations awaiting settlement"),
    createdAt: dateTimeOut,
    updatedAt: dateTimeOut.describe("the last balance change"),
  })
  .openapi("AdminAccount");

export const adminLedgerEntrySchema = z
  .object({
    id: serialId("entry"),
    kind: ledgerKindSchema,
    availableDeltaFen: signedFenOut,
    heldDeltaFen: signedFenOut,
    reference: z.string().describe("what the entry is for (an order id, a hold, a refund id…)"),
    memo: z.string().nullable(),
    createdAt: dateTimeOut,
  })
  .openapi("AdminLedgerEntry");

export const accountLedgerSchema = z
  .object({
    account: lowerAddressOut,
    availableFen: fenOut.describe("the account's available balance now (0 for an account never seen)"),
    heldFen: fenOut.describe("its held balance now"),
    items: z.array(adminLedgerEntrySchema).describe("its ledger entries, newest first"),
    nextBefore: z.string().nullable().describe("send as `before` for the next page; null on the last page"),
  })
  .openapi("AccountLedger");

export const adminHoldSchema = z
  .object({
    id: holdIdSchema,
    chainId: z.number().int(),
    account: lowerAddressOut.describe("the sender whose quota is held"),
    nonce: decimalOut.describe("the UserOperation nonce (uint256)"),
    apiKeyId: z.string().nullable().describe("the API key that asked for the sponsorship"),
    status: holdStatusSchema.describe(
      "open (reserved), settled (charged from a UserOperationEvent), released (expired unused), merged (a reorg undid its settlement while a newer hold for the same nonce was open: that hold carries it)",
    ),
    amountFen: fenOut.describe("held: the worst-case cost at the locked quote"),
    maxCostWei: weiOut,
    revision: z.number().int().min(1).describe("how many times a repeated request for the same nonce raised it"),
    validUntil: dateTimeOut.describe("released after this (plus a grace period) if the operation never lands"),
    chargedFen: nullableFenOut.describe("what settlement charged; null until settled; fen as a decimal string"),
    createdAt: dateTimeOut,
    updatedAt: dateTimeOut,
  })
  .openapi("AdminHold");

export const settlementSchema = z
  .object({
    id: serialId("settlement"),
    chainId: z.number().int(),
    userOpHash: bytes32Out,
    holdId: z.string().nullable().describe("the hold it was signed under; null for an operation we never signed"),
    unknown: z.boolean().describe("holdId is null: paid by our paymaster, signed by nobody we know (alerted; charges nobody)"),
    account: lowerAddressOut,
    nonce: decimalOut.describe("the UserOperation nonce"),
    success: z.boolean().describe("the operation's call succeeded (a reverted one is charged too: the paymaster paid for it)"),
    actualGasCostWei: weiOut.describe("what the EntryPoint took from the paymaster's deposit"),
    actualGasUsed: decimalOut.describe("gas units"),
    chargedFen: fenOut.describe("charged to the account (from its hold, and beyond the hold from its available quota)"),
    releasedFen: fenOut.describe("the rest of the hold, given back"),
    shortfallFen: fenOut.describe("what neither the hold nor the account's available quota covered: paid by the deposit (alerted; fiat_paymaster_settlement_shortfall_fen_total)"),
    blockNumber: decimalOut.describe("the block it was read from"),
    blockHash: bytes32Out,
    transactionHash: bytes32Out,
    logIndex: z.number().int(),
    status: settlementStatusSchema.describe("reorged: its block left the chain and the settlement was undone"),
    createdAt: dateTimeOut.describe("when the worker recorded it"),
    reorgedAt: nullableDateTimeOut,
  })
  .openapi("Settlement", { description: "A UserOperationEvent our paymaster paid for, as the settlement worker recorded it." });

export const reconciliationRunSchema = z
  .object({
    id: serialId("run"),
    startedAt: dateTimeOut,
    finishedAt: dateTimeOut,
    checked: z.number().int().describe("open orders queried at their gateway"),
    credited: z.number().int().describe("orders found paid and credited"),
    closed: z.number().int().describe("expired orders closed"),
    refundsSettled: z.number().int().describe("refunds the gateway confirmed or refused"),
    errors: z.number().int(),
    detail: z
      .object({ errors: z.array(z.object({ orderId: z.string().optional(), refundId: z.string().optional(), message: z.string().optional() })).optional() })
      .nullable()
      .describe("`errors`: each error with the orderId or refundId"),
  })
  .openapi("ReconciliationRun", { description: "One run of the reconciliation worker that found something to do (runs that checked nothing are not recorded)." });

export const adminActionSchema = z
  .object({
    id: serialId("action"),
    action: z.string().describe("`adjustment`"),
    detail: z
      .record(z.string(), z.unknown())
      .describe("for an adjustment: adjustmentId, account, amountFen, reason, availableFenBefore, availableFenAfter (fen as decimal strings), idempotencyKey when given"),
    requestId: z.string().nullable().describe("the x-request-id of the request (finds it in the logs)"),
    ip: z.string().nullable().describe("the remote address of the request (as TRUST_PROXY resolves it)"),
    createdAt: dateTimeOut,
  })
  .openapi("AdminAction", { description: "An audit row: what an operator did, and the request that did it (the admin token is shared, so the request id and IP are what identify it)." });

export const adjustmentSchema = z
  .object({
    adjustmentId: z.string().describe("the ledger entry's reference: adj_<uuid>, or adj:<idempotencyKey>"),
    account: lowerAddressOut,
    amountFen: signedFenOut,
    reason: z.string().describe("trimmed"),
    availableFen: fenOut.describe("the account's available balance after it"),
    heldFen: fenOut.describe("the account's held balance (adjustments never touch it)"),
    applied: z.boolean().describe("false when an earlier request with the same idempotencyKey applied it (nothing changed now)"),
    auditId: z.string().nullable().describe("the audit row (GET /admin/audit)"),
    createdAt: dateTimeOut,
  })
  .openapi("Adjustment");

const nullableDecimal = (description: string) => z.string().regex(/^\d+$/).nullable().describe(description);

export const chainAdminStatusSchema = z
  .object({
    chainId: z.number().int(),
    name: z.string(),
    paymaster: addressOut,
    entryPoint: addressOut,
    entryPointVersion: z.enum(ENTRY_POINT_VERSIONS).describe("one entry per (chain, EntryPoint): each EntryPoint has its own paymaster, deposit and holds"),
    minDepositWei: weiOut.describe("sponsorship pauses while deposit − outstanding holds is below this"),
    rpc: z.object({
      ok: z.boolean().describe("every chain read answered within the deadline"),
      error: z.string().nullable().describe("why not"),
      headBlock: nullableDecimal("the latest block number"),
    }),
    healthy: z.boolean().describe("the deposit monitor's verdict (as of its last check): while false, sponsorship on the chain answers deposit_low"),
    reason: z.string().nullable().describe("why it is not healthy"),
    lowDeposit: z.boolean().describe("deposit − outstanding < minDepositWei with the freshest figures (false when no deposit figure is known: then healthy is false)"),
    deposit: z.object({
      depositWei: nullableWeiOut.describe("the paymaster's EntryPoint deposit; wei as a decimal string"),
      source: z.enum(["chain", "monitor"]).nullable().describe("read now, or the deposit monitor's last figure when the RPC does not answer"),
      outstandingWei: weiOut.describe("the worst-case cost of the open holds on this chain, from the database now"),
      openHolds: z.number().int(),
      spareWei: nullableSignedWeiOut.describe("depositWei − outstandingWei, negative when the holds exceed the deposit; wei as a decimal string"),
      monitor: z.object({
        depositWei: nullableWeiOut.describe("as the monitor last read it; wei as a decimal string"),
        outstandingWei: nullableWeiOut.describe("as the monitor last read it; wei as a decimal string"),
        checkedAt: nullableDateTimeOut,
      }),
    }),
    stake: z
      .object({
        stakeWei: weiOut,
        staked: z.boolean().describe("false while unlocking"),
        unstakeDelaySec: z.number().int(),
        withdrawTime: nullableDateTimeOut.describe("when an unlocked stake can be withdrawn; null when not unlocking"),
      })
      .nullable(),
    owner: addressOut.nullable(),
    pendingOwner: addressOut.nullable().describe("an ownership transfer awaiting acceptance"),
    signers: z.array(addressOut).nullable().describe("the keys whose sponsorships the paymaster accepts"),
    settlement: z.object({
      cursorBlock: nullableDecimal("the last block the settlement worker has read (null before its first pass)"),
      cursorUpdatedAt: nullableDateTimeOut,
      cursorBlockTime: nullableDateTimeOut.describe("the cursor block's timestamp: a hold is released only once this is past its validUntil + HOLD_GRACE_SECONDS"),
      openFailures: z.number().int().describe("events or reorg undos that failed on their own and are retried every pass (settlement_failures; each alerted)"),
      lagBlocks: nullableDecimal("headBlock − cursorBlock (at least `confirmations` in steady state)"),
      confirmations: z.number().int(),
    }),
  })
  .openapi("ChainAdminStatus", {
    description:
      "A configured chain: the paymaster's EntryPoint deposit and stake, owner and signers (read from the chain now, within a deadline), the deposit monitor's verdict, the open holds' worst case, and the settlement worker's progress. When the RPC does not answer, the chain reads are null and the deposit is the monitor's last figure.",
  });

const statsTotals = {
  topUpCount: z.number().int().describe("top-ups credited (ledger topup entries)"),
  topUpFen: fenOut.describe("what they credited"),
  settledCount: z.number().int().describe("operations our paymaster paid for, settled (reorged ones excluded; unknown ones included)"),
  unknownCount: z.number().int().describe("of those, operations we never signed"),
  chargedFen: fenOut.describe("charged for them"),
  gasCostWei: weiOut.describe("what the paymaster's deposit paid for them"),
};
export const statsTotalsSchema = z.object(statsTotals).openapi("StatsTotals");
export const statsPointSchema = z.object({ start: dateTimeOut.describe("the bucket's first instant (UTC)"), ...statsTotals }).openapi("StatsPoint");
export const statsSchema = z
  .object({
    bucket: z.enum(["hour", "day"]),
    since: dateTimeOut.describe("the first bucket's start"),
    until: dateTimeOut.describe("exclusive"),
    series: z.array(statsPointSchema).describe("every bucket of the range in order, empty ones as zeros"),
    totals: statsTotalsSchema.describe("the sums over the range"),
  })
  .openapi("Stats");

export const adminOrderPage = pageOf(adminOrderSchema);
export const paymentCallbackPage = pageOf(paymentCallbackSchema);
export const adminAccountPage = pageOf(adminAccountSchema);
export const adminHoldPage = pageOf(adminHoldSchema);
export const settlementPage = pageOf(settlementSchema);
export const refundPage = pageOf(refundSchema);
export const reconciliationRunPage = pageOf(reconciliationRunSchema);
export const adminActionPage = pageOf(adminActionSchema);
export const chainAdminStatusList = z.object({ chains: z.array(chainAdminStatusSchema) });
