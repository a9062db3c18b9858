import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Address, type Hex, encodeFunctionData } from "viem";
import { simpleAccountCallAbi } from "./callData";
import { type EvaluatePolicyParameters, type Policy, PolicyConfigError, PolicyInputError, evaluatePolicy, parsePolicy, policyToJson, spendPeriodStart } from "./policy";

const ALICE: Address = "0x52908400098527886E0F7030069857D2E4169EE7"; // checksummed, mixed case
const BOB: Address = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";
const USDC: Address = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const GAME: Address = "0x000000000000000000000000000000000000dEaD";
const EVIL: Address = "0x1111111111111111111111111111111111111111";

const execute = (to: Address): Hex => encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "execute", args: [to, 0n, "0x"] });
const batch = (...to: Address[]): Hex =>
  encodeFunctionData({ abi: simpleAccountCallAbi, functionName: "executeBatch", args: [to, to.map(() => 0n), to.map(() => "0x" as Hex)] });

/** An op that every rule of a generous policy lets through; each test changes one thing. */
function op(overrides: Partial<EvaluatePolicyParameters> = {}): EvaluatePolicyParameters {
  return {
    chainId: 8453,
    sender: ALICE,
    callData: execute(USDC),
    maxChargeFen: 50n,
    now: new Date("2025-06-01T12:00:00Z"),
    senderSpentFen: 0n,
    globalSpentFen: 0n,
    ...overrides,
  };
}

function refusal(policy: Policy, overrides: Partial<EvaluatePolicyParameters> = {}) {
  const decision = evaluatePolicy(policy, op(overrides));
  assert.equal(decision.allowed, false, "expected a refusal");
  return decision as Extract<typeof decision, { allowed: false }>;
}

