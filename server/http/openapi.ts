/**
 * The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`. A plain object built here, no
 * library: every route the app registers, its input as the route's zod schema (or parser) accepts it, its answers
 * as the handler sends them, and its error answers as `problemHandler` (problem.ts) maps the errors it can throw.
 *
 * It cannot silently go stale: openapi.test.ts reads the route registrations out of the source and fails on a
 * route missing here or documented here but gone. What can be derived is derived rather than copied — the
 * payment providers, the SponsorError reasons with their HTTP statuses and JSON-RPC codes, rpc.ts's JSON-RPC
 * codes, the calldata limit — and the tables keyed by a union type (`Record<SponsorErrorReason, …>`,
 * `Record<Provider, …>`, …) stop type-checking when a new member appears, so it gets documented.
 */
import { DEFAULT_LIMIT, MAX_LIMIT } from "../admin/routes";
import { DEFAULT_RANGE_BUCKETS, MAX_BUCKETS } from "../admin/stats";
import { type CallbackRejectionCode, PROVIDERS, type Provider } from "../payments/gateway";
import { SPONSOR_ERROR_CODES, SponsorError, type SponsorErrorReason } from "../sponsorship/errors";
import type { PolicyRule } from "../sponsorship/policy";
import type { SenderProofRule } from "../sponsorship/senderProof";
import { RPC_ERRORS } from "../sponsorship/rpc";
import { MAX_CALL_DATA_BYTES } from "../sponsorship/userOperation";

const { version } = require("../../package.json") as { version: string };

type Json = Record<string, unknown>;

const schema = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** rpc.ts's MAX_BATCH (not exported). */
const MAX_RPC_BATCH = 20;

// ---- Problems (application/problem+json) -----------------------------------------------------------------

