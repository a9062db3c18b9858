/**
 * Settlement against a real chain: operations are sponsored through the REST API, submitted by a bundler key
 * straight to the EntryPoint (so a test controls blocks exactly), and settled by `settleChain`. Reorgs are made
 * with anvil's snapshot/revert.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { privateKeyToAccount } from "viem/accounts";
import { buildUserOperation, handleOps, newSimpleAccount, signAsAccount, sponsor as signDirectly } from "../../devtools/userOperations";
import { DEV_KEYS, localClients } from "../../devtools/chain/localChain";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, getBalance } from "../ledger/ledger";
import { chargeFen } from "./pricing";
import { type SponsorStack, TEST_PRICE, sponsoredOperation, startSponsorStack } from "../../devtools/testing/sponsorStack";
import type { ChainRuntime } from "../chain/chainRuntime";
import { settleChain } from "./settlement";

describeWithDatabases("settlement of UserOperationEvents", (db) => {
  let stack: SponsorStack;
  let chain: ChainRuntime;
  let bundler: ReturnType<typeof localClients>["wallet"];
  before(async () => {
    stack = await startSponsorStack({ db: db(), app: { workers: false } });
    chain = stack.app.chains.get(stack.chain.anvil.chainId)!;
    bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
  });
  after(async () => {
    await stack?.stop();
  });

  const rpc = (method: string, params: unknown[] = []) => stack.chain.client.request({ method, params } as never) as Promise<unknown>;


  it("an operation that lands is charged ceil(actualGasCost × locked price) and the rest of its hold is released", async () => {
    const { op, account, userOpHash, maxChargeFen } = await sponsoredOperation(stack, 100_000n);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 100_000n - maxChargeFen, heldFen: maxChargeFen });
    const receipt = await handleOps(stack.chain.client, bundler, [op]);
    const result = await settleChain(db(), chain);
    assert.equal(result.settled, 1);
    const { rows } = await db().query<{ actual_gas_cost_wei: string; charged_fen: bigint; transaction_hash: string }>(
      "SELECT actual_gas_cost_wei::text, charged_fen, transaction_hash FROM settlements WHERE user_op_hash = $1",
      [userOpHash.toLowerCase()],
    );
    assert.equal(rows[0]?.transaction_hash, receipt.transactionHash.toLowerCase());
    const expected = chargeFen(BigInt(rows[0]!.actual_gas_cost_wei), TEST_PRICE);
    assert.equal(rows[0]!.charged_fen, expected);
    assert.deepEqual(await getBalance(db(), account), { account, availableFen: 100_000n - expected, heldFen: 0n });
    assert.equal((await settleChain(db(), chain)).settled, 0, "a second pass settles nothing again");
  });

  it("a reorg that drops a settled operation undoes the settlement; when the operation lands again it is charged once", async () => {
    const { op, account } = await sponsoredOperation(stack, 100_000n);
    const snapshot = await rpc("evm_snapshot");
    await handleOps(stack.chain.client, bundler, [op]);
    assert.equal((await settleChain(db(), chain)).settled, 1);
    const settled = await getBalance(db(), account);
    assert.equal(settled.heldFen, 0n);

    // the block with the operation vanishes; the chain grows past it with other blocks
    await rpc("evm_revert", [snapshot]);
    await rpc("anvil_mine", ["0x3"]);
    const afterReorg = await settleChain(db(), chain);
    assert.equal(afterReorg.reorged, 1);
    assert.equal(afterReorg.settled, 0);
    const reopened = await getBalance(db(), account);
    assert.equal(reopened.availableFen + reopened.heldFen, 100_000n, "the charge is undone and the hold is back");
    assert.ok(reopened.heldFen > 0n);
    const { rows: holds } = await db().query<{ status: string }>("SELECT status FROM holds WHERE account = $1", [account]);
    assert.deepEqual(holds.map((h) => h.status), ["open"]);

    // the same operation is included again (its signature is still valid): it settles once more, once
    await handleOps(stack.chain.client, bundler, [op]);
    assert.equal((await settleChain(db(), chain)).settled, 1);
    const { rows } = await db().query<{ status: string; actual_gas_cost_wei: string }>(
      "SELECT s.status, s.actual_gas_cost_wei::text FROM settlements s JOIN holds h ON h.id = s.hold_id WHERE h.account = $1 ORDER BY s.id",
      [account],
    );
    assert.deepEqual(rows.map((r) => r.status), ["reorged", "settled"]);
    // the new block has another base fee, so the cost differs: the charge is the new block's, once
    const final = await getBalance(db(), account);
    assert.deepEqual(final, { account, availableFen: 100_000n - chargeFen(BigInt(rows[1]!.actual_gas_cost_wei), TEST_PRICE), heldFen: 0n });
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("an operation our paymaster paid for without a hold is recorded for the alert, and charges nobody", async () => {
    const account = await newSimpleAccount(stack.chain.client);
    const built = await buildUserOperation(stack.chain.client, account, { calls: [{ to: stack.chain.paymaster, data: "0x" }], paymaster: stack.chain.paymaster });
    // signed with the paymaster's key outside the server: a leaked key or a second signing service
    const sponsored = await signDirectly(built, { signer: privateKeyToAccount(DEV_KEYS.signer), chainId: stack.chain.anvil.chainId });
    await handleOps(stack.chain.client, bundler, [await signAsAccount(account, sponsored, stack.chain.anvil.chainId)]);
    const result = await settleChain(db(), chain);
    assert.equal(result.unknown, 1);
    const { rows } = await db().query<{ hold_id: string | null; account: string }>("SELECT hold_id, account FROM settlements WHERE account = $1", [account.address.toLowerCase()]);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.hold_id, null);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
});