function configError(json: unknown): PolicyConfigError {
  try {
    parsePolicy(json);
  } catch (error) {
    assert.ok(error instanceof PolicyConfigError, `expected a PolicyConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the policy to be refused");
}

describe("parsePolicy", () => {
  it("accepts an empty policy, which imposes nothing", () => {
    assert.deepEqual(parsePolicy({}), {});
    assert.deepEqual(evaluatePolicy(parsePolicy({}), op({ callData: "0xdeadbeef", chainId: 1, maxChargeFen: 10n ** 30n })), { allowed: true });
  });

  it("reads every field: fen as bigint, addresses in lower case, timestamps as dates, webhook defaults filled in", () => {
    const policy = parsePolicy({
      maxChargePerOpFen: 100,
      senderSpendLimit: { fen: "500", periodSeconds: 86_400 },
      globalSpendLimit: { fen: 100_000, periodSeconds: 3_600 },
      allowedSenders: [ALICE],
      blockedSenders: [BOB.toUpperCase().replace("0X", "0x")],
      allowedTargets: [USDC, GAME],
      activeFrom: "2025-01-01T00:00:00+08:00",
      activeUntil: "2026-01-01T00:00:00Z",
      dailyWindowUtc: { from: "22:00", to: "06:00" },
      approvalWebhook: { url: "https://hooks.example.com/approve" },
      chainIds: [1, 8453],
    });
    assert.deepEqual(policy, {
      maxChargePerOpFen: 100n,
      senderSpendLimit: { fen: 500n, periodSeconds: 86_400 },
      globalSpendLimit: { fen: 100_000n, periodSeconds: 3_600 },
      allowedSenders: [ALICE.toLowerCase()],
      blockedSenders: [BOB],
      allowedTargets: [USDC.toLowerCase(), GAME.toLowerCase()],
      activeFrom: new Date("2024-12-31T16:00:00Z"),
      activeUntil: new Date("2026-01-01T00:00:00Z"),
      dailyWindowUtc: { from: "22:00", to: "06:00" },
      approvalWebhook: { url: "https://hooks.example.com/approve", timeoutMs: 2_000, failOpen: false },
      chainIds: [1, 8453],
    });
  });

  it("reads amounts far beyond 2^53 exactly when written as decimal strings", () => {
    assert.equal(parsePolicy({ maxChargePerOpFen: "123456789012345678901234567890" }).maxChargePerOpFen, 123456789012345678901234567890n);
    assert.equal(parsePolicy({ maxChargePerOpFen: Number.MAX_SAFE_INTEGER }).maxChargePerOpFen, 9007199254740991n);
    assert.equal(parsePolicy({ maxChargePerOpFen: "0007" }).maxChargePerOpFen, 7n);
    assert.equal(parsePolicy({ maxChargePerOpFen: 0 }).maxChargePerOpFen, 0n);
    assert.equal(parsePolicy({ maxChargePerOpFen: 42n }).maxChargePerOpFen, 42n);
    assert.equal(parsePolicy({ maxChargePerOpFen: "9".repeat(78) }).maxChargePerOpFen, BigInt("9".repeat(78)));
  });

  it("refuses amounts that are not whole, non-negative fen, saying which field", () => {
    for (const bad of [1.5, -1, "-1", "1.5", "1e3", " 1", "", "0x10", "9".repeat(79), true, null, {}]) {
      const error = configError({ senderSpendLimit: { fen: bad, periodSeconds: 60 } });
      assert.equal(error.field, "senderSpendLimit.fen", `for ${JSON.stringify(bad)}`);
      assert.match(error.message, /senderSpendLimit\.fen/);
    }
  });

  it("refuses a JSON number beyond 2^53 (already rounded) and says to use a string", () => {
    const error = configError({ maxChargePerOpFen: 2 ** 60 });
    assert.equal(error.field, "maxChargePerOpFen");
    assert.match(error.message, /decimal string/);
  });

  it("refuses unknown fields rather than ignoring them: a misspelt limit must not lift the limit", () => {
    assert.equal(configError({ maxChargePerOp: 100 }).field, "maxChargePerOp");
    assert.match(configError({ maxChargePerOp: 100 }).message, /maxChargePerOp is not a policy field/);
    assert.equal(configError({ senderSpendLimit: { fen: 1, period: 60 } }).field, "senderSpendLimit.periodSeconds");
    const nested = configError({ senderSpendLimit: { fen: 1, periodSeconds: 60, perSender: true } });
    assert.equal(nested.field, "senderSpendLimit.perSender");
    assert.equal(configError({ approvalWebhook: { url: "https://x.example", secret: "s" } }).field, "approvalWebhook.secret");
  });

  it("names the bad entry of an address list", () => {
    const error = configError({ allowedTargets: [USDC, "0x1234", GAME] });
    assert.equal(error.field, "allowedTargets[1]");
    assert.match(error.message, /allowedTargets\[1\] must be a 20-byte hex address/);
    assert.equal(configError({ allowedSenders: ALICE }).field, "allowedSenders");
    assert.equal(configError({ blockedSenders: [`${ALICE}00`] }).field, "blockedSenders[0]");
  });

  it("refuses spend periods that are not a whole number of seconds in (0, 10 years]", () => {
    for (const bad of [0, -60, 1.5, "86400", 10 * 366 * 86_400 + 1]) {
      assert.equal(configError({ globalSpendLimit: { fen: 1, periodSeconds: bad } }).field, "globalSpendLimit.periodSeconds", `for ${bad}`);
    }
    assert.equal(configError({ globalSpendLimit: { fen: 1 } }).field, "globalSpendLimit.periodSeconds");
  });

  it("refuses timestamps without a time zone and an active range that never starts", () => {
    assert.equal(configError({ activeFrom: "2025-01-01" }).field, "activeFrom");
    assert.equal(configError({ activeFrom: "2025-01-01T00:00:00" }).field, "activeFrom");
    assert.equal(configError({ activeUntil: 1735689600 }).field, "activeUntil");
    const never = configError({ activeFrom: "2025-06-01T00:00:00Z", activeUntil: "2025-06-01T00:00:00Z" });
    assert.equal(never.field, "activeUntil");
    assert.match(never.message, /later than activeFrom/);
  });

  it("refuses daily windows that are not HH:MM or that are empty", () => {
    assert.equal(configError({ dailyWindowUtc: { from: "24:00", to: "06:00" } }).field, "dailyWindowUtc.from");
    assert.equal(configError({ dailyWindowUtc: { from: "22:00", to: "6:00" } }).field, "dailyWindowUtc.to");
    assert.equal(configError({ dailyWindowUtc: { from: "22:00", to: "22:60" } }).field, "dailyWindowUtc.to");
    assert.equal(configError({ dailyWindowUtc: { from: "22:00" } }).field, "dailyWindowUtc.to");
    assert.equal(configError({ dailyWindowUtc: { from: "08:00", to: "08:00" } }).field, "dailyWindowUtc.to");
  });

  it("refuses webhooks that are not http(s) or whose timeout is outside 1–30000 ms", () => {
    assert.equal(configError({ approvalWebhook: { url: "ftp://hooks.example.com" } }).field, "approvalWebhook.url");
    assert.equal(configError({ approvalWebhook: { url: "not a url" } }).field, "approvalWebhook.url");
    assert.equal(configError({ approvalWebhook: { url: "https://x.example", timeoutMs: 30_001 } }).field, "approvalWebhook.timeoutMs");
    assert.equal(configError({ approvalWebhook: { url: "https://x.example", timeoutMs: 0 } }).field, "approvalWebhook.timeoutMs");
    assert.equal(configError({ approvalWebhook: { url: "https://x.example", failOpen: "yes" } }).field, "approvalWebhook.failOpen");
    assert.deepEqual(parsePolicy({ approvalWebhook: { url: "http://127.0.0.1:8080/ok", timeoutMs: 30_000, failOpen: true } }).approvalWebhook, {
      url: "http://127.0.0.1:8080/ok",
      timeoutMs: 30_000,
      failOpen: true,
    });
  });

  it("refuses chain ids that are not positive whole numbers", () => {
    assert.equal(configError({ chainIds: [1, 0] }).field, "chainIds[1]");
    assert.equal(configError({ chainIds: ["1"] }).field, "chainIds[0]");
    assert.equal(configError({ chainIds: 1 }).field, "chainIds");
  });

  it("refuses anything that is not a JSON object", () => {
    for (const bad of [null, undefined, [], "{}", 42]) assert.equal(configError(bad).field, "policy", `for ${JSON.stringify(bad)}`);
  });

  it("reports every problem at once, the first one as `field`", () => {
    const error = configError({ maxChargePerOpFen: -1, chainIds: [0], colour: "red" });
    assert.deepEqual(error.problems.map((p) => p.field).sort(), ["chainIds[0]", "colour", "maxChargePerOpFen"]);
    for (const field of ["chainIds[0]", "colour", "maxChargePerOpFen"]) assert.ok(error.message.includes(field), field);
    assert.equal(error.field, error.problems[0]!.field);
  });
});

describe("policyToJson", () => {
  it("round-trips through JSON text and parsePolicy, amounts as decimal strings", () => {
    const policy = parsePolicy({
      maxChargePerOpFen: "123456789012345678901234567890",
      senderSpendLimit: { fen: 500, periodSeconds: 86_400 },
      globalSpendLimit: { fen: "100000", periodSeconds: 3_600 },
      allowedSenders: [ALICE],
      blockedSenders: [BOB],
      allowedTargets: [USDC],
      activeFrom: "2025-01-01T00:00:00.250+08:00",
      activeUntil: "2026-01-01T00:00:00Z",
      dailyWindowUtc: { from: "22:00", to: "06:00" },
      approvalWebhook: { url: "https://hooks.example.com/approve", failOpen: true },
      chainIds: [8453],
    });
    const json = policyToJson(policy);
    assert.equal(json.maxChargePerOpFen, "123456789012345678901234567890");
    assert.deepEqual(json.senderSpendLimit, { fen: "500", periodSeconds: 86_400 });
    assert.equal(json.activeFrom, "2024-12-31T16:00:00.250Z");
    assert.deepEqual(json.approvalWebhook, { url: "https://hooks.example.com/approve", timeoutMs: 2_000, failOpen: true });
    assert.deepEqual(parsePolicy(JSON.parse(JSON.stringify(json))), policy);
  });

  it("writes nothing for fields the policy does not have", () => {
    assert.deepEqual(policyToJson({}), {});
    assert.deepEqual(policyToJson({ maxChargePerOpFen: 0n }), { maxChargePerOpFen: "0" });
  });
});

describe("evaluatePolicy", () => {
  it("sponsors only the listed chains; an empty list sponsors none", () => {
    assert.deepEqual(evaluatePolicy({ chainIds: [1, 8453] }, op()), { allowed: true });
    const refused = refusal({ chainIds: [1, 10] });
    assert.equal(refused.rule, "chain_not_allowed");
    assert.equal(refused.message, "the operation is for chain 8453; this key sponsors only chains 1, 10");
    assert.equal(refusal({ chainIds: [] }).message, "the operation is for chain 8453; this key sponsors no chain");
  });

  it("refuses blocked senders whatever the case of either address, even when they are also allowed", () => {
    const policy = parsePolicy({ blockedSenders: [ALICE.toLowerCase()], allowedSenders: [ALICE] });
    const refused = refusal(policy, { sender: ALICE });
    assert.equal(refused.rule, "sender_blocked");
    assert.equal(refused.message, `sender ${ALICE.toLowerCase()} is blocked for this key`);
    assert.equal(refusal(parsePolicy({ blockedSenders: [ALICE] }), { sender: ALICE.toLowerCase() as Address }).rule, "sender_blocked");
    assert.deepEqual(evaluatePolicy(policy, op({ sender: BOB })).allowed, false, "Bob is not on the allowlist");
    assert.deepEqual(evaluatePolicy(parsePolicy({ blockedSenders: [ALICE] }), op({ sender: BOB })), { allowed: true });
  });

  it("sponsors only allowlisted senders, compared without regard to case; an empty allowlist allows no one", () => {
    const policy = parsePolicy({ allowedSenders: [ALICE.toLowerCase()] });
    assert.deepEqual(evaluatePolicy(policy, op({ sender: ALICE })), { allowed: true });
    assert.deepEqual(evaluatePolicy(policy, op({ sender: ALICE.toUpperCase().replace("0X", "0x") as Address })), { allowed: true });
    const refused = refusal(policy, { sender: BOB });
    assert.equal(refused.rule, "sender_not_allowed");
    assert.equal(refused.message, `sender ${BOB} is not on this key's sender allowlist`);
    assert.equal(refusal({ allowedSenders: [] }).rule, "sender_not_allowed");
  });

  it("sponsors calls only to allowlisted contracts, every call of a batch included", () => {
    const policy = parsePolicy({ allowedTargets: [USDC, GAME] });
    assert.deepEqual(evaluatePolicy(policy, op({ callData: execute(USDC) })), { allowed: true });
    assert.deepEqual(evaluatePolicy(policy, op({ callData: batch(GAME, USDC, GAME) })), { allowed: true });
    const refused = refusal(policy, { callData: batch(USDC, EVIL, GAME) });
    assert.equal(refused.rule, "target_not_allowed");
    assert.equal(refused.message, `the operation calls ${EVIL}, which is not on this key's target allowlist`);
    assert.equal(refusal(policy, { callData: execute(EVIL) }).rule, "target_not_allowed");
  });

  it("compares targets without regard to the case of the allowlist or of the callData", () => {
    const policy = parsePolicy({ allowedTargets: [USDC.toLowerCase()] });
    const shouted = `0x${execute(USDC).slice(2).toUpperCase()}` as Hex;
    assert.deepEqual(evaluatePolicy(policy, op({ callData: shouted })), { allowed: true });
    assert.deepEqual(evaluatePolicy(parsePolicy({ allowedTargets: [USDC] }), op({ callData: execute(USDC.toLowerCase() as Address) })), { allowed: true });
  });

  it("refuses callData it cannot read when the key restricts targets, and only then", () => {
    const policy = parsePolicy({ allowedTargets: [USDC] });
    const refused = refusal(policy, { callData: "0xdeadbeef00" });
    assert.equal(refused.rule, "call_not_decodable");
    assert.match(refused.message, /selector 0xdeadbeef/);
    assert.equal(refusal(policy, { callData: execute(USDC).slice(0, 50) as Hex }).rule, "call_not_decodable");
    assert.deepEqual(evaluatePolicy({}, op({ callData: "0xdeadbeef00" })), { allowed: true });
  });

  it("lets an op that calls nothing (empty callData, empty batch) through a target allowlist, even an empty one", () => {
    assert.deepEqual(evaluatePolicy({ allowedTargets: [] }, op({ callData: "0x" })), { allowed: true });
    assert.deepEqual(evaluatePolicy({ allowedTargets: [] }, op({ callData: batch() })), { allowed: true });
    assert.equal(refusal({ allowedTargets: [] }, { callData: execute(USDC) }).rule, "target_not_allowed");
  });

  it("allows an operation costing exactly the per-op maximum and refuses one fen more", () => {
    const policy = parsePolicy({ maxChargePerOpFen: 100 });
    assert.deepEqual(evaluatePolicy(policy, op({ maxChargeFen: 100n })), { allowed: true });
    const refused = refusal(policy, { maxChargeFen: 101n });
    assert.equal(refused.rule, "max_charge_per_op");
    assert.equal(refusal(policy, { maxChargeFen: 120n }).message, "the operation may cost up to 120 fen; this key allows at most 100 fen per operation");
  });

  it("allows a sender to reach its spend limit exactly and not to pass it", () => {
    const policy = parsePolicy({ senderSpendLimit: { fen: 100, periodSeconds: 86_400 } });
    assert.deepEqual(evaluatePolicy(policy, op({ senderSpentFen: 70n, maxChargeFen: 30n })), { allowed: true });
    const refused = refusal(policy, { senderSpentFen: 71n, maxChargeFen: 30n });
    assert.equal(refused.rule, "sender_spend_limit");
    assert.equal(
      refused.message,
      "the operation may cost up to 30 fen and this sender has already spent 71 fen in the current period; this key allows a sender at most 100 fen per day",
    );
    assert.deepEqual(evaluatePolicy(policy, op({ senderSpentFen: 0n, globalSpentFen: 10n ** 9n, maxChargeFen: 100n })), { allowed: true }, "other senders' spend does not count");
  });

  it("allows the key to reach its global spend limit exactly and not to pass it", () => {
    const policy = parsePolicy({ globalSpendLimit: { fen: 1_000, periodSeconds: 3_600 } });
    assert.deepEqual(evaluatePolicy(policy, op({ globalSpentFen: 950n, maxChargeFen: 50n })), { allowed: true });
    const refused = refusal(policy, { globalSpentFen: 951n, maxChargeFen: 50n });
    assert.equal(refused.rule, "global_spend_limit");
    assert.equal(
      refused.message,
      "the operation may cost up to 50 fen and this key has already spent 951 fen in the current period; it allows at most 1000 fen per hour across all senders",
    );
  });

  it("names the period in the largest whole unit", () => {
    const message = (periodSeconds: number) => refusal({ senderSpendLimit: { fen: 0n, periodSeconds } }).message;
    assert.match(message(7 * 86_400), /per 7 days$/);
    assert.match(message(2 * 3_600), /per 2 hours$/);
    assert.match(message(60), /per minute$/);
    assert.match(message(90), /per 90 seconds$/);
  });

  it("keeps exact arithmetic for limits far beyond 2^64", () => {
    const limit = 2n ** 70n;
    const policy = parsePolicy({ globalSpendLimit: { fen: limit.toString(), periodSeconds: 60 }, maxChargePerOpFen: limit.toString() });
    assert.deepEqual(evaluatePolicy(policy, op({ globalSpentFen: limit - 1n, maxChargeFen: 1n })), { allowed: true });
    assert.equal(refusal(policy, { globalSpentFen: limit - 1n, maxChargeFen: 2n }).rule, "global_spend_limit");
    assert.equal(refusal(policy, { maxChargeFen: limit + 1n }).rule, "max_charge_per_op");
  });

  it("treats a zero limit as sponsoring nothing that costs anything", () => {
    assert.equal(refusal({ senderSpendLimit: { fen: 0n, periodSeconds: 60 } }, { maxChargeFen: 1n }).rule, "sender_spend_limit");
    assert.deepEqual(evaluatePolicy({ senderSpendLimit: { fen: 0n, periodSeconds: 60 } }, op({ maxChargeFen: 0n })), { allowed: true });
  });

  it("is active from activeFrom (inclusive) until activeUntil (exclusive)", () => {
    const policy = parsePolicy({ activeFrom: "2025-06-01T00:00:00Z", activeUntil: "2025-07-01T00:00:00Z" });
    assert.deepEqual(evaluatePolicy(policy, op({ now: new Date("2025-06-01T00:00:00Z") })), { allowed: true });
    assert.deepEqual(evaluatePolicy(policy, op({ now: new Date("2025-06-30T23:59:59.999Z") })), { allowed: true });
    const early = refusal(policy, { now: new Date("2025-05-31T23:59:59.999Z") });
    assert.equal(early.rule, "outside_time_window");
    assert.equal(early.message, "this key sponsors operations from 2025-06-01T00:00:00.000Z; it is 2025-05-31T23:59:59.999Z");
    const late = refusal(policy, { now: new Date("2025-07-01T00:00:00Z") });
    assert.equal(late.rule, "outside_time_window");
    assert.match(late.message, /until 2025-07-01T00:00:00\.000Z/);
  });

  it("sponsors within a daily UTC window, from inclusive to exclusive", () => {
    const policy = parsePolicy({ dailyWindowUtc: { from: "09:00", to: "17:30" } });
    const at = (time: string) => evaluatePolicy(policy, op({ now: new Date(`2025-06-01T${time}Z`) })).allowed;
    assert.equal(at("08:59:59.999"), false);
    assert.equal(at("09:00:00"), true);
    assert.equal(at("17:29:59.999"), true);
    assert.equal(at("17:30:00"), false);
    assert.equal(
      refusal(policy, { now: new Date("2025-06-01T03:07:00Z") }).message,
      "this key sponsors operations between 09:00 and 17:30 UTC; it is 03:07 UTC",
    );
  });

  it("sponsors within a daily window that wraps past midnight", () => {
    const policy = parsePolicy({ dailyWindowUtc: { from: "22:00", to: "06:00" } });
    const at = (time: string) => evaluatePolicy(policy, op({ now: new Date(`2025-06-01T${time}Z`) })).allowed;
    assert.equal(at("21:59:59"), false);
    assert.equal(at("22:00:00"), true);
    assert.equal(at("23:59:59"), true);
    assert.equal(at("00:00:00"), true);
    assert.equal(at("05:59:59"), true);
    assert.equal(at("06:00:00"), false);
    assert.equal(at("12:00:00"), false);
  });

  it("reads a window ending at 00:00 as running to the end of the day", () => {
    const policy = parsePolicy({ dailyWindowUtc: { from: "18:00", to: "00:00" } });
    const at = (time: string) => evaluatePolicy(policy, op({ now: new Date(`2025-06-01T${time}Z`) })).allowed;
    assert.equal(at("17:59:00"), false);
    assert.equal(at("23:59:59"), true);
    assert.equal(at("00:00:00"), false);
  });

  it("reports rules no retry can change before those that pass with time", () => {
    const policy = parsePolicy({
      chainIds: [8453],
      blockedSenders: [BOB],
      allowedTargets: [USDC],
      maxChargePerOpFen: 100,
      activeFrom: "2030-01-01T00:00:00Z",
      senderSpendLimit: { fen: 10, periodSeconds: 60 },
      globalSpendLimit: { fen: 10, periodSeconds: 60 },
    });
    const everything = { sender: BOB, callData: execute(EVIL), maxChargeFen: 200n, senderSpentFen: 10n, globalSpentFen: 10n };
    assert.equal(refusal(policy, { ...everything, chainId: 1 }).rule, "chain_not_allowed");
    assert.equal(refusal(policy, everything).rule, "sender_blocked");
    assert.equal(refusal(policy, { ...everything, sender: ALICE }).rule, "target_not_allowed");
    assert.equal(refusal(policy, { ...everything, sender: ALICE, callData: execute(USDC) }).rule, "max_charge_per_op");
    assert.equal(refusal(policy, { ...everything, sender: ALICE, callData: execute(USDC), maxChargeFen: 5n }).rule, "outside_time_window");
    const later = { ...everything, sender: ALICE, callData: execute(USDC), maxChargeFen: 5n, now: new Date("2030-01-01T00:00:00Z") };
    assert.equal(refusal(policy, later).rule, "sender_spend_limit");
    assert.equal(refusal(policy, { ...later, senderSpentFen: 0n }).rule, "global_spend_limit");
    assert.deepEqual(evaluatePolicy(policy, op({ ...later, senderSpentFen: 0n, globalSpentFen: 5n })), { allowed: true });
  });

  it("throws on inputs no decision can rest on: negative amounts, an invalid date", () => {
    assert.throws(() => evaluatePolicy({}, op({ maxChargeFen: -1n })), PolicyInputError);
    assert.throws(() => evaluatePolicy({}, op({ senderSpentFen: -1n })), /senderSpentFen/);
    assert.throws(() => evaluatePolicy({}, op({ globalSpentFen: 1 as unknown as bigint })), /globalSpentFen/);
    assert.throws(() => evaluatePolicy({}, op({ now: new Date("nonsense") })), /valid Date/);
  });
});