/** Problem types that are not SponsorError reasons, with when they are answered. */
const GENERIC_PROBLEMS = {
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

type ProblemType = keyof typeof GENERIC_PROBLEMS | SponsorErrorReason;

const hint = (description: string, extra: Json = {}): Json => ({ description, ...extra });
const fenString = (description: string): Json => ({ ...schema("FenString"), description });
const weiString = (description: string): Json => ({ ...schema("WeiString"), description });

/** Why a sponsorship is refused, and the members the refusal carries (problem extras; JSON-RPC `error.data`). */
const SPONSOR_REASONS: Record<SponsorErrorReason, { when: string; data: Json }> = {
  invalid_params: {
    when: "the userOp, entryPoint or chainId is malformed (the message names the field); a v0.6 userOp; maxPriorityFeePerGas above maxFeePerGas",
    data: { field: hint("the userOp field at fault, when one is", { type: "string" }) },
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
  nonce_not_next: {
    when: "the userOp's nonce is ahead of the sender's next nonce for its key: sponsor operations in order, or use other nonce keys for parallel ones",
    data: {
      nonce: hint("the userOp's nonce, hex", { type: "string" }),
      currentNonce: hint("the sender's next nonce for that key, hex", { type: "string" }),
      key: hint("the nonce key (upper 192 bits), hex", { type: "string" }),
    },
  },
};

const SPONSOR_REASON_LIST = Object.keys(SPONSOR_ERROR_CODES) as SponsorErrorReason[];
const sponsorStatus = (reason: SponsorErrorReason): number => new SponsorError(reason, "").httpStatus;

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

type ProblemCase = { status: number; type: ProblemType; when?: string };

/** Every answer carries the request id (requestLogging). */
const REQUEST_ID = { "x-request-id": { $ref: "#/components/headers/RequestId" } };

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
function problems(given: ProblemCase[]): Record<string, Json> {
  const cases = given.some((c) => c.type === "internal") && !given.some((c) => c.type === "unavailable" || c.type === "not_ready") ? [...given, DATABASE_DOWN] : given;
  const byStatus = new Map<number, ProblemCase[]>();
  for (const c of cases) byStatus.set(c.status, [...(byStatus.get(c.status) ?? []), c]);
  return Object.fromEntries(
    [...byStatus].map(([status, group]) => [
      String(status),
      {
        description: ["A problem whose `type` is:", ...group.map((c) => `- \`${c.type}\`: ${problemWhen(c)}`)].join("\n"),
        headers: { ...REQUEST_ID, ...(group.some((c) => c.type === "rate_limited") ? { "retry-after": { $ref: "#/components/headers/RetryAfter" } } : {}) },
        content: problemContent(group),
      },
    ]),
  );
}

function answer(description: string, content?: Json, headers: Json = {}): Json {
  return { description, headers: { ...REQUEST_ID, ...headers }, ...(content ? { content } : {}) };
}
const jsonAnswer = (description: string, body: Json): Json => answer(description, { "application/json": { schema: body } });

const INTERNAL: ProblemCase = { status: 500, type: "internal" };
const NOT_FOUND: ProblemCase = { status: 404, type: "not_found" };
const ADMIN: ProblemCase[] = [
  { status: 401, type: "unauthorized", when: "the Authorization header does not carry the admin token (checked before the body is read)" },
  { status: 403, type: "admin_disabled" },
];
/** What express's body parsers answer, through problemHandler. */
const jsonBody = (limit: string): ProblemCase[] => [
  { status: 400, type: "invalid_json" },
  { status: 413, type: "too_large", when: `the body is larger than ${limit}` },
  { status: 415, type: "invalid_request", when: "the body's charset or Content-Encoding is not supported" },
  { status: 415, type: "unsupported_media_type" },
];
const SPONSOR_BODY_LIMIT = "MAX_BODY_BYTES (the server's configuration)";

const sponsorCases = (reasons: SponsorErrorReason[], when: Partial<Record<SponsorErrorReason, string>> = {}): ProblemCase[] =>
  reasons.map((r) => ({ status: sponsorStatus(r), type: r, when: when[r] ?? SPONSOR_REASONS[r].when }));

// ---- Descriptions --------------------------------------------------------------------------------------

const rpcCodes: { code: number; meaning: string }[] = [
  { code: RPC_ERRORS.parse, meaning: "the body is not valid JSON (HTTP 200), or could not be read (HTTP 400)" },
  { code: RPC_ERRORS.invalidRequest, meaning: `not a JSON-RPC 2.0 request; a batch of 0 or more than ${MAX_RPC_BATCH}; a body too large (HTTP 413)` },
  { code: RPC_ERRORS.methodNotFound, meaning: "a method other than pm_getPaymasterStubData and pm_getPaymasterData" },
  { code: RPC_ERRORS.invalidParams, meaning: "params are not [userOp, entryPoint, chainId, context?], or a parameter is malformed (then `data.reason` is `invalid_params`)" },
  { code: RPC_ERRORS.internal, meaning: "an unexpected error; the message carries the request id" },
  ...SPONSOR_REASON_LIST.filter((r) => SPONSOR_ERROR_CODES[r] !== RPC_ERRORS.invalidParams).map((r) => ({
    code: SPONSOR_ERROR_CODES[r],
    meaning: `\`${r}\`: ${SPONSOR_REASONS[r].when}`,
  })),
];

const fieldList = (data: Json): string => Object.keys(data).map((k) => `\`${k}\``).join(", ") || "—";

const DESCRIPTION = [
  "An ERC-4337 (EntryPoint v0.7) verifying paymaster whose users prepay gas in CNY through Alipay or WeChat Pay.",
  "A user tops up a quota with an order (`POST /v1/orders`, paid by QR code); a DApp holding an API key asks for",
  "sponsorship of that user's UserOperations — through ERC-7677 JSON-RPC at `POST /rpc` or through REST at",
  "`POST /v1/sponsorships` — and each sponsored operation holds its worst-case cost in fen until it settles on chain.",
  "",
  "## Money",
  "Amounts of money are whole **fen** (1 CNY = 100 fen), kept as bigint. In answers every fen amount is a **decimal",
  'string** (`"1500"`), never a JSON number; in requests a fen amount is a JSON integer or, beyond 2^53, a decimal',
  "string. Amounts in **wei** (gas prices, costs, deposits) are decimal strings too. UserOperation quantities are",
  '0x-prefixed **hex quantities** (`"0x5208"`), as ERC-7769 / ERC-7677 send them; so are the paymaster gas limits',
  "in sponsorship answers.",
  "",
  "## Authentication",
  "- `apiKey`: sponsorship (`POST /v1/sponsorships`, `POST /rpc`) needs a DApp's API key, `fpk_<12 hex>_<43 base64url>`,",
  "  in the `x-api-key` header or the `apikey` query parameter.",
  "- `adminToken`: admin routes (`/admin/*`, refunds) need `Authorization: Bearer <ADMIN_TOKEN>`; a server without",
  "  ADMIN_TOKEN answers them 403 `admin_disabled`.",
  "- Orders, quotes, account balances, health and metrics need nothing; gateway callbacks are authenticated by the",
  "  gateway's signature.",
  "",
  "## Admin lists",
  `The \`/admin/*\` lists answer \`{ items, nextBefore }\`, newest first, ${DEFAULT_LIMIT} items unless \`limit\` says otherwise (1–${MAX_LIMIT}).`,
  "For the next page, send the same query with `before` = the previous answer's `nextBefore` (null on the last page);",
  "pages are keyset pages, so rows written meanwhile never shift or repeat what follows. Unknown query parameters are",
  "refused (400), so a misspelt filter cannot silently answer everything.",
  "",
  "## Errors",
  "REST errors are RFC 9457 `application/problem+json`: `type` (a stable word, below), `title` (the status's reason",
  'phrase, "Error" for 500), `status`, `detail` (a message naming the problem), and extra members some types carry.',
  "A request to no route answers 404 `not_found`. Every answer carries `x-request-id` (the caller's, if it sent a",
  "valid one, else a new one). Problem types:",
  "",
  ...Object.entries(GENERIC_PROBLEMS).map(([type, when]) => `- \`${type}\`: ${when}`),
  "",
  "## Sponsorship refusals",
  "A refused sponsorship is a problem whose `type` is the reason (REST) or a JSON-RPC error with the reason's code and",
  "`error.data = { reason, …members }` (`POST /rpc`; a missing or invalid API key there has no `data`):",
  "",
  "| reason (problem `type`) | HTTP status | JSON-RPC code | when | members |",
  "|---|---|---|---|---|",
  ...SPONSOR_REASON_LIST.map((r) => `| \`${r}\` | ${sponsorStatus(r)} | ${SPONSOR_ERROR_CODES[r]} | ${SPONSOR_REASONS[r].when} | ${fieldList(SPONSOR_REASONS[r].data)} |`),
  "",
  "## JSON-RPC error codes (`POST /rpc`)",
  "",
  "| code | meaning |",
  "|---|---|",
  ...rpcCodes.map((c) => `| ${c.code} | ${c.meaning} |`),
].join("\n");

// ---- Component schemas ---------------------------------------------------------------------------------

const POLICY_RULES: Record<PolicyRule | "approval_webhook" | SenderProofRule, string> = {
  chain_not_allowed: "the key does not sponsor this chain",
  sender_blocked: "the sender is on the key's blocklist",
  sender_not_allowed: "the sender is not on the key's allowlist",
  target_not_allowed: "the operation calls a contract not on the key's target allowlist",
  call_not_decodable: "the key restricts targets and the callData is not a SimpleAccount execute/executeBatch",
  max_charge_per_op: "the operation may cost more than the key allows per operation",
  sender_spend_limit: "the sender's spend in the current period would exceed the key's limit",
  global_spend_limit: "the key's spend in the current period would exceed its limit",
  outside_time_window: "the key is not active now (activeFrom/activeUntil, dailyWindowUtc)",
  approval_webhook: "the key's approval webhook refused",
  sender_proof_missing: "the key requires proof of control of the sender and context.senderProof is absent",
  sender_proof_invalid: "context.senderProof is malformed, or valid for longer than the key accepts",
  sender_proof_expired: "context.senderProof's validUntil has passed",
  sender_proof_rejected: "context.senderProof is not signed by one of the key's proof signers or by the sender",
};

const CALLBACK_OUTCOMES: Record<CallbackRejectionCode | "credited" | "already_credited", { acknowledged: boolean; when: string }> = {
  credited: { acknowledged: true, when: "the order is now paid and its account credited" },
  already_credited: { acknowledged: true, when: "a repeat of a notification already credited" },
  not_paid: { acknowledged: true, when: "authentic, but the trade is not paid (nothing to do)" },
  not_a_payment: { acknowledged: true, when: "authentic, but not a payment (a refund notification)" },
  bad_request: { acknowledged: false, when: "not parseable, or fields missing" },
  bad_signature: { acknowledged: false, when: "the signature is missing or wrong" },
  unknown_certificate: { acknowledged: false, when: "signed with a WeChat Pay certificate serial we do not hold" },
  stale_timestamp: { acknowledged: false, when: "the WeChat Pay timestamp is more than 5 minutes off" },
  decrypt_failed: { acknowledged: false, when: "the WeChat Pay resource does not decrypt with our APIv3 key" },
  merchant_mismatch: { acknowledged: false, when: "the app id / merchant id is not ours" },
  unknown_order: { acknowledged: false, when: "no such order for this provider" },
  amount_mismatch: { acknowledged: false, when: "the amount paid differs from the order's" },
};

const outcomes = (acknowledged: boolean): string =>
  Object.entries(CALLBACK_OUTCOMES)
    .filter(([, o]) => o.acknowledged === acknowledged)
    .map(([name, o]) => `\`${name}\` (${o.when})`)
    .join(", ");

const QUANTITY_DESCRIPTION = "a hex quantity (uint128)";
const FINAL_GAS_FIELDS = ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"];

const policyProperties = (fen: Json, input: boolean): Json => {
  const spendLimit = {
    type: "object",
    additionalProperties: false,
    required: ["fen", "periodSeconds"],
    properties: {
      fen,
      periodSeconds: { type: "integer", minimum: 1, maximum: 10 * 366 * 86_400, description: "fixed windows of this length counted from the Unix epoch (a day runs 00:00–24:00 UTC)" },
    },
  };
  const addresses = (description: string): Json => ({ type: "array", items: input ? schema("Address") : schema("LowerAddress"), description });
  return {
    maxChargePerOpFen: { ...fen, description: "the most one operation may hold (its worst-case cost), in fen" },
    senderSpendLimit: { ...spendLimit, description: "what one sender may be charged (held or spent) per period" },
    globalSpendLimit: { ...spendLimit, description: "what the key may be charged per period, all senders together" },
    allowedSenders: addresses("when set, only these senders are sponsored (an empty list allows none)"),
    blockedSenders: addresses("always refused, even when also allowed"),
    allowedTargets: addresses("when set, every contract the account calls must be one of these (SimpleAccount execute/executeBatch)"),
    activeFrom: { type: "string", format: "date-time", description: "inclusive; with a time zone" + (input ? "" : " (written as UTC)") },
    activeUntil: { type: "string", format: "date-time", description: "exclusive; later than activeFrom" },
    dailyWindowUtc: {
      type: "object",
      additionalProperties: false,
      required: ["from", "to"],
      description: '"HH:MM" UTC, from inclusive to exclusive; from later than to wraps past midnight; from and to differ',
      properties: { from: { type: "string", pattern: "^([01]\\d|2[0-3]):[0-5]\\d$" }, to: { type: "string", pattern: "^([01]\\d|2[0-3]):[0-5]\\d$" } },
    },
    approvalWebhook: {
      type: "object",
      additionalProperties: false,
      required: input ? ["url"] : ["url", "timeoutMs", "failOpen"],
      description: "asked to approve each final sponsorship after the policy allowed it",
      properties: {
        url: { type: "string", format: "uri", pattern: "^https?://" },
        timeoutMs: { type: "integer", minimum: 1, maximum: 30_000, default: 2_000, description: "how long the webhook has to answer" },
        failOpen: { type: "boolean", default: false, description: "approve when the webhook is unreachable, times out or answers 5xx (never overrides a refusal)" },
      },
    },
    chainIds: { type: "array", items: { type: "integer", minimum: 1, maximum: MAX_SAFE }, description: "when set, only these chains" },
    senderProof: {
      type: "object",
      additionalProperties: false,
      required: input ? [] : ["maxValiditySeconds"],
      description:
        "require proof that the caller controls the sender: every request carries context.senderProof (see SenderProof), signed by one of `signers` (the DApp's backend) or, with `account: true`, by the sender itself. At least one of the two.",
      properties: {
        signers: addresses("backend addresses whose EIP-712 SponsoredSender signature proves control"),
        account: { type: "boolean", description: "accept the sender's own signature (ERC-1271, ERC-6492, owner() of a SimpleAccount, or an EOA)" },
        maxValiditySeconds: { type: "integer", minimum: 1, maximum: 30 * 86_400, default: 3_600, description: "the furthest ahead a proof's validUntil may be" },
      },
    },
  };
};

const paymasterFieldsProperties: Json = {
  paymaster: { ...schema("Address"), description: "the paymaster contract (EIP-55 checksummed)" },
  paymasterData: { ...schema("HexBytes"), description: "validUntil, validAfter and the signature (a stub of the same length for pm_getPaymasterStubData)" },
  paymasterVerificationGasLimit: { ...schema("HexQuantity"), description: "hex quantity" },
  paymasterPostOpGasLimit: { ...schema("HexQuantity"), description: "hex quantity" },
  sponsor: { type: "object", required: ["name"], properties: { name: { type: "string" } }, description: "who pays (ERC-7677)" },
};

const SCHEMAS: Record<string, Json> = {
  Address: { type: "string", pattern: "^0x[0-9a-fA-F]{40}$", description: "a 20-byte 0x-prefixed hex address" },
  AccountAddress: {
    type: "string",
    pattern: "^0x[0-9a-fA-F]{40}$",
    description: "an account (the smart account's address): all lower-case, or with a correct EIP-55 checksum",
    examples: ["0x8ba1f109551bd432803012645ac136ddd64dba72"],
  },
  LowerAddress: { type: "string", pattern: "^0x[0-9a-f]{40}$", description: "an address in lower case" },
  HexQuantity: { type: "string", pattern: "^0x[0-9a-fA-F]{1,64}$", description: "an unsigned integer as 0x-prefixed hex", examples: ["0x5208"] },
  HexBytes: { type: "string", pattern: "^0x([0-9a-fA-F]{2})*$", description: "0x-prefixed hex bytes" },
  Bytes32: { type: "string", pattern: "^0x[0-9a-fA-F]{64}$" },
  FenString: { type: "string", pattern: "^\\d+$", description: "whole fen as a decimal string (bigint)", examples: ["1500"] },
  SignedFenString: { type: "string", pattern: "^-?\\d+$", description: "a change in fen as a decimal string, negative for a decrease" },
  WeiString: { type: "string", pattern: "^\\d+$", description: "wei as a decimal string (bigint)", examples: ["1000000000"] },
  FenInput: {
    description: "whole fen: a JSON integer, or a decimal string for amounts beyond 2^53; never a fraction",
    oneOf: [
      { type: "integer", minimum: -MAX_SAFE, maximum: MAX_SAFE },
      { type: "string", pattern: "^\\d{1,18}$" },
    ],
  },
  ChainId: {
    description: 'a chain id: a positive integer, a hex quantity ("0x2105", as ERC-7677 sends it) or a decimal string',
    oneOf: [
      { type: "integer", minimum: 1, maximum: MAX_SAFE },
      { type: "string", pattern: "^(0x[0-9a-fA-F]{1,13}|[1-9]\\d{0,15})$" },
    ],
  },
  IdempotencyKey: {
    type: "string",
    pattern: "^[\\w.:-]{1,128}$",
    description: "1–128 characters of letters, digits and _ . : -; repeating a request with the same key returns the same resource",
  },
  Problem: {
    type: "object",
    description: "RFC 9457 problem details, with extra members by type",
    required: ["type", "title", "status", "detail"],
    properties: {
      type: { type: "string", enum: [...Object.keys(GENERIC_PROBLEMS), ...SPONSOR_REASON_LIST.filter((r) => !(r in GENERIC_PROBLEMS))], description: "stable; see the API description" },
      title: { type: "string", description: 'the reason phrase of the status ("Bad Request"…; "Error" for 500)' },
      status: { type: "integer" },
      detail: { type: "string", description: "a message that names the problem" },
    },
    additionalProperties: true,
  },
  CreateOrderRequest: {
    type: "object",
    additionalProperties: false,
    required: ["account", "amountFen", "provider"],
    properties: {
      account: { ...schema("AccountAddress"), description: "the account credited when the order is paid" },
      amountFen: { ...schema("FenInput"), description: "between the server's ORDER_MIN_FEN and ORDER_MAX_FEN" },
      provider: { enum: [...PROVIDERS], description: "which gateway; it must be enabled on the server" },
      idempotencyKey: schema("IdempotencyKey"),
    },
  },
  Order: {
    type: "object",
    required: ["id", "account", "provider", "amountFen", "status", "expiresAt", "paidAt", "refundedFen", "createdAt"],
    properties: {
      id: { type: "string", pattern: "^fp[0-9a-f]{24}$", description: "our out_trade_no at the gateway" },
      account: schema("LowerAddress"),
      provider: { enum: [...PROVIDERS] },
      amountFen: schema("FenString"),
      status: { enum: ["created", "pending", "paid", "closed"], description: "created (the gateway trade is not made yet), pending (awaiting payment), paid (credited), closed (expired unpaid)" },
      qrCode: { type: "string", description: "the QR code payload to show the payer (Alipay qr_code, WeChat Pay code_url), once the trade exists" },
      payUrl: { type: "string", format: "uri", description: "a payment page URL, for gateways that answer one instead of a QR code" },
      expiresAt: { type: "string", format: "date-time", description: "the gateway stops accepting payment after this" },
      paidAt: { type: ["string", "null"], format: "date-time" },
      refundedFen: { ...schema("FenString"), description: "refunded or being refunded" },
      createdAt: { type: "string", format: "date-time" },
    },
  },
  RefundRequest: {
    type: "object",
    additionalProperties: false,
    required: ["orderId"],
    properties: {
      orderId: { type: "string", pattern: "^fp[0-9a-f]{24}$", description: "a paid order" },
      amountFen: {
        ...schema("FenInput"),
        description: "positive; by default all that can be refunded: the order's unrefunded part, capped by the account's available balance",
      },
      idempotencyKey: schema("IdempotencyKey"),
      reason: { type: "string", maxLength: 80, description: "passed to the gateway" },
    },
  },
  Refund: {
    type: "object",
    required: ["id", "orderId", "account", "amountFen", "status", "gatewayRefundNo", "failureReason", "createdAt", "updatedAt"],
    properties: {
      id: { type: "string", pattern: "^rf[0-9a-f]{24}$", description: "our refund id (the gateway's idempotency key for it)" },
      orderId: { type: "string" },
      account: schema("LowerAddress"),
      amountFen: schema("FenString"),
      status: {
        enum: ["requested", "succeeded", "failed"],
        description: "requested (debited from the quota; the gateway is working on it, or will be asked again by the reconciler), succeeded, failed (the quota is given back)",
      },
      gatewayRefundNo: { type: ["string", "null"] },
      failureReason: { type: ["string", "null"] },
      createdAt: { type: "string", format: "date-time" },
      updatedAt: { type: "string", format: "date-time" },
    },
  },
  Account: {
    type: "object",
    required: ["account", "availableFen", "heldFen", "openHolds", "entries"],
    properties: {
      account: schema("LowerAddress"),
      availableFen: fenString("what sponsorships can hold (0 for an account never seen)"),
      heldFen: fenString("held by operations awaiting settlement"),
      openHolds: { type: "array", items: schema("Hold"), description: "open holds, newest first (at most 20)" },
      entries: { type: "array", items: schema("AccountEntry"), description: "the latest ledger entries, newest first (at most 20)" },
    },
  },
  AccountEntry: {
    type: "object",
    description: "A ledger entry as anyone may see it: amounts, kind, time, and a top-up's order id — never an operator's memo or an internal reference.",
    required: ["kind", "availableDeltaFen", "heldDeltaFen", "createdAt"],
    additionalProperties: false,
    properties: {
      kind: { enum: ["topup", "hold", "release", "charge", "refund", "adjust"] },
      availableDeltaFen: schema("SignedFenString"),
      heldDeltaFen: schema("SignedFenString"),
      orderId: { type: "string", pattern: "^fp[0-9a-f]{24}$", description: "the top-up order (topup entries only)" },
      createdAt: { type: "string", format: "date-time" },
    },
  },
  Hold: {
    type: "object",
    required: ["id", "chainId", "nonce", "amountFen", "validUntil", "createdAt"],
    properties: {
      id: { type: "string" },
      chainId: { type: "integer" },
      nonce: { type: "string", pattern: "^\\d+$", description: "the UserOperation nonce (uint256) as a decimal string" },
      amountFen: schema("FenString"),
      validUntil: { type: "string", format: "date-time", description: "released once settlement has read a chain block past this (plus HOLD_GRACE_SECONDS) if the operation never landed" },
      createdAt: { type: "string", format: "date-time" },
    },
  },
  LedgerEntry: {
    type: "object",
    required: ["kind", "availableDeltaFen", "heldDeltaFen", "reference", "memo", "createdAt"],
    properties: {
      kind: { enum: ["topup", "hold", "release", "charge", "refund", "adjust"] },
      availableDeltaFen: schema("SignedFenString"),
      heldDeltaFen: schema("SignedFenString"),
      reference: { type: "string", description: "what the entry is for (an order id, a hold, a refund id…)" },
      memo: { type: ["string", "null"] },
      createdAt: { type: "string", format: "date-time" },
    },
  },
  UserOperation: {
    type: "object",
    description: [
      "A packed-fields EntryPoint v0.7 UserOperation as JSON-RPC sends it (ERC-7769): quantities are hex quantities,",
      "bytes are 0x-prefixed hex. The gas fields may be left out of a stub request (they count as 0); a final request",
      "needs them all (see UserOperationFinal). The paymaster fields are ours to set: paymaster, paymasterData and",
      "paymasterPostOpGasLimit are ignored, and paymasterVerificationGasLimit is kept only when positive (up to 4× ours).",
      "A v0.6 operation (initCode, or paymasterAndData without paymaster) is refused. Other members are ignored.",
    ].join(" "),
    required: ["sender", "nonce", "callData"],
    properties: {
      sender: schema("Address"),
      nonce: { ...schema("HexQuantity"), description: "a hex quantity (uint256)" },
      factory: { description: "the account factory, for an account not deployed yet", anyOf: [schema("Address"), { const: "0x" }, { type: "null" }] },
      factoryData: { anyOf: [schema("HexBytes"), { type: "null" }], description: `at most ${MAX_CALL_DATA_BYTES} bytes; only with factory` },
      callData: { ...schema("HexBytes"), description: `at most ${MAX_CALL_DATA_BYTES} bytes` },
      callGasLimit: { ...schema("HexQuantity"), description: QUANTITY_DESCRIPTION },
      verificationGasLimit: { ...schema("HexQuantity"), description: QUANTITY_DESCRIPTION },
      preVerificationGas: { ...schema("HexQuantity"), description: QUANTITY_DESCRIPTION },
      maxFeePerGas: { ...schema("HexQuantity"), description: `${QUANTITY_DESCRIPTION}, in wei` },
      maxPriorityFeePerGas: { ...schema("HexQuantity"), description: `${QUANTITY_DESCRIPTION}, in wei; not above maxFeePerGas` },
      paymaster: { description: "ignored" },
      paymasterVerificationGasLimit: { ...schema("HexQuantity"), description: "kept when positive, e.g. the wallet's estimate after our stub" },
      paymasterPostOpGasLimit: { description: "ignored" },
      paymasterData: { description: "ignored" },
      signature: { anyOf: [schema("HexBytes"), { type: "null" }], description: 'at most 4096 bytes; "0x" when absent' },
    },
    not: { anyOf: [{ required: ["initCode"] }, { required: ["paymasterAndData"], not: { required: ["paymaster"] } }] },
    additionalProperties: true,
  },
  UserOperationFinal: {
    description: "A UserOperation with every gas field, as a final (signed) sponsorship needs it.",
    allOf: [schema("UserOperation"), { type: "object", required: FINAL_GAS_FIELDS }],
  },
  SponsorshipRequest: {
    type: "object",
    additionalProperties: false,
    required: ["userOp", "entryPoint", "chainId"],
    properties: {
      userOp: schema("UserOperationFinal"),
      entryPoint: { ...schema("Address"), description: "the chain's v0.7 EntryPoint" },
      chainId: schema("ChainId"),
      context: schema("SponsorshipContext"),
    },
  },
  SponsorshipContext: {
    description: "ERC-7677's context: may carry `senderProof` (required by keys whose policy has senderProof); other members are ignored.",
    anyOf: [{ type: "object", properties: { senderProof: schema("SenderProof") } }, { type: "null" }],
  },
  SenderProof: {
    type: "object",
    required: ["validUntil", "signature"],
    description:
      'Proof of control of the sender: an EIP-712 signature of SponsoredSender(address sender, uint64 validUntil) under the domain { name: "fiat-paymaster", version: "1", chainId, verifyingContract: the paymaster }, by a proof signer of the key or by the sender itself.',
    properties: {
      validUntil: { type: "integer", minimum: 1, description: "Unix seconds; in the future, at most the key's maxValiditySeconds ahead" },
      signature: { ...schema("HexBytes"), description: "65 bytes from an EOA; an ERC-1271 / ERC-6492 signature from a smart account" },
    },
  },
  Sponsorship: {
    type: "object",
    required: [...Object.keys(paymasterFieldsProperties), "chainId", "userOpHash", "holdId", "validUntil", "validAfter", "quote"],
    properties: {
      ...paymasterFieldsProperties,
      chainId: { type: "integer" },
      userOpHash: { ...schema("Bytes32"), description: "the hash of the operation with these paymaster fields" },
      holdId: { type: "string", description: "the hold on the account's quota (the same hold again for the same sender and nonce)" },
      validUntil: { type: "integer", description: "Unix seconds: the signature expires then" },
      validAfter: { type: "integer", description: "Unix seconds (0)" },
      quote: {
        type: "object",
        description: "the price locked for this operation",
        required: ["fenPerNative", "markupBps", "maxChargeFen", "heldFen", "availableFen", "validUntil"],
        properties: {
          fenPerNative: fenString("fen per whole native token (1e18 wei)"),
          markupBps: { type: "integer", minimum: 0, maximum: 100_000, description: "the markup in basis points" },
          maxChargeFen: fenString("the most the operation can be charged: its worst-case cost"),
          heldFen: fenString("the hold's amount now"),
          availableFen: fenString("the account's available fen after the hold"),
          validUntil: { type: "string", format: "date-time" },
        },
      },
    },
  },
  Quote: {
    type: "object",
    required: ["chainId", "fenPerNative", "markupBps", "gasPrice", "gas", "costWei", "chargeFen", "note"],
    properties: {
      chainId: { type: "integer" },
      fenPerNative: fenString("fen per whole native token (1e18 wei)"),
      markupBps: { type: "integer", minimum: 0, maximum: 100_000 },
      gasPrice: weiString("the chain's current gas price, in wei"),
      gas: { type: "string", pattern: "^\\d+$", description: "the gas asked about, as a decimal string" },
      costWei: weiString("gas × gasPrice"),
      chargeFen: fenString("what that cost would be charged, rounded up"),
      note: { type: "string" },
    },
  },
  PaymasterFields: {
    type: "object",
    description: "ERC-7677's result for EntryPoint v0.7",
    required: [...Object.keys(paymasterFieldsProperties), "isFinal"],
    properties: { ...paymasterFieldsProperties, isFinal: { const: false } },
  },
  PolicyInput: {
    type: "object",
    additionalProperties: false,
    description:
      "A sponsorship policy: every field optional, an absent field imposes nothing. Fails closed: an unknown field is refused (400 invalid_request naming it), and an empty allowlist allows nothing.",
    properties: policyProperties(schema("FenInput"), true),
  },
  Policy: {
    type: "object",
    additionalProperties: false,
    description: "A stored policy: fen as decimal strings, addresses in lower case, times in UTC, defaults written out.",
    properties: policyProperties(schema("FenString"), false),
  },
  PolicyRejection: {
    enum: Object.keys(POLICY_RULES),
    description: Object.entries(POLICY_RULES)
      .map(([rule, when]) => `\`${rule}\`: ${when}`)
      .join("; "),
  },
  ApiKeyRequest: {
    type: "object",
    additionalProperties: false,
    required: ["name"],
    properties: { name: { type: "string", minLength: 1, maxLength: 100, description: "not blank" }, policy: schema("PolicyInput") },
  },
  ApiKey: {
    type: "object",
    required: ["id", "name", "policy", "createdAt", "revokedAt"],
    properties: {
      id: { type: "string", pattern: "^[0-9a-f]{12}$", description: "public: the key's id in logs and dashboards" },
      name: { type: "string" },
      policy: schema("Policy"),
      createdAt: { type: "string", format: "date-time" },
      revokedAt: { type: ["string", "null"], format: "date-time" },
    },
  },
  CreatedApiKey: {
    allOf: [
      schema("ApiKey"),
      {
        type: "object",
        required: ["key", "note"],
        properties: {
          key: { type: "string", pattern: "^fpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", description: "the secret, shown this once: only its SHA-256 is stored" },
          note: { type: "string" },
        },
      },
    ],
  },
  ChainStatus: {
    type: "object",
    required: ["chainId", "rpc", "depositHealthy"],
    properties: {
      chainId: { type: "integer" },
      rpc: { enum: ["ok", "unreachable"] },
      block: { type: "string", pattern: "^\\d+$", description: "the latest block number, when the RPC answered" },
      depositHealthy: { type: "boolean", description: "whether the paymaster's deposit covers its open holds plus the threshold (if not, sponsorship on the chain is paused)" },
    },
  },
  JsonRpcId: { type: ["string", "number", "null"], description: "echoed; null when the request's id was missing or not a string or number" },
  PaymasterRpcRequest: {
    type: "object",
    required: ["jsonrpc", "method", "params"],
    properties: {
      jsonrpc: { const: "2.0" },
      id: schema("JsonRpcId"),
      method: { enum: ["pm_getPaymasterStubData", "pm_getPaymasterData"] },
      params: {
        type: "array",
        minItems: 3,
        maxItems: 4,
        description: "[userOp, entryPoint, chainId, context?]; pm_getPaymasterData needs every gas field of the userOp",
        prefixItems: [schema("UserOperation"), schema("Address"), schema("ChainId"), schema("SponsorshipContext")],
      },
    },
  },
  JsonRpcResult: {
    type: "object",
    required: ["jsonrpc", "id", "result"],
    properties: { jsonrpc: { const: "2.0" }, id: schema("JsonRpcId"), result: schema("PaymasterFields") },
  },
  JsonRpcError: {
    type: "object",
    required: ["jsonrpc", "id", "error"],
    properties: {
      jsonrpc: { const: "2.0" },
      id: schema("JsonRpcId"),
      error: {
        type: "object",
        required: ["code", "message"],
        properties: {
          code: { type: "integer", enum: [...new Set(rpcCodes.map((c) => c.code))], description: "see the JSON-RPC error codes in the API description" },
          message: { type: "string", description: "names the problem" },
          data: {
            type: "object",
            description: "for a sponsorship refusal: the reason and its members (absent when the API key is missing or invalid)",
            required: ["reason"],
            properties: { reason: { enum: SPONSOR_REASON_LIST }, ...Object.assign({}, ...SPONSOR_REASON_LIST.map((r) => SPONSOR_REASONS[r].data)) },
            additionalProperties: true,
          },
        },
      },
    },
  },
  JsonRpcResponse: { oneOf: [schema("JsonRpcResult"), schema("JsonRpcError")] },
};

// ---- Paths ---------------------------------------------------------------------------------------------

const API_KEY_SECURITY = [{ apiKey: [] }, { apiKeyQuery: [] }];
const ADMIN_SECURITY = [{ adminToken: [] }];

const pathParam = (name: string, description: string, extra: Json = {}): Json => ({ name, in: "path", required: true, description, schema: { type: "string", ...extra } });
const jsonRequest = (ref: string, description?: string): Json => ({ required: true, ...(description ? { description } : {}), content: { "application/json": { schema: schema(ref) } } });

const NOTIFY_PROBLEMS: ProblemCase[] = [
  { status: 413, type: "too_large", when: "the body is larger than 64 KiB" },
  { status: 415, type: "invalid_request", when: "the body's charset or Content-Encoding is not supported" },
  { status: 500, type: "internal", when: "the callback could not be processed (an unexpected error): nothing was credited, and the gateway retries" },
];
const NOTIFY_PROBLEM_ANSWERS = problems(NOTIFY_PROBLEMS);
const WECHAT_FAIL = (message: Json): Json => ({ type: "object", required: ["code", "message"], properties: { code: { const: "FAIL" }, message } });
const notEnabled = (provider: Provider): Json => answer(`${provider} is not enabled on this server`, { "text/plain": { schema: { type: "string", const: `${provider} is not enabled` } } });
const NOTIFY_COMMON =
  "Verified (signature, merchant ids) before anything is read; processed at most CALLBACK_CONCURRENCY at once, and one that waited too long for its turn is answered the gateway's failure reply with 503 at once (nothing read or stored; the gateway retries). Every callback is stored with its outcome. " +
  `Acknowledged with the gateway's success reply: ${outcomes(true)}. Answered the failure reply, so the gateway retries: ${outcomes(false)}. The raw body is read whatever the Content-Type (at most 64 KiB). ` +
  "A callback whose signature does not verify is kept with at most 4 KiB of its body and a few headers, for UNVERIFIED_CALLBACK_RETENTION_HOURS; a client IP that sends more than RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE of them a minute is answered 429 unread until the minute passes. While the database is down the failure reply is answered with 503 (nothing credited or stored; the gateway retries).";

const NOTIFY: Record<Provider, Json> = {
  alipay: {
    tags: ["payments"],
    operationId: "alipayNotify",
    summary: "Alipay payment notification (notify_url)",
    description: `Alipay's asynchronous notification of a payment (RSA2-signed form). ${NOTIFY_COMMON}`,
    requestBody: {
      required: true,
      content: {
        "application/x-www-form-urlencoded": {
          schema: {
            type: "object",
            description: "Alipay's notification form; each field once",
            required: ["app_id", "out_trade_no", "trade_no", "trade_status", "total_amount", "sign"],
            properties: {
              app_id: { type: "string" },
              out_trade_no: { type: "string", description: "our order id" },
              trade_no: { type: "string" },
              trade_status: { type: "string", description: "TRADE_SUCCESS / TRADE_FINISHED are paid" },
              total_amount: { type: "string", description: "yuan, e.g. 15.00" },
              gmt_payment: { type: "string", description: "Beijing time" },
              sign_type: { const: "RSA2" },
              sign: { type: "string" },
            },
            additionalProperties: { type: "string" },
          },
        },
      },
    },
    responses: {
      "200": answer("Alipay's reply: exactly `success` when acknowledged; `fail` when refused (Alipay retries on anything but `success`)", {
        "text/plain": { schema: { type: "string", enum: ["success", "fail"] } },
      }),
      "404": notEnabled("alipay"),
      "429": answer("this client IP sent too many callbacks that do not verify: `fail`, unread", { "text/plain": { schema: { type: "string", const: "fail" } } }),
      "503": answer("over capacity, or the database is down: `fail`, Alipay retries later", { "text/plain": { schema: { type: "string", const: "fail" } } }),
      ...NOTIFY_PROBLEM_ANSWERS,
    },
  },
  wechat: {
    tags: ["payments"],
    operationId: "wechatNotify",
    summary: "WeChat Pay payment notification (notify_url)",
    description: `WeChat Pay v3's notification of a payment: signed with the platform certificate (Wechatpay-* headers), its resource encrypted with our APIv3 key (AEAD_AES_256_GCM). ${NOTIFY_COMMON}`,
    parameters: ["Wechatpay-Serial", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature"]
      .map((name) => ({ name, in: "header", required: true, schema: { type: "string" }, description: "verified with the platform certificate; without it the callback is refused" }))
      .concat([{ name: "Wechatpay-Signature-Type", in: "header", required: false, schema: { type: "string" }, description: "WECHATPAY2-SHA256-RSA2048" }]),
    requestBody: {
      required: true,
      content: {
        "application/json": {
          schema: {
            type: "object",
            required: ["id", "event_type", "resource"],
            properties: {
              id: { type: "string" },
              create_time: { type: "string" },
              event_type: { type: "string", description: "TRANSACTION.SUCCESS for a payment" },
              resource_type: { type: "string" },
              summary: { type: "string" },
              resource: {
                type: "object",
                required: ["algorithm", "ciphertext", "nonce"],
                properties: {
                  algorithm: { const: "AEAD_AES_256_GCM" },
                  ciphertext: { type: "string", minLength: 1 },
                  nonce: { type: "string", minLength: 1 },
                  associated_data: { type: "string" },
                  original_type: { type: "string", description: "transaction for a payment" },
                },
              },
            },
          },
        },
      },
    },
    responses: {
      "204": answer("acknowledged (WeChat Pay's success reply: no body)"),
      "404": notEnabled("wechat"),
      "429": answer("this client IP sent too many callbacks that do not verify; unread", { "application/json": { schema: WECHAT_FAIL({ const: "too many unverifiable notifications from this address" }) } }),
      "503": answer("over capacity, or the database is down; WeChat Pay retries later", {
        "application/json": { schema: WECHAT_FAIL({ enum: ["busy, retry later", "temporarily unavailable, retry later"] }) },
      }),
      ...NOTIFY_PROBLEM_ANSWERS,
      // WeChat Pay's failure reply is a 500 too: the status of an internal problem, with another content type
      "500": {
        ...NOTIFY_PROBLEM_ANSWERS["500"],
        description: `Refused: WeChat Pay's failure reply (application/json; it retries). Or ${String(NOTIFY_PROBLEM_ANSWERS["500"]!.description)}`,
        content: {
          "application/json": { schema: WECHAT_FAIL({ type: "string", maxLength: 256, description: "why it was refused" }) },
          ...(NOTIFY_PROBLEM_ANSWERS["500"]!.content as Json),
        },
      },
    },
  },
};
const rpcErrorAnswer = (description: string, codes: number[]): Json =>
  answer(description, {
    "application/json": {
      schema: { allOf: [schema("JsonRpcError"), { type: "object", properties: { id: { const: null }, error: { type: "object", properties: { code: { enum: codes } } } } }] },
    },
  });

const PATHS: Record<string, Json> = {
  "/healthz": {
    get: {
      tags: ["operations"],
      operationId: "healthz",
      summary: "Liveness",
      description: "Answers while the process serves requests; checks nothing else.",
      responses: {
        "200": jsonAnswer("alive", { type: "object", required: ["status"], properties: { status: { const: "ok" } } }),
        ...problems([INTERNAL]),
      },
    },
  },
  "/readyz": {
    get: {
      tags: ["operations"],
      operationId: "readyz",
      summary: "Readiness",
      description:
        "Ready when the database and every configured chain's RPC answer, and the server is not shutting down (readiness fails first on SIGTERM). The result is cached for a second and shared; each probe is given up after 800 ms, so it answers within about a second whatever hangs, and a flood of probes costs one RPC call per chain per second.",
      responses: {
        "200": jsonAnswer("ready", {
          type: "object",
          required: ["status", "database", "providers", "sponsorship", "chains"],
          properties: {
            status: { const: "ready" },
            database: { enum: ["postgres", "pglite"] },
            providers: { type: "array", items: { enum: [...PROVIDERS] }, description: "the enabled payment gateways" },
            sponsorship: { enum: ["on", "off"] },
            chains: { type: "array", items: schema("ChainStatus") },
          },
        }),
        ...problems([{ status: 503, type: "not_ready" }, INTERNAL]),
      },
    },
  },
  "/metrics": {
    get: {
      tags: ["operations"],
      operationId: "metrics",
      summary: "Prometheus metrics",
      description: "The Prometheus text exposition format (Content-Type `text/plain; version=0.0.4; charset=utf-8`); metrics are named `fiat_paymaster_*`, fen amounts as counters of whole fen.",
      responses: {
        "200": answer("the metrics", { "text/plain": { schema: { type: "string" } } }),
        ...problems([INTERNAL]),
      },
    },
  },
  ...Object.fromEntries(
    (
      [
        ["/checkout", "checkoutPage", "The checkout page: top up a smart account's gas quota (`?account=0x…&lang=zh|en&order=`)"],
        ["/dapp", "demoDappPage", "The demo DApp: a browser-held SimpleAccount sending sponsored UserOperations (sandbox mode)"],
        ["/dashboard", "dashboardPage", "The operations dashboard (asks for the admin token; reads the /admin API)"],
      ] as const
    ).map(([route, operationId, summary]) => [
      route,
      {
        get: {
          tags: ["operations"],
          operationId,
          summary,
          description: "An HTML page built from web/ (`npm run build:web`); its scripts and styles are served under /assets.",
          responses: {
            "200": answer("the page", { "text/html": { schema: { type: "string" } } }),
            ...problems([{ status: 503, type: "web_not_built" }, INTERNAL]),
          },
        },
      },
    ]),
  ),
  "/openapi.json": {
    get: {
      tags: ["operations"],
      operationId: "openApiDocument",
      summary: "This document",
      responses: {
        "200": jsonAnswer("the OpenAPI 3.1 description of this API", { type: "object" }),
        ...problems([INTERNAL]),
      },
    },
  },
  "/v1/orders": {
    post: {
      tags: ["payments"],
      operationId: "createOrder",
      summary: "Create a top-up order",
      description:
        "Creates the order and the gateway trade behind it, and answers the QR code (or page URL) the payer pays. The same idempotencyKey always returns the same order (a crashed attempt is finished). The account is credited when the gateway notifies the payment.",
      requestBody: jsonRequest("CreateOrderRequest"),
      responses: {
        "201": jsonAnswer("the order (an existing one, for a repeated idempotencyKey)", schema("Order")),
        ...problems([
          { status: 400, type: "invalid_request", when: "the body does not match the schema, the provider is not enabled, or amountFen is outside the server's limits" },
          ...jsonBody("16 KiB"),
          { status: 409, type: "conflict", when: "idempotencyKey was already used for an order with other parameters (`orderId` names it)" },
          { status: 429, type: "rate_limited", when: "too many orders a minute from this client IP or for this account (RATE_LIMIT_ORDERS_*): each is a real gateway trade" },
          { status: 502, type: "gateway_error" },
          { status: 503, type: "gateway_unavailable" },
          INTERNAL,
        ]),
      },
    },
  },
  "/v1/orders/{id}": {
    get: {
      tags: ["payments"],
      operationId: "getOrder",
      summary: "An order",
      description: "Poll it to learn when the order is paid.",
      parameters: [pathParam("id", "the order id", { pattern: "^fp[0-9a-f]{24}$" })],
      responses: {
        "200": jsonAnswer("the order", schema("Order")),
        ...problems([{ status: 400, type: "invalid_request", when: "the id is not an order id" }, { ...NOT_FOUND, when: "no such order" }, INTERNAL]),
      },
    },
  },
  ...Object.fromEntries(PROVIDERS.map((provider) => [`/v1/payments/${provider}/notify`, { post: NOTIFY[provider] }])),
  "/v1/refunds": {
    post: {
      tags: ["admin"],
      operationId: "requestRefund",
      summary: "Refund unspent quota of a paid order (admin)",
      description:
        "Debits the refund from the account's available quota and records it before asking the gateway, so the fen cannot be spent meanwhile. A refund the gateway has not confirmed stays `requested` and is finished by the reconciler; one the gateway refuses becomes `failed` and gives the quota back. The same idempotencyKey returns the same refund.",
      security: ADMIN_SECURITY,
      requestBody: jsonRequest("RefundRequest"),
      responses: {
        "201": jsonAnswer("the refund", schema("Refund")),
        ...problems([
          ...ADMIN,
          { status: 400, type: "invalid_request", when: "the body does not match the schema, or amountFen is not positive" },
          ...jsonBody("16 KiB"),
          { ...NOT_FOUND, when: "no such order" },
          {
            status: 409,
            type: "conflict",
            when: "the order is not paid; nothing is left to refund; the amount exceeds the order's unrefunded part or the account's available balance (`refundableFen`, `availableFen`, `requestedFen`); idempotencyKey already used for another refund (`refundId`)",
          },
          { status: 409, type: "insufficient_balance" },
          INTERNAL,
        ]),
      },
    },
  },
  "/v1/refunds/{id}": {
    get: {
      tags: ["admin"],
      operationId: "getRefund",
      summary: "A refund (admin)",
      security: ADMIN_SECURITY,
      parameters: [pathParam("id", "the refund id", { examples: ["rf0123456789abcdef01234567"] })],
      responses: {
        "200": jsonAnswer("the refund", schema("Refund")),
        ...problems([...ADMIN, { ...NOT_FOUND, when: "no such refund" }, INTERNAL]),
      },
    },
  },
  "/v1/config": {
    get: {
      tags: ["payments"],
      operationId: "getConfig",
      summary: "What the web pages need to know",
      description: "The order limits and enabled gateways, and the sponsored chains; in sandbox mode also each chain's RPC and bundler URLs and the demo API key, for the demo DApp page.",
      responses: {
        "200": jsonAnswer("the public configuration", {
          type: "object",
          required: ["orders", "providers", "sandbox", "chains"],
          properties: {
            orders: { type: "object", required: ["minFen", "maxFen"], properties: { minFen: fenString("the smallest order"), maxFen: fenString("the largest order") } },
            providers: { type: "array", items: { enum: [...PROVIDERS] }, description: "the enabled payment gateways" },
            sandbox: { type: "boolean", description: "the server runs against the gateway simulator" },
            chains: {
              type: "array",
              items: {
                type: "object",
                required: ["chainId", "name", "paymaster", "entryPoint"],
                properties: {
                  chainId: { type: "integer" },
                  name: { type: "string" },
                  paymaster: schema("Address"),
                  entryPoint: schema("Address"),
                  rpcUrl: { type: "string", format: "uri", description: "sandbox only" },
                  bundlerUrl: { type: "string", format: "uri", description: "sandbox only, when configured" },
                },
              },
            },
            demoApiKey: { type: "string", description: "sandbox only, when a bootstrap API key is configured: the key the demo DApp page uses" },
          },
        }),
        ...problems([INTERNAL]),
      },
    },
  },
  "/v1/accounts/{address}": {
    get: {
      tags: ["payments"],
      operationId: "getAccount",
      summary: "An account's quota",
      description:
        "Its balance in fen, its open holds and its latest ledger entries: amounts, kinds, times and top-up order ids only (anyone may read it; operators' memos and internal references are on the admin API). An account never seen has a zero balance.",
      parameters: [pathParam("address", "the account: lower-case, or with a correct EIP-55 checksum", { pattern: "^0x[0-9a-fA-F]{40}$" })],
      responses: {
        "200": jsonAnswer("the account", schema("Account")),
        ...problems([{ status: 400, type: "invalid_request", when: "not an address, or a wrong EIP-55 checksum" }, INTERNAL]),
      },
    },
  },
  "/v1/sponsorships": {
    post: {
      tags: ["sponsorship"],
      operationId: "createSponsorship",
      summary: "Sponsor a UserOperation (REST)",
      description:
        "The same checks, hold and signature as `pm_getPaymasterData`, answered with the locked quote and the hold. The operation's worst-case cost is held from the sender's quota until it settles on chain (or the signature expires); asking again for the same sender and nonce replaces the hold. The body is read before the API key is checked.",
      security: API_KEY_SECURITY,
      requestBody: jsonRequest("SponsorshipRequest"),
      responses: {
        "201": jsonAnswer("signed: set these paymaster fields on the operation and send it before validUntil", schema("Sponsorship")),
        ...problems([
          ...jsonBody(SPONSOR_BODY_LIMIT),
          { status: 400, type: "invalid_request", when: "the body is not { userOp, entryPoint, chainId, context? }" },
          ...sponsorCases(SPONSOR_REASON_LIST),
          { status: 503, type: "sponsorship_off" },
          INTERNAL,
        ]),
      },
    },
  },
  "/v1/quote": {
    get: {
      tags: ["sponsorship"],
      operationId: "getQuote",
      summary: "What an amount of gas would cost in fen now",
      description: "An estimate at the chain's current gas price and the current fen price; a sponsorship locks its own quote and holds the worst case.",
      parameters: [
        { name: "chainId", in: "query", required: true, description: 'a chain id: decimal, or a hex quantity such as "0x2105"', schema: { type: "string" } },
        { name: "gas", in: "query", required: true, description: "gas units, in decimal", schema: { type: "string", pattern: "^\\d{1,12}$" } },
      ],
      responses: {
        "200": jsonAnswer("the estimate", schema("Quote")),
        ...problems([
          { status: 400, type: "invalid_request", when: "chainId or gas is missing, repeated, or gas is not 1–12 digits" },
          ...sponsorCases(["invalid_params", "unsupported_chain", "unavailable"], { invalid_params: "chainId is not a positive chain id" }),
          INTERNAL,
        ]),
      },
    },
  },
  "/rpc": {
    post: {
      tags: ["sponsorship"],
      operationId: "paymasterJsonRpc",
      summary: "ERC-7677 paymaster web service (JSON-RPC 2.0)",
      description: [
        "One JSON-RPC 2.0 endpoint serving two methods, with params `[userOp, entryPoint, chainId, context?]`:",
        "",
        "- `pm_getPaymasterStubData`: paymaster fields with stub paymasterData of the final length, for gas estimation. The gas fields may be left out; checks the chain, entry point, userOp shape, rate limits and the policy's static rules; reserves nothing.",
        "- `pm_getPaymasterData`: the signed paymaster fields. Every gas field is required; all checks run, the operation's worst-case cost is held from the sender's quota, then it is signed.",
        "",
        `A batch (an array of 1 to ${MAX_RPC_BATCH} requests) is answered by an array in the same order. Every failure is a JSON-RPC error object, answered with HTTP 200 as JSON-RPC clients expect (except the HTTP errors below); a sponsorship refusal carries \`error.data = { reason, …members }\` (see the tables in the API description). The body must be declared \`application/json\` (415 otherwise: a cross-origin "simple" request must not take holds). A notification (a request without \`id\`) is never executed — it cannot receive a signature — and gets no answer (HTTP 204 when nothing else is left to answer). The API key is checked per request, after the method; a key that cannot be looked up (the database is down) answers \`unavailable\`, not \`unauthorized\`.`,
      ].join("\n"),
      security: API_KEY_SECURITY,
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: { oneOf: [schema("PaymasterRpcRequest"), { type: "array", minItems: 1, maxItems: MAX_RPC_BATCH, items: schema("PaymasterRpcRequest") }] },
          },
        },
      },
      "x-json-rpc-methods": [
        { name: "pm_getPaymasterStubData", params: ["userOp (UserOperation, gas fields optional)", "entryPoint", "chainId", "context?"], result: schema("PaymasterFields") },
        { name: "pm_getPaymasterData", params: ["userOp (UserOperationFinal)", "entryPoint", "chainId", "context?"], result: schema("PaymasterFields") },
      ],
      responses: {
        "200": jsonAnswer("a JSON-RPC response (result or error), or an array of them for a batch", {
          oneOf: [schema("JsonRpcResponse"), { type: "array", items: schema("JsonRpcResponse") }],
        }),
        "204": answer("only notifications were sent: nothing was executed and nothing is answered"),
        "400": rpcErrorAnswer("the body could not be read (e.g. an unsupported charset or Content-Encoding)", [RPC_ERRORS.parse]),
        "413": rpcErrorAnswer("the body is larger than MAX_BODY_BYTES", [RPC_ERRORS.invalidRequest]),
        "415": rpcErrorAnswer("the body is not declared as application/json", [RPC_ERRORS.invalidRequest]),
        "503": rpcErrorAnswer("sponsorship is not configured on this server (CHAINS and SIGNER_PRIVATE_KEY)", [SPONSOR_ERROR_CODES.unavailable]),
        ...problems([INTERNAL]),
      },
    },
  },
  "/admin/api-keys": {
    get: {
      tags: ["admin"],
      operationId: "listApiKeys",
      summary: "List API keys (admin)",
      description: "Every key, revoked ones included, oldest first. The secrets cannot be read back.",
      security: ADMIN_SECURITY,
      responses: {
        "200": jsonAnswer("the keys", { type: "object", required: ["apiKeys"], properties: { apiKeys: { type: "array", items: schema("ApiKey") } } }),
        ...problems([...ADMIN, INTERNAL]),
      },
    },
    post: {
      tags: ["admin"],
      operationId: "createApiKey",
      summary: "Create an API key (admin)",
      security: ADMIN_SECURITY,
      requestBody: jsonRequest("ApiKeyRequest"),
      responses: {
        "201": jsonAnswer("the key, with its secret shown once", schema("CreatedApiKey")),
        ...problems([...ADMIN, { status: 400, type: "invalid_request", when: "the body does not match the schema, the name is blank, or the policy is invalid (the detail names each bad field)" }, ...jsonBody(SPONSOR_BODY_LIMIT), INTERNAL]),
      },
    },
  },
  "/admin/api-keys/{id}/policy": {
    put: {
      tags: ["admin"],
      operationId: "updateApiKeyPolicy",
      summary: "Replace an API key's policy (admin)",
      description: "The body is the whole new policy (`{}` lifts every restriction). Takes effect everywhere within a few seconds (the key cache).",
      security: ADMIN_SECURITY,
      parameters: [pathParam("id", "the key's id", { pattern: "^[0-9a-f]{12}$" })],
      requestBody: jsonRequest("PolicyInput"),
      responses: {
        "200": jsonAnswer("the key with its new policy", schema("ApiKey")),
        ...problems([...ADMIN, { status: 400, type: "invalid_request", when: "the policy is invalid or missing (the detail names each bad field)" }, ...jsonBody(SPONSOR_BODY_LIMIT), { ...NOT_FOUND, when: "no such key" }, INTERNAL]),
      },
    },
  },
  "/admin/api-keys/{id}": {
    delete: {
      tags: ["admin"],
      operationId: "revokeApiKey",
      summary: "Revoke an API key (admin)",
      description: "Takes effect everywhere within a few seconds (the key cache).",
      security: ADMIN_SECURITY,
      parameters: [pathParam("id", "the key's id", { pattern: "^[0-9a-f]{12}$" })],
      responses: {
        "204": answer("revoked"),
        ...problems([...ADMIN, { ...NOT_FOUND, when: "no such key, or it is already revoked" }, INTERNAL]),
      },
    },
  },
};

