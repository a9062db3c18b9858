import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Address, type Hex, concat, keccak256, pad } from "viem";
import {
  type BundlerTracerResult,
  type EntityStake,
  type Erc7562Entity,
  type TracedCallEntry,
  type TracedPhase,
  PHASE_SELECTORS,
  findRuleViolations,
} from "./validationRules";

// Synthetic tracer output for the rules the on-chain tests (../erc7562.test.ts) do not reach.
const ENTRY_POINT: Address = "0x0000000071727de22e5e9d8baf0edac6f37da032";
const SENDER: Address = "0x1111111111111111111111111111111111111111";
const FACTORY: Address = "0x2222222222222222222222222222222222222222";
const PAYMASTER: Address = "0x3333333333333333333333333333333333333333";
const TOKEN: Address = "0x4444444444444444444444444444444444444444";

const STAKED = { stake: 10n ** 18n, unstakeDelaySec: 86_400n };
const UNSTAKED = { stake: 0n, unstakeDelaySec: 0n };
const isStaked = (s: EntityStake) => s.stake > 0n && s.unstakeDelaySec >= 86_400n;

function phase(entity: Erc7562Entity, fields: Partial<TracedPhase> = {}): TracedPhase {
  const target = { factory: "0x7fc98430eaedbb6070b35b39d798725049088348", account: SENDER, paymaster: PAYMASTER }[entity] as Address;
  return { topLevelMethodSig: PHASE_SELECTORS[entity], topLevelTargetAddress: target, opcodes: {}, access: {}, contractSize: {}, extCodeAccessInfo: {}, ...fields };
}

type Case = {
  phases: TracedPhase[];
  calls?: TracedCallEntry[];
  keccak?: Hex[];
  paymasterStaked?: boolean;
  factory?: "staked" | "unstaked";
  paymasterContext?: Hex;
  /** EIP-7702 delegated accounts: address → delegate. */
  delegated?: Record<string, Address>;
};

function violations(c: Case) {
  const tracerResult: BundlerTracerResult = { callsFromEntryPoint: c.phases, keccak: c.keccak ?? [], calls: c.calls ?? [], logs: [], debug: [] };
  return findRuleViolations({
    tracerResult,
    entryPoint: ENTRY_POINT,
    sender: SENDER,
    stakes: {
      account: { address: SENDER, ...UNSTAKED },
      paymaster: { address: PAYMASTER, ...(c.paymasterStaked ? STAKED : UNSTAKED) },
      ...(c.factory ? { factory: { address: FACTORY, ...(c.factory === "staked" ? STAKED : UNSTAKED) } } : {}),
    },
    paymasterContext: c.paymasterContext ?? "0x",
    isStaked,
    eip7702Delegates: new Map(Object.entries(c.delegated ?? {}).map(([address, delegate]) => [address.toLowerCase(), delegate])),
  }).map(({ rule, entity }) => `${rule} ${entity}`);
}

const reads = (slots: Hex[]) => ({ reads: Object.fromEntries(slots.map((s) => [s, pad("0x0")])), writes: {} });
/** The slot of mapping[key] at mapping slot 0, and the keccak input the tracer would have seen. */
const mappingSlot = (key: Address) => {
  const input = concat([pad(key), pad("0x0")]);
  return { input, slot: keccak256(input) };
};
const call = (type: string, from: Address, to: Address, method: Hex, value = "0"): TracedCallEntry[] => [
  { type, from, to, method, value },
  { type: "RETURN", data: "0x" },
];