describe("spendPeriodStart", () => {
  it("aligns periods to the Unix epoch: a day starts at 00:00 UTC", () => {
    assert.deepEqual(spendPeriodStart(new Date("2025-06-01T13:45:12.345Z"), 86_400), new Date("2025-06-01T00:00:00Z"));
    assert.deepEqual(spendPeriodStart(new Date("2025-06-01T13:45:12.345Z"), 3_600), new Date("2025-06-01T13:00:00Z"));
    // 1970-01-01 was a Thursday, so 7-day periods start on Thursdays
    assert.deepEqual(spendPeriodStart(new Date("2025-06-01T13:45:12Z"), 7 * 86_400), new Date("2025-05-29T00:00:00Z"));
  });

  it("starts a new period exactly on the boundary, and the previous one just before it", () => {
    assert.deepEqual(spendPeriodStart(new Date("2025-06-02T00:00:00Z"), 86_400), new Date("2025-06-02T00:00:00Z"));
    assert.deepEqual(spendPeriodStart(new Date("2025-06-01T23:59:59.999Z"), 86_400), new Date("2025-06-01T00:00:00Z"));
  });

  it("never starts after now, even before 1970", () => {
    assert.deepEqual(spendPeriodStart(new Date("1969-12-31T12:00:00Z"), 86_400), new Date("1969-12-31T00:00:00Z"));
    assert.deepEqual(spendPeriodStart(new Date(0), 86_400), new Date(0));
  });

  it("refuses periods that are not a positive whole number of seconds, and invalid dates", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => spendPeriodStart(new Date(), bad), PolicyInputError, `for ${bad}`);
    assert.throws(() => spendPeriodStart(new Date("nonsense"), 60), PolicyInputError);
  });
});