// ---- The admin API (server/admin/routes.ts) -----------------------------------------------------------------

const dateTime = (description?: string): Json => ({ type: "string", format: "date-time", ...(description ? { description } : {}) });
const nullableDateTime = (description?: string): Json => ({ type: ["string", "null"], format: "date-time", ...(description ? { description } : {}) });
const decimalString = (description: string): Json => ({ type: "string", pattern: "^\\d+$", description });
const nullableFen = (description: string): Json => ({ type: ["string", "null"], pattern: "^\\d+$", description: `${description}; fen as a decimal string` });
const nullableWei = (description: string, signed = false): Json => ({ type: ["string", "null"], pattern: signed ? "^-?\\d+$" : "^\\d+$", description: `${description}; wei as a decimal string` });
const nullableString = (description?: string): Json => ({ type: ["string", "null"], ...(description ? { description } : {}) });
const serialId = (what: string): Json => decimalString(`the ${what}'s id (a serial number, as a string): a page cursor`);

/** A page of a list: `items`, and the cursor of the next page. */
const pageOf = (item: string): Json => ({
  type: "object",
  required: ["items", "nextBefore"],
  properties: {
    items: { type: "array", items: schema(item) },
    nextBefore: { type: ["string", "null"], description: "send as `before` for the next page; null on the last page" },
  },
});

