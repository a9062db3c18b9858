/**
 * The admin API's view of the chains against a real anvil with the canonical EntryPoint and a staked
 * FiatPaymaster (startSponsorStack): the paymaster's deposit, stake, owner and signers; an operation sponsored
 * through the REST API, sent to the EntryPoint and settled, as a hold, a settlement and a point of the series;
 * an unknown operation; a low deposit; a chain whose RPC does not answer.
 */
import assert from "node:assert/strict";
import { type Server, type Socket, createServer as createTcpServer } from "node:net";
import { after, before, it } from "node:test";
import { getAddress, parseEther } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { buildUserOperation, handleOps, newSimpleAccount, signAsAccount, sponsor as signDirectly } from "../../devtools/userOperations";
import { DEV_KEYS, localClients } from "../../devtools/chain/localChain";
import { depositToPaymaster, readPaymasterStatus, unlockPaymasterStake, withdrawFromPaymaster } from "../chain/operator";
import { ENTRY_POINT_V07 } from "../chain/addresses";
import { parseChains } from "../config/chains";
import { type ChainRuntime, createChainRuntime } from "../chain/chainRuntime";
import { settleChain } from "../sponsorship/settlement";
import { UNCHECKED_DEPOSIT } from "../sponsorship/depositMonitor";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger } from "../ledger/ledger";
import { chargeFen } from "../sponsorship/pricing";
import { ADMIN_TOKEN, type SponsorStack, TEST_PRICE, signerAddress, sponsoredOperation, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { readChainStatus } from "./chainStatus";
import { type AdminClient, adminClient } from "../../devtools/testing/adminClient";

describeWithDatabases("the admin API: chains, holds and settlements on anvil", (db) => {
  let stack: SponsorStack;
  let chain: ChainRuntime;
  let admin: AdminClient;
  let bundler: ReturnType<typeof localClients>["wallet"];
  before(async () => {
    stack = await startSponsorStack({ db: db(), app: { workers: false } });
    chain = stack.app.chains.get(stack.chain.anvil.chainId)!;
    admin = adminClient(stack.url, ADMIN_TOKEN);
    bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
  });
  after(async () => {
    await stack?.stop();
  });

  async function chainStatus() {
    const res = await admin.get("/admin/chains");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.chains.length, 1);
    return res.body.chains[0];
  }


  it("GET /admin/chains shows the local paymaster: deposit, stake, owner and signers as read from the chain, healthy, nothing outstanding", async () => {
    const onChain = await readPaymasterStatus(stack.chain.client, stack.chain.paymaster);
    const status = await chainStatus();
    assert.deepEqual(
      {
        chainId: status.chainId,
        name: status.name,
        paymaster: status.paymaster,
        entryPoint: status.entryPoint,
        minDepositWei: status.minDepositWei,
        rpc: { ok: status.rpc.ok, error: status.rpc.error },
        healthy: status.healthy,
        reason: status.reason,
        lowDeposit: status.lowDeposit,
        stake: status.stake,
        owner: status.owner,
        pendingOwner: status.pendingOwner,
        signers: status.signers,
      },
      {
        chainId: stack.chain.anvil.chainId,
        name: "anvil",
        paymaster: getAddress(stack.chain.paymaster),
        entryPoint: ENTRY_POINT_V07,
        minDepositWei: (10n ** 16n).toString(),
        rpc: { ok: true, error: null },
        healthy: true,
        reason: null,
        lowDeposit: false,
        stake: { stakeWei: onChain.stake.toString(), staked: true, unstakeDelaySec: onChain.unstakeDelaySec, withdrawTime: null },
        owner: privateKeyToAccount(DEV_KEYS.owner).address,
        pendingOwner: null,
        signers: [signerAddress()],
      },
    );
    assert.ok(onChain.deposit >= parseEther("10") && onChain.stake >= parseEther("1"));
    assert.deepEqual(status.deposit, {
      depositWei: onChain.deposit.toString(),
      source: "chain",
      outstandingWei: "0",
      openHolds: 0,
      spareWei: onChain.deposit.toString(),
      monitor: { depositWei: onChain.deposit.toString(), outstandingWei: "0", checkedAt: stack.app.depositMonitor.health(chain.config.chainId, chain.entryPoints[0]!.address).checkedAt!.toISOString() },
    });
    assert.equal(status.rpc.headBlock, (await stack.chain.client.getBlockNumber({ cacheTime: 0 })).toString());
    assert.deepEqual(status.settlement, { cursorBlock: null, cursorUpdatedAt: null, cursorBlockTime: null, lagBlocks: null, confirmations: 0, openFailures: 0 });
  });

  it("a sponsored operation is an open hold counted in outstanding wei; once it lands and settles, a settled hold, a settlement, a point of the series, and the settlement cursor", async () => {
    const now = Date.now();
    const range = `since=${new Date(now - 3_600_000).toISOString()}&until=${new Date(now + 3_600_000).toISOString()}`;
    const statsBefore = (await admin.get(`/admin/stats?${range}`)).body.totals;

    const { op, account, holdId, maxChargeFen } = await sponsoredOperation(stack, 100_000n);
    const open = await admin.get(`/admin/holds?account=${account}&status=open`);
    assert.equal(open.body.items.length, 1);
    const [hold] = open.body.items;
    assert.deepEqual([hold.id, hold.chainId, hold.amountFen, hold.status], [holdId, stack.chain.anvil.chainId, maxChargeFen.toString(), "open"]);
    const pending = await chainStatus();
    assert.equal(pending.deposit.openHolds, 1);
    assert.equal(pending.deposit.outstandingWei, hold.maxCostWei);
    assert.equal(BigInt(pending.deposit.spareWei), BigInt(pending.deposit.depositWei) - BigInt(hold.maxCostWei));

    const receipt = await handleOps(stack.chain.client, bundler, [op]);
    assert.equal((await settleChain(db(), chain)).settled, 1);

    const settledHolds = await admin.get(`/admin/holds?account=${account}&status=settled`);
    assert.deepEqual(settledHolds.body.items.map((h: { id: string }) => h.id), [holdId]);
    const settlements = await admin.get(`/admin/settlements?chainId=${stack.chain.anvil.chainId}&account=${account}&unknown=0`);
    assert.equal(settlements.body.items.length, 1);
    const [settlement] = settlements.body.items;
    const charged = chargeFen(BigInt(settlement.actualGasCostWei), TEST_PRICE);
    assert.equal(settlement.transactionHash, receipt.transactionHash.toLowerCase());
    assert.equal(settlement.blockNumber, receipt.blockNumber.toString());
    assert.equal(settlement.holdId, holdId);
    assert.equal(settlement.chargedFen, charged.toString());
    assert.equal(settlement.releasedFen, (maxChargeFen - charged).toString());
    assert.equal(settledHolds.body.items[0].chargedFen, charged.toString());

    const stats = (await admin.get(`/admin/stats?${range}`)).body.totals;
    assert.equal(stats.settledCount - statsBefore.settledCount, 1);
    assert.equal(BigInt(stats.chargedFen) - BigInt(statsBefore.chargedFen), charged);
    assert.equal(BigInt(stats.gasCostWei) - BigInt(statsBefore.gasCostWei), BigInt(settlement.actualGasCostWei));
    assert.equal(stats.topUpCount - statsBefore.topUpCount, 1, "the account's funding is a top-up");

    const settled = await chainStatus();
    assert.equal(settled.deposit.openHolds, 0);
    assert.equal(settled.deposit.outstandingWei, "0");
    assert.ok(BigInt(settled.settlement.cursorBlock) >= receipt.blockNumber);
    assert.equal(settled.settlement.lagBlocks, (BigInt(settled.rpc.headBlock) - BigInt(settled.settlement.cursorBlock)).toString());
    await stack.chain.client.request({ method: "anvil_mine", params: ["0x3"] } as never);
    const behind = await chainStatus();
    assert.equal(BigInt(behind.settlement.lagBlocks), BigInt(settled.settlement.lagBlocks) + 3n, "three blocks the worker has not read yet");
  });

  it("an operation our paymaster paid for without a hold is listed with unknown=1", async () => {
    const account = await newSimpleAccount(stack.chain.client);
    const built = await buildUserOperation(stack.chain.client, account, { calls: [{ to: stack.chain.paymaster, data: "0x" }], paymaster: stack.chain.paymaster });
    const sponsored = await signDirectly(built, { signer: privateKeyToAccount(DEV_KEYS.signer), chainId: stack.chain.anvil.chainId });
    await handleOps(stack.chain.client, bundler, [await signAsAccount(account, sponsored, stack.chain.anvil.chainId)]);
    assert.equal((await settleChain(db(), chain)).unknown, 1);
    const unknown = await admin.get(`/admin/settlements?chainId=${stack.chain.anvil.chainId}&unknown=1`);
    assert.deepEqual(
      unknown.body.items.map((s: { account: string; holdId: string | null; unknown: boolean; chargedFen: string }) => [s.account, s.holdId, s.unknown, s.chargedFen]),
      [[account.address.toLowerCase(), null, true, "0"]],
    );
    const stats = (await admin.get("/admin/stats?bucket=day")).body.totals;
    assert.equal(stats.unknownCount, 1);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("a chain whose RPC does not answer in time is reported with what the database and the deposit monitor know", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createTcpServer((socket) => sockets.add(socket)); // accepts connections, never answers
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const [config] = parseChains([{ chainId: 424242, name: "silent", rpcUrl: `http://127.0.0.1:${port}`, paymaster: stack.chain.paymaster, fenPerNative: "1" }]);
      const runtime = createChainRuntime(config!);
      const started = Date.now();
      const status = await readChainStatus(db(), runtime, runtime.entryPoints[0]!, { timeoutMs: 300, deposit: UNCHECKED_DEPOSIT });
      assert.ok(Date.now() - started < 3_000, "answers at the deadline, not at the RPC client's timeout");
      assert.equal(status.rpc.ok, false);
      assert.match(status.rpc.error!, /did not answer within 300 ms/);
      assert.equal(status.rpc.headBlock, null);
      assert.deepEqual([status.stake, status.owner, status.signers], [null, null, null]);
      assert.deepEqual([status.healthy, status.reason], [false, "the paymaster's deposit has not been checked yet"]);
      assert.deepEqual(status.deposit, { depositWei: null, source: null, outstandingWei: "0", openHolds: 0, spareWei: null, monitor: { depositWei: null, outstandingWei: null, checkedAt: null } });
      assert.equal(status.lowDeposit, false);

      // with the monitor's last figure, that figure is answered
      const known = await readChainStatus(db(), runtime, runtime.entryPoints[0]!, { timeoutMs: 300, deposit: { healthy: true, depositWei: 5n, outstandingWei: 0n, checkedAt: new Date() } });
      assert.deepEqual([known.deposit.depositWei, known.deposit.source, known.lowDeposit], ["5", "monitor", true]);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it("a deposit withdrawn below the threshold is lowDeposit at once, and unhealthy once the monitor has seen it; an unlocking stake shows its withdraw time", async () => {
    const owner = stack.chain.owner;
    const before = await readPaymasterStatus(stack.chain.client, stack.chain.paymaster);
    const keep = 5n * 10n ** 15n; // below the 0.01 ETH threshold
    await withdrawFromPaymaster(stack.chain.client, owner, stack.chain.paymaster, owner.account.address, before.deposit - keep);

    const fresh = await chainStatus();
    assert.deepEqual([fresh.deposit.depositWei, fresh.deposit.source, fresh.lowDeposit, fresh.healthy], [keep.toString(), "chain", true, true]);
    assert.equal(fresh.deposit.monitor.depositWei, stack.app.depositMonitor.health(chain.config.chainId, chain.entryPoints[0]!.address).depositWei!.toString(), "the monitor has not looked since");

    await stack.app.depositMonitor.check(chain);
    const seen = await chainStatus();
    assert.deepEqual([seen.lowDeposit, seen.healthy], [true, false]);
    assert.match(seen.reason, /below the threshold/);

    await unlockPaymasterStake(stack.chain.client, owner, stack.chain.paymaster);
    const unlocking = await chainStatus();
    assert.equal(unlocking.stake.staked, false);
    const block = await stack.chain.client.getBlock();
    assert.equal(Date.parse(unlocking.stake.withdrawTime), (Number(block.timestamp) + unlocking.stake.unstakeDelaySec) * 1000);

    await depositToPaymaster(stack.chain.client, owner, stack.chain.paymaster, before.deposit - keep);
    await stack.app.depositMonitor.check(chain);
    const restored = await chainStatus();
    assert.deepEqual([restored.lowDeposit, restored.healthy, restored.deposit.depositWei], [false, true, before.deposit.toString()]);
  });
});
