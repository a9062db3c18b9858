/**
 * The building blocks of the OpenAPI document the route modules register their paths with: the problem answers
 * (`application/problem+json`, by status, each listing the `type`s it can carry and when) as problemHandler
 * (problem.ts) maps the errors a route can throw, the SponsorError reasons with their members, the security
 * requirements, and the answer helpers. Bodies are the zod schemas of server/schemas/; this module only adds what
 * is not a body: statuses, descriptions, headers.
 */
import type { OpenAPIRegistry, ResponseConfig, ZodContentObject } from "@asteasolutions/zod-to-openapi";
import type { z } from "zod";
import { SPONSOR_ERROR_CODES, SponsorError, type SponsorErrorReason } from "../sponsorship/errors";

/** What a route module registers its paths in (openapi.ts makes a fresh one per document). */
export type ApiRegistry = OpenAPIRegistry;

export type Json = Record<string, unknown>;

export const schema = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

// ---- Problems (application/problem+json) -----------------------------------------------------------------

/** Problem types that are not SponsorError reasons, with when they are answered. */
export const GENERIC_PROBLEMS = {
  invalid_request: "the input does not match the route's schema (the detail names each bad field), or a limit or rule of the route refuses it",
  invalid_json: "the body is not valid JSON",
  unsupported_media_type: "the body is not declared as JSON (Content-Type application/json): money endpoints refuse cross-origin 'simple' requests",
  too_large: "the body is larger than the route accepts",
  not_found: "the resource does not exist, or no route matches the method and path",
  conflict: "the request contradicts the current state (an idempotency key reused with other parameters, a refund larger than what is left)",
  insufficient_balance: "a ledger debit would make the account's balance negative (a manual adjustment's refusal names `availableFen` and `requestedFen`)",
  gateway_unavailable: "the payment gateway cannot be reached or is failing (its circuit may be open): retry later",
  gateway_error: "the payment gateway refused the request (`gatewayCode` is its error code)",
  admin_disabled: "the server has no ADMIN_TOKEN, so the admin API is off",
  unauthorized: "no valid credential: the admin token on admin routes, the API key on sponsorship routes",
  sponsorship_off: "sponsorship is not configured on this server (CHAINS and SIGNER_PRIVATE_KEY)",
  not_ready: "the database or a chain's RPC does not answer",
  web_not_built: "the web pages are not built on this server (`npm run build:web`)",
  internal: "an unexpected error; `requestId` finds it in the logs, and the answer reveals nothing else",
} as const;

export type ProblemType = keyof typeof GENERIC_PROBLEMS | SponsorErrorReason;

export const hint = (description: string, extra: Json = {}): Json => ({ description, ...extra });
export const fenString = (description: string): Json => ({ ...schema("FenString"), description });
export const weiString = (description: string): Json => ({ ...schema("WeiString"), description });

