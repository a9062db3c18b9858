import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { toEtherspotSmartAccount, toKernelSmartAccount, toLightSmartAccount, toNexusSmartAccount, toSafeSmartAccount, toSimpleSmartAccount, toThirdwebSmartAccount } from "permissionless/accounts";
import { type Address, type Hex, concat, createPublicClient, encodeFunctionData, encodePacked, http, parseAbi, toFunctionSelector } from "viem";
import { entryPoint07Address, toSimple7702SmartAccount } from "viem/account-abstraction";
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

describe("decodeCallTargets: every common account, as its SDK encodes calls", () => {
  const client = createPublicClient({ transport: http("http://127.0.0.1:9") });
  const owner = privateKeyToAccount(`0x${"11".repeat(32)}`);
  const address = "0x1111111111111111111111111111111111111111" as const;
  const entryPoint = { address: entryPoint07Address, version: "0.7" } as const;
  // each built offline: `address` is given, and encodeCalls needs no chain
  const accounts: Array<[string, Hex, Hex, () => Promise<{ encodeCalls: (calls: readonly { to: Address; data?: Hex; value?: bigint }[]) => Promise<Hex> }>]> = [
    ["Safe 1.4.1 (4337 module)", "0x541d63c8", "0x541d63c8", () => toSafeSmartAccount({ client, owners: [owner], version: "1.4.1", entryPoint, address })],
    ["Kernel v3.1 (ERC-7579)", "0xe9ae5c53", "0xe9ae5c53", () => toKernelSmartAccount({ client, owners: [owner], version: "0.3.1", entryPoint, address })],
    ["Nexus 1.0 (ERC-7579)", "0xe9ae5c53", "0xe9ae5c53", () => toNexusSmartAccount({ client, owners: [owner], version: "1.0.0", entryPoint, address })],
    ["Etherspot modular (ERC-7579)", "0xe9ae5c53", "0xe9ae5c53", () => toEtherspotSmartAccount({ client, owners: [owner], entryPoint, address })],
    ["LightAccount 2.0", "0xb61d27f6", "0x47e1da2a", () => toLightSmartAccount({ client, owner, version: "2.0.0", entryPoint, address })],
    ["thirdweb", "0xb61d27f6", "0x47e1da2a", () => toThirdwebSmartAccount({ client, owner, entryPoint, address })],
    ["Simple7702Account (viem, EntryPoint 0.8)", "0xb61d27f6", "0x34fcd5be", () => toSimple7702SmartAccount({ client, owner })],
  ];
  for (const [name, single, batch, build] of accounts) {
    it(`${name}: one call and a batch, each target in order`, async () => {
      const account = await build();
      const one = await account.encodeCalls([{ to: TOKEN, data: transfer }]);
      assert.equal(one.slice(0, 10), single);
      assert.deepEqual(decodeCallTargets(one), { kind: "execute", targets: [TOKEN.toLowerCase()] });
      const many = await account.encodeCalls([{ to: TOKEN, data: transfer }, { to: NFT, value: 1n }, { to: TOKEN, data: "0x" }]);
      assert.equal(many.slice(0, 10), batch);
      assert.deepEqual(decodeCallTargets(many), { kind: "executeBatch", targets: [TOKEN.toLowerCase(), NFT.toLowerCase(), TOKEN.toLowerCase()] });
    });
  }

  const safeModule = parseAbi(["function executeUserOpWithErrorString(address to, uint256 value, bytes data, uint8 operation)", "function executeUserOp(address to, uint256 value, bytes data, uint8 operation)"]);
  const multiSend = parseAbi(["function multiSend(bytes transactions)"]);
  const packed = (operation: number, to: Address, data: Hex) => encodePacked(["uint8", "address", "uint256", "uint256", "bytes"], [operation, to, 0n, BigInt((data.length - 2) / 2), data]);
  const MULTI_SEND_CALL_ONLY: Address = "0x9641d764fc13c8B624c04430C7356C1C7C8102e2";

  it("Safe: a delegatecall is refused unless it is to MultiSendCallOnly, and then only with plain calls inside", () => {
    assert.deepEqual(decodeCallTargets(encodeFunctionData({ abi: safeModule, functionName: "executeUserOp", args: [TOKEN, 0n, transfer, 0] })), { kind: "execute", targets: [TOKEN.toLowerCase()] });
    const toOther = encodeFunctionData({ abi: safeModule, functionName: "executeUserOpWithErrorString", args: [TOKEN, 0n, transfer, 1] });
    assert.deepEqual(decodeCallTargets(toOther), { kind: "unknown", selector: "0x541d63c8" });
    const innerDelegate = encodeFunctionData({ abi: multiSend, functionName: "multiSend", args: [concat([packed(0, TOKEN, transfer), packed(1, NFT, "0x")])] });
    assert.equal(decodeCallTargets(encodeFunctionData({ abi: safeModule, functionName: "executeUserOpWithErrorString", args: [MULTI_SEND_CALL_ONLY, 0n, innerDelegate, 1] })).kind, "unknown");
    const truncated = encodeFunctionData({ abi: multiSend, functionName: "multiSend", args: [packed(0, TOKEN, transfer).slice(0, -4) as Hex] });
    assert.equal(decodeCallTargets(encodeFunctionData({ abi: safeModule, functionName: "executeUserOpWithErrorString", args: [MULTI_SEND_CALL_ONLY, 0n, truncated, 1] })).kind, "unknown");
  });

  it("ERC-7579: delegatecall and staticcall modes and a mode selector are refused; try mode is read", () => {
    const erc7579 = parseAbi(["function execute(bytes32 mode, bytes executionCalldata)"]);
    const single = encodePacked(["address", "uint256", "bytes"], [TOKEN, 0n, transfer]);
    const mode = (callType: string, execType = "00", selector = "00000000") => `0x${callType}${execType}00000000${selector}${"00".repeat(22)}` as Hex;
    const call = (m: Hex) => decodeCallTargets(encodeFunctionData({ abi: erc7579, functionName: "execute", args: [m, single] }));
    assert.deepEqual(call(mode("00")), { kind: "execute", targets: [TOKEN.toLowerCase()] });
    assert.deepEqual(call(mode("00", "01")), { kind: "execute", targets: [TOKEN.toLowerCase()] }, "try mode");
    for (const refused of [mode("ff"), mode("fe"), mode("00", "02"), mode("00", "00", "78210001")]) assert.deepEqual(call(refused), { kind: "unknown", selector: "0xe9ae5c53" }, refused);
  });
});
