/**
 * Sponsorship policies (per API key), pure. A policy is JSON stored with an API key; every field
 * is optional and an absent field imposes nothing. What a present field says is enforced strictly:
 *
 * - Fail closed. An unknown field is a configuration error rather than something ignored (a misspelt
 *   `maxChargePerOp` must not silently lift the limit), an empty allowlist allows nothing, and callData we cannot
 *   read is refused whenever the key restricts targets.
 * - Money is integer fen (bigint). In JSON an amount is a whole number or, beyond 2^53, a decimal string.
 * - Spend limits are fixed windows aligned to the Unix epoch (`spendPeriodStart`): the caller sums what was spent
 *   or held since the window began and passes it in, so this module needs no database.
 *
 * `evaluatePolicy` checks everything that can be decided locally. The approval webhook is I/O, so it lives in
 * `approval.ts` and is asked only after `evaluatePolicy` allows the operation.
 */
import type { Address, Hex } from "viem";
import type { z } from "zod";
import { AppError } from "../platform/errors";
import { type Policy, type PolicyJson, type PolicyRules, type SpendLimit, policySchema } from "../schemas/policy";
import { decodeCallTargets } from "./callData";

export { policySchema };
export type { ApprovalWebhook, Policy, PolicyJson, PolicyRules, SpendLimit } from "../schemas/policy";

export type PolicyRule =
  | "chain_not_allowed"
  | "sender_blocked"
  | "sender_not_allowed"
  | "target_not_allowed"
  | "call_not_decodable"
  | "max_charge_per_op"
  | "sender_spend_limit"
  | "global_spend_limit"
  | "outside_time_window";

export type PolicyDecision = { allowed: true } | { allowed: false; rule: PolicyRule; message: string };

export type EvaluatePolicyParameters = {
  chainId: number;
  sender: Address;
  /** The UserOperation's callData, as the account receives it. */
  callData: Hex;
  /** The most the operation can be charged: the hold. */
  maxChargeFen: bigint;
  now: Date;
  /** What this sender has spent or holds under this key since `spendPeriodStart(now, senderSpendLimit.periodSeconds)`. */
  senderSpentFen: bigint;
  /** What all senders have spent or hold under this key since `spendPeriodStart(now, globalSpendLimit.periodSeconds)`. */
  globalSpentFen: bigint;
};

/** A stored policy that cannot be used. `field` names the first bad field (`senderSpendLimit.fen`, `allowedTargets[2]`). */
export class PolicyConfigError extends AppError {
  override name = "PolicyConfigError";
  readonly field: string;
  constructor(readonly problems: { field: string; message: string }[]) {
    super(400, "invalid_request", `invalid sponsorship policy: ${problems.map((p) => `${p.field} ${p.message}`).join("; ")}`);
    this.field = problems[0]?.field ?? "policy";
  }
}

/** A caller passed something no policy can be judged on (a negative amount, an invalid date): a bug, not a refusal. */
export class PolicyInputError extends Error {
  override name = "PolicyInputError";
}

/** Reads a stored policy, reporting every problem with the field it is in. */
export function parsePolicy(json: unknown): Policy {
  const result = policySchema.safeParse(json);
  if (result.success) return result.data;
  throw new PolicyConfigError(result.error.issues.flatMap(describeIssue));
}

function describeIssue(issue: z.core.$ZodIssue): { field: string; message: string }[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({ field: fieldName([...issue.path, key]), message: "is not a policy field" }));
  }
  return [{ field: fieldName(issue.path), message: issue.message }];
}

function fieldName(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "policy";
  return path.map((key, i) => (typeof key === "number" ? `[${key}]` : `${i === 0 ? "" : "."}${String(key)}`)).join("");
}

/** The stored form of `policy`: amounts as decimal strings, times as ISO strings, defaults written out. */
export function policyToJson(policy: Policy): PolicyJson {
  const json: PolicyJson = rulesToJson(policy);
  if (policy.policies) json.policies = Object.fromEntries(Object.entries(policy.policies).map(([id, rules]) => [id, rulesToJson(rules)]));
  return json;
}

