/** The price a sponsorship locks, from configuration or from Chainlink feeds on the chain itself (anvil). */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Address } from "viem";
import { type LocalChain, startLocalChain } from "../../devtools/chain/localChain";
import { loadProjectArtifact } from "./artifacts";
import { parseChains } from "../config/chains";
import { DepositMonitor } from "../sponsorship/depositMonitor";
import { PriceFeedError, cached, createChainRuntime, readFeedPrice } from "./chainRuntime";

describe("chain runtime: gas price and price feeds", () => {
  let chain: LocalChain;
  const aggregator = loadProjectArtifact("test/MockAggregator.sol", "MockAggregator");
  const deploy = async (decimals: number, answer: bigint): Promise<Address> => {
    const hash = await chain.owner.deployContract({ abi: aggregator.abi, bytecode: aggregator.bytecode, args: [decimals, answer] });
    return (await chain.client.waitForTransactionReceipt({ hash })).contractAddress!;
  };
  const setAnswer = async (feed: Address, answer: bigint, updatedAt: bigint) => {
    const hash = await chain.owner.writeContract({ address: feed, abi: aggregator.abi, functionName: "setAnswer", args: [answer, updatedAt] });
    await chain.client.waitForTransactionReceipt({ hash });
  };
  const now = async () => (await chain.client.getBlock()).timestamp;

  before(async () => {
    chain = await startLocalChain();
  });
  after(async () => {
    await chain?.stop();
  });

  it("derives fen per native token from an ETH/USD and a CNY/USD feed, in integers", async () => {
    // ETH at $3,000.12345678 (8 decimals), CNY at $0.13800000 (8 decimals): ¥21,740.02… → 2,174,002 fen
    const nativeUsd = await deploy(8, 300_012_345_678n);
    const cnyUsd = await deploy(8, 13_800_000n);
    const fen = await readFeedPrice(chain.client, { nativeUsd, cnyUsd, maxAgeSeconds: 3_600 }, Number(await now()) * 1000);
    assert.equal(fen, (300_012_345_678n * 100n * 10n ** 8n) / (13_800_000n * 10n ** 8n));
    assert.equal(fen, 2_174_002n);
  });

  it("handles feeds with different decimals", async () => {
    const nativeUsd = await deploy(18, 3_000n * 10n ** 18n);
    const cnyUsd = await deploy(8, 14_000_000n);
    assert.equal(await readFeedPrice(chain.client, { nativeUsd, cnyUsd, maxAgeSeconds: 3_600 }, Number(await now()) * 1000), 2_142_857n);
  });

  it("refuses a stale or non-positive answer", async () => {
    const nativeUsd = await deploy(8, 300_000_000_000n);
    const cnyUsd = await deploy(8, 13_800_000n);
    const t = await now();
    await setAnswer(nativeUsd, 300_000_000_000n, t - 7_200n);
    await assert.rejects(readFeedPrice(chain.client, { nativeUsd, cnyUsd, maxAgeSeconds: 3_600 }, Number(t) * 1000), (e: unknown) => e instanceof PriceFeedError && /stale/.test(e.message));
    await setAnswer(nativeUsd, 0n, t);
    await assert.rejects(readFeedPrice(chain.client, { nativeUsd, cnyUsd, maxAgeSeconds: 3_600 }, Number(t) * 1000), (e: unknown) => e instanceof PriceFeedError && /answered 0/.test(e.message));
  });

  it("quotes from the feeds when configured, and falls back to the configured price (reporting why) when they are unusable", async () => {
    const nativeUsd = await deploy(8, 300_000_000_000n);
    const cnyUsd = await deploy(8, 15_000_000n);
    const [config] = parseChains([
      { chainId: chain.anvil.chainId, rpcUrl: chain.anvil.rpcUrl, paymaster: chain.paymaster, fenPerNative: "1000000", markupBps: 250, priceFeed: { nativeUsd, cnyUsd, maxAgeSeconds: 3_600 } },
    ]);
    const fresh = createChainRuntime(config!);
    assert.deepEqual(await fresh.quote(), { fenPerNative: 2_000_000n, markupBps: 250 });
    assert.equal(await fresh.gasPrice(), await chain.client.getGasPrice());

    await setAnswer(cnyUsd, 15_000_000n, (await now()) - 86_400n);
    const errors: Error[] = [];
    const stale = createChainRuntime(config!, { onFeedError: (e) => errors.push(e) });
    assert.deepEqual(await stale.quote(), { fenPerNative: 1_000_000n, markupBps: 250 });
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /stale/);
  });

  it("without a feed, quotes the configured price, and the deposit counts as unchecked until the monitor reads it", async () => {
    const [config] = parseChains([{ chainId: chain.anvil.chainId, rpcUrl: chain.anvil.rpcUrl, paymaster: chain.paymaster, fenPerNative: 2_500_000, markupBps: 0 }]);
    const runtime = createChainRuntime(config!);
    assert.deepEqual(await runtime.quote(), { fenPerNative: 2_500_000n, markupBps: 0 });
    const deposit = new DepositMonitor({ db: undefined as never, chains: [runtime], intervalMs: 1_000 }).health(config!.chainId, config!.entryPoints[0]!.address);
    assert.equal(deposit.healthy, false);
    assert.match(deposit.reason!, /not been checked yet/);
  });
});

describe("cached figures of the request path", () => {
  it("a failed refresh serves the last value while it is young enough, but never to a caller that asked for a fresh one", async () => {
    let calls = 0;
    let fail = false;
    const read = cached(
      async () => {
        calls++;
        if (fail) throw new Error("the RPC does not answer");
        return BigInt(calls);
      },
      0,
      60_000,
    );
    assert.equal(await read(), 1n);
    fail = true;
    assert.equal(await read(), 1n, "stale but recent: served");
    await assert.rejects(read({ fresherThanMs: 0 }), /does not answer/, "a refusal must not rest on the stale figure");
  });

  it("concurrent callers share one load", async () => {
    let calls = 0;
    const read = cached(async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 20));
      return calls;
    }, 1_000);
    assert.deepEqual(await Promise.all([read(), read(), read()]), [1, 1, 1]);
    assert.equal(calls, 1);
  });
});