/** Why a sponsorship is refused, and the members the refusal carries (problem extras; JSON-RPC `error.data`). */
export const SPONSOR_REASONS: Record<SponsorErrorReason, { when: string; data: Json }> = {
  invalid_params: {
    when: "the userOp, entryPoint, chainId or context is malformed (the message names the field); a context field this paymaster does not read; a v0.6 userOp; maxPriorityFeePerGas above maxFeePerGas",
    data: {
      field: hint("the userOp or context field at fault, when one is", { type: "string" }),
      unknownFields: hint("the context fields not read here (at most 5)", { type: "array", items: { type: "string" } }),
    },
  },
  unauthorized: { when: "no valid API key (x-api-key header or ?apikey=)", data: {} },
  unsupported_chain: {
    when: "the chain is not sponsored here",
    data: { supportedChainIds: hint("the chains that are (sponsorship answers only)", { type: "array", items: { type: "integer" } }) },
  },
  unsupported_entry_point: {
    when: "the entry point is not this chain's v0.7 EntryPoint",
    data: { supportedEntryPoints: hint("the entry point to use", { type: "array", items: schema("Address") }) },
  },
  gas_cap_exceeded: {
    when: "a gas limit or maxFeePerGas is above the chain's cap (paymasterVerificationGasLimit: above 4× the configured one; preVerificationGas: above what the operation needs, see preVerificationGasPercent)",
    data: { field: hint("the userOp field", { type: "string" }), cap: hint("the cap, a decimal string (gas units, or wei for maxFeePerGas)", { type: "string", pattern: "^\\d+$" }) },
  },
  fee_too_high: {
    when: "maxFeePerGas is above the configured percentage of the chain's current gas price, or maxPriorityFeePerGas above the configured percentage of its current priority fee",
    data: {
      field: hint("maxFeePerGas or maxPriorityFeePerGas", { enum: ["maxFeePerGas", "maxPriorityFeePerGas"] }),
      maxFeePerGas: weiString("the userOp's, in wei (field maxFeePerGas)"),
      currentGasPrice: weiString("the chain's, in wei (field maxFeePerGas)"),
      maxPriorityFeePerGas: weiString("the userOp's, in wei (field maxPriorityFeePerGas)"),
      currentPriorityFee: weiString("the chain's eth_maxPriorityFeePerGas, in wei (field maxPriorityFeePerGas)"),
      ceiling: weiString("the most accepted, in wei"),
    },
  },
  policy_rejected: {
    when: "the API key's policy refuses the operation, or its approval webhook does",
    data: { rule: hint("the rule that refused", schema("PolicyRejection")) },
  },
  insufficient_quota: {
    when: "the account's available fen do not cover the hold (the operation's worst-case cost): top up first",
    data: { availableFen: fenString("what the account has available"), requiredFen: fenString("the hold the operation needs") },
  },
  too_many_holds: {
    when: "the sender already has the most operations awaiting settlement (scope sender), or this API key or client IP has the most it may take on that sender",
    data: {
      scope: hint("which cap", { enum: ["sender", "apiKey", "ip"] }),
      openHolds: hint("its open holds", { type: "integer" }),
      maxHolds: hint("the limit", { type: "integer" }),
    },
  },
  rate_limited: {
    when: "too many requests a minute for this client IP, API key, or sender from this client (top-up orders: client IP or account); the Retry-After header says when to retry",
    data: { scope: hint("which limit", { enum: ["ip", "apiKey", "sender", "account"] }), retryAfterSeconds: hint("seconds to wait", { type: "integer", minimum: 1 }) },
  },
  deposit_low: {
    when: "sponsorship on the chain is paused: the paymaster's EntryPoint deposit does not cover the open holds plus the threshold",
    data: { depositWei: weiString("the deposit, when known"), outstandingWei: weiString("the worst-case cost of open holds, when known") },
  },
  unavailable: { when: "a dependency does not answer: the chain's RPC (fees, nonce, deposit) or the database; retry shortly", data: {} },
  nonce_used: {
    when: "the userOp's nonce is below the sender's next EntryPoint nonce for its key: that operation can never land",
    data: {
      nonce: hint("the userOp's nonce, hex", { type: "string" }),
      currentNonce: hint("the sender's next nonce for that key, hex", { type: "string" }),
      key: hint("the nonce key (upper 192 bits), hex", { type: "string" }),
    },
  },
  nonce_held: {
    when: "a sponsorship already signed for this nonce has less than 10 s of its window left, and windows are never extended: use another nonce key until it is released",
    data: { validUntil: hint("Unix seconds: when that signature expires", { type: "integer" }) },
  },
  origin_not_allowed: {
    when: "the request comes from a browser page (Origin header) whose origin the API key's policy does not list in allowedOrigins",
    data: { origin: hint("the request's Origin", { type: "string" }) },
  },
  unknown_policy: {
    when: "the context's sponsorshipPolicyId (or policyId) names no policy of this API key",
    data: { policyId: hint("the id asked for", { type: "string" }) },
  },
  nonce_not_next: {
    when: "the userOp's nonce is ahead of the sender's next nonce for its key: sponsor operations in order, or use other nonce keys for parallel ones",
    data: {
      nonce: hint("the userOp's nonce, hex", { type: "string" }),
      currentNonce: hint("the sender's next nonce for that key, hex", { type: "string" }),
      key: hint("the nonce key (upper 192 bits), hex", { type: "string" }),
    },
  },
};

export const SPONSOR_REASON_LIST = Object.keys(SPONSOR_ERROR_CODES) as SponsorErrorReason[];
export const sponsorStatus = (reason: SponsorErrorReason): number => new SponsorError(reason, "").httpStatus;

/** Members of a problem beside type, title, status and detail, by type. */
const PROBLEM_EXTRAS: Partial<Record<ProblemType, Json>> = {
  ...Object.fromEntries(SPONSOR_REASON_LIST.map((r) => [r, SPONSOR_REASONS[r].data])),
  conflict: {
    orderId: hint("the order an idempotency key already belongs to", { type: "string" }),
    refundId: hint("the refund an idempotency key already belongs to", { type: "string" }),
    refundableFen: fenString("what of the order is not refunded yet"),
    availableFen: fenString("the account's unspent balance"),
    requestedFen: fenString("the refund asked for"),
    adjustmentId: hint("the adjustment an idempotency key already belongs to", { type: "string" }),
  },
  insufficient_balance: {
    availableFen: fenString("the account's available balance (a manual adjustment's refusal)"),
    requestedFen: fenString("the debit asked for (a manual adjustment's refusal)"),
  },
  gateway_error: { gatewayCode: hint("the gateway's error code (ACQ.TRADE_NOT_EXIST, ORDER_NOT_EXIST…), when it answered one", { type: "string" }) },
  not_ready: { chains: hint("each chain's state, when the database answered", { type: "array", items: schema("ChainStatus") }) },
  internal: { requestId: hint("the request id (also the x-request-id header)", { type: "string" }) },
};

