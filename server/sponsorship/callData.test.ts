import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { type Address, type Hex, concat, createPublicClient, encodeFunctionData, http, parseAbi, toFunctionSelector } from "viem";
import { entryPoint07Address } from "viem/account-abstraction";
import { privateKeyToAccount } from "viem/accounts";
import { decodeCallTargets, simpleAccountCallAbi } from "./callData";

const TOKEN: Address = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"; // checksummed
const NFT: Address = "0x000000000000000000000000000000000000dEaD";
const erc20 = parseAbi(["function transfer(address to, uint256 amount)"]);
const transfer = encodeFunctionData({ abi: erc20, functionName: "transfer", args: [NFT, 5n] });

/** The account the SDK builds for EntryPoint 0.7; `address` is given so nothing reaches the (absent) chain. */
async function simpleAccount() {
  return toSimpleSmartAccount({
    client: createPublicClient({ transport: http("http://127.0.0.1:9") }),
    owner: privateKeyToAccount(`0x${"11".repeat(32)}`),
    entryPoint: { address: entryPoint07Address, version: "0.7" },
    address: "0x1111111111111111111111111111111111111111",
  });
}

describe("decodeCallTargets", () => {
  it("reads the single call permissionless' SimpleAccount (EntryPoint 0.7) encodes, as execute", async () => {
    const callData = await (await simpleAccount()).encodeCalls([{ to: TOKEN, data: transfer }]);
    assert.equal(callData.slice(0, 10), toFunctionSelector("execute(address,uint256,bytes)"));
    assert.deepEqual(decodeCallTargets(callData), { kind: "execute", targets: [TOKEN.toLowerCase()] });
  });

  it("reads the batch permissionless encodes for several calls, one target per call in order", async () => {
    const callData = await (await simpleAccount()).encodeCalls([
      { to: TOKEN, data: transfer },
      { to: NFT, value: 1n },
      { to: TOKEN, data: transfer },
    ]);
    assert.equal(callData.slice(0, 10), toFunctionSelector("executeBatch(address[],uint256[],bytes[])"));
    assert.deepEqual(decodeCallTargets(callData), { kind: "executeBatch", targets: [TOKEN.toLowerCase(), NFT.toLowerCase(), TOKEN.toLowerCase()] });
  });

  it("reads the older executeBatch(address[], bytes[]) form", () => {
    const callData = encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "executeBatch", args: [[TOKEN, NFT], [transfer, "0x"]] });
    assert.equal(callData.slice(0, 10), toFunctionSelector("executeBatch(address[],bytes[])"));
    assert.deepEqual(decodeCallTargets(callData), { kind: "executeBatch", targets: [TOKEN.toLowerCase(), NFT.toLowerCase()] });
  });

  it("accepts a 0.7 batch with an empty value array, which SimpleAccount reads as no value", () => {
    const callData = encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "executeBatch", args: [[TOKEN], [], [transfer]] });
    assert.deepEqual(decodeCallTargets(callData), { kind: "executeBatch", targets: [TOKEN.toLowerCase()] });
  });

  it("returns lower-case targets whatever the case of the callData's hex", () => {
    const callData = encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "execute", args: [TOKEN, 0n, transfer] });
    const shouted = `0x${callData.slice(2).toUpperCase()}` as Hex;
    assert.deepEqual(decodeCallTargets(shouted), { kind: "execute", targets: [TOKEN.toLowerCase()] });
  });

  it("reports empty callData (an op that only deploys the account) as a call to nothing", () => {
    assert.deepEqual(decodeCallTargets("0x"), { kind: "execute", targets: [] });
  });

  it("reports an empty batch as calling nothing", () => {
    const callData = encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "executeBatch", args: [[], [], []] });
    assert.deepEqual(decodeCallTargets(callData), { kind: "executeBatch", targets: [] });
  });

  it("calls a batch whose arrays SimpleAccount would reject unknown rather than naming some of its targets", () => {
    const abi = simpleAccountCallAbi;
    const mismatched = encodeFunctionData({ abi, functionName: "executeBatch", args: [[TOKEN, NFT], [0n, 0n], [transfer]] });
    assert.deepEqual(decodeCallTargets(mismatched), { kind: "unknown", selector: mismatched.slice(0, 10) });
    const wrongValues = encodeFunctionData({ abi, functionName: "executeBatch", args: [[TOKEN, NFT], [0n], [transfer, "0x"]] });
    assert.equal(decodeCallTargets(wrongValues).kind, "unknown");
    const oldForm = encodeFunctionData({ abi, functionName: "executeBatch", args: [[TOKEN], [transfer, "0x"]] });
    assert.equal(decodeCallTargets(oldForm).kind, "unknown");
  });

  it("reports any other account function as unknown, with its selector", () => {
    const withdraw = encodeFunctionData({ abi: parseAbi(["function withdrawDepositTo(address to, uint256 amount)"]), functionName: "withdrawDepositTo", args: [NFT, 1n] });
    assert.deepEqual(decodeCallTargets(withdraw), { kind: "unknown", selector: toFunctionSelector("withdrawDepositTo(address,uint256)") });
    // EntryPoint 0.7 hands executeUserOp callData to IAccountExecute accounts; SimpleAccount is not one
    const executeUserOp = concat([toFunctionSelector("executeUserOp((address,uint256,bytes,bytes,bytes32,uint256,bytes32,bytes,bytes),bytes32)"), "0x1234"]);
    assert.deepEqual(decodeCallTargets(executeUserOp), { kind: "unknown", selector: "0x8dd7712f" });
  });

  it("never throws on malformed callData: truncated, odd-length, too short or not hex at all", () => {
    const good = encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "execute", args: [TOKEN, 0n, transfer] });
    assert.deepEqual(decodeCallTargets(good.slice(0, 80) as Hex), { kind: "unknown", selector: "0xb61d27f6" });
    assert.deepEqual(decodeCallTargets(`${good}0` as Hex), { kind: "unknown", selector: "0xb61d27f6" });
    assert.deepEqual(decodeCallTargets("0xb61d27f6"), { kind: "unknown", selector: "0xb61d27f6" });
    assert.deepEqual(decodeCallTargets("0x12"), { kind: "unknown", selector: "0x12" });
    assert.deepEqual(decodeCallTargets("hello" as Hex), { kind: "unknown", selector: "0x" });
    assert.deepEqual(decodeCallTargets("0xzz" as Hex), { kind: "unknown", selector: "0x" });
    assert.deepEqual(decodeCallTargets(undefined as unknown as Hex), { kind: "unknown", selector: "0x" });
    // an offset pointing far outside the data
    const badOffset = concat([toFunctionSelector("executeBatch(address[],bytes[])"), `0x${"ff".repeat(32)}`, `0x${"00".repeat(31)}40`]);
    assert.equal(decodeCallTargets(badOffset).kind, "unknown");
  });
});
