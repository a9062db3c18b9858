/**
 * The sponsorship REST API: `POST /v1/sponsorships`, `GET /v1/quote`, and the admin routes for API keys. The
 * UserOperation, entryPoint and chainId inside a sponsorship request are read by the JSON-RPC parameter parsers
 * (sponsorship/userOperation.ts, whose messages name each field) for REST and `/rpc` alike, so the document
 * describes them with the JSON-RPC components (openapi.ts) rather than a second zod schema.
 */
import { policyJsonSchema, policySchema } from "./policy";
import { addressOut, apiKeyIdSchema, bytes32Out, dateTimeOut, fenOut, hexBytesOut, hexQuantityOut, nullableDateTimeOut, weiOut } from "./primitives";
import { z } from "./zod";

/** A member parsed by a JSON-RPC parameter parser, documented by that parameter's component. */
const parsedAs = <T extends z.ZodType>(schema: T, component: string, description?: string): T =>
  schema.openapi({ allOf: [{ $ref: `#/components/schemas/${component}` }], ...(description ? { description } : {}) });

export const sponsorshipRequest = z
  .strictObject({
    userOp: parsedAs(z.record(z.string(), z.unknown()), "UserOperationFinal"),
    entryPoint: parsedAs(z.string(), "Address", "one of the chain's EntryPoints (v0.7, v0.8 or v0.9, as configured)"),
    chainId: parsedAs(z.union([z.string(), z.number()]), "ChainId"),
    context: parsedAs(z.unknown(), "SponsorshipContext").optional(),
  })
  .openapi("SponsorshipRequest");

const paymasterFields = {
  paymaster: addressOut.describe("the paymaster contract (EIP-55 checksummed)"),
  paymasterData: hexBytesOut.describe("v0.7, v0.8: validUntil, validAfter and the signature (77 bytes); v0.9: validUntil and validAfter (12 bytes). A stub of the same length for pm_getPaymasterStubData"),
  paymasterSignature: hexBytesOut
    .optional()
    .describe("EntryPoint v0.9 only: the paymaster's 65-byte signature, appended after paymasterData with its length and magic, outside the userOpHash (a stub of the same length for pm_getPaymasterStubData)"),
  paymasterVerificationGasLimit: hexQuantityOut.describe("hex quantity"),
  paymasterPostOpGasLimit: hexQuantityOut.describe("hex quantity"),
  sponsor: z.object({ name: z.string(), icon: z.string().optional().describe("an RFC 2397 data URI (SPONSOR_ICON), when configured") }).describe("who pays (ERC-7677)"),
};

/** ERC-7677's result (`/rpc`). */
export const paymasterFieldsSchema = z.object({ ...paymasterFields, isFinal: z.literal(false) }).openapi("PaymasterFields", { description: "ERC-7677's result for EntryPoint v0.7, v0.8 and v0.9" });

export const sponsorshipSchema = z
  .object({
    ...paymasterFields,
    chainId: z.number().int(),
    userOpHash: bytes32Out.describe("the hash of the operation with these paymaster fields"),
    holdId: z.string().describe("the hold on the account's quota (the same hold again for the same sender and nonce)"),
    validUntil: z.number().int().describe("Unix seconds: the signature expires then"),
    validAfter: z.number().int().describe("Unix seconds (0)"),
    quote: z
      .object({
        fenPerNative: fenOut.describe("fen per whole native token (1e18 wei)"),
        markupBps: z.number().int().min(0).max(100_000).describe("the markup in basis points"),
        maxChargeFen: fenOut.describe("the most the operation can be charged: its worst-case cost"),
        heldFen: fenOut.describe("the hold's amount now"),
        availableFen: fenOut.describe("the account's available fen after the hold"),
        validUntil: dateTimeOut,
      })
      .describe("the price locked for this operation"),
  })
  .openapi("Sponsorship");
export type SponsorshipView = z.input<typeof sponsorshipSchema>;

export const quoteQuery = z.object({
  chainId: z.string().openapi({ param: { description: 'a chain id: decimal, or a hex quantity such as "0x2105"' } }),
  gas: z
    .string()
    .regex(/^\d{1,12}$/, "must be a whole number of gas units")
    .openapi({ param: { description: "gas units, in decimal" } }),
});

export const quoteSchema = z
  .object({
    chainId: z.number().int(),
    fenPerNative: fenOut.describe("fen per whole native token (1e18 wei)"),
    markupBps: z.number().int().min(0).max(100_000),
    gasPrice: weiOut.describe("the chain's current gas price, in wei"),
    gas: z.string().regex(/^\d+$/).describe("the gas asked about, as a decimal string"),
    costWei: weiOut.describe("gas × gasPrice"),
    chargeFen: fenOut.describe("what that cost would be charged, rounded up"),
    note: z.string(),
  })
  .openapi("Quote");
export type QuoteView = z.input<typeof quoteSchema>;

export const apiKeyRequest = z
  .strictObject({ name: z.string().min(1).max(100).describe("not blank"), policy: policySchema.optional() })
  .openapi("ApiKeyRequest");

/** Documents the path; the route looks the id up as given (an unknown one is 404). */
export const apiKeyParams = z.object({ id: apiKeyIdSchema.openapi({ param: { description: "the key's id" } }) });

export const apiKeySchema = z
  .object({
    id: apiKeyIdSchema.describe("public: the key's id in logs and dashboards"),
    name: z.string(),
    policy: policyJsonSchema,
    createdAt: dateTimeOut,
    revokedAt: nullableDateTimeOut,
  })
  .openapi("ApiKey");
export type ApiKeyView = z.input<typeof apiKeySchema>;

export const createdApiKeySchema = apiKeySchema
  .extend({
    key: z
      .string()
      .regex(/^fpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/)
      .describe("the secret, shown this once: only its SHA-256 is stored"),
    note: z.string(),
  })
  .openapi("CreatedApiKey");
export type CreatedApiKeyView = z.input<typeof createdApiKeySchema>;

export const apiKeyListSchema = z.object({ apiKeys: z.array(apiKeySchema) });
