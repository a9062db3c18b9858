/**
 * What the sponsorship path needs to know about a chain, cached so a request never waits on an RPC call it
 * does not have to: the current gas price and priority fee (refreshed when older than `maxAgeMs`, one request
 * shared by every caller; while a refresh fails, the last value serves for up to a minute), the price of the
 * native token in fen (config, or Chainlink feeds when configured). (Deposit health is the deposit monitor's:
 * `server/sponsorship/depositMonitor.ts`.)
 *
 * Two RPC clients: the workers' (`client`: 10 s timeout, one retry) and the request path's (`requestClient`:
 * `rpcRequestTimeoutMs`, no retry, concurrent contract reads aggregated into one Multicall3 eth_call and other
 * calls into JSON-RPC batches), so a wedged RPC costs a sponsorship at most that long and then answers
 * `unavailable`.
 */
import { type Address, type Hex, type PublicClient, createPublicClient, defineChain, getAddress, http, parseAbi, toFunctionSelector } from "viem";
import type { ChainConfig, EntryPointConfig } from "../config/chains";
import { createRpcBatcher } from "./rpcBatch";

/** One EntryPoint served on the chain, with our paymaster for it. */
export type EntryPointRuntime = EntryPointConfig & {
  /** The sender's next nonce on this EntryPoint for the key of `nonce` (the upper 192 bits); never cached. */
  currentNonce(sender: Address, nonce: bigint): Promise<bigint>;
};

export type ChainRuntime = {
  config: ChainConfig;
  /** The chain's EntryPoints, in configuration order. */
  entryPoints: readonly EntryPointRuntime[];
  /** The served EntryPoint at `address` (any case), if any. */
  entryPoint(address: Address): EntryPointRuntime | undefined;
  /**
   * The EIP-7702 delegate of `account` from its code (`0xef0100 ‖ delegate`), undefined when it has none; for an
   * operation whose initCode is the 0x7702 marker and that carries no authorization. Not cached.
   */
  delegateOf(account: Address): Promise<Address | undefined>;
  /** For the workers (settlement, deposit monitor): patient. */
  client: PublicClient;
  /** For the request path: short timeout, no retry, batched. */
  requestClient: PublicClient;
  /**
   * The chain's gas price, at most a few seconds old (up to a minute while the RPC fails); `fresherThanMs` asks for
   * a newer figure (before refusing a request on the cached one).
   */
  gasPrice(options?: { fresherThanMs?: number }): Promise<bigint>;
  /**
   * The chain's current priority fee: eth_maxPriorityFeePerGas, or the 90th percentile tip of the last five
   * blocks when higher (eth_feeHistory); cached like the gas price.
   */
  priorityFee(options?: { fresherThanMs?: number }): Promise<bigint>;
  /** The quote a sponsorship signed now locks. */
  quote(): Promise<{ fenPerNative: bigint; markupBps: number }>;
};

const aggregatorAbi = parseAbi([
  "function latestRoundData() view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)",
  "function decimals() view returns (uint8)",
]);

/**
 * Caches an async value for `maxAgeMs`; concurrent callers share the one request in flight. With `staleMs`, a
 * failed refresh answers the last value while it is younger than that, so a short RPC outage does not stop
 * requests that only need a recent figure.
 */
export function cached<T>(load: () => Promise<T>, maxAgeMs: number, staleMs = 0): (options?: { fresherThanMs?: number }) => Promise<T> {
  let value: { at: number; v: T } | undefined;
  let inflight: Promise<T> | undefined;
  return async (options) => {
    const maxAge = Math.min(maxAgeMs, options?.fresherThanMs ?? maxAgeMs);
    if (value && Date.now() - value.at < maxAge) return value.v;
    inflight ??= load()
      .then((v) => {
        value = { at: Date.now(), v };
        return v;
      })
      .finally(() => {
        inflight = undefined;
      });
    try {
      return await inflight;
    } catch (error) {
      // a caller asking for a fresh figure gets the failure, not the stale value it asked to avoid
      if (value && Date.now() - value.at < staleMs && options?.fresherThanMs === undefined) return value.v;
      throw error;
    }
  };
}

/** EntryPoint `getNonce(address sender, uint192 key)`: the sender's next nonce for that key (key ‖ sequence). */
const GET_NONCE_SELECTOR = toFunctionSelector("function getNonce(address sender, uint192 key) view returns (uint256 nonce)");

/** While the RPC fails, a gas price or priority fee this old still serves the fee checks. */
const STALE_FEE_MS = 60_000;

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

