/**
 * The value types every request, response, policy and config file shares, defined once: an address, an amount
 * of fen, a whole number of wei or gas, a chain id, and the ids this service hands out. Every schema elsewhere
 * is built from these, so a rule (what counts as an address, how large an amount may be) is written in one place.
 *
 * Input schemas (what a caller may send) parse and normalise; output schemas (what an answer carries: fen as a
 * decimal string, an address in lower case) only describe, and are what the OpenAPI document names.
 */
import type { Address } from "viem";
import { checksumAddress } from "../platform/keccak";
import { z } from "./zod";

// ---- Addresses ------------------------------------------------------------------------------------------

export const ADDRESS_PATTERN = /^0x[0-9a-fA-F]{40}$/;
export const ADDRESS_MESSAGE = "must be a 0x-prefixed 20-byte hex address";
export const CHECKSUM_MESSAGE = "has a wrong EIP-55 checksum (send it lower-case or correctly checksummed)";

/**
 * What is wrong with an address, if anything: not 20 bytes of 0x-prefixed hex (`format`), or mixed case with a
 * wrong EIP-55 checksum (`checksum`: a typo). All lower-case and all upper-case carry no checksum and are accepted.
 * The one rule every parser of an address applies (schemas here, the JSON-RPC params in userOperation.ts).
 */
export function addressProblem(value: string): "format" | "checksum" | undefined {
  if (!ADDRESS_PATTERN.test(value)) return "format";
  const hex = value.slice(2);
  if (hex === hex.toLowerCase() || hex === hex.toUpperCase() || checksumAddress(value) === value) return undefined;
  return "checksum";
}

/** An address that passed `addressProblem`, in its checksummed form. */
export const checksummed = (value: string): Address => checksumAddress(value);

/**
 * A 20-byte 0x-prefixed hex address, normalised to its checksummed form. `message` replaces the format message
 * where a caller's tests or users know another wording.
 */
export function address(options: { message?: string } = {}) {
  const message = options.message ?? ADDRESS_MESSAGE;
  return z
    .string({ error: message })
    .regex(ADDRESS_PATTERN, message)
    .refine((a) => addressProblem(a) !== "checksum", CHECKSUM_MESSAGE)
    .transform(checksummed);
}

export const addressSchema = address().openapi({
  description: "an address (a smart account's, a contract's): all lower-case, or with a correct EIP-55 checksum",
  examples: ["0x8ba1f109551bd432803012645ac136ddd64dba72"],
});

/** An address as the ledger keys it: lower case. */
export const accountSchema = addressSchema.transform((a) => a.toLowerCase() as Address);

/** In answers: a checksummed address. */
export const addressOut = z.string().regex(ADDRESS_PATTERN).openapi("Address", { description: "a 20-byte 0x-prefixed hex address" });
/** In answers: an address in lower case. */
export const lowerAddressOut = z
  .string()
  .regex(/^0x[0-9a-f]{40}$/)
  .openapi("LowerAddress", { description: "an address in lower case" });

// ---- Amounts --------------------------------------------------------------------------------------------

/** The largest amount a ledger column (PostgreSQL bigint) holds. */
export const MAX_FEN = 9_223_372_036_854_775_807n;
/** Digits enough for any uint256: the ceiling of a policy budget, which is compared with sums, never stored in a column. */
export const MAX_BUDGET_FEN = 10n ** 78n - 1n;

const digits = (n: bigint): number => n.toString().length;

/**
 * An amount of fen (CNY cents): a JSON integer, or a string of decimal digits for amounts beyond 2^53 (a bigint
 * from code is taken as is); never a fraction, never negative unless `signed`, at most `max`.
 */
export function fen(options: { signed?: boolean; max?: bigint } = {}) {
  const max = options.max ?? MAX_FEN;
  const pattern = new RegExp(`^${options.signed ? "-?" : ""}\\d{1,${digits(max)}}$`);
  // what a JSON client may send (a bigint comes only from code)
  const json = [
    { type: "integer" as const, ...(options.signed ? { minimum: -Number.MAX_SAFE_INTEGER } : { minimum: 0 }), maximum: Number.MAX_SAFE_INTEGER },
    { type: "string" as const, pattern: pattern.source },
  ];
  return z
    .union(
      [
        z.number().int("must be a whole number of fen").safe("is beyond 2^53: write it as a decimal string"),
        z.string().regex(pattern, `must be a whole number of fen in decimal digits (at most ${digits(max)})`),
        z.bigint(),
      ],
      { error: "must be a whole number of fen (a number, or a decimal string)" },
    )
    .transform((v, ctx) => {
      const amount = BigInt(v);
      if (!options.signed && amount < 0n) ctx.addIssue({ code: "custom", message: "cannot be negative" });
      else if (amount > max || -amount > max) ctx.addIssue({ code: "custom", message: `must be at most ${max} fen${options.signed ? " either way" : ""}` });
      return amount;
    })
    .openapi({ anyOf: json });
}

