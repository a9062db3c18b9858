/**
 * The chains the service sponsors on, from a JSON array (env `CHAINS` or the file `CHAINS_FILE`). Prices are
 * integers: `fenPerNative` is fen per 1e18 wei of the native token, `markupBps` basis points, and the fee factor
 * is in percent, so no float ever reaches money.
 */
import type { Address } from "viem";
import { z } from "zod";
import { CANONICAL_ENTRY_POINTS, ENTRY_POINT_VERSIONS, type EntryPointVersion } from "../chain/addresses";
import { addressSchema as address, chainIdSchema, uintSchema } from "../schemas/primitives";

export type GasCaps = {
  callGasLimit: bigint;
  verificationGasLimit: bigint;
  preVerificationGas: bigint;
  /** The highest maxFeePerGas accepted whatever the chain's current fee. */
  maxFeePerGas: bigint;
};

/** One EntryPoint served on a chain, and our paymaster contract for it. */
export type EntryPointConfig = {
  version: EntryPointVersion;
  /** The EntryPoint (default: the version's canonical address). */
  address: Address;
  /** FiatPaymaster (v0.7), FiatPaymasterV08 or FiatPaymasterV09 deployed for it. */
  paymaster: Address;
};

export type ChainConfig = {
  chainId: number;
  name: string;
  rpcUrl: string;
  /** A bundler for this chain; only the demo and the local stack use it. */
  bundlerUrl?: string;
  /** The EntryPoints sponsored on this chain (any subset of v0.7, v0.8, v0.9), each with its paymaster. */
  entryPoints: EntryPointConfig[];
  fenPerNative: bigint;
  markupBps: number;
  /** Optional Chainlink feeds: fenPerNative follows nativeUsd / cnyUsd while they are fresh. */
  priceFeed?: { nativeUsd: Address; cnyUsd: Address; maxAgeSeconds: number };
  /** Blocks a UserOperationEvent must be buried under before it is settled. */
  confirmations: number;
  /** maxFeePerGas may be at most this percentage of the chain's current gas price. */
  maxFeePercent: number;
  /**
   * maxPriorityFeePerGas may be at most this percentage of the chain's current priority fee
   * (eth_maxPriorityFeePerGas), and never less than `priorityFeeFloorWei`: a tip above what the chain needs only
   * pays a self-bundling sender out of the paymaster's deposit.
   */
  maxPriorityFeePercent: number;
  priorityFeeFloorWei: bigint;
  /**
   * preVerificationGas may be at most this percentage of what the operation needs (server/sponsorship/
   * preVerificationGas.ts) plus `preVerificationGasAllowance` gas (set it on L2s, whose preVerificationGas also
   * pays the L1 data fee).
   */
  preVerificationGasPercent: number;
  preVerificationGasAllowance: bigint;
  gasCaps: GasCaps;
  paymasterVerificationGasLimit: bigint;
  paymasterPostOpGasLimit: bigint;
  /** Sponsorship stops while deposit − open holds' worst case falls below this. */
  minDepositWei: bigint;
  /** Blocks per eth_getLogs call of the settlement worker. */
  logRange: number;
};

const entryPointSchema = z
  .object({
    version: z.enum(ENTRY_POINT_VERSIONS),
    address: address.optional(),
    paymaster: address,
  })
  .strict();