export function createChainRuntime(
  config: ChainConfig,
  options: { gasPriceMaxAgeMs?: number; rpcRequestTimeoutMs?: number; onFeedError?: (error: Error) => void } = {},
): ChainRuntime {
  const chain = defineChain({
    id: config.chainId,
    name: config.name,
    nativeCurrency: { name: "native", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [config.rpcUrl] } },
  });
  const client = createPublicClient({ chain, transport: http(config.rpcUrl, { timeout: 10_000, retryCount: 1 }), pollingInterval: 1_000 }) as PublicClient;
  // concurrent calls (every sponsorship reads its sender's nonce) go out as one JSON-RPC batch
  const requestClient = createPublicClient({
    chain,
    transport: http(config.rpcUrl, { timeout: options.rpcRequestTimeoutMs ?? 2_000, retryCount: 0, batch: { batchSize: 100, wait: 0 } }),
    pollingInterval: 1_000,
  }) as PublicClient;
  const gasPrice = cached(() => requestClient.getGasPrice(), options.gasPriceMaxAgeMs ?? 5_000, STALE_FEE_MS);
  // what the chain pays its block producers now: the node's suggestion, or what recent blocks' transactions
  // actually tipped (90th percentile of the last few), whichever is higher — bundlers bid from the latter
  const priorityFee = cached(
    async () => {
      const [suggested, history] = await Promise.all([
        requestClient.estimateMaxPriorityFeePerGas(),
        requestClient.getFeeHistory({ blockCount: 5, rewardPercentiles: [90] }).catch(() => undefined),
      ]);
      const paid = (history?.reward ?? []).map((r) => r[0] ?? 0n);
      return paid.reduce((max, v) => (v > max ? v : max), suggested);
    },
    options.gasPriceMaxAgeMs ?? 5_000,
    STALE_FEE_MS,
  );
  const nonces = new Map<string, Promise<bigint>>();
  // the nonce read runs for every sponsorship: batched, without viem's fetch-based transport (rpcBatch.ts)
  const nonceReads = createRpcBatcher(config.rpcUrl, { timeoutMs: options.rpcRequestTimeoutMs ?? 2_000 });
  const currentNonce = (entryPoint: Address, sender: Address, nonce: bigint) => {
    const key = nonce >> 64n;
    const id = `${entryPoint.toLowerCase()}:${sender.toLowerCase()}:${key}`;
    // callers asking for the same (sender, key) at once share the read; nothing is kept after it answers
    let read = nonces.get(id);
    if (!read) {
      // a plain eth_call with the calldata laid out by hand: this runs for every sponsorship, and viem's generic
      // readContract (ABI encoding and decoding) was most of its cost
      const data = `${GET_NONCE_SELECTOR}${sender.slice(2).toLowerCase().padStart(64, "0")}${key.toString(16).padStart(64, "0")}` as Hex;
      read = nonceReads
        .call("eth_call", [{ to: entryPoint, data }, "latest"])
        .then((result) => {
          if (typeof result !== "string" || !/^0x[0-9a-fA-F]{1,64}$/.test(result)) throw new Error(`getNonce answered ${String(result).slice(0, 80)}`);
          return BigInt(result);
        })
        .finally(() => nonces.delete(id));
      nonces.set(id, read);
    }
    return read;
  };
  const feed = config.priceFeed;
  const feedPrice = feed
    ? cached(
        () =>
          readFeedPrice(requestClient, feed).catch((error: Error) => {
            options.onFeedError?.(error);
            return config.fenPerNative;
          }),
        60_000,
      )
    : undefined;
  const entryPoints: EntryPointRuntime[] = config.entryPoints.map((ep) => ({
    ...ep,
    currentNonce: (sender: Address, nonce: bigint) => currentNonce(ep.address, sender, nonce),
  }));
  const byAddress = new Map(entryPoints.map((ep) => [ep.address.toLowerCase(), ep]));
  return {
    config,
    entryPoints,
    entryPoint: (address) => byAddress.get(address.toLowerCase()),
    delegateOf: async (account) => {
      const code = await requestClient.getCode({ address: account });
      return code && code.length === 2 + 46 && code.toLowerCase().startsWith("0xef0100") ? getAddress(`0x${code.slice(8)}`) : undefined;
    },
    client,
    requestClient,
    gasPrice,
    priorityFee,
    quote: async () => ({ fenPerNative: feedPrice ? await feedPrice() : config.fenPerNative, markupBps: config.markupBps }),
  };
}
