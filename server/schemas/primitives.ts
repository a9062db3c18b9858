/**
 * The value types every request, response, policy and config file shares, defined once: an address, an amount
 * of fen, a whole number of wei or gas, a chain id, and the ids this service hands out. Every schema elsewhere
 * is built from these, so a rule (what counts as an address, how large an amount may be) is written in one place.
 */
import { type Address, getAddress, isAddress } from "viem";
import { z } from "zod";

/**
 * A 20-byte 0x-prefixed hex address, all lower-case or correctly EIP-55 checksummed (a mixed-case address with a
 * wrong checksum is a typo, refused); normalised to its checksummed form.
 */
export const addressSchema = z
  .string({ error: "must be a 0x-prefixed 20-byte hex address" })
  .regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address")
  .refine((a) => isAddress(a, { strict: true }) || a === a.toLowerCase() || a.slice(2) === a.slice(2).toUpperCase(), "has a wrong EIP-55 checksum (send it lower-case or correctly checksummed)")
  .transform((a) => getAddress(a.toLowerCase()) as Address);

/** The largest amount a ledger column (PostgreSQL bigint) holds. */
export const MAX_FEN = 9_223_372_036_854_775_807n;

/**
 * An amount of fen (CNY cents): a JSON integer, or a string of decimal digits for amounts beyond 2^53; never a
 * fraction, never negative, at most what the ledger stores.
 */
export const fenSchema = z
  .union([z.number().int("must be a whole number of fen").safe("is beyond 2^53: write it as a decimal string"), z.string().regex(/^\d{1,19}$/, "must be a whole number of fen")], {
    error: "must be a whole number of fen (a number, or a decimal string)",
  })
  .transform((v, ctx) => {
    const fen = BigInt(v);
    if (fen < 0n) ctx.addIssue({ code: "custom", message: "cannot be negative" });
    else if (fen > MAX_FEN) ctx.addIssue({ code: "custom", message: `must be at most ${MAX_FEN} fen` });
    return fen;
  });

/** A non-negative whole number of any size up to uint256 (wei, gas): a JSON integer or a decimal string. */
export const uintSchema = z
  .union([z.number().int("must be a whole number").nonnegative("cannot be negative").safe("is beyond 2^53: write it as a decimal string"), z.string().regex(/^\d{1,78}$/, "must be a whole number in decimal digits")])
  .transform((v) => BigInt(v))
  .refine((v) => v < 2n ** 256n, "must fit in 256 bits");

/** An EIP-155 chain id. */
export const chainIdSchema = z.number({ error: "must be a chain id (a positive integer)" }).int("must be a chain id (a positive integer)").positive("must be a chain id (a positive integer)").safe();

/** The ids this service hands out. */
export const orderIdSchema = z.string().regex(/^fp[0-9a-f]{24}$/, "is not an order id");
export const refundIdSchema = z.string().regex(/^rf[0-9a-f]{24}$/, "is not a refund id");
export const holdIdSchema = z.string().regex(/^h_[0-9a-f-]{36}$/, "is not a hold id");
export const idempotencyKeySchema = z.string().regex(/^[\w.:-]{1,128}$/, "must be 1–128 characters of letters, digits and _ . : -");