const chainSchema = z
  .object({
    chainId: chainIdSchema,
    name: z.string().min(1).optional(),
    rpcUrl: z.url({ protocol: /^https?$/ }),
    bundlerUrl: z.url({ protocol: /^https?$/ }).optional(),
    // either `entryPoints`, or (as before v0.8 was served) one v0.7 `paymaster` with an optional `entryPoint`
    entryPoints: z.array(entryPointSchema).min(1).max(ENTRY_POINT_VERSIONS.length).optional(),
    entryPoint: address.optional(),
    paymaster: address.optional(),
    fenPerNative: uintSchema.refine((v) => v > 0n, "fenPerNative must be positive"),
    markupBps: z.number().int().min(0).max(100_000).default(0),
    priceFeed: z
      .object({ nativeUsd: address, cnyUsd: address, maxAgeSeconds: z.number().int().positive().default(3_600) })
      .optional(),
    confirmations: z.number().int().min(0).max(1_000).default(2),
    maxFeePercent: z.number().int().min(100).max(100_000).default(1_000),
    maxPriorityFeePercent: z.number().int().min(100).max(100_000).default(300),
    priorityFeeFloorWei: uintSchema.default(100_000_000n),
    preVerificationGasPercent: z.number().int().min(100).max(100_000).default(200),
    preVerificationGasAllowance: uintSchema.default(0n),
    gasCaps: z
      .object({
        callGasLimit: uintSchema.default(5_000_000n),
        verificationGasLimit: uintSchema.default(1_000_000n),
        preVerificationGas: uintSchema.default(500_000n),
        maxFeePerGas: uintSchema.default(1_000n * 10n ** 9n),
      })
      .prefault({}),
    paymasterVerificationGasLimit: uintSchema.default(60_000n),
    paymasterPostOpGasLimit: uintSchema.default(0n),
    minDepositWei: uintSchema.default(10n ** 16n),
    logRange: z.number().int().min(1).max(100_000).default(2_000),
  })
  .strict();

export class ChainConfigError extends Error {
  override name = "ChainConfigError";
}

/** Parses and checks the chains array; the message names each bad field (`chains[0].paymaster: …`). */
export function parseChains(json: unknown): ChainConfig[] {
  const result = z.array(chainSchema).safeParse(json);
  if (!result.success) {
    throw new ChainConfigError(
      result.error.issues.map((i) => `chains${i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}: ${i.message}`).join("; "),
    );
  }
  const seen = new Set<number>();
  return result.data.map((chain, index) => {
    if (seen.has(chain.chainId)) throw new ChainConfigError(`chain ${chain.chainId} is configured twice`);
    seen.add(chain.chainId);
    const { entryPoint, paymaster, entryPoints: listed, ...rest } = chain;
    return { ...rest, name: chain.name ?? `chain ${chain.chainId}`, entryPoints: entryPointsOf(index, listed, entryPoint, paymaster) };
  });
}

function entryPointsOf(index: number, listed: z.infer<typeof entryPointSchema>[] | undefined, entryPoint: Address | undefined, paymaster: Address | undefined): EntryPointConfig[] {
  const at = `chains[${index}]`;
  if (listed) {
    if (entryPoint !== undefined || paymaster !== undefined) {
      throw new ChainConfigError(`${at}: give either entryPoints or paymaster (with entryPoint), not both`);
    }
    const entries = listed.map((e) => ({ version: e.version, address: e.address ?? CANONICAL_ENTRY_POINTS[e.version], paymaster: e.paymaster }));
    for (const [i, e] of entries.entries()) {
      const earlier = entries.slice(0, i);
      if (earlier.some((o) => o.version === e.version)) throw new ChainConfigError(`${at}.entryPoints[${i}]: EntryPoint v${e.version} is listed twice`);
      if (earlier.some((o) => o.address.toLowerCase() === e.address.toLowerCase())) throw new ChainConfigError(`${at}.entryPoints[${i}]: EntryPoint ${e.address} is listed twice`);
      if (earlier.some((o) => o.paymaster.toLowerCase() === e.paymaster.toLowerCase())) {
        throw new ChainConfigError(`${at}.entryPoints[${i}]: paymaster ${e.paymaster} serves another EntryPoint already (each version has its own contract)`);
      }
    }
    return entries;
  }
  if (paymaster === undefined) throw new ChainConfigError(`${at}.entryPoints: required (or the v0.7 form: paymaster, with an optional entryPoint)`);
  return [{ version: "0.7", address: entryPoint ?? CANONICAL_ENTRY_POINTS["0.7"], paymaster }];
}
