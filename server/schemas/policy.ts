/**
 * A sponsorship policy as an API key stores it: what `PUT /admin/api-keys/{id}/policy`
 * and `POST /admin/api-keys` take (`policySchema`, which also reads a stored policy back) and what the answers carry
 * (`policyJsonSchema`, the stored form). Amounts are policy budgets (`fenBudgetSchema`): compared with what is spent,
 * never stored in a ledger column. The rules that judge an operation by a policy are in sponsorship/policy.ts.
 *
 * A key's policy is its default; it may also carry named policies (`policies`), each a whole set of rules that a
 * request selects with the ERC-7677 context's `sponsorshipPolicyId` or `policyId` (sponsorship/context.ts). A named
 * policy inherits nothing from the default.
 */
import type { Address } from "viem";
import type { SenderProofPolicy } from "../sponsorship/senderProof";
import { address, dateTimeOut, fenBudgetSchema, fenOut, lowerAddressOut } from "./primitives";
import { z } from "./zod";

export type SpendLimit = { fen: bigint; periodSeconds: number };

export type ApprovalWebhook = {
  url: string;
  /** How long the webhook has to answer, request and body together. */
  timeoutMs: number;
  /** Approve when the webhook is unreachable, times out or answers 5xx. Never overrides an explicit refusal. */
  failOpen: boolean;
};

/** One set of rules: a key's default policy, or one of its named policies. */
export type PolicyRules = {
  maxChargePerOpFen?: bigint;
  /** What one sender may be charged (held or spent) per period. */
  senderSpendLimit?: SpendLimit;
  /** What the key may be charged per period, all senders together. */
  globalSpendLimit?: SpendLimit;
  /** Lower-case. When set, only these senders are sponsored. */
  allowedSenders?: Address[];
  /** Lower-case. Always refused, even when also allowed. */
  blockedSenders?: Address[];
  /** Lower-case. When set, every contract the account calls must be one of these (see `decodeCallTargets`). */
  allowedTargets?: Address[];
  /** Inclusive. */
  activeFrom?: Date;
  /** Exclusive. */
  activeUntil?: Date;
  /** "HH:MM" in UTC, from inclusive to exclusive; `from` later than `to` wraps past midnight. */
  dailyWindowUtc?: { from: string; to: string };
  approvalWebhook?: ApprovalWebhook;
  chainIds?: number[];
  /** Require proof that the caller controls the sender (server/sponsorship/senderProof.ts). */
  senderProof?: SenderProofPolicy;
  /** Browser origins the key may be used from (`scheme://host[:port]`, lower-case), or `["*"]` for any. */
  allowedOrigins?: string[];
};

/** A key's policy: its default rules, and named policies a request may select by id. */
export type Policy = PolicyRules & { policies?: Record<string, PolicyRules> };

/** A named policy's id: what `context.sponsorshipPolicyId` / `context.policyId` carries. */
export const POLICY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const MAX_NAMED_POLICIES = 100;

const MAX_PERIOD_SECONDS = 10 * 366 * 86_400;
const MAX_WEBHOOK_TIMEOUT_MS = 30_000;
const MAX_PROOF_VALIDITY_SECONDS = 30 * 86_400;

/** An origin as browsers send it: scheme://host[:port], no path; or "*". */
const ORIGIN_PATTERN = /^(\*|https?:\/\/[a-z0-9.-]+(:\d{1,5})?)$/;
const originListSchema = z.array(
  z
    .string({ error: "must be an origin" })
    .transform((o) => o.toLowerCase())
    .refine((o) => ORIGIN_PATTERN.test(o), 'must be an origin as browsers send it (https://app.example or http://localhost:5173, no path), or "*"'),
  { error: "must be a list of origins" },
);

const spendLimitSchema = z.strictObject({
  fen: fenBudgetSchema,
  periodSeconds: z
    .number({ error: "must be a number of seconds" })
    .int("must be a whole number of seconds")
    .min(1, "must be at least 1 second")
    .max(MAX_PERIOD_SECONDS, `must be at most ${MAX_PERIOD_SECONDS} seconds (10 years)`),
});

