/**
 * The chain tie-out against a real anvil serving EntryPoint v0.7, v0.8 and v0.9: operations are sponsored through the REST
 * API (the server signs and holds), submitted straight to the EntryPoint by a bundler key (so a test controls blocks
 * exactly), and settled by `settleChain`; each test is one CST day of chain time (`evm_setNextBlockTimestamp`), the
 * app's clock following the chain's. Differences are made for real: a cursor set past an operation, a reorg
 * (`evm_snapshot`/`evm_revert`), rows altered in the database, the EntryPoint's deposit slot written behind the
 * events' back, an RPC that has no historical state.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { type Address, type Hex, encodeAbiParameters, keccak256, parseEther, toHex } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import {
  ENTRY_POINTS,
  buildVersionedUserOperation,
  handleOps,
  newVersionedSimpleAccount,
  signAsVersionedAccount,
  submitOperations,
  userOpJson,
  userOperationEventsAt,
} from "../../devtools/userOperations";
import { DEV_KEYS, localClients } from "../../devtools/chain/localChain";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { type SponsorStack, sponsoredOperation, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { dayBounds, dayOf } from "./difference";
import { settleChain } from "../sponsorship/settlement";
import { ENTRY_POINT_V07, ENTRY_POINT_V08, ENTRY_POINT_V09 } from "../chain/addresses";
import type { ChainRuntime } from "../chain/chainRuntime";
import { depositToPaymaster, withdrawFromPaymaster } from "../chain/operator";
import { tieOutChainDay } from "./chainTieOut";

const FUND_FEN = 1_000_000n;
const DAY_MS = 86_400_000;

describeWithDatabases("the chain tie-out of a CST day", (db) => {
  let stack: SponsorStack;
  let chain: ChainRuntime;
  let bundler: ReturnType<typeof localClients>["wallet"];
  /** The app's clock runs this far ahead of the wall clock: with the chain's time. */
  let clockOffsetMs = 0;
  let firstDayStart = 0;
  let days = 0;
  before(async () => {
    stack = await startSponsorStack({ db: db(), rpcProxy: true, entryPointVersions: ["0.7", "0.8", "0.9"], app: { workers: false, now: () => new Date(Date.now() + clockOffsetMs) } });
    chain = stack.app.chains.get(stack.chain.anvil.chainId)!;
    bundler = localClients(stack.chain.anvil.rpcUrl, stack.chain.anvil.chainId, DEV_KEYS.bundler).wallet;
    // the days the tests use start the day after tomorrow (CST), one day each
    const latest = await stack.chain.client.getBlock();
    firstDayStart = dayBounds(dayOf(new Date(Number(latest.timestamp) * 1000 + 2 * DAY_MS))).start.getTime();
  });
  after(async () => {
    await stack?.stop();
  });

  const rpc = (method: string, params: unknown[] = []) => stack.chain.client.request({ method, params } as never) as Promise<unknown>;
  const entryPoint = (address: Address) => chain.entryPoint(address)!;
  const tieOut = (day: string, address: Address = ENTRY_POINT_V07) => tieOutChainDay({ db: db(), chain, entryPoint: entryPoint(address) }, day);

  /** Mines the next block at `ms` (chain time) and moves the app's clock there. */
  async function mineAt(ms: number, blocks = 1) {
    for (let i = 0; i < blocks; i++) {
      await rpc("evm_setNextBlockTimestamp", [toHex(Math.floor(ms / 1000) + i)]);
      await rpc("evm_mine");
    }
    clockOffsetMs = ms - Date.now();
  }

  /** The next test day: the chain is moved an hour into it. */
  async function startDay() {
    const start = firstDayStart + days++ * DAY_MS;
    const day = dayOf(new Date(start));
    await mineAt(start + 3_600_000);
    return { day, start, end: start + DAY_MS };
  }

  /** Ends the day: a block at exactly 00:00:00 CST of the next day (the first block the day does not include). */
  const endDay = (d: { end: number }) => mineAt(d.end);

  /** A v0.7 operation sponsored by the server and landed; its UserOperationEvent's actualGasCost. */
  async function landV07(): Promise<{ userOpHash: Hex; cost: bigint }> {
    const { op, userOpHash } = await sponsoredOperation(stack, FUND_FEN);
    const receipt = await handleOps(stack.chain.client, bundler, [op]);
    const [event] = userOperationEventsAt(receipt, ENTRY_POINTS["0.7"]);
    assert.equal(event!.userOpHash, userOpHash);
    return { userOpHash, cost: event!.actualGasCost };
  }

  /** A v0.8 or v0.9 SimpleAccount's operation sponsored by the server through POST /v1/sponsorships and landed. */
  async function landVersioned(version: "0.8" | "0.9"): Promise<{ userOpHash: Hex; cost: bigint }> {
    const account = await newVersionedSimpleAccount(stack.chain.client, version);
    await stack.fund(account.smart.address, FUND_FEN);
    const built = await buildVersionedUserOperation(stack.chain.client, account, {
      calls: [{ to: stack.chain.owner.account.address, data: "0x" }],
      paymaster: stack.chain.paymasters[version],
    });
    const response = await fetch(`${stack.url}/v1/sponsorships`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": stack.apiKey },
      body: JSON.stringify({ chainId: stack.chain.anvil.chainId, entryPoint: version === "0.8" ? ENTRY_POINT_V08 : ENTRY_POINT_V09, userOp: userOpJson(built as never) }),
    });
    assert.equal(response.status, 201, await response.clone().text());
    const body = (await response.json()) as {
      paymaster: Address;
      paymasterData: Hex;
      paymasterSignature?: Hex;
      paymasterVerificationGasLimit: Hex;
      paymasterPostOpGasLimit: Hex;
      userOpHash: Hex;
    };
    const sponsored = {
      ...built,
      paymaster: body.paymaster,
      paymasterData: body.paymasterData,
      // v0.9: the paymaster's signature travels beside paymasterData, outside the userOpHash
      ...(version === "0.9" ? { paymasterSignature: body.paymasterSignature } : {}),
      paymasterVerificationGasLimit: BigInt(body.paymasterVerificationGasLimit),
      paymasterPostOpGasLimit: BigInt(body.paymasterPostOpGasLimit),
    };
    const signed = await signAsVersionedAccount(stack.chain.anvil.chainId, account, sponsored);
    const receipt = await submitOperations(stack.chain.client, bundler, ENTRY_POINTS[version], [signed]);
    const [event] = userOperationEventsAt(receipt, ENTRY_POINTS[version]);
    assert.equal(event!.userOpHash, body.userOpHash);
    return { userOpHash: body.userOpHash, cost: event!.actualGasCost };
  }
  const landV08 = () => landVersioned("0.8");

  const kinds = (result: { differences: { kind: string; reference: string }[] }) => result.differences.map((d) => [d.kind, d.reference]).sort();

  it("a day whose v0.7, v0.8 and v0.9 operations, a deposit and a withdrawal were all settled ties out, each EntryPoint with its own figures", async () => {
    const d = await startDay();
    const a = await landV07();
    const b = await landV08();
    const e = await landVersioned("0.9");
    await depositToPaymaster(stack.chain.client, stack.chain.owner, stack.chain.paymasters["0.7"], parseEther("1"));
    const c = await landV07();
    await withdrawFromPaymaster(stack.chain.client, stack.chain.owner, stack.chain.paymasters["0.7"], stack.chain.owner.account.address, parseEther("0.25"));
    await endDay(d);
    assert.equal((await settleChain(db(), chain)).settled, 4);

    const v07 = await tieOut(d.day);
    assert.equal(v07.scope, `chain:${stack.chain.anvil.chainId}:${ENTRY_POINT_V07.toLowerCase()}`);
    assert.equal(v07.day, d.day);
    assert.equal(v07.status, "ties_out", JSON.stringify(v07));
    assert.deepEqual(v07.differences, []);
    const f = v07.figures;
    const gas = a.cost + c.cost;
    assert.equal(f.chainOperations, "2");
    assert.equal(f.settledOperations, "2");
    assert.equal(f.chainGasCostWei, String(gas), "Σ actualGasCost of the day's receipts");
    assert.equal(f.settledGasCostWei, f.chainGasCostWei);
    assert.ok(BigInt(f.chargedFen!) > 0n);
    assert.equal(f.expectedChargeFen, f.chargedFen);
    assert.equal(f.ledgerChargeFen, f.chargedFen);
    assert.equal(f.shortfallFen, "0");
    assert.equal(f.depositsWei, String(parseEther("1")));
    assert.equal(f.withdrawalsWei, String(parseEther("0.25")));
    assert.equal(f.depositCheck, "ties_out");
    assert.equal(BigInt(f.depositEndWei!), BigInt(f.depositStartWei!) + parseEther("1") - parseEther("0.25") - gas);
    const balance = await stack.chain.client.readContract({ address: ENTRY_POINT_V07, abi: entryPoint07Abi, functionName: "balanceOf", args: [stack.chain.paymasters["0.7"]] });
    assert.equal(f.depositEndWei, String(balance), "nothing happened to the deposit after the day");

    // the range is exactly the day's blocks: the block at 00:00:00 of the next day is not in it
    const ts = async (n: bigint) => Number((await stack.chain.client.getBlock({ blockNumber: n })).timestamp) * 1000;
    const from = BigInt(f.fromBlock!);
    const to = BigInt(f.toBlock!);
    assert.ok((await ts(from)) >= d.start && (await ts(from - 1n)) < d.start);
    assert.ok((await ts(to)) < d.end && (await ts(to + 1n)) === d.end);

    // read in chunks of one block per eth_getLogs: the same result
    const chunked = await tieOutChainDay({ db: db(), chain: { ...chain, config: { ...chain.config, logRange: 1 } }, entryPoint: entryPoint(ENTRY_POINT_V07) }, d.day);
    assert.deepEqual(chunked, v07);

    const v08 = await tieOut(d.day, ENTRY_POINT_V08);
    assert.equal(v08.status, "ties_out", JSON.stringify(v08));
    assert.equal(v08.figures.chainOperations, "1");
    assert.equal(v08.figures.chainGasCostWei, String(b.cost));
    assert.equal(v08.figures.settledGasCostWei, String(b.cost));
    assert.equal(v08.figures.expectedChargeFen, v08.figures.chargedFen);
    assert.equal(v08.figures.depositsWei, "0");
    assert.equal(BigInt(v08.figures.depositEndWei!), BigInt(v08.figures.depositStartWei!) - b.cost);

    const v09 = await tieOut(d.day, ENTRY_POINT_V09);
    assert.equal(v09.scope, `chain:${stack.chain.anvil.chainId}:${ENTRY_POINT_V09.toLowerCase()}`);
    assert.equal(v09.status, "ties_out", JSON.stringify(v09));
    assert.equal(v09.figures.chainOperations, "1");
    assert.equal(v09.figures.chainGasCostWei, String(e.cost));
    assert.equal(v09.figures.settledGasCostWei, String(e.cost));
    assert.ok(BigInt(v09.figures.chargedFen!) > 0n);
    assert.equal(v09.figures.expectedChargeFen, v09.figures.chargedFen);
    assert.equal(v09.figures.ledgerChargeFen, v09.figures.chargedFen);
    assert.equal(BigInt(v09.figures.depositEndWei!), BigInt(v09.figures.depositStartWei!) - e.cost);
  });

  it("a day is not ready while the chain's confirmed head has not passed its end, nor while the settlement cursor has not read its last block", async () => {
    const d = await startDay();
    await landV07();
    const running = await tieOut(d.day);
    assert.equal(running.status, "not_ready");
    assert.match(running.detail!, /has not passed the day's end/);
    assert.deepEqual(running.differences, []);

    await endDay(d);
    const unread = await tieOut(d.day);
    assert.equal(unread.status, "not_ready");
    assert.match(unread.detail!, /the settlement cursor is at block \d+, before the day's last block \d+/);

    await settleChain(db(), chain);
    // with confirmations, the head must be that many blocks past the day's end
    const deep = await tieOutChainDay({ db: db(), chain: { ...chain, config: { ...chain.config, confirmations: 3 } }, entryPoint: entryPoint(ENTRY_POINT_V07) }, d.day);
    assert.equal(deep.status, "not_ready");
    assert.match(deep.detail!, /3 confirmations/);
    assert.equal((await tieOut(d.day)).status, "ties_out");
  });

  it("an operation our paymaster paid for that no settlement records (the cursor was set past it) is an unsettled_operation", async () => {
    const d = await startDay();
    await landV07();
    await settleChain(db(), chain);
    const missed = await landV07();
    await endDay(d);
    // the cursor moved past the operation without reading it, as a restored or hand-set cursor would
    const head = await stack.chain.client.getBlock();
    await db().query("UPDATE chain_cursors SET block_number = $2, block_hash = $3 WHERE chain_id = $1", [stack.chain.anvil.chainId, head.number, head.hash.toLowerCase()]);

    const result = await tieOut(d.day);
    assert.equal(result.status, "differences");
    assert.deepEqual(kinds(result), [["unsettled_operation", missed.userOpHash.toLowerCase()]]);
    assert.match(result.differences[0]!.actual!, new RegExp(`^${missed.cost} wei at block`));
    assert.equal(BigInt(result.figures.chainGasCostWei!) - BigInt(result.figures.settledGasCostWei!), missed.cost);
    assert.equal(result.figures.depositCheck, "ties_out", "the chain's side is whole: only our record misses it");
  });

  it("a settlement whose block a reorg replaced is settlement_not_on_chain, until the settlement worker undoes it", async () => {
    const d = await startDay();
    const snapshot = await rpc("evm_snapshot");
    const gone = await landV07();
    await endDay(d);
    assert.equal((await settleChain(db(), chain)).settled, 1);
    assert.equal((await tieOut(d.day)).status, "ties_out");

    // the operation's block vanishes; other blocks of the same day, then the next day's, take its place
    await rpc("evm_revert", [snapshot]);
    await mineAt(d.start + 7_200_000, 2);
    await endDay(d);
    const result = await tieOut(d.day);
    assert.equal(result.status, "differences");
    assert.deepEqual(kinds(result), [["settlement_not_on_chain", gone.userOpHash.toLowerCase()]]);
    assert.equal(result.differences[0]!.actual, "absent");
    assert.equal(result.figures.chainGasCostWei, "0");
    assert.equal(result.figures.settledGasCostWei, String(gone.cost));

    assert.equal((await settleChain(db(), chain)).reorged, 1);
    assert.equal((await tieOut(d.day)).status, "ties_out");
  });

  it("a cost or a charge altered in the database is a cost_mismatch, a charge_mismatch and a ledger_mismatch", async () => {
    const d = await startDay();
    const costly = await landV07();
    const overcharged = await landV07();
    await landV07();
    await endDay(d);
    await settleChain(db(), chain);
    await db().query("UPDATE settlements SET actual_gas_cost_wei = actual_gas_cost_wei + 1 WHERE user_op_hash = $1", [costly.userOpHash.toLowerCase()]);
    await db().query("UPDATE settlements SET charged_fen = charged_fen + 7 WHERE user_op_hash = $1", [overcharged.userOpHash.toLowerCase()]);

    const result = await tieOut(d.day);
    assert.equal(result.status, "differences");
    assert.deepEqual(
      kinds(result),
      [
        ["charge_mismatch", overcharged.userOpHash.toLowerCase()],
        ["cost_mismatch", costly.userOpHash.toLowerCase()],
        ["ledger_mismatch", overcharged.userOpHash.toLowerCase()],
      ].sort(),
    );
    const cost = result.differences.find((x) => x.kind === "cost_mismatch")!;
    assert.deepEqual([cost.expected, cost.actual], [`${costly.cost + 1n} wei`, `${costly.cost} wei`]);
    const f = result.figures;
    assert.equal(BigInt(f.settledGasCostWei!) - BigInt(f.chainGasCostWei!), 1n);
    assert.equal(BigInt(f.chargedFen!) - BigInt(f.expectedChargeFen!), 7n, "the charge is priced on the chain's cost: the altered cost charged right");
    assert.equal(BigInt(f.chargedFen!) - BigInt(f.ledgerChargeFen!), 7n);
  });

  it("a deposit change no event explains (the EntryPoint's deposits slot written directly) is a deposit_mismatch, even with a deposit after it; the other EntryPoint still ties out", async () => {
    const d = await startDay();
    await landV07();
    await landV08();
    // StakeManager's `deposits` mapping is the EntryPoint's slot 0; DepositInfo.deposit is the struct's first word
    const paymaster = stack.chain.paymasters["0.7"];
    const slot = keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [paymaster, 0n]));
    const readDeposit = () => stack.chain.client.readContract({ address: ENTRY_POINT_V07, abi: entryPoint07Abi, functionName: "balanceOf", args: [paymaster] });
    const setDeposit = (wei: bigint) => rpc("anvil_setStorageAt", [ENTRY_POINT_V07, slot, toHex(wei, { size: 32 })]);
    const deposit = await readDeposit();
    assert.equal(BigInt((await stack.chain.client.getStorageAt({ address: ENTRY_POINT_V07, slot }))!), deposit);
    // 12,345 wei vanish; then a deposit, whose Deposited total would hide them if its amount were inferred from the replay
    await setDeposit(deposit - 12_345n);
    await mineAt(d.start + 5 * 3_600_000);
    await depositToPaymaster(stack.chain.client, stack.chain.owner, paymaster, parseEther("1"));
    const depositBlock = await stack.chain.client.getBlockNumber({ cacheTime: 0 });
    await landV07();
    // and 100 wei appear
    await setDeposit((await readDeposit()) + 100n);
    await mineAt(d.start + 6 * 3_600_000);
    await endDay(d);
    await settleChain(db(), chain);

    const result = await tieOut(d.day);
    assert.equal(result.status, "differences");
    assert.deepEqual(kinds(result), [["deposit_mismatch", "deposit"]]);
    const f = result.figures;
    assert.equal(f.depositCheck, "mismatch");
    assert.equal(f.depositsWei, String(parseEther("1")), "the deposit's amount is read at the block before it, not inferred from the replay");
    assert.equal(BigInt(f.depositReplayedEndWei!) - BigInt(f.depositEndWei!), 12_345n - 100n);
    assert.match(result.differences[0]!.cause, new RegExp(`-12345 wei before block ${depositBlock}, \\+100 wei before block ${BigInt(f.toBlock!) + 1n}`));
    assert.equal(f.chainGasCostWei, f.settledGasCostWei);
    assert.equal((await tieOut(d.day, ENTRY_POINT_V08)).status, "ties_out");
  });

  it("an RPC without historical state leaves the deposit check unavailable and runs every other check", async () => {
    const d = await startDay();
    const op = await landV07();
    await endDay(d);
    await settleChain(db(), chain);
    stack.rpcProxy!.refuse = (request) =>
      request.method === "eth_call" && request.params?.[1] !== "latest" ? { code: -32000, message: "missing trie node (historical state unavailable)" } : undefined;
    try {
      const result = await tieOut(d.day);
      assert.equal(result.status, "ties_out", JSON.stringify(result));
      assert.equal(result.figures.depositCheck, "unavailable");
      assert.match(result.figures.depositCheckDetail!, /missing trie node/);
      assert.match(result.detail!, /deposit check unavailable/);
      assert.equal(result.figures.depositStartWei, undefined);
      assert.equal(result.figures.depositsWei, undefined, "a deposit's amount needs the balance before it");
      assert.equal(result.figures.chainGasCostWei, String(op.cost));
      assert.equal(result.figures.settledGasCostWei, String(op.cost));
    } finally {
      stack.rpcProxy!.refuse = () => undefined;
    }
  });
});