export type ProblemCase = { status: number; type: ProblemType; when?: string };

/** Every answer carries the request id (requestLogging). */
export const REQUEST_ID = { "x-request-id": { $ref: "#/components/headers/RequestId" } };

function problemWhen(c: ProblemCase): string {
  return c.when ?? (c.type in GENERIC_PROBLEMS ? GENERIC_PROBLEMS[c.type as keyof typeof GENERIC_PROBLEMS] : SPONSOR_REASONS[c.type as SponsorErrorReason].when);
}

function problemContent(cases: ProblemCase[]): Json {
  const status = cases[0]!.status;
  const types = [...new Set(cases.map((c) => c.type))];
  const extras = Object.assign({}, ...types.map((t) => PROBLEM_EXTRAS[t] ?? {})) as Json;
  return {
    "application/problem+json": {
      schema: { allOf: [schema("Problem"), { type: "object", properties: { type: { enum: types }, status: { const: status }, ...extras } }] },
    },
  };
}

/** Any route that may answer 500 reaches the database, and answers 503 `unavailable` while it is down. */
const DATABASE_DOWN: ProblemCase = { status: 503, type: "unavailable", when: "the database does not answer (down, restarting, or wedged past its timeouts): retry shortly" };

/** One response per status, listing each problem `type` it can carry and when. */
export function problems(given: ProblemCase[]): Record<string, ResponseConfig> {
  const cases = given.some((c) => c.type === "internal") && !given.some((c) => c.type === "unavailable" || c.type === "not_ready") ? [...given, DATABASE_DOWN] : given;
  const byStatus = new Map<number, ProblemCase[]>();
  for (const c of cases) byStatus.set(c.status, [...(byStatus.get(c.status) ?? []), c]);
  return Object.fromEntries(
    [...byStatus].map(([status, group]) => [
      String(status),
      {
        description: ["A problem whose `type` is:", ...group.map((c) => `- \`${c.type}\`: ${problemWhen(c)}`)].join("\n"),
        headers: { ...REQUEST_ID, ...(group.some((c) => c.type === "rate_limited") ? { "retry-after": { $ref: "#/components/headers/RetryAfter" } } : {}) },
        content: problemContent(group) as ZodContentObject,
      },
    ]),
  );
}

export function answer(description: string, content?: ZodContentObject, headers: Json = {}): ResponseConfig {
  return { description, headers: { ...REQUEST_ID, ...headers } as ResponseConfig["headers"], ...(content ? { content } : {}) };
}
/** A JSON answer whose body is `body`: a response schema (server/schemas/), or a raw schema object. */
export const jsonAnswer = (description: string, body: z.ZodType | Json): ResponseConfig => answer(description, { "application/json": { schema: body } });

export const INTERNAL: ProblemCase = { status: 500, type: "internal" };
export const NOT_FOUND: ProblemCase = { status: 404, type: "not_found" };
export const ADMIN: ProblemCase[] = [
  { status: 401, type: "unauthorized", when: "the Authorization header does not carry the admin token (checked before the body is read)" },
  { status: 403, type: "admin_disabled" },
];
/** What express's body parsers answer, through problemHandler. */
export const jsonBody = (limit: string): ProblemCase[] => [
  { status: 400, type: "invalid_json" },
  { status: 413, type: "too_large", when: `the body is larger than ${limit}` },
  { status: 415, type: "invalid_request", when: "the body's charset or Content-Encoding is not supported" },
  { status: 415, type: "unsupported_media_type" },
];
export const SPONSOR_BODY_LIMIT = "MAX_BODY_BYTES (the server's configuration)";

export const sponsorCases = (reasons: SponsorErrorReason[], when: Partial<Record<SponsorErrorReason, string>> = {}): ProblemCase[] =>
  reasons.map((r) => ({ status: sponsorStatus(r), type: r, when: when[r] ?? SPONSOR_REASONS[r].when }));


export const API_KEY_SECURITY: Record<string, string[]>[] = [{ apiKey: [] }, { apiKeyQuery: [] }];
export const ADMIN_SECURITY: Record<string, string[]>[] = [{ adminToken: [] }];

/** A JSON request body. */
export const jsonRequest = (body: z.ZodType, description?: string) => ({ required: true, ...(description ? { description } : {}), content: { "application/json": { schema: body } } });
