/**
 * What the sponsorship path needs to know about a chain, cached so a request never waits on an RPC call it
 * does not have to: the current gas price (refreshed when older than `maxAgeMs`, one request shared by every
 * caller), the price of the native token in fen (config, or Chainlink feeds when configured), and the deposit
 * health the deposit monitor last saw.
 */
import { type Address, type PublicClient, createPublicClient, defineChain, http, parseAbi } from "viem";
import type { Quote } from "../sponsor/pricing";
import type { ChainConfig } from "./chainConfig";

export type DepositHealth = {
  healthy: boolean;
  depositWei?: bigint;
  outstandingWei?: bigint;
  checkedAt?: Date;
  /** Why sponsorship is refused, when it is. */
  reason?: string;
};

export type ChainRuntime = {
  config: ChainConfig;
  client: PublicClient;
  /** The chain's gas price, at most a few seconds old. */
  gasPrice(): Promise<bigint>;
  /** The quote a sponsorship signed now locks. */
  quote(): Promise<Quote>;
  deposit: DepositHealth;
};

const aggregatorAbi = parseAbi([
  "function latestRoundData() view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)",
  "function decimals() view returns (uint8)",
]);

/** Caches an async value for `maxAgeMs`; concurrent callers share the one request in flight. */
function cached<T>(load: () => Promise<T>, maxAgeMs: number): () => Promise<T> {
  let value: { at: number; v: T } | undefined;
  let inflight: Promise<T> | undefined;
  return async () => {
    if (value && Date.now() - value.at < maxAgeMs) return value.v;
    inflight ??= load()
      .then((v) => {
        value = { at: Date.now(), v };
        return v;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };
}

export class PriceFeedError extends Error {
  override name = "PriceFeedError";
}

/**
 * fen per 1e18 wei from two USD feeds: nativeUsd / cnyUsd × 100, in integers. A stale or non-positive answer
 * throws, and the caller falls back to the configured price rather than sponsoring at a wrong one.
 */
export async function readFeedPrice(client: PublicClient, feed: { nativeUsd: Address; cnyUsd: Address; maxAgeSeconds: number }, now = Date.now()): Promise<bigint> {
  const read = async (address: Address) => {
    const [round, decimals] = await Promise.all([
      client.readContract({ address, abi: aggregatorAbi, functionName: "latestRoundData" }),
      client.readContract({ address, abi: aggregatorAbi, functionName: "decimals" }),
    ]);
    const [, answer, , updatedAt] = round;
    if (answer <= 0n) throw new PriceFeedError(`feed ${address} answered ${answer}`);
    if (now / 1000 - Number(updatedAt) > feed.maxAgeSeconds) throw new PriceFeedError(`feed ${address} is stale (updated ${new Date(Number(updatedAt) * 1000).toISOString()})`);
    return { answer, decimals: BigInt(decimals) };
  };
  const [native, cny] = await Promise.all([read(feed.nativeUsd), read(feed.cnyUsd)]);
  // (native/10^dn) / (cny/10^dc) CNY per native token, × 100 fen
  const fen = (native.answer * 100n * 10n ** cny.decimals) / (cny.answer * 10n ** native.decimals);
  if (fen <= 0n) throw new PriceFeedError("the feeds give a price below 1 fen per native token");
  return fen;
}

export function createChainRuntime(config: ChainConfig, options: { gasPriceMaxAgeMs?: number; onFeedError?: (error: Error) => void } = {}): ChainRuntime {
  const chain = defineChain({
    id: config.chainId,
    name: config.name,
    nativeCurrency: { name: "native", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [config.rpcUrl] } },
  });
  const client = createPublicClient({ chain, transport: http(config.rpcUrl, { timeout: 10_000, retryCount: 1 }), pollingInterval: 1_000 }) as PublicClient;
  const gasPrice = cached(() => client.getGasPrice(), options.gasPriceMaxAgeMs ?? 5_000);
  const feed = config.priceFeed;
  const feedPrice = feed
    ? cached(
        () =>
          readFeedPrice(client, feed).catch((error: Error) => {
            options.onFeedError?.(error);
            return config.fenPerNative;
          }),
        60_000,
      )
    : undefined;
  return {
    config,
    client,
    gasPrice,
    quote: async () => ({ fenPerNative: feedPrice ? await feedPrice() : config.fenPerNative, markupBps: config.markupBps }),
    // unknown until the deposit monitor's first check (the app runs one before it serves)
    deposit: { healthy: false, reason: "the paymaster's deposit has not been checked yet" },
  };
}
