/**
 * The kinds of value an environment variable holds (a whole number in a range, an amount of fen, an http(s) URL,
 * one of a few words, a secret), each a zod schema over the variable's text that fails with one message saying
 * what the variable must be. Numbers and amounts are the shared primitives (../schemas/primitives.ts) read from text.
 */
import { z } from "zod";
import { fenSchema, uintSchema } from "../schemas/primitives";

/**
 * `schema` over a variable's text, failing with one message: `must be <mustBe>: got <text>`. A secret's message
 * never quotes it (`expectSecret`).
 */
export function expect<T>(schema: z.ZodType<T>, mustBe: string): z.ZodType<T, string> {
  return restate(schema, (raw) => `must be ${mustBe}: got ${raw}`);
}

export function expectSecret<T>(schema: z.ZodType<T>, mustBe: string): z.ZodType<T, string> {
  return restate(schema, () => `must be ${mustBe}`);
}

function restate<T>(schema: z.ZodType<T>, message: (raw: string) => string): z.ZodType<T, string> {
  return z.string().transform((raw, ctx) => {
    const parsed = schema.safeParse(raw);
    if (parsed.success) return parsed.data;
    ctx.issues.push({ code: "custom", message: message(raw), input: raw });
    return z.NEVER;
  });
}

/** Text as it is (already trimmed; an empty variable counts as unset). */
export const text = z.string();

/** A whole number in [min, max]: the uint primitive, read from decimal text. */
export function wholeNumber(min: number, max: number): z.ZodType<number, string> {
  return expect(
    uintSchema.refine((n) => n >= BigInt(min) && n <= BigInt(max)).transform(Number),
    `a whole number in [${min}, ${max}]`,
  );
}

/** The most fen a configured amount (an order limit) may be: 15 digits, ¥9,999,999,999,999.99. */
const MAX_CONFIGURED_FEN = 999_999_999_999_999n;

/** A positive amount of fen: the fen primitive, read from decimal text, at most 15 digits. */
export const positiveFen = expect(
  fenSchema.refine((fen) => fen > 0n && fen <= MAX_CONFIGURED_FEN),
  "a positive whole number of fen",
);

/** An http(s) URL, without trailing slashes (paths are appended to it). */
export const httpUrl = expect(
  z.url({ protocol: /^https?$/ }).transform((url) => url.replace(/\/+$/, "")),
  "an http(s) URL",
);

/** One of a few words, e.g. `oneOf(["on", "off"])`: "must be on or off". */
export function oneOf<const T extends readonly [string, ...string[]]>(words: T): z.ZodType<T[number], string> {
  return expect(z.enum(words), words.join(" or "));
}

/** The most a sponsor icon may weigh: it travels in every paymaster answer. */
export const MAX_ICON_CHARS = 16_384;

/** ERC-7677's `sponsor.icon`: an RFC 2397 data URI of an image, base64, small. */
export const iconDataUri = z
  .string()
  .max(MAX_ICON_CHARS, `must be at most ${MAX_ICON_CHARS} characters (it travels in every paymaster answer)`)
  .regex(/^data:image\/(png|svg\+xml|jpeg|webp|gif);base64,[A-Za-z0-9+/]+={0,2}$/, "must be an RFC 2397 data URI of an image (data:image/png;base64,…), as ERC-7677 asks");