const ADMIN_SCHEMAS: Record<string, Json> = {
  AdminOrder: {
    type: "object",
    description: "An order as the operators see it: the public fields and the gateway's trade number, the idempotency key, and when it closed.",
    required: ["id", "account", "provider", "amountFen", "status", "refundedFen", "gatewayTradeNo", "idempotencyKey", "qrCode", "payUrl", "expiresAt", "paidAt", "closedAt", "createdAt", "updatedAt"],
    properties: {
      id: { type: "string", pattern: "^fp[0-9a-f]{24}$", description: "our out_trade_no at the gateway" },
      account: schema("LowerAddress"),
      provider: { enum: [...PROVIDERS] },
      amountFen: schema("FenString"),
      status: { enum: ["created", "pending", "paid", "closed"] },
      refundedFen: fenString("refunded or being refunded"),
      gatewayTradeNo: nullableString("the gateway's trade number (Alipay trade_no, WeChat Pay transaction_id), once paid"),
      idempotencyKey: nullableString(),
      qrCode: nullableString("the QR code payload shown to the payer"),
      payUrl: nullableString("the payment page, for page checkout"),
      expiresAt: dateTime(),
      paidAt: nullableDateTime(),
      closedAt: nullableDateTime("when it was closed unpaid"),
      createdAt: dateTime(),
      updatedAt: dateTime(),
    },
  },
  PaymentCallback: {
    type: "object",
    description: "A payment notification as it reached us, valid or not, with what verification made of it. payload, headers and rawBody only with `raw=1`.",
    required: ["id", "provider", "orderId", "outcome", "verified", "detail", "receivedAt"],
    properties: {
      id: serialId("callback"),
      provider: { enum: [...PROVIDERS] },
      orderId: nullableString("the order it is about; null when it could not be verified (the order a forged callback names is not trusted)"),
      outcome: {
        enum: Object.keys(CALLBACK_OUTCOMES),
        description: Object.entries(CALLBACK_OUTCOMES)
          .map(([name, o]) => `\`${name}\`: ${o.when}`)
          .join("; "),
      },
      verified: { type: "boolean", description: "the signature (and, for WeChat Pay, the decryption) checked out" },
      detail: nullableString("why it was refused, when it was"),
      receivedAt: dateTime(),
      payload: { description: "what was decoded from it once verified (null otherwise); `raw=1` only" },
      headers: { type: "object", additionalProperties: true, description: "its HTTP headers; `raw=1` only" },
      rawBody: { type: "string", description: "its body as received (what the signature covers); `raw=1` only" },
    },
  },
  AdminOrderDetail: {
    type: "object",
    required: ["order", "callbacks", "refunds"],
    properties: {
      order: schema("AdminOrder"),
      callbacks: { type: "array", items: schema("PaymentCallback"), description: "every callback stored for the order, oldest first" },
      refunds: { type: "array", items: schema("Refund"), description: "its refunds, oldest first" },
    },
  },
  AdminAccount: {
    type: "object",
    required: ["account", "availableFen", "heldFen", "createdAt", "updatedAt"],
    properties: {
      account: schema("LowerAddress"),
      availableFen: fenString("what sponsorships can hold"),
      heldFen: fenString("held by operations awaiting settlement"),
      createdAt: dateTime(),
      updatedAt: dateTime("the last balance change"),
    },
  },
  AdminLedgerEntry: {
    allOf: [schema("LedgerEntry"), { type: "object", required: ["id"], properties: { id: serialId("entry") } }],
  },
  AccountLedger: {
    type: "object",
    required: ["account", "availableFen", "heldFen", "items", "nextBefore"],
    properties: {
      account: schema("LowerAddress"),
      availableFen: fenString("the account's available balance now (0 for an account never seen)"),
      heldFen: fenString("its held balance now"),
      items: { type: "array", items: schema("AdminLedgerEntry"), description: "its ledger entries, newest first" },
      nextBefore: { type: ["string", "null"], description: "send as `before` for the next page; null on the last page" },
    },
  },
  AdminHold: {
    type: "object",
    required: ["id", "chainId", "account", "nonce", "apiKeyId", "status", "amountFen", "maxCostWei", "revision", "validUntil", "chargedFen", "createdAt", "updatedAt"],
    properties: {
      id: { type: "string", pattern: "^h_[0-9a-f-]{36}$" },
      chainId: { type: "integer" },
      account: { ...schema("LowerAddress"), description: "the sender whose quota is held" },
      nonce: decimalString("the UserOperation nonce (uint256)"),
      apiKeyId: nullableString("the API key that asked for the sponsorship"),
      status: {
        enum: ["open", "settled", "released", "merged"],
        description: "open (reserved), settled (charged from a UserOperationEvent), released (expired unused), merged (a reorg undid its settlement while a newer hold for the same nonce was open: that hold carries it)",
      },
      amountFen: fenString("held: the worst-case cost at the locked quote"),
      maxCostWei: schema("WeiString"),
      revision: { type: "integer", minimum: 1, description: "how many times a repeated request for the same nonce raised it" },
      validUntil: dateTime("released after this (plus a grace period) if the operation never lands"),
      chargedFen: nullableFen("what settlement charged; null until settled"),
      createdAt: dateTime(),
      updatedAt: dateTime(),
    },
  },
  Settlement: {
    type: "object",
    description: "A UserOperationEvent our paymaster paid for, as the settlement worker recorded it.",
    required: [
      "id",
      "chainId",
      "userOpHash",
      "holdId",
      "unknown",
      "account",
      "nonce",
      "success",
      "actualGasCostWei",
      "actualGasUsed",
      "chargedFen",
      "releasedFen",
      "shortfallFen",
      "blockNumber",
      "blockHash",
      "transactionHash",
      "logIndex",
      "status",
      "createdAt",
      "reorgedAt",
    ],
    properties: {
      id: serialId("settlement"),
      chainId: { type: "integer" },
      userOpHash: schema("Bytes32"),
      holdId: nullableString("the hold it was signed under; null for an operation we never signed"),
      unknown: { type: "boolean", description: "holdId is null: paid by our paymaster, signed by nobody we know (alerted; charges nobody)" },
      account: schema("LowerAddress"),
      nonce: decimalString("the UserOperation nonce"),
      success: { type: "boolean", description: "the operation's call succeeded (a reverted one is charged too: the paymaster paid for it)" },
      actualGasCostWei: weiString("what the EntryPoint took from the paymaster's deposit"),
      actualGasUsed: decimalString("gas units"),
      chargedFen: fenString("charged to the account (from its hold, and beyond the hold from its available quota)"),
      releasedFen: fenString("the rest of the hold, given back"),
      shortfallFen: fenString("what neither the hold nor the account's available quota covered: paid by the deposit (alerted; fiat_paymaster_settlement_shortfall_fen_total)"),
      blockNumber: decimalString("the block it was read from"),
      blockHash: schema("Bytes32"),
      transactionHash: schema("Bytes32"),
      logIndex: { type: "integer" },
      status: { enum: ["settled", "reorged"], description: "reorged: its block left the chain and the settlement was undone" },
      createdAt: dateTime("when the worker recorded it"),
      reorgedAt: nullableDateTime(),
    },
  },
  ReconciliationRun: {
    type: "object",
    description: "One run of the reconciliation worker that found something to do (runs that checked nothing are not recorded).",
    required: ["id", "startedAt", "finishedAt", "checked", "credited", "closed", "refundsSettled", "errors", "detail"],
    properties: {
      id: serialId("run"),
      startedAt: dateTime(),
      finishedAt: dateTime(),
      checked: { type: "integer", description: "open orders queried at their gateway" },
      credited: { type: "integer", description: "orders found paid and credited" },
      closed: { type: "integer", description: "expired orders closed" },
      refundsSettled: { type: "integer", description: "refunds the gateway confirmed or refused" },
      errors: { type: "integer" },
      detail: {
        type: ["object", "null"],
        description: "`errors`: each error with the orderId or refundId",
        properties: { errors: { type: "array", items: { type: "object", properties: { orderId: { type: "string" }, refundId: { type: "string" }, message: { type: "string" } } } } },
      },
    },
  },
  AdminAction: {
    type: "object",
    description: "An audit row: what an operator did, and the request that did it (the admin token is shared, so the request id and IP are what identify it).",
    required: ["id", "action", "detail", "requestId", "ip", "createdAt"],
    properties: {
      id: serialId("action"),
      action: { type: "string", description: "`adjustment`" },
      detail: {
        type: "object",
        additionalProperties: true,
        description: "for an adjustment: adjustmentId, account, amountFen, reason, availableFenBefore, availableFenAfter (fen as decimal strings), idempotencyKey when given",
      },
      requestId: nullableString("the x-request-id of the request (finds it in the logs)"),
      ip: nullableString("the remote address of the request (as TRUST_PROXY resolves it)"),
      createdAt: dateTime(),
    },
  },
  AdjustmentRequest: {
    type: "object",
    additionalProperties: false,
    required: ["account", "amountFen", "reason"],
    properties: {
      account: schema("AccountAddress"),
      amountFen: {
        description: "signed whole fen, not zero: positive credits the available balance, negative debits it (at most what is available)",
        oneOf: [
          { type: "integer", minimum: -MAX_SAFE, maximum: MAX_SAFE, not: { const: 0 } },
          { type: "string", pattern: "^-?\\d{1,15}$" },
        ],
      },
      reason: { type: "string", minLength: 3, maxLength: 200, description: "why (3–200 characters once trimmed): the ledger entry's memo and the audit row keep it" },
      idempotencyKey: schema("IdempotencyKey"),
    },
  },
  Adjustment: {
    type: "object",
    required: ["adjustmentId", "account", "amountFen", "reason", "availableFen", "heldFen", "applied", "auditId", "createdAt"],
    properties: {
      adjustmentId: { type: "string", description: "the ledger entry's reference: adj_<uuid>, or adj:<idempotencyKey>" },
      account: schema("LowerAddress"),
      amountFen: schema("SignedFenString"),
      reason: { type: "string", description: "trimmed" },
      availableFen: fenString("the account's available balance after it"),
      heldFen: fenString("the account's held balance (adjustments never touch it)"),
      applied: { type: "boolean", description: "false when an earlier request with the same idempotencyKey applied it (nothing changed now)" },
      auditId: nullableString("the audit row (GET /admin/audit)"),
      createdAt: dateTime(),
    },
  },
  ChainAdminStatus: {
    type: "object",
    description:
      "A configured chain: the paymaster's EntryPoint deposit and stake, owner and signers (read from the chain now, within a deadline), the deposit monitor's verdict, the open holds' worst case, and the settlement worker's progress. When the RPC does not answer, the chain reads are null and the deposit is the monitor's last figure.",
    required: ["chainId", "name", "paymaster", "entryPoint", "minDepositWei", "rpc", "healthy", "reason", "lowDeposit", "deposit", "stake", "owner", "pendingOwner", "signers", "settlement"],
    properties: {
      chainId: { type: "integer" },
      name: { type: "string" },
      paymaster: schema("Address"),
      entryPoint: schema("Address"),
      minDepositWei: weiString("sponsorship pauses while deposit − outstanding holds is below this"),
      rpc: {
        type: "object",
        required: ["ok", "error", "headBlock"],
        properties: {
          ok: { type: "boolean", description: "every chain read answered within the deadline" },
          error: nullableString("why not"),
          headBlock: { type: ["string", "null"], pattern: "^\\d+$", description: "the latest block number" },
        },
      },
      healthy: { type: "boolean", description: "the deposit monitor's verdict (as of its last check): while false, sponsorship on the chain answers deposit_low" },
      reason: nullableString("why it is not healthy"),
      lowDeposit: { type: "boolean", description: "deposit − outstanding < minDepositWei with the freshest figures (false when no deposit figure is known: then healthy is false)" },
      deposit: {
        type: "object",
        required: ["depositWei", "source", "outstandingWei", "openHolds", "spareWei", "monitor"],
        properties: {
          depositWei: nullableWei("the paymaster's EntryPoint deposit"),
          source: { enum: ["chain", "monitor", null], description: "read now, or the deposit monitor's last figure when the RPC does not answer" },
          outstandingWei: weiString("the worst-case cost of the open holds on this chain, from the database now"),
          openHolds: { type: "integer" },
          spareWei: nullableWei("depositWei − outstandingWei, negative when the holds exceed the deposit", true),
          monitor: {
            type: "object",
            required: ["depositWei", "outstandingWei", "checkedAt"],
            properties: { depositWei: nullableWei("as the monitor last read it"), outstandingWei: nullableWei("as the monitor last read it"), checkedAt: nullableDateTime() },
          },
        },
      },
      stake: {
        type: ["object", "null"],
        required: ["stakeWei", "staked", "unstakeDelaySec", "withdrawTime"],
        properties: {
          stakeWei: schema("WeiString"),
          staked: { type: "boolean", description: "false while unlocking" },
          unstakeDelaySec: { type: "integer" },
          withdrawTime: nullableDateTime("when an unlocked stake can be withdrawn; null when not unlocking"),
        },
      },
      owner: { anyOf: [schema("Address"), { type: "null" }] },
      pendingOwner: { anyOf: [schema("Address"), { type: "null" }], description: "an ownership transfer awaiting acceptance" },
      signers: { type: ["array", "null"], items: schema("Address"), description: "the keys whose sponsorships the paymaster accepts" },
      settlement: {
        type: "object",
        required: ["cursorBlock", "cursorUpdatedAt", "cursorBlockTime", "lagBlocks", "confirmations", "openFailures"],
        properties: {
          cursorBlock: { type: ["string", "null"], pattern: "^\\d+$", description: "the last block the settlement worker has read (null before its first pass)" },
          cursorUpdatedAt: nullableDateTime(),
          cursorBlockTime: { ...nullableDateTime(), description: "the cursor block's timestamp: a hold is released only once this is past its validUntil + HOLD_GRACE_SECONDS" },
          openFailures: { type: "integer", description: "events or reorg undos that failed on their own and are retried every pass (settlement_failures; each alerted)" },
          lagBlocks: { type: ["string", "null"], pattern: "^\\d+$", description: "headBlock − cursorBlock (at least `confirmations` in steady state)" },
          confirmations: { type: "integer" },
        },
      },
    },
  },
  StatsTotals: {
    type: "object",
    required: ["topUpCount", "topUpFen", "settledCount", "unknownCount", "chargedFen", "gasCostWei"],
    properties: {
      topUpCount: { type: "integer", description: "top-ups credited (ledger topup entries)" },
      topUpFen: fenString("what they credited"),
      settledCount: { type: "integer", description: "operations our paymaster paid for, settled (reorged ones excluded; unknown ones included)" },
      unknownCount: { type: "integer", description: "of those, operations we never signed" },
      chargedFen: fenString("charged for them"),
      gasCostWei: weiString("what the paymaster's deposit paid for them"),
    },
  },
  StatsPoint: {
    allOf: [{ type: "object", required: ["start"], properties: { start: dateTime("the bucket's first instant (UTC)") } }, schema("StatsTotals")],
  },
  Stats: {
    type: "object",
    required: ["bucket", "since", "until", "series", "totals"],
    properties: {
      bucket: { enum: ["hour", "day"] },
      since: dateTime("the first bucket's start"),
      until: dateTime("exclusive"),
      series: { type: "array", items: schema("StatsPoint"), description: "every bucket of the range in order, empty ones as zeros" },
      totals: { ...schema("StatsTotals"), description: "the sums over the range" },
    },
  },
};