function rulesToJson(policy: PolicyRules): Omit<PolicyJson, "policies"> {
  const json: Omit<PolicyJson, "policies"> = {};
  const limit = (l: SpendLimit) => ({ fen: l.fen.toString(), periodSeconds: l.periodSeconds });
  if (policy.maxChargePerOpFen !== undefined) json.maxChargePerOpFen = policy.maxChargePerOpFen.toString();
  if (policy.senderSpendLimit) json.senderSpendLimit = limit(policy.senderSpendLimit);
  if (policy.globalSpendLimit) json.globalSpendLimit = limit(policy.globalSpendLimit);
  if (policy.allowedSenders) json.allowedSenders = [...policy.allowedSenders];
  if (policy.blockedSenders) json.blockedSenders = [...policy.blockedSenders];
  if (policy.allowedTargets) json.allowedTargets = [...policy.allowedTargets];
  if (policy.activeFrom) json.activeFrom = policy.activeFrom.toISOString();
  if (policy.activeUntil) json.activeUntil = policy.activeUntil.toISOString();
  if (policy.dailyWindowUtc) json.dailyWindowUtc = { ...policy.dailyWindowUtc };
  if (policy.approvalWebhook) json.approvalWebhook = { ...policy.approvalWebhook };
  if (policy.chainIds) json.chainIds = [...policy.chainIds];
  if (policy.allowedOrigins) json.allowedOrigins = [...policy.allowedOrigins];
  if (policy.senderProof) {
    json.senderProof = {
      ...(policy.senderProof.signers ? { signers: [...policy.senderProof.signers] } : {}),
      ...(policy.senderProof.account !== undefined ? { account: policy.senderProof.account } : {}),
      maxValiditySeconds: policy.senderProof.maxValiditySeconds,
    };
  }
  return json;
}

/**
 * Whether `policy` lets the key sponsor this operation. Rules that no retry can change (chain, sender, targets,
 * size of the operation) are reported before those that pass with time (time window, spend limits), so a refused
 * caller learns first what would make waiting pointless.
 */
export function evaluatePolicy(policy: PolicyRules, op: EvaluatePolicyParameters): PolicyDecision {
  for (const [name, fen] of [["maxChargeFen", op.maxChargeFen], ["senderSpentFen", op.senderSpentFen], ["globalSpentFen", op.globalSpentFen]] as const) {
    if (typeof fen !== "bigint" || fen < 0n) throw new PolicyInputError(`${name} must be a non-negative bigint of fen`);
  }
  if (!(op.now instanceof Date) || Number.isNaN(op.now.getTime())) throw new PolicyInputError("now must be a valid Date");

  if (policy.chainIds && !policy.chainIds.includes(op.chainId)) {
    const allowed = policy.chainIds.length ? `only chain${policy.chainIds.length > 1 ? "s" : ""} ${policy.chainIds.join(", ")}` : "no chain";
    return refuse("chain_not_allowed", `the operation is for chain ${op.chainId}; this key sponsors ${allowed}`);
  }

  const sender = String(op.sender).toLowerCase() as Address;
  if (policy.blockedSenders?.includes(sender)) {
    return refuse("sender_blocked", `sender ${sender} is blocked for this key`);
  }
  if (policy.allowedSenders && !policy.allowedSenders.includes(sender)) {
    return refuse("sender_not_allowed", `sender ${sender} is not on this key's sender allowlist`);
  }

  if (policy.allowedTargets) {
    const call = decodeCallTargets(op.callData);
    if (call.kind === "unknown") {
      return refuse(
        "call_not_decodable",
        `this key sponsors only calls to allowlisted contracts, and the operation's callData (selector ${call.selector}) is not an account call this server decodes (SimpleAccount, Simple7702Account, LightAccount and thirdweb execute/executeBatch; Safe executeUserOp as a call or through MultiSendCallOnly; ERC-7579 execute, single or batch — never a delegatecall), so its targets cannot be checked`,
      );
    }
    const allowed = policy.allowedTargets;
    const forbidden = call.targets.find((target) => !allowed.includes(target));
    if (forbidden) return refuse("target_not_allowed", `the operation calls ${forbidden}, which is not on this key's target allowlist`);
  }

  if (policy.maxChargePerOpFen !== undefined && op.maxChargeFen > policy.maxChargePerOpFen) {
    return refuse("max_charge_per_op", `the operation may cost up to ${op.maxChargeFen} fen; this key allows at most ${policy.maxChargePerOpFen} fen per operation`);
  }

  const outside = timeWindowProblem(policy, op.now);
  if (outside) return refuse("outside_time_window", outside);

  const senderLimit = policy.senderSpendLimit;
  if (senderLimit && op.senderSpentFen + op.maxChargeFen > senderLimit.fen) {
    const per = describePeriod(senderLimit.periodSeconds);
    return refuse(
      "sender_spend_limit",
      `the operation may cost up to ${op.maxChargeFen} fen and this sender has already spent ${op.senderSpentFen} fen in the current period; this key allows a sender at most ${senderLimit.fen} fen per ${per}`,
    );
  }
  const globalLimit = policy.globalSpendLimit;
  if (globalLimit && op.globalSpentFen + op.maxChargeFen > globalLimit.fen) {
    const per = describePeriod(globalLimit.periodSeconds);
    return refuse(
      "global_spend_limit",
      `the operation may cost up to ${op.maxChargeFen} fen and this key has already spent ${op.globalSpentFen} fen in the current period; it allows at most ${globalLimit.fen} fen per ${per} across all senders`,
    );
  }

  return { allowed: true };
}