/** Lower-case, as policies compare them (a wrong EIP-55 checksum is refused like everywhere else). */
const addressSchema = address({ message: "must be a 20-byte hex address" }).transform((a) => a.toLowerCase() as Address);

const addressListSchema = z.array(addressSchema, { error: "must be a list of addresses" });

const timestampSchema = z.iso
  .datetime({ offset: true, error: "must be an ISO 8601 timestamp with a time zone, e.g. 2025-01-01T00:00:00Z" })
  .transform((iso) => new Date(iso));

const timeOfDaySchema = z.string({ error: "must be a time of day" }).regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be "HH:MM" (00:00–23:59)');

const dailyWindowSchema = z
  .strictObject({ from: timeOfDaySchema, to: timeOfDaySchema })
  .refine((w) => w.from !== w.to, { message: "from and to must differ (an empty or whole-day window is better said by leaving the field out)", path: ["to"] });

const approvalWebhookSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  timeoutMs: z
    .number({ error: "must be a number of milliseconds" })
    .int("must be a whole number of milliseconds")
    .min(1, "must be at least 1 ms")
    .max(MAX_WEBHOOK_TIMEOUT_MS, `must be at most ${MAX_WEBHOOK_TIMEOUT_MS} ms`)
    .default(2_000),
  failOpen: z.boolean({ error: "must be true or false" }).default(false),
});

const senderProofSchema = z
  .strictObject({
    signers: addressListSchema.optional(),
    account: z.boolean({ error: "must be true or false" }).optional(),
    maxValiditySeconds: z
      .number({ error: "must be a number of seconds" })
      .int("must be a whole number of seconds")
      .min(1, "must be at least 1 second")
      .max(MAX_PROOF_VALIDITY_SECONDS, `must be at most ${MAX_PROOF_VALIDITY_SECONDS} seconds (30 days)`)
      .default(3_600),
  })
  .refine((p) => (p.signers?.length ?? 0) > 0 || p.account === true, {
    message: "must name at least one proof signer (signers) or accept the sender's own signature (account: true)",
  });

const rulesShape = {
  maxChargePerOpFen: fenBudgetSchema.optional(),
  senderSpendLimit: spendLimitSchema.optional(),
  globalSpendLimit: spendLimitSchema.optional(),
  allowedSenders: addressListSchema.optional(),
  blockedSenders: addressListSchema.optional(),
  allowedTargets: addressListSchema.optional(),
  activeFrom: timestampSchema.optional(),
  activeUntil: timestampSchema.optional(),
  dailyWindowUtc: dailyWindowSchema.optional(),
  approvalWebhook: approvalWebhookSchema.optional(),
  chainIds: z.array(z.number().int("must be a whole number").positive("must be positive").max(Number.MAX_SAFE_INTEGER), { error: "must be a list of chain ids" }).optional(),
  senderProof: senderProofSchema.optional(),
  allowedOrigins: originListSchema.optional(),
};

const mustBeObject = { error: (issue: { code: string }) => (issue.code === "invalid_type" ? "must be a JSON object" : undefined) };

function activeWindowProblem(policy: { activeFrom?: unknown; activeUntil?: unknown }, ctx: z.RefinementCtx): void {
  // fields that failed above arrive here unparsed: compare only real dates
  const { activeFrom, activeUntil } = policy;
  if (activeFrom instanceof Date && activeUntil instanceof Date && activeFrom >= activeUntil) {
    ctx.addIssue({ code: "custom", message: "must be later than activeFrom: the key would never be active", path: ["activeUntil"] });
  }
}

const rulesSchema = z.strictObject(rulesShape, mustBeObject).superRefine(activeWindowProblem);

const namedPoliciesSchema = z
  .record(z.string(), rulesSchema, { error: "must be an object of named policies: { \"<id>\": { …rules } }" })
  .superRefine((policies, ctx) => {
    const ids = Object.keys(policies);
    if (ids.length > MAX_NAMED_POLICIES) ctx.addIssue({ code: "custom", message: `must hold at most ${MAX_NAMED_POLICIES} named policies` });
    for (const id of ids) {
      if (!POLICY_ID_PATTERN.test(id)) {
        ctx.addIssue({ code: "custom", message: "is not a valid policy id: 1–64 characters of A–Z a–z 0–9 _ . : -, starting with a letter or digit", path: [id] });
      }
    }
  });

