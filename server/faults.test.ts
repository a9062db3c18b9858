/**
 * The service when a dependency fails, made for real with a TCP fault proxy in front of it: PostgreSQL refusing
 * or wedged (answers 503 `unavailable` within the timeouts, JSON-RPC -32131, never 500 or `unauthorized`, and
 * recovers by itself), the chain's RPC wedged (sponsorship answers `unavailable` within the request timeout,
 * /readyz within a second and cached, the deposit re-read as soon as the RPC is back), and Redis wedged (the
 * in-memory rate limiter answers at once).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Address, numberToHex } from "viem";
import { ENTRY_POINT_V07 } from "./chain/addresses";
import { type Database, connectPostgres, openPglite } from "./platform/db/database";
import { migrate } from "./platform/db/migrate";
import { createTestDatabase } from "../devtools/testing/databases";
import { createRateLimiter } from "./platform/rateLimit";
import { createApiKey } from "./sponsorship/apiKeys";
import { SPONSOR_ERROR_CODES } from "./sponsorship/errors";
import { type FaultProxy, startFaultProxy } from "../devtools/testing/faultProxy";
import { redisAddress, skipWithoutPostgres, skipWithoutRedis } from "../devtools/testing/services";
import { type SponsorStack, startSponsorStack } from "../devtools/testing/sponsorStack";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await fn();
  return { value, ms: Date.now() - started };
}

function op(sender: Address, gasPrice: bigint, nonceKey = 0n): Record<string, string> {
  return {
    sender,
    nonce: numberToHex(nonceKey << 64n),
    callData: "0x",
    callGasLimit: numberToHex(100_000n),
    verificationGasLimit: numberToHex(400_000n),
    preVerificationGas: numberToHex(60_000n),
    maxFeePerGas: numberToHex(gasPrice),
    maxPriorityFeePerGas: numberToHex(1_000_000_000n),
    signature: "0x",
  };
}

const randomAddress = () => `0x${[...crypto.getRandomValues(new Uint8Array(20))].map((b) => b.toString(16).padStart(2, "0")).join("")}` as Address;

async function rest(stack: SponsorStack, sender: Address, gasPrice: bigint, apiKey = stack.apiKey, nonceKey = 0n) {
  const response = await fetch(`${stack.url}/v1/sponsorships`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": apiKey },
    body: JSON.stringify({ userOp: op(sender, gasPrice, nonceKey), entryPoint: ENTRY_POINT_V07, chainId: 31337 }),
  });
  return { status: response.status, contentType: response.headers.get("content-type") ?? "", body: (await response.json()) as Record<string, unknown> };
}

async function rpc(stack: SponsorStack, sender: Address, gasPrice: bigint, apiKey = stack.apiKey) {
  const response = await fetch(`${stack.url}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": apiKey },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: [op(sender, gasPrice), ENTRY_POINT_V07, "0x7a69", {}] }),
  });
  assert.equal(response.status, 200);
  return (await response.json()) as { result?: unknown; error?: { code: number; message: string; data?: Record<string, unknown> } };
}

describe("PostgreSQL down or wedged under the running service", { skip: skipWithoutPostgres }, () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: FaultProxy;
  let db: Database;
  let stack: SponsorStack;
  let gasPrice: bigint;
  let unusedKey: string;
  before(async () => {
    database = await createTestDatabase("postgres");
    const url = new URL(database.url!);
    proxy = await startFaultProxy({ port: Number(url.port || 5432) });
    url.port = String(proxy.port);
    db = connectPostgres({ connectionString: url.toString(), max: 8, connectTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
    stack = await startSponsorStack({ db, env: { DEPOSIT_CHECK_INTERVAL_MS: "60000" } });
    gasPrice = await stack.chain.client.getGasPrice();
    // a key nobody has used yet: its lookup must reach the database
    unusedKey = (await createApiKey(database.db, { name: "unused until the outage" })).key;
  });
  after(async () => {
    await stack?.stop();
    await db?.close();
    await proxy?.close();
    await database?.drop();
  });

  for (const mode of ["refuse", "blackhole"] as const) {
    it(`${mode === "refuse" ? "refused or dropped connections" : "a server that stops answering"}: every route answers 503 unavailable within the timeouts, and the service recovers by itself`, async () => {
      const sender = randomAddress();
      await stack.fund(sender, 100_000n);
      await proxy.setMode(mode);
      try {
        const sponsorship = await timed(() => rest(stack, sender, gasPrice));
        assert.equal(sponsorship.value.status, 503, JSON.stringify(sponsorship.value.body));
        assert.match(sponsorship.value.contentType, /^application\/problem\+json/);
        assert.equal(sponsorship.value.body.type, "unavailable");
        assert.ok(sponsorship.ms < 5_000, `answered in ${sponsorship.ms} ms`);

        const byRpc = await rpc(stack, sender, gasPrice, unusedKey);
        assert.equal(byRpc.error?.code, SPONSOR_ERROR_CODES.unavailable, `a key that cannot be looked up is unavailable, not unauthorized: ${JSON.stringify(byRpc.error)}`);

        const account = await fetch(`${stack.url}/v1/accounts/${sender}`);
        assert.equal(account.status, 503);
        assert.equal(((await account.json()) as { type: string }).type, "unavailable");
        assert.equal(account.headers.get("retry-after"), "5");

        const ready = await timed(() => fetch(`${stack.url}/readyz`));
        assert.equal(ready.value.status, 503);
        assert.ok(ready.ms < 1_500, `readiness answered in ${ready.ms} ms`);
        assert.equal((await fetch(`${stack.url}/healthz`)).status, 200, "the process itself is alive");
      } finally {
        await proxy.setMode("forward");
      }
      const deadline = Date.now() + 15_000;
      for (;;) {
        const answer = await rest(stack, sender, gasPrice);
        if (answer.status === 201) break;
        assert.ok(Date.now() < deadline, `not recovered: ${JSON.stringify(answer.body)}`);
        await sleep(200);
      }
      // readiness caches its answer for a second
      while ((await fetch(`${stack.url}/readyz`)).status !== 200) {
        assert.ok(Date.now() < deadline, "readiness did not recover");
        await sleep(200);
      }
    });
  }
});

describe("the chain's RPC wedged or down under the running service", () => {
  let stack: SponsorStack;
  let gasPrice: bigint;
  before(async () => {
    const db = await openPglite();
    await migrate(db);
    // settlement passes would call eth_blockNumber too: keep them out of the readiness count
    stack = await startSponsorStack({ db, rpcFaults: true, rpcProxy: true, env: { RPC_REQUEST_TIMEOUT_MS: "500", DEPOSIT_CHECK_INTERVAL_MS: "2000", SETTLE_INTERVAL_MS: "600000" } });
    gasPrice = await stack.chain.client.getGasPrice();
  });
  after(async () => {
    await stack?.stop();
  });

  it("/readyz answers within a second while the RPC hangs, and a flood of probes costs one RPC call per second", async () => {
    await stack.rpcFaults!.setMode("blackhole");
    try {
      const probes = await timed(() => Promise.all(Array.from({ length: 20 }, () => fetch(`${stack.url}/readyz`))));
      assert.ok(probes.value.every((r) => r.status === 503));
      assert.ok(probes.ms < 1_500, `20 probes answered in ${probes.ms} ms`);
      const body = (await probes.value[0]!.json()) as { detail: string };
      assert.match(body.detail, /RPC of chain 31337 does not answer/);
    } finally {
      await stack.rpcFaults!.setMode("forward");
    }
    await sleep(1_100);
    stack.rpcProxy!.calls.clear();
    const flood = await Promise.all(Array.from({ length: 50 }, () => fetch(`${stack.url}/readyz`)));
    assert.ok(flood.every((r) => r.status === 200));
    assert.ok((stack.rpcProxy!.calls.get("eth_blockNumber") ?? 0) <= 2, `50 probes made ${stack.rpcProxy!.calls.get("eth_blockNumber")} eth_blockNumber calls`);
  });

  it("sponsorship while the RPC hangs answers unavailable within the request timeout, never a hang", async () => {
    const sender = randomAddress();
    await stack.fund(sender, 100_000n);
    await stack.rpcFaults!.setMode("blackhole");
    try {
      const answer = await timed(() => rest(stack, sender, gasPrice));
      assert.equal(answer.value.status, 503, JSON.stringify(answer.value.body));
      assert.equal(answer.value.body.type, "unavailable");
      assert.ok(answer.ms < 3_000, `answered in ${answer.ms} ms`);
    } finally {
      await stack.rpcFaults!.setMode("forward");
    }
  });

  it("when the RPC comes back after the deposit went unreadable, the next request is sponsored at once", async () => {
    const sender = randomAddress();
    await stack.fund(sender, 100_000n);
    const chain = stack.app.chains.get(31337)!;
    await stack.rpcFaults!.setMode("refuse");
    try {
      const deadline = Date.now() + 15_000;
      while (stack.app.depositMonitor.health(chain.config.chainId, chain.entryPoints[0]!.address).healthy) {
        assert.ok(Date.now() < deadline, "the deposit never went unreadable");
        await sleep(100);
      }
      const paused = await rest(stack, sender, gasPrice);
      assert.equal(paused.status, 503);
      assert.equal(paused.body.type, "unavailable");
    } finally {
      await stack.rpcFaults!.setMode("forward");
    }
    const resumed = await rest(stack, sender, gasPrice);
    assert.equal(resumed.status, 201, `not re-checked at once: ${JSON.stringify(resumed.body)}`);
  });
});

describe("Redis that stops answering", { skip: skipWithoutRedis }, () => {
  it("the rate limiter falls back to its in-memory count within the command timeout, limits, and does not wait on Redis again at once", { timeout: 20_000 }, async () => {
    const proxy = await startFaultProxy(redisAddress());
    const limiter = createRateLimiter({ limits: { sender: 3 }, redisUrl: `redis://127.0.0.1:${proxy.port}`, keyPrefix: `fp-test-wedge-${process.pid}`, commandTimeoutMs: 300 });
    try {
      // reach Redis once, so the connection is up before it wedges
      for (let i = 0; i < 50 && proxy.connections() === 0; i++) await sleep(20);
      await limiter.consume({ sender: "warm-up" });
      await proxy.setMode("blackhole");
      const sender = "0x" + "77".repeat(20);
      const first = await timed(() => limiter.consume({ sender }));
      assert.equal(first.value, undefined);
      assert.ok(first.ms < 1_000, `the first request waited ${first.ms} ms`);
      const rest = await timed(async () => [await limiter.consume({ sender }), await limiter.consume({ sender }), await limiter.consume({ sender })]);
      assert.ok(rest.ms < 200, `later requests do not wait on Redis: ${rest.ms} ms`);
      assert.deepEqual(rest.value.map((r) => r?.scope), [undefined, undefined, "sender"], "the in-memory limiter still limits");
    } finally {
      await proxy.setMode("forward");
      await limiter.close();
      await proxy.close();
    }
  });
});
