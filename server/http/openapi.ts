/**
 * The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`, generated from the zod schemas of
 * server/schemas/ with @asteasolutions/zod-to-openapi: every route module registers its paths beside its router
 * (`registerPaymentsPaths`, `registerAdminPaths`, …), with its request and response schemas — the same schemas the
 * routes parse with and type their answers by — so the document cannot describe another shape than the code has.
 *
 * Hand-written here: the API description, the problem type table, and the ERC-7677 JSON-RPC endpoint (`/rpc`)
 * with its parameter components (UserOperation, ChainId, SponsorshipContext…), which rpc.ts and userOperation.ts
 * parse with precise messages rather than a zod schema. The operations routes app.ts registers inline (health,
 * readiness, metrics, this document) are registered here too. openapi.test.ts walks the express app's router and
 * fails on a route missing here, or documented here but not served.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import { DEFAULT_LIMIT, MAX_LIMIT, registerAdminPaths } from "../admin/routes";
import { registerAccountPaths } from "../ledger/routes";
import { registerPaymentsPaths } from "../payments/routes";
import { registerReconciliationPaths } from "../reconciliation/routes";
import { healthSchema, readySchema } from "../schemas/common";
import { paymasterFieldsSchema } from "../schemas/sponsorship";
import { SPONSOR_ERROR_CODES } from "../sponsorship/errors";
import type { PolicyRule } from "../sponsorship/policy";
import { RPC_ERRORS, MAX_BATCH as MAX_RPC_BATCH } from "../sponsorship/rpc";
import { registerSponsorshipPaths } from "../sponsorship/routes";
import type { SenderProofRule } from "../sponsorship/senderProof";
import { MAX_CALL_DATA_BYTES } from "../sponsorship/userOperation";
import {
  API_KEY_SECURITY,
  type ApiRegistry,
  GENERIC_PROBLEMS,
  INTERNAL,
  type Json,
  SPONSOR_REASONS,
  SPONSOR_REASON_LIST,
  answer,
  jsonAnswer,
  problems,
  schema,
  sponsorStatus,
} from "./openapiResponses";
import { registerPublicConfigPaths } from "./publicConfig";
import { registerWebPaths } from "./web";

const { version } = require("../../package.json") as { version: string };

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

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


// ---- The JSON-RPC components ----------------------------------------------------------------------------

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

const QUANTITY_DESCRIPTION = "a hex quantity (uint128)";
const FINAL_GAS_FIELDS = ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"];

/** ERC-7769 / ERC-7677 parameters, parsed by userOperation.ts and rpc.ts (for `/rpc` and `POST /v1/sponsorships`). */
const RPC_COMPONENTS: Record<string, Json> = {
  ChainId: {
    description: 'a chain id: a positive integer, a hex quantity ("0x2105", as ERC-7677 sends it) or a decimal string',
    oneOf: [
      { type: "integer", minimum: 1, maximum: MAX_SAFE },
      { type: "string", pattern: "^(0x[0-9a-fA-F]{1,13}|[1-9]\\d{0,15})$" },
    ],
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
  PolicyRejection: {
    enum: Object.keys(POLICY_RULES),
    description: Object.entries(POLICY_RULES)
      .map(([rule, when]) => `\`${rule}\`: ${when}`)
      .join("; "),
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

/** The paths of the operations routes app.ts registers inline, and of this document. */
function registerOperationsPaths(registry: ApiRegistry): void {
  registry.registerPath({
    method: "get",
    path: "/healthz",
    tags: ["operations"],
    operationId: "healthz",
    summary: "Liveness",
    description: "Answers while the process serves requests; checks nothing else.",
    responses: { "200": jsonAnswer("alive", healthSchema), ...problems([INTERNAL]) },
  });
  registry.registerPath({
    method: "get",
    path: "/readyz",
    tags: ["operations"],
    operationId: "readyz",
    summary: "Readiness",
    description:
      "Ready when the database and every configured chain's RPC answer, and the server is not shutting down (readiness fails first on SIGTERM). The result is cached for a second and shared; each probe is given up after 800 ms, so it answers within about a second whatever hangs, and a flood of probes costs one RPC call per chain per second.",
    responses: { "200": jsonAnswer("ready", readySchema), ...problems([{ status: 503, type: "not_ready" }, INTERNAL]) },
  });
  registry.registerPath({
    method: "get",
    path: "/metrics",
    tags: ["operations"],
    operationId: "metrics",
    summary: "Prometheus metrics",
    description: "The Prometheus text exposition format (Content-Type `text/plain; version=0.0.4; charset=utf-8`); metrics are named `fiat_paymaster_*`, fen amounts as counters of whole fen.",
    responses: { "200": answer("the metrics", { "text/plain": { schema: { type: "string" } } }), ...problems([INTERNAL]) },
  });
  registry.registerPath({
    method: "get",
    path: "/openapi.json",
    tags: ["operations"],
    operationId: "openApiDocument",
    summary: "This document",
    responses: { "200": jsonAnswer("the OpenAPI 3.1 description of this API", { type: "object" }), ...problems([INTERNAL]) },
  });
}

const rpcErrorAnswer = (description: string, codes: number[]) =>
  answer(description, {
    "application/json": {
      schema: { allOf: [schema("JsonRpcError"), { type: "object", properties: { id: { const: null }, error: { type: "object", properties: { code: { enum: codes } } } } }] },
    },
  });


/** `POST /rpc` (rpc.ts): one operation, its JSON-RPC methods described by hand. */
function registerRpcPath(registry: ApiRegistry): void {
  registry.registerPath({
    method: "post",
    path: "/rpc",
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
    request: { body: {
      required: true,
      content: {
        "application/json": {
          schema: { oneOf: [schema("PaymasterRpcRequest"), { type: "array", minItems: 1, maxItems: MAX_RPC_BATCH, items: schema("PaymasterRpcRequest") }] },
        },
      },
    } },
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
  });
}

/**
 * `{ allOf: [{ $ref }, { description }] }`, which the generator writes for a described use of a named schema, as
 * `{ $ref, description }` (OpenAPI 3.1 allows a reference's siblings): the same meaning, and readers resolve it.
 */
function inlineAnnotatedRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(inlineAnnotatedRefs);
  if (typeof node !== "object" || node === null) return node;
  const o = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inlineAnnotatedRefs(v)])) as Json;
  const allOf = o.allOf;
  const annotations = ["description", "examples", "default", "deprecated", "title"];
  if (Array.isArray(allOf) && allOf.length === 2) {
    const [ref, notes] = allOf as [Json, Json];
    if (typeof ref.$ref === "string" && Object.keys(ref).length === 1 && Object.keys(notes).every((k) => annotations.includes(k))) {
      const rest = { ...o };
      delete rest.allOf;
      return { ...rest, $ref: ref.$ref, ...notes };
    }
  }
  return o;
}