const query = (name: string, description: string, s: Json): Json => ({ name, in: "query", required: false, description, schema: s });
const LIMIT = query("limit", `items per page, ${DEFAULT_LIMIT} by default`, { type: "integer", minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT });
const before = (what: string, s: Json = { type: "string", pattern: "^\\d{1,19}$" }): Json => query("before", `the previous page's nextBefore (${what})`, s);
const accountFilter = (what: string): Json => query("account", `only ${what} of this account (lower-case, or EIP-55 checksummed)`, schema("AccountAddress"));
const FLAG = { enum: ["1", "0", "true", "false"] };

const ADMIN_LIST_PROBLEMS: ProblemCase[] = [
  ...ADMIN,
  { status: 400, type: "invalid_request", when: "a query parameter is unknown, repeated or malformed, or `before` names no row (the detail names it)" },
  INTERNAL,
];

/** A GET of the admin API: the admin token, 401/403, 400 for bad parameters, 500. */
function adminGet(operationId: string, summary: string, description: string, parameters: Json[], ok: Json, extra: ProblemCase[] = []): Json {
  return {
    get: {
      tags: ["admin"],
      operationId,
      summary: `${summary} (admin)`,
      description,
      security: ADMIN_SECURITY,
      parameters,
      responses: { "200": ok, ...problems([...ADMIN_LIST_PROBLEMS, ...extra]) },
    },
  };
}