export const policySchema = z
  .strictObject({ ...rulesShape, policies: namedPoliciesSchema.optional() }, mustBeObject)
  .superRefine(activeWindowProblem)
  .openapi("PolicyInput", {
    description:
      "A sponsorship policy: every field optional, an absent field imposes nothing. Fails closed: an unknown field is refused (400 invalid_request naming it), and an empty allowlist allows nothing. `policies` holds named policies, each a whole set of the same rules (nothing inherited from the default), selected by the ERC-7677 context's `sponsorshipPolicyId` or `policyId`.",
  }) satisfies z.ZodType<Policy>;

const storedSpendLimit = z.strictObject({ fen: fenOut, periodSeconds: z.number().int().min(1).max(MAX_PERIOD_SECONDS).describe("fixed windows of this length counted from the Unix epoch (a day runs 00:00–24:00 UTC)") });
const storedTimeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/);

const storedRulesShape = {
  maxChargePerOpFen: fenOut.optional().describe("the most one operation may hold (its worst-case cost), in fen"),
  senderSpendLimit: storedSpendLimit.optional().describe("what one sender may be charged (held or spent) per period"),
  globalSpendLimit: storedSpendLimit.optional().describe("what the key may be charged per period, all senders together"),
  allowedSenders: z.array(lowerAddressOut).optional().describe("when set, only these senders are sponsored (an empty list allows none)"),
  blockedSenders: z.array(lowerAddressOut).optional().describe("always refused, even when also allowed"),
  allowedTargets: z.array(lowerAddressOut).optional().describe("when set, every contract the account calls must be one of these (SimpleAccount execute/executeBatch)"),
  activeFrom: dateTimeOut.optional().describe("inclusive (written as UTC)"),
  activeUntil: dateTimeOut.optional().describe("exclusive; later than activeFrom"),
  dailyWindowUtc: z.strictObject({ from: storedTimeOfDay, to: storedTimeOfDay }).optional().describe('"HH:MM" UTC, from inclusive to exclusive; from later than to wraps past midnight'),
  approvalWebhook: z
    .strictObject({ url: z.url(), timeoutMs: z.number().int().min(1).max(MAX_WEBHOOK_TIMEOUT_MS), failOpen: z.boolean() })
    .optional()
    .describe("asked to approve each final sponsorship after the policy allowed it"),
  chainIds: z.array(z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)).optional().describe("when set, only these chains"),
  senderProof: z
    .strictObject({ signers: z.array(lowerAddressOut).optional(), account: z.boolean().optional(), maxValiditySeconds: z.number().int().min(1).max(MAX_PROOF_VALIDITY_SECONDS) })
    .optional()
    .describe("require proof that the caller controls the sender (context.senderProof), signed by one of `signers` or, with `account: true`, by the sender itself"),
  allowedOrigins: z
    .array(z.string())
    .optional()
    .describe('when set, a request a browser sends (with an Origin header) must come from one of these origins, or the list holds "*"; requests without an Origin (servers) are not judged by it'),
};

/** The stored form: what `policyToJson` writes and `parsePolicy` reads back; fen as decimal strings, addresses in lower case, times in UTC, defaults written out. */
export const policyJsonSchema = z
  .strictObject({
    ...storedRulesShape,
    policies: z
      .record(z.string().regex(POLICY_ID_PATTERN), z.strictObject(storedRulesShape))
      .optional()
      .describe("named policies, selected by the ERC-7677 context's sponsorshipPolicyId or policyId; each is whole (nothing inherited from the default)"),
  })
  .openapi("Policy", { description: "A stored policy: fen as decimal strings, addresses in lower case, times in UTC, defaults written out." });
export type PolicyJson = z.input<typeof policyJsonSchema>;