/** The OpenAPI 3.1 document of this service's HTTP API, with `publicUrl` as its server. */
export function openApiDocument(publicUrl: string): object {
  // a fresh registry and document each time: callers may mutate what they get
  const registry = new OpenAPIRegistry();
  for (const [name, component] of Object.entries(RPC_COMPONENTS)) registry.registerComponent("schemas", name, component);
  // the JSON-RPC result: referenced from the hand-written components only
  registry.register("PaymasterFields", paymasterFieldsSchema);
  registerOperationsPaths(registry);
  registerWebPaths(registry);
  registerPaymentsPaths(registry);
  registerAccountPaths(registry);
  registerPublicConfigPaths(registry);
  registerSponsorshipPaths(registry);
  registerRpcPath(registry);
  registerAdminPaths(registry);
  registerReconciliationPaths(registry);
  registry.registerComponent("headers", "RequestId", {
    description: "the request's id: the caller's x-request-id when it sent a valid one (1–64 of letters, digits, _ . -), else a new UUID",
    schema: { type: "string" },
  });
  registry.registerComponent("headers", "RetryAfter", { description: "seconds to wait before retrying", schema: { type: "integer", minimum: 1 } });
  registry.registerComponent("securitySchemes", "apiKey", {
    type: "apiKey",
    in: "header",
    name: "x-api-key",
    description: "A DApp's API key, fpk_<12 hex>_<43 base64url>. The `apikey` query parameter (apiKeyQuery) is accepted instead; the header wins when both are sent.",
  });
  registry.registerComponent("securitySchemes", "apiKeyQuery", { type: "apiKey", in: "query", name: "apikey", description: "The API key as a query parameter, for clients that cannot set headers." });
  registry.registerComponent("securitySchemes", "adminToken", { type: "http", scheme: "bearer", description: "Authorization: Bearer <ADMIN_TOKEN>. Without ADMIN_TOKEN the admin API answers 403 admin_disabled." });

  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "fiat-paymaster",
      version,
      description: DESCRIPTION,
      license: { name: "MIT", identifier: "MIT" },
    },
    servers: [{ url: publicUrl }],
    tags: [
      { name: "payments", description: "Top-up orders, account quotas, and the gateways' payment notifications" },
      { name: "sponsorship", description: "Sponsorship of UserOperations: ERC-7677 JSON-RPC, REST, quotes" },
      { name: "admin", description: "API keys, refunds, and the operations dashboard's API: orders, callbacks, accounts, ledger, holds, settlements, chains, statistics, manual adjustments, audit (admin token)" },
      { name: "operations", description: "Health, readiness, metrics, this document" },
    ],
  });
  // no webhooks: an empty member is noise
  const rest = { ...document };
  delete rest.webhooks;
  // OpenAPI 3.1's info.summary and jsonSchemaDialect, which the generator's config type lacks
  const info = { ...rest.info, summary: "ERC-4337 paymaster whose users prepay gas in CNY (fen) through Alipay or WeChat Pay" };
  const { openapi, ...body } = rest;
  // plain JSON, a fresh copy
  return inlineAnnotatedRefs(JSON.parse(JSON.stringify({ openapi, ...body, info, jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base" }))) as object;
}