/**
 * When the spend period containing `now` began. Periods are fixed windows of `periodSeconds` counted from the Unix
 * epoch (a day runs 00:00–24:00 UTC), so every server agrees on them without storing anything; the price is that
 * a sender can spend a full limit just before a boundary and another just after.
 */
export function spendPeriodStart(now: Date, periodSeconds: number): Date {
  if (!Number.isSafeInteger(periodSeconds) || periodSeconds <= 0) throw new PolicyInputError(`periodSeconds must be a positive whole number: got ${periodSeconds}`);
  const t = now.getTime();
  if (Number.isNaN(t)) throw new PolicyInputError("now must be a valid Date");
  const period = periodSeconds * 1000;
  // % keeps the sign of t: shift negatives (before 1970) so the start is never after now
  return new Date(t - (((t % period) + period) % period));
}

function refuse(rule: PolicyRule, message: string): PolicyDecision {
  return { allowed: false, rule, message };
}

function timeWindowProblem(policy: PolicyRules, now: Date): string | undefined {
  if (policy.activeFrom && now < policy.activeFrom) return `this key sponsors operations from ${policy.activeFrom.toISOString()}; it is ${now.toISOString()}`;
  if (policy.activeUntil && now >= policy.activeUntil) return `this key sponsored operations until ${policy.activeUntil.toISOString()}; it is ${now.toISOString()}`;
  const window = policy.dailyWindowUtc;
  if (window) {
    const minute = now.getUTCHours() * 60 + now.getUTCMinutes();
    const from = minutesOf(window.from);
    const to = minutesOf(window.to);
    const inside = from < to ? from <= minute && minute < to : minute >= from || minute < to;
    if (!inside) return `this key sponsors operations between ${window.from} and ${window.to} UTC; it is ${hhmm(minute)} UTC`;
  }
  return undefined;
}

function minutesOf(time: string): number {
  const [h, m] = time.split(":").map(Number);
  return h! * 60 + m!;
}

function hhmm(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
}

/** "day", "3 hours", "90 seconds": the largest unit the period is a whole number of. */
function describePeriod(seconds: number): string {
  for (const [unit, size] of [["day", 86_400], ["hour", 3_600], ["minute", 60]] as const) {
    if (seconds % size === 0) return seconds === size ? unit : `${seconds / size} ${unit}s`;
  }
  return seconds === 1 ? "second" : `${seconds} seconds`;
}