describe("ERC-7562 rules over the collector tracer's output", () => {
  it("GAS not followed by a *CALL is OP-012; BALANCE is OP-080 only when unstaked; an unknown opcode is OP-013", () => {
    assert.deepEqual(violations({ phases: [phase("account", { opcodes: { GAS: 1, SLOAD: 1 } }), phase("paymaster", { opcodes: { BALANCE: 1, "opcode 0xef": 1 } })] }), [
      "OP-012 account",
      "OP-080 paymaster",
      "OP-013 paymaster",
    ]);
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { opcodes: { SELFBALANCE: 1 } })], paymasterStaked: true }), []);
  });

  it("CALL with value is OP-061 except into the EntryPoint; depositTo only from the account or factory (OP-052, OP-054)", () => {
    const depositTo = "0xb760faf9";
    const calls = [
      { type: "CALL", from: ENTRY_POINT, to: SENDER, method: PHASE_SELECTORS.account, value: "0" },
      ...call("CALL", SENDER, ENTRY_POINT, depositTo, "100"),
      ...call("CALL", SENDER, ENTRY_POINT, "0x", "100"),
      ...call("CALL", SENDER, TOKEN, "0xa9059cbb", "1"),
      { type: "RETURN", data: "0x" },
      { type: "CALL", from: ENTRY_POINT, to: PAYMASTER, method: PHASE_SELECTORS.paymaster, value: "0" },
      ...call("CALL", PAYMASTER, ENTRY_POINT, depositTo),
      { type: "RETURN", data: "0x" },
    ] as TracedCallEntry[];
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster")], calls }), ["OP-061 account", "OP-054 paymaster"]);
  });

  it("using an address without code is OP-041, one in the precompile range other than 0x01…0x09 is OP-062", () => {
    const contractSize = { [TOKEN]: { contractSize: 0, opcode: "STATICCALL" }, "0x0000000000000000000000000000000000000100": { contractSize: 0, opcode: "STATICCALL" } };
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { contractSize })], paymasterStaked: true }), ["OP-041 paymaster", "OP-062 paymaster"]);
  });

  it("reading another contract's storage needs stake (STO-033); writing storage not associated with the sender or entity never passes", () => {
    const access = { [TOKEN]: reads([pad("0x5")]) };
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { access })] }), ["STO-033 paymaster"]);
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { access })], paymasterStaked: true }), []);
    const write = { [TOKEN]: { reads: {}, writes: { [pad("0x5")]: 1 } } };
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { access: write })], paymasterStaked: true }), ["STO-032 paymaster"]);
  });

  it("the sender's associated storage is free once the account exists (STO-021), with initCode only under a staked factory (STO-022)", () => {
    const { input, slot } = mappingSlot(SENDER);
    const paymasterReadsBalance = phase("paymaster", { access: { [TOKEN]: reads([slot]) } });
    const phases = (withFactory: boolean) => [...(withFactory ? [phase("factory")] : []), phase("account"), paymasterReadsBalance];
    assert.deepEqual(violations({ phases: phases(false), keccak: [input] }), []);
    assert.deepEqual(violations({ phases: phases(true), keccak: [input], factory: "unstaked" }), ["STO-022 paymaster"]);
    assert.deepEqual(violations({ phases: phases(true), keccak: [input], factory: "staked" }), []);
  });

  it("storage associated with the paymaster in another contract needs stake (STO-032), as its own does (STO-031)", () => {
    const { input, slot } = mappingSlot(PAYMASTER);
    const access = { [TOKEN]: reads([slot]), [PAYMASTER]: reads([pad("0x1")]) };
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { access })], keccak: [input] }), ["STO-032 paymaster", "STO-031 paymaster"]);
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster", { access })], keccak: [input], paymasterStaked: true }), []);
  });

  it("out of gas is OP-020; an unstaked paymaster's context is refused as alto does (EREP-050)", () => {
    assert.deepEqual(violations({ phases: [phase("account", { oog: true }), phase("paymaster")], paymasterContext: "0x01" }), ["OP-020 account", "EREP-050 paymaster"]);
    assert.deepEqual(violations({ phases: [phase("account"), phase("paymaster")], paymasterContext: "0x01", paymasterStaked: true }), []);
  });

  it("a delegated EIP-7702 account may be the sender only (AUTH-020) and the only one used (AUTH-030)", () => {
    const DELEGATE: Address = "0x5555555555555555555555555555555555555555";
    const OTHER_EOA: Address = "0x6666666666666666666666666666666666666666";
    // the sender's own delegation, used by its validation, is what 7702 accounts are for
    const selfUse = { [SENDER]: { contractSize: 23, opcode: "EXTCODESIZE" } };
    assert.deepEqual(violations({ phases: [phase("account", { contractSize: selfUse }), phase("paymaster")], delegated: { [SENDER]: DELEGATE } }), []);
    // a delegated paymaster or factory is AUTH-020 (its own frame is not reported again as AUTH-030)
    const factoryCallsItself = phase("factory", { contractSize: { [FACTORY]: { contractSize: 23, opcode: "CALL" } } });
    assert.deepEqual(
      violations({ phases: [factoryCallsItself, phase("account"), phase("paymaster")], factory: "staked", delegated: { [FACTORY]: DELEGATE, [PAYMASTER]: DELEGATE } }),
      ["AUTH-020 factory", "AUTH-020 paymaster"],
    );
    // calling another delegated account, or reading its code, is AUTH-030 for the phase that does it
    const calls = phase("paymaster", { contractSize: { [OTHER_EOA]: { contractSize: 23, opcode: "STATICCALL" } } });
    const reads = phase("account", { extCodeAccessInfo: { [OTHER_EOA]: "EXTCODEHASH" } });
    assert.deepEqual(violations({ phases: [reads, calls], paymasterStaked: true, delegated: { [OTHER_EOA]: DELEGATE } }), ["AUTH-030 account", "AUTH-030 paymaster"]);
    assert.deepEqual(violations({ phases: [reads, calls], paymasterStaked: true }), [], "the same trace without delegations");
  });
});
