/**
 * Settlement under faults, on a real anvil chain: an RPC that is down past the hold grace (a TCP proxy that refuses)
 * while the operation lands, an RPC that refuses wide eth_getLogs ranges, reorgs made with evm_snapshot/evm_revert
 * (a newer hold for the same nonce, a cost above what was re-held), a row that fails on its own (a database trigger),
 * and an operation whose hold is gone. In each case a landed operation is charged, the cursor goes on, and whatever
 * no quota covers is recorded as a shortfall.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { handleOps } from "../../devtools/userOperations";
import { DEV_KEYS, localClients } from "../../devtools/chain/localChain";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { adjust, checkLedger, getBalance } from "../ledger/ledger";
import { releaseExpiredHolds } from "./holds";
import { chargeFen } from "./pricing";
import { type SponsorStack, TEST_PRICE, sponsoredOperation, startSponsorStack } from "../../devtools/testing/sponsorStack";
import type { ChainRuntime } from "../chain/chainRuntime";
import { settleChain } from "./settlement";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Probes until it answers; on a timeout the failure says what `explain` finds then (the state a rare failure needs to be understood). */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, explain?: () => Promise<string>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${explain ? `: ${await explain().catch((error: unknown) => `(explaining failed: ${String(error)})`)}` : ""}`);
    await sleep(100);
  }
}

/** What the settlement worker has seen of the chain, against the chain itself: for a release or settlement that does not come. */
async function settlementState(stack: SponsorStack, holdId: string): Promise<string> {
  const { rows: cursor } = await stack.app.db.query<{ block_number: bigint; block_timestamp: Date | null; updated_at: Date }>(
    "SELECT block_number, block_timestamp, updated_at FROM chain_cursors WHERE chain_id = 31337",
  );
  const { rows: failures } = await stack.app.db.query<{ n: bigint }>("SELECT count(*) AS n FROM settlement_failures WHERE resolved_at IS NULL");
  const head = await stack.chain.client.getBlock({ blockTag: "latest" });
  const hold = await stack.app.db.query("SELECT status, valid_until, amount_fen FROM holds WHERE id = $1", [holdId]);
  const metrics = await (await fetch(`${stack.url}/metrics`)).text();
  return JSON.stringify(
    {
      now: new Date().toISOString(),
      hold: hold.rows[0],
      cursor: cursor[0],
      head: { number: head.number, timestamp: new Date(Number(head.timestamp) * 1000).toISOString() },
      openSettlementFailures: failures[0]?.n,
      passErrors: metric(metrics, "fiat_paymaster_settlement_pass_errors_total"),
    },
    (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value),
  );
}

type SettlementRow = { status: string; charged_fen: bigint; released_fen: bigint; shortfall_fen: bigint; actual_gas_cost_wei: string; hold_id: string | null };

async function settlementOf(stack: SponsorStack, userOpHash: string, status = "settled"): Promise<SettlementRow | undefined> {
  const { rows } = await stack.app.db.query<SettlementRow>(
    "SELECT status, charged_fen, released_fen, shortfall_fen, actual_gas_cost_wei::text, hold_id FROM settlements WHERE user_op_hash = $1 AND status = $2",
    [userOpHash.toLowerCase(), status],
  );
  return rows[0];
}

async function holdStatus(stack: SponsorStack, holdId: string): Promise<{ status: string; amount_fen: bigint; merged_into: string | null }> {
  const { rows } = await stack.app.db.query<{ status: string; amount_fen: bigint; merged_into: string | null }>("SELECT status, amount_fen, merged_into FROM holds WHERE id = $1", [holdId]);
  return rows[0]!;
}

function metric(text: string, name: string, chain = "31337"): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`chain="${chain}"`));
  return line ? Number(line.split(" ").pop()) : 0;
}

describeWithDatabases("settlement while the chain's RPC is down past the grace", (db) => {
  let stack: SponsorStack;
  let bundler: ReturnType<typeof localClients>["wallet"];
  // signatures expire 5 s from now (the app's clock runs 595 s behind a 600 s window); no grace after validUntil
  const CLOCK_OFFSET_MS = 595_000;
  before(async () => {
    stack = await startSponsorStack({
      db: db(),
      rpcFaults: true,
      env: { HOLD_GRACE_SECONDS: "0", SETTLE_INTERVAL_MS: "200", SPONSORSHIP_VALID_SECONDS: "600", RPC_REQUEST_TIMEOUT_MS: "500", DEPOSIT_CHECK_INTERVAL_MS: "60000" },
      app: { now: () => new Date(Date.now() - CLOCK_OFFSET_MS) },
    });
    bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
  });
  after(async () => {
    await stack?.stop();
  });

  it("an operation that lands while the RPC is down keeps its hold past validUntil + grace, and is charged in full once the RPC is back", async () => {
    const sponsored = await sponsoredOperation(stack, 100_000n);
    assert.ok(sponsored.validUntil * 1000 - Date.now() < 10_000, "the signature is valid only a few seconds more");
    const before = await (await fetch(`${stack.url}/metrics`)).text();

    await stack.rpcFaults!.setMode("refuse");
    // the bundler still reaches the chain: the operation lands before validUntil while the server cannot see it
    const receipt = await handleOps(stack.chain.client, bundler, [sponsored.op]);
    assert.equal(receipt.status, "success");
    // the server's clock passes validUntil + grace while every settlement pass fails
    while (Date.now() < sponsored.validUntil * 1000 + 2_000) await sleep(200);
    assert.equal((await holdStatus(stack, sponsored.holdId)).status, "open", "no hold is released while that chain's settlement cannot read it");
    assert.deepEqual(await getBalance(db(), sponsored.account), { account: sponsored.account, availableFen: 100_000n - sponsored.maxChargeFen, heldFen: sponsored.maxChargeFen });
    const during = await (await fetch(`${stack.url}/metrics`)).text();
    assert.ok(metric(during, "fiat_paymaster_settlement_pass_errors_total") > metric(before, "fiat_paymaster_settlement_pass_errors_total"), "the failing passes are counted");

    await stack.rpcFaults!.setMode("forward");
    const settled = await eventually("the settlement", () => settlementOf(stack, sponsored.userOpHash), () => settlementState(stack, sponsored.holdId));
    const charge = chargeFen(BigInt(settled.actual_gas_cost_wei), TEST_PRICE);
    assert.equal(settled.charged_fen, charge, "charged in full at the locked price");
    assert.equal(settled.shortfall_fen, 0n);
    assert.equal(settled.released_fen, sponsored.maxChargeFen - charge);
    assert.equal((await holdStatus(stack, sponsored.holdId)).status, "settled");
    assert.deepEqual(await getBalance(db(), sponsored.account), { account: sponsored.account, availableFen: 100_000n - charge, heldFen: 0n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("an unused hold is released by chain time: not while no block past its validUntil has been read, then once one is", async () => {
    const unused = await sponsoredOperation(stack, 50_000n);
    // the server's clock passes validUntil; the chain mines nothing meanwhile, so its time stays before it
    while (Date.now() < unused.validUntil * 1000 + 1_500) await sleep(200);
    assert.equal((await holdStatus(stack, unused.holdId)).status, "open", "the chain has not been read past validUntil");
    await stack.chain.client.request({ method: "anvil_mine", params: ["0x1"] } as never);
    await eventually("the release", async () => ((await holdStatus(stack, unused.holdId)).status === "released" ? true : undefined), () => settlementState(stack, unused.holdId));
    assert.deepEqual(await getBalance(db(), unused.account), { account: unused.account, availableFen: 50_000n, heldFen: 0n });
    const { rows } = await db().query<{ block_timestamp: Date }>("SELECT block_timestamp FROM chain_cursors WHERE chain_id = 31337");
    assert.ok(rows[0]!.block_timestamp.getTime() > unused.validUntil * 1000, "released on a block past validUntil");
  });
});

describeWithDatabases("settlement against the chain itself: range refusals, reorgs, bad rows, missing holds", (db) => {
  let stack: SponsorStack;
  let chain: ChainRuntime;
  let bundler: ReturnType<typeof localClients>["wallet"];
  before(async () => {
    stack = await startSponsorStack({ db: db(), rpcProxy: true, app: { workers: false }, env: { HOLD_GRACE_SECONDS: "0" } });
    chain = stack.app.chains.get(stack.chain.anvil.chainId)!;
    bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
  });
  after(async () => {
    await stack?.stop();
  });
  const rpc = (method: string, params: unknown[] = []) => stack.chain.client.request({ method, params } as never) as Promise<unknown>;

  describe("an RPC that refuses wide eth_getLogs ranges", () => {
    after(() => {
      stack.rpcProxy!.refuse = () => undefined;
    });
    it("is read in smaller ranges: the operation settles and the cursor reaches the head", async () => {
      // like hosted RPCs: more than 5 blocks per eth_getLogs is refused with a JSON-RPC error
      stack.rpcProxy!.refuse = (request) => {
        if (request.method !== "eth_getLogs") return undefined;
        const filter = (request.params?.[0] ?? {}) as { fromBlock?: string; toBlock?: string };
        const blocks = BigInt(filter.toBlock ?? "0x0") - BigInt(filter.fromBlock ?? "0x0") + 1n;
        return blocks > 5n ? { code: -32005, message: "query exceeds max block range 5" } : undefined;
      };
      const sponsored = await sponsoredOperation(stack, 100_000n);
      await rpc("anvil_mine", ["0x14"]);
      await handleOps(stack.chain.client, bundler, [sponsored.op]);
      const result = await settleChain(db(), chain, { holdGraceSeconds: 0 });
      assert.ok(result.settled >= 1);
      assert.equal(result.lagBlocks, 0n);
      const settled = await settlementOf(stack, sponsored.userOpHash);
      assert.equal(settled?.charged_fen, chargeFen(BigInt(settled!.actual_gas_cost_wei), TEST_PRICE));
      assert.ok((stack.rpcProxy!.calls.get("eth_getLogs") ?? 0) > 3, "several narrower reads");
    });
  });

  it("a reorg that finds a newer open hold for the same nonce merges into it; the pass goes on, and the operation landing again is charged once", async () => {
    const first = await sponsoredOperation(stack, 100_000n);
    const snapshot = await rpc("evm_snapshot");
    await handleOps(stack.chain.client, bundler, [first.op]);
    assert.equal((await settleChain(db(), chain)).settled, 1);

    // the block vanishes: the nonce is free again, and the server signs a new sponsorship for it (other gas)
    await rpc("evm_revert", [snapshot]);
    await rpc("anvil_mine", ["0x3"]);
    const second = await sponsoredOperation(stack, 0n, { account: first.simpleAccount, change: { nonce: first.op.nonce, callGasLimit: first.op.callGasLimit + 50_000n } });
    assert.notEqual(second.holdId, first.holdId, "the first hold was settled, so the new sponsorship opened another");

    const pass = await settleChain(db(), chain);
    assert.equal(pass.reorged, 1);
    assert.equal(pass.failed, 0);
    const merged = await holdStatus(stack, first.holdId);
    assert.equal(merged.status, "merged");
    assert.equal(merged.merged_into, second.holdId);
    const open = await holdStatus(stack, second.holdId);
    assert.equal(open.status, "open");
    const balance = await getBalance(db(), first.account);
    assert.equal(balance.heldFen, open.amount_fen, "one hold for the nonce: the larger amount, the rest released");
    assert.equal(balance.availableFen + balance.heldFen, 100_000n);

    // the first variant lands again (its signature is still valid): charged once, from the one open hold
    await handleOps(stack.chain.client, bundler, [first.op]);
    const again = await settleChain(db(), chain);
    assert.equal(again.settled, 1);
    const settled = await settlementOf(stack, first.userOpHash);
    const charge = chargeFen(BigInt(settled!.actual_gas_cost_wei), TEST_PRICE);
    assert.equal(settled!.charged_fen, charge);
    assert.equal(settled!.hold_id, second.holdId);
    assert.equal((await holdStatus(stack, second.holdId)).status, "settled");
    assert.deepEqual(await getBalance(db(), first.account), { account: first.account, availableFen: 100_000n - charge, heldFen: 0n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("a cost above what a reorg could hold again is charged from available, and what is not there is recorded as a shortfall", async () => {
    const sponsored = await sponsoredOperation(stack, 100_000n);
    const snapshot = await rpc("evm_snapshot");
    await handleOps(stack.chain.client, bundler, [sponsored.op]);
    await settleChain(db(), chain);
    const firstCost = chargeFen(BigInt((await settlementOf(stack, sponsored.userOpHash))!.actual_gas_cost_wei), TEST_PRICE);
    // the account spends everything but 1 fen of what the settlement released
    const available = (await getBalance(db(), sponsored.account)).availableFen;
    await db().transaction((tx) => adjust(tx, { account: sponsored.account, adjustmentId: `test-spend-${sponsored.holdId}`, amountFen: -(available - 1n), reason: "spent elsewhere" }));

    await rpc("evm_revert", [snapshot]);
    await rpc("anvil_mine", ["0x2"]);
    await settleChain(db(), chain);
    assert.equal((await holdStatus(stack, sponsored.holdId)).amount_fen, firstCost + 1n, "the charge is held again, and of the rest only what was available");

    // it lands again in a block with a higher base fee: it costs more than that
    const block = await stack.chain.client.getBlock();
    await rpc("anvil_setNextBlockBaseFeePerGas", [`0x${((block.baseFeePerGas ?? 1n) * 3n).toString(16)}`]);
    await handleOps(stack.chain.client, bundler, [sponsored.op]);
    const before = await (await fetch(`${stack.url}/metrics`)).text();
    await settleChain(db(), chain, { metrics: stack.app.metrics });
    const settled = (await settlementOf(stack, sponsored.userOpHash))!;
    const cost = chargeFen(BigInt(settled.actual_gas_cost_wei), TEST_PRICE);
    assert.ok(cost > firstCost + 1n, `the new cost ${cost} is above the hold ${firstCost + 1n}`);
    assert.equal(settled.charged_fen, firstCost + 1n, "the hold and the 1 fen available are charged");
    assert.equal(settled.shortfall_fen, cost - firstCost - 1n, "the rest is recorded, not silently dropped");
    assert.deepEqual(await getBalance(db(), sponsored.account), { account: sponsored.account, availableFen: 0n, heldFen: 0n });
    const afterwards = await (await fetch(`${stack.url}/metrics`)).text();
    assert.equal(metric(afterwards, "fiat_paymaster_settlement_shortfall_fen_total") - metric(before, "fiat_paymaster_settlement_shortfall_fen_total"), Number(cost - firstCost - 1n));
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("a hold released, its operation landing late, then a reorg taking that away: the reopened hold is released again, nothing stuck in held", async () => {
    const sponsored = await sponsoredOperation(stack, 100_000n);
    const snapshot = await rpc("evm_snapshot");
    const farFuture = new Date(sponsored.validUntil * 1000 + 60_000);
    await releaseExpiredHolds(db(), { chainId: chain.config.chainId, chainTime: farFuture, graceSeconds: 0 });
    await handleOps(stack.chain.client, bundler, [sponsored.op]);
    assert.equal((await settleChain(db(), chain)).late, 1);
    await rpc("evm_revert", [snapshot]);
    await rpc("anvil_mine", ["0x2"]);
    assert.equal((await settleChain(db(), chain)).reorged, 1);
    const reopened = await holdStatus(stack, sponsored.holdId);
    assert.equal(reopened.status, "open", "the charge went back to held, under its hold");
    assert.ok((await getBalance(db(), sponsored.account)).heldFen > 0n);
    assert.equal(await releaseExpiredHolds(db(), { chainId: chain.config.chainId, chainTime: farFuture, graceSeconds: 0 }), 1);
    assert.deepEqual(await getBalance(db(), sponsored.account), { account: sponsored.account, availableFen: 100_000n, heldFen: 0n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("an operation that lands after its hold was released is charged from available, the rest recorded as a shortfall", async () => {
    const sponsored = await sponsoredOperation(stack, 100_000n);
    // its hold is gone (as after a reorg deeper than the confirmations): released on a chain time past validUntil
    assert.ok((await releaseExpiredHolds(db(), { chainId: chain.config.chainId, chainTime: new Date(sponsored.validUntil * 1000 + 60_000), graceSeconds: 0 })) >= 1);
    assert.equal((await holdStatus(stack, sponsored.holdId)).status, "released");
    await db().transaction((tx) => adjust(tx, { account: sponsored.account, adjustmentId: `test-late-${sponsored.holdId}`, amountFen: -(100_000n - 10n), reason: "spent elsewhere" }));
    await handleOps(stack.chain.client, bundler, [sponsored.op]);
    const pass = await settleChain(db(), chain);
    assert.equal(pass.late, 1);
    const settled = (await settlementOf(stack, sponsored.userOpHash))!;
    const cost = chargeFen(BigInt(settled.actual_gas_cost_wei), TEST_PRICE);
    assert.equal(settled.charged_fen, 10n, "what the account had");
    assert.equal(settled.shortfall_fen, cost - 10n);
    assert.deepEqual(await getBalance(db(), sponsored.account), { account: sponsored.account, availableFen: 0n, heldFen: 0n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
  it("an event that fails on its own is recorded and retried; the cursor goes on, the next events settle, and its hold is kept until it settles", async () => {
    const bad = await sponsoredOperation(stack, 100_000n);
    const good = await sponsoredOperation(stack, 100_000n);
    // a row the database refuses for a reason of its own (a constraint, corrupt data): here a trigger
    await db().exec(`
      CREATE FUNCTION fp_test_refuse_settlement() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.user_op_hash = '${bad.userOpHash.toLowerCase()}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fp_test_refuse_settlement BEFORE INSERT ON settlements FOR EACH ROW EXECUTE FUNCTION fp_test_refuse_settlement();`);
    try {
      await handleOps(stack.chain.client, bundler, [bad.op]);
      await handleOps(stack.chain.client, bundler, [good.op]);
      const head = await stack.chain.client.getBlockNumber({ cacheTime: 0 });
      const pass = await settleChain(db(), chain, { holdGraceSeconds: 0 });
      assert.equal(pass.failed, 1);
      assert.equal(pass.toBlock, head, "the cursor went past the bad row");
      assert.ok(await settlementOf(stack, good.userOpHash), "the next event settled");
      const { rows } = await db().query<{ kind: string; attempts: number; resolved_at: Date | null }>("SELECT kind, attempts, resolved_at FROM settlement_failures WHERE user_op_hash = $1", [
        bad.userOpHash.toLowerCase(),
      ]);
      assert.deepEqual(rows.map((r) => [r.kind, r.resolved_at]), [["settle", null]]);

      // chain time passes its validUntil: the hold stays, because its operation landed and is not settled yet
      // (last in this file: the chain clock moves an hour ahead)
      await rpc("evm_increaseTime", [3_600]);
      await rpc("anvil_mine", ["0x1"]);
      assert.equal((await settleChain(db(), chain, { holdGraceSeconds: 0 })).failed, 1, "retried, still failing");
      assert.equal((await holdStatus(stack, bad.holdId)).status, "open");
    } finally {
      await db().exec("DROP TRIGGER fp_test_refuse_settlement ON settlements; DROP FUNCTION fp_test_refuse_settlement();");
    }
    const recovered = await settleChain(db(), chain, { holdGraceSeconds: 0 });
    assert.equal(recovered.recovered, 1);
    const settled = (await settlementOf(stack, bad.userOpHash))!;
    assert.equal(settled.charged_fen, chargeFen(BigInt(settled.actual_gas_cost_wei), TEST_PRICE));
    assert.equal((await holdStatus(stack, bad.holdId)).status, "settled");
    const { rows } = await db().query<{ resolution: string }>("SELECT resolution FROM settlement_failures WHERE user_op_hash = $1", [bad.userOpHash.toLowerCase()]);
    assert.deepEqual(rows.map((r) => r.resolution), ["settled"]);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

});