const ORDER_ID_PARAM = pathParam("id", "the order id", { pattern: "^fp[0-9a-f]{24}$" });

const ADMIN_PATHS: Record<string, Json> = {
  "/admin/orders": adminGet(
    "adminListOrders",
    "Orders",
    "Top-up orders, newest first.",
    [
      query("status", "only orders in this state", { enum: ["created", "pending", "paid", "closed"] }),
      query("provider", "only orders of this gateway", { enum: [...PROVIDERS] }),
      accountFilter("orders"),
      LIMIT,
      before("an order id", { type: "string", pattern: "^fp[0-9a-f]{24}$" }),
    ],
    jsonAnswer("a page of orders", pageOf("AdminOrder")),
  ),
  "/admin/orders/{id}": adminGet(
    "adminGetOrder",
    "An order with its callbacks and refunds",
    "The order, every payment callback stored for it with its verification outcome (oldest first), and its refunds. A callback whose signature did not verify is attached to no order: see GET /admin/callbacks.",
    [ORDER_ID_PARAM, query("raw", "1: include each callback's payload, headers and raw body", FLAG)],
    jsonAnswer("the order", schema("AdminOrderDetail")),
    [{ ...NOT_FOUND, when: "no such order" }],
  ),
  "/admin/callbacks": adminGet(
    "adminListCallbacks",
    "Payment callbacks",
    "Every payment notification that reached the server, valid or not, newest first: forged and unverifiable ones too (they belong to no order).",
    [
      query("provider", "only this gateway's", { enum: [...PROVIDERS] }),
      query("outcome", "only callbacks with this outcome", { enum: Object.keys(CALLBACK_OUTCOMES) }),
      query("verified", "1: only those whose signature verified; 0: only those whose did not", FLAG),
      query("orderId", "only callbacks about this order", { type: "string", pattern: "^fp[0-9a-f]{24}$" }),
      query("raw", "1: include payload, headers and raw body", FLAG),
      LIMIT,
      before("a callback id"),
    ],
    jsonAnswer("a page of callbacks", pageOf("PaymentCallback")),
  ),
  "/admin/accounts": adminGet(
    "adminListAccounts",
    "Accounts",
    "Accounts with their balances, most recently changed first.",
    [LIMIT, before("an account address", schema("LowerAddress"))],
    jsonAnswer("a page of accounts", pageOf("AdminAccount")),
  ),
  "/admin/accounts/{address}/ledger": adminGet(
    "adminListLedgerEntries",
    "An account's ledger",
    "The account's balance and its ledger entries, newest first. An account never seen has a zero balance and no entries.",
    [
      pathParam("address", "the account: lower-case, or with a correct EIP-55 checksum", { pattern: "^0x[0-9a-fA-F]{40}$" }),
      query("kind", "only entries of this kind", { enum: ["topup", "hold", "release", "charge", "refund", "adjust"] }),
      LIMIT,
      before("an entry id"),
    ],
    jsonAnswer("the account's balance and a page of its entries", schema("AccountLedger")),
  ),
  "/admin/holds": adminGet(
    "adminListHolds",
    "Holds",
    "Sponsorship holds, newest first.",
    [
      query("status", "only holds in this state", { enum: ["open", "settled", "released", "merged"] }),
      accountFilter("holds"),
      query("chainId", "only holds on this chain", { type: "integer", minimum: 1 }),
      LIMIT,
      before("a hold id", { type: "string", pattern: "^h_[0-9a-f-]{36}$" }),
    ],
    jsonAnswer("a page of holds", pageOf("AdminHold")),
  ),
  "/admin/settlements": adminGet(
    "adminListSettlements",
    "Settlements",
    "UserOperationEvents our paymaster paid for, newest first.",
    [
      query("chainId", "only this chain's", { type: "integer", minimum: 1 }),
      query("status", "only settlements in this state", { enum: ["settled", "reorged"] }),
      query("unknown", "1: only operations we never signed (no hold); 0: only ours", FLAG),
      accountFilter("operations"),
      LIMIT,
      before("a settlement id"),
    ],
    jsonAnswer("a page of settlements", pageOf("Settlement")),
  ),
  "/admin/refunds": adminGet(
    "adminListRefunds",
    "Refunds",
    "Refunds, newest first. A refund is started with POST /v1/refunds.",
    [
      query("status", "only refunds in this state", { enum: ["requested", "succeeded", "failed"] }),
      accountFilter("refunds"),
      query("orderId", "only this order's", { type: "string", pattern: "^fp[0-9a-f]{24}$" }),
      LIMIT,
      before("a refund id", { type: "string", pattern: "^rf[0-9a-f]{24}$" }),
    ],
    jsonAnswer("a page of refunds", pageOf("Refund")),
  ),
  "/admin/reconciliation-runs": adminGet(
    "adminListReconciliationRuns",
    "Reconciliation runs",
    "The reconciliation worker's runs that found something to do, newest first.",
    [LIMIT, before("a run id")],
    jsonAnswer("a page of runs", pageOf("ReconciliationRun")),
  ),
  "/admin/audit": adminGet(
    "adminListActions",
    "Audit of admin actions",
    "What operators did through the admin API (manual adjustments), newest first, with the request id and IP that did it.",
    [query("action", "only this action", { type: "string", pattern: "^[a-z_]{1,40}$", examples: ["adjustment"] }), LIMIT, before("an action id")],
    jsonAnswer("a page of admin actions", pageOf("AdminAction")),
  ),
  "/admin/adjustments": {
    post: {
      tags: ["admin"],
      operationId: "adminCreateAdjustment",
      summary: "Adjust an account's available quota (admin)",
      description:
        "Credits (positive) or debits (negative) the account's available balance with a reason, in one transaction with its `adjust` ledger entry (memo = the reason) and an audit row (GET /admin/audit) naming the request id and IP. A debit beyond the available balance is refused; held fen cannot be adjusted. The same idempotencyKey applies an adjustment once: a repeat answers 200 with `applied: false`.",
      security: ADMIN_SECURITY,
      requestBody: jsonRequest("AdjustmentRequest"),
      responses: {
        "201": jsonAnswer("applied", schema("Adjustment")),
        "200": jsonAnswer("already applied by an earlier request with the same idempotencyKey; nothing changed", schema("Adjustment")),
        ...problems([
          ...ADMIN,
          { status: 400, type: "invalid_request", when: "the body does not match the schema: no reason, a reason outside 3–200 characters, amountFen zero or not a whole number, a malformed account, an unknown field" },
          ...jsonBody("16 KiB"),
          { status: 409, type: "insufficient_balance", when: "a debit larger than the available balance (`availableFen`, `requestedFen`)" },
          { status: 409, type: "conflict", when: "the idempotencyKey was used for another adjustment (`adjustmentId`)" },
          INTERNAL,
        ]),
      },
    },
  },
  "/admin/chains": adminGet(
    "adminListChains",
    "Chains: deposit, stake, signers, settlement lag",
    "Each configured chain's paymaster status. Chain reads have a deadline of a few seconds; a chain whose RPC does not answer is reported with `rpc.ok: false` and what the database and the deposit monitor know.",
    [],
    jsonAnswer("the chains, in configuration order", { type: "object", required: ["chains"], properties: { chains: { type: "array", items: schema("ChainAdminStatus") } } }),
  ),
  "/admin/stats": adminGet(
    "adminStats",
    "Time series for charts",
    `Top-ups and settled operations per UTC hour or day. By default the last ${DEFAULT_RANGE_BUCKETS.hour} hours or ${DEFAULT_RANGE_BUCKETS.day} days up to the end of the current bucket; at most ${MAX_BUCKETS} buckets. Settlement lag is a present-tense figure: see GET /admin/chains.`,
    [
      query("bucket", "the bucket size", { enum: ["hour", "day"], default: "hour" }),
      query("since", "the range's start (the bucket holding it is the first), ISO 8601 with a time zone", { type: "string", format: "date-time" }),
      query("until", "the range's end, exclusive (default: the end of the current bucket)", { type: "string", format: "date-time" }),
    ],
    jsonAnswer("the series", schema("Stats")),
  ),
};