/** An amount the ledger stores: 0 … MAX_FEN. */
export const fenSchema = fen().openapi({ description: "whole fen: a JSON integer, or a decimal string for amounts beyond 2^53; never a fraction, never negative" });
/** A change of a balance, either way: −MAX_FEN … MAX_FEN. */
export const signedFenSchema = fen({ signed: true });
/** A policy budget (a spend limit, a per-operation cap): compared with what is spent, never stored in a column. */
export const fenBudgetSchema = fen({ max: MAX_BUDGET_FEN });

/** A non-negative whole number of any size up to uint256 (wei, gas): a JSON integer or a decimal string. */
export const uintSchema = z
  .union([z.number().int("must be a whole number").nonnegative("cannot be negative").safe("is beyond 2^53: write it as a decimal string"), z.string().regex(/^\d{1,78}$/, "must be a whole number in decimal digits")])
  .transform((v) => BigInt(v))
  .refine((v) => v < 2n ** 256n, "must fit in 256 bits");

/** In answers: whole fen as a decimal string (bigint, never a JSON number). */
export const fenOut = z
  .string()
  .regex(/^\d+$/)
  .openapi("FenString", { description: "whole fen as a decimal string (bigint)", examples: ["1500"] });
/** In answers: a change in fen, negative for a decrease. */
export const signedFenOut = z
  .string()
  .regex(/^-?\d+$/)
  .openapi("SignedFenString", { description: "a change in fen as a decimal string, negative for a decrease" });
/** In answers: wei as a decimal string. */
export const weiOut = z
  .string()
  .regex(/^\d+$/)
  .openapi("WeiString", { description: "wei as a decimal string (bigint)", examples: ["1000000000"] });
/** In answers: a whole number (a block, a nonce, gas) as a decimal string. */
export const decimalOut = z.string().regex(/^\d+$/);
/** In answers: an amount that may be unknown (not in the components: a null member keeps its own type list). */
export const nullableFenOut = z.string().regex(/^\d+$/).nullable();
export const nullableWeiOut = z.string().regex(/^\d+$/).nullable();
export const nullableSignedWeiOut = z.string().regex(/^-?\d+$/).nullable();

// ---- Hex ------------------------------------------------------------------------------------------------

export const hexQuantityOut = z
  .string()
  .regex(/^0x[0-9a-fA-F]{1,64}$/)
  .openapi("HexQuantity", { description: "an unsigned integer as 0x-prefixed hex", examples: ["0x5208"] });
export const hexBytesOut = z
  .string()
  .regex(/^0x([0-9a-fA-F]{2})*$/)
  .openapi("HexBytes", { description: "0x-prefixed hex bytes" });
export const bytes32Out = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/)
  .openapi("Bytes32");

// ---- Chains, times, ids ---------------------------------------------------------------------------------

/** An EIP-155 chain id. */
export const chainIdSchema = z.number({ error: "must be a chain id (a positive integer)" }).int("must be a chain id (a positive integer)").positive("must be a chain id (a positive integer)").safe();
/** A chain id in a query string: decimal. */
export const chainIdParam = z
  .string()
  .regex(/^[1-9]\d{0,15}$/, "must be a chain id in decimal")
  .transform(Number);

/** In answers: an ISO 8601 time in UTC. */
export const dateTimeOut = z.iso.datetime();
export const nullableDateTimeOut = z.iso.datetime().nullable();

/** The ids this service hands out. */
export const orderIdSchema = z
  .string()
  .regex(/^fp[0-9a-f]{24}$/, "is not an order id")
  .openapi({ description: "an order id: our out_trade_no at the gateway" });
export const refundIdSchema = z.string().regex(/^rf[0-9a-f]{24}$/, "is not a refund id");
export const holdIdSchema = z.string().regex(/^h_[0-9a-f-]{36}$/, "is not a hold id");
export const apiKeyIdSchema = z.string().regex(/^[0-9a-f]{12}$/, "is not an API key id");
export const idempotencyKeySchema = z
  .string()
  .regex(/^[\w.:-]{1,128}$/, "must be 1–128 characters of letters, digits and _ . : -")
  .openapi("IdempotencyKey", { description: "1–128 characters of letters, digits and _ . : -; repeating a request with the same key returns the same resource" });
