/**
 * The chains the service sponsors on, from a JSON array (env `CHAINS` or the file `CHAINS_FILE`). Prices are
 * integers: `fenPerNative` is fen per 1e18 wei of the native token, `markupBps` basis points, and the fee factor
 * is in percent, so no float ever reaches money.
 */
import type { Address } from "viem";
import { z } from "zod";
import { ENTRY_POINT_V07 } from "../chain/addresses";
import { addressSchema as address, chainIdSchema, uintSchema } from "../schemas/primitives";

export type GasCaps = {
  callGasLimit: bigint;
  verificationGasLimit: bigint;
  preVerificationGas: bigint;
  /** The highest maxFeePerGas accepted whatever the chain's current fee. */
  maxFeePerGas: bigint;
};

export type ChainConfig = {
  chainId: number;
  name: string;
  rpcUrl: string;
  /** A bundler for this chain; only the demo and the local stack use it. */
  bundlerUrl?: string;
  entryPoint: Address;
  paymaster: Address;
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

const chainSchema = z
  .object({
    chainId: chainIdSchema,
    name: z.string().min(1).optional(),
    rpcUrl: z.url({ protocol: /^https?$/ }),
    bundlerUrl: z.url({ protocol: /^https?$/ }).optional(),
    entryPoint: address.default(ENTRY_POINT_V07),
    paymaster: address,
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
  for (const chain of result.data) {
    if (seen.has(chain.chainId)) throw new ChainConfigError(`chain ${chain.chainId} is configured twice`);
    seen.add(chain.chainId);
  }
  return result.data.map((c) => ({ ...c, name: c.name ?? `chain ${c.chainId}` }));
}