/** The OpenAPI 3.1 document of this service's HTTP API, with `publicUrl` as its server. */
export function openApiDocument(publicUrl: string): object {
  // a fresh copy each time: callers may mutate what they get
  return structuredClone({
    openapi: "3.1.0",
    info: {
      title: "fiat-paymaster",
      version,
      summary: "ERC-4337 paymaster whose users prepay gas in CNY (fen) through Alipay or WeChat Pay",
      description: DESCRIPTION,
      license: { name: "MIT", identifier: "MIT" },
    },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    servers: [{ url: publicUrl }],
    tags: [
      { name: "payments", description: "Top-up orders, account quotas, and the gateways' payment notifications" },
      { name: "sponsorship", description: "Sponsorship of UserOperations: ERC-7677 JSON-RPC, REST, quotes" },
      { name: "admin", description: "API keys, refunds, and the operations dashboard's API: orders, callbacks, accounts, ledger, holds, settlements, chains, statistics, manual adjustments, audit (admin token)" },
      { name: "operations", description: "Health, readiness, metrics, this document" },
    ],
    paths: { ...PATHS, ...ADMIN_PATHS },
    components: {
      schemas: { ...SCHEMAS, ...ADMIN_SCHEMAS },
      headers: {
        RequestId: {
          description: "the request's id: the caller's x-request-id when it sent a valid one (1–64 of letters, digits, _ . -), else a new UUID",
          schema: { type: "string" },
        },
        RetryAfter: { description: "seconds to wait before retrying", schema: { type: "integer", minimum: 1 } },
      },
      securitySchemes: {
        apiKey: {
          type: "apiKey",
          in: "header",
          name: "x-api-key",
          description: "A DApp's API key, fpk_<12 hex>_<43 base64url>. The `apikey` query parameter (apiKeyQuery) is accepted instead; the header wins when both are sent.",
        },
        apiKeyQuery: { type: "apiKey", in: "query", name: "apikey", description: "The API key as a query parameter, for clients that cannot set headers." },
        adminToken: { type: "http", scheme: "bearer", description: "Authorization: Bearer <ADMIN_TOKEN>. Without ADMIN_TOKEN the admin API answers 403 admin_disabled." },
      },
    },
  });
}
