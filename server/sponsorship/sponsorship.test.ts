/**
 * Sponsorship end to end: the real EntryPoint v0.7 on anvil, the alto bundler, permissionless' smart account
 * client with viem's ERC-7677 paymaster client pointed at our /rpc, and the settlement worker — on PGlite and,
 * when DATABASE_URL is set, PostgreSQL.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Abi, type Address, encodeFunctionData } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { deployCounter } from "../../devtools/userOperations";
import { ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07 } from "../chain/addresses";
import { settleChain } from "./settlement";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { checkLedger, getBalance, recentEntries } from "../ledger/ledger";
import { type SponsorStack, TEST_PRICE, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { createApiKey, rpcErrorOf, sponsoredAccountClient } from "../../devtools/testing/sponsorClients";
import { SPONSOR_ERROR_CODES } from "./errors";
import { chargeFen } from "./pricing";

async function newSmartAccount(stack: SponsorStack) {
  return toSimpleSmartAccount({
    client: stack.chain.client,
    owner: privateKeyToAccount(generatePrivateKey()),
    entryPoint: { address: ENTRY_POINT_V07, version: "0.7" },
    factoryAddress: SIMPLE_ACCOUNT_FACTORY_V07,
  });
}

describeWithDatabases("sponsorship end to end through alto", (db) => {
  let stack: SponsorStack;
  let counter: { address: Address; abi: Abi };
  before(async () => {
    stack = await startSponsorStack({ db: db(), alto: true });
    counter = (await deployCounter(stack.chain.client, stack.chain.owner)) as { address: Address; abi: Abi };
  });
  after(async () => {
    await stack?.stop();
  });
  const increment = () => ({ to: counter.address, data: encodeFunctionData({ abi: counter.abi, functionName: "increment" }) });

  it("a funded zero-ETH account's operation lands through alto and settles: charge = ceil(actualGasCost × price), the rest released, ledger clean", async () => {
    const account = await newSmartAccount(stack);
    await stack.fund(account.address, 100_000n);
    const client = sponsoredAccountClient(stack, account);
    const hash = await client.sendUserOperation({ calls: [increment()] });
    const receipt = await client.waitForUserOperationReceipt({ hash, timeout: 30_000 });
    assert.equal(receipt.success, true);
    assert.equal(await stack.chain.client.getBalance({ address: account.address }), 0n);

    await stack.app.settlement!.tick();
    const expected = chargeFen(receipt.actualGasCost, TEST_PRICE);
    assert.ok(expected > 0n);
    const after = await getBalance(db(), account.address);
    assert.deepEqual(after, { account: account.address.toLowerCase(), availableFen: 100_000n - expected, heldFen: 0n });
    const { rows } = await db().query<{ charged_fen: bigint; success: boolean }>("SELECT charged_fen, success FROM settlements WHERE user_op_hash = $1", [hash.toLowerCase()]);
    assert.equal(rows[0]?.charged_fen, expected);
    const { rows: holds } = await db().query<{ status: string; amount_fen: bigint; charged_fen: bigint }>(
      "SELECT h.status, h.amount_fen, h.charged_fen FROM holds h JOIN sponsored_operations so ON so.hold_id = h.id WHERE so.user_op_hash = $1",
      [hash.toLowerCase()],
    );
    assert.equal(holds[0]?.status, "settled");
    assert.ok(holds[0]!.amount_fen > expected, "the hold was the worst case, above the actual charge");
    const kinds = (await recentEntries(db(), account.address)).map((e) => e.kind);
    assert.deepEqual(kinds, ["release", "charge", "hold", "topup"]);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });

  it("a reverted operation is charged too, since the paymaster paid for it", async () => {
    const account = await newSmartAccount(stack);
    await stack.fund(account.address, 100_000n);
    const client = sponsoredAccountClient(stack, account);
    // a call to a function the counter does not have reverts inside execute; validation still passes
    // with every gas limit given, nothing is estimated (estimation would refuse a reverting call)
    const hash = await client.sendUserOperation({
      calls: [{ to: counter.address, data: "0xdeadbeef" }],
      callGasLimit: 100_000n,
      verificationGasLimit: 500_000n,
      preVerificationGas: 80_000n,
    });
    const receipt = await client.waitForUserOperationReceipt({ hash, timeout: 30_000 });
    assert.equal(receipt.success, false);
    await stack.app.settlement!.tick();
    const expected = chargeFen(receipt.actualGasCost, TEST_PRICE);
    assert.deepEqual(await getBalance(db(), account.address), { account: account.address.toLowerCase(), availableFen: 100_000n - expected, heldFen: 0n });
  });

  it("a zero-balance account is refused at the stub call already, with the available and required amounts, and nothing is held", async () => {
    const account = await newSmartAccount(stack);
    const client = sponsoredAccountClient(stack, account);
    const error = await client.sendUserOperation({ calls: [increment()] }).then(
      () => assert.fail("sponsored without quota"),
      (e: unknown) => rpcErrorOf(e),
    );
    assert.equal(error.code, SPONSOR_ERROR_CODES.insufficient_quota, error.message);
    // the stub call's refusal (ERC-7677: reject at the stub what the final call would refuse), before estimation
    assert.match(error.message, /has 0 fen available; every sponsored operation holds at least 1 fen/);
    assert.deepEqual(await getBalance(db(), account.address), { account: account.address.toLowerCase(), availableFen: 0n, heldFen: 0n });
  });

  it("an operation above the key's per-operation maximum is refused by policy, nothing held", async () => {
    const key = await createApiKey(stack, { maxChargePerOpFen: 1 });
    const account = await newSmartAccount(stack);
    await stack.fund(account.address, 100_000n);
    const error = await sponsoredAccountClient(stack, account, key).sendUserOperation({ calls: [increment()] }).then(
      () => assert.fail("sponsored above the policy's maximum"),
      (e: unknown) => rpcErrorOf(e),
    );
    assert.equal(error.code, SPONSOR_ERROR_CODES.policy_rejected, error.message);
    assert.match(error.message, /at most 1 fen per operation/);
    assert.equal((await getBalance(db(), account.address)).heldFen, 0n);
  });

  it("a call to a target outside the key's allowlist is refused already at the stub, nothing held", async () => {
    const key = await createApiKey(stack, { allowedTargets: [stack.chain.paymaster] });
    const account = await newSmartAccount(stack);
    await stack.fund(account.address, 100_000n);
    const error = await sponsoredAccountClient(stack, account, key).sendUserOperation({ calls: [increment()] }).then(
      () => assert.fail("sponsored a call to a blocked target"),
      (e: unknown) => rpcErrorOf(e),
    );
    assert.equal(error.code, SPONSOR_ERROR_CODES.policy_rejected, error.message);
    assert.match(error.message, new RegExp(counter.address.slice(2, 10), "i"));
    assert.equal((await getBalance(db(), account.address)).heldFen, 0n);
  });

  it("a gas field over the chain's cap is refused naming the field, nothing held", async () => {
    const account = await newSmartAccount(stack);
    await stack.fund(account.address, 1_000_000n);
    const error = await sponsoredAccountClient(stack, account).sendUserOperation({ calls: [increment()], callGasLimit: 50_000_000n }).then(
      () => assert.fail("sponsored an over-cap gas limit"),
      (e: unknown) => rpcErrorOf(e),
    );
    assert.equal(error.code, SPONSOR_ERROR_CODES.gas_cap_exceeded, error.message);
    assert.match(error.message, /callGasLimit 50000000 is above this chain's cap/);
    assert.equal((await getBalance(db(), account.address)).heldFen, 0n);
  });

  it("the settlement cursor only moves forward, and a second pass settles nothing twice", async () => {
    const first = await settleChain(db(), stack.app.chains.values().next().value!);
    const second = await settleChain(db(), stack.app.chains.values().next().value!);
    assert.equal(first.settled + second.settled, 0);
    assert.ok(second.fromBlock >= first.fromBlock);
    assert.deepEqual((await checkLedger(db())).mismatches, []);
  });
});
