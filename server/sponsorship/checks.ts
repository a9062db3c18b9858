/**
 * The checks a UserOperation must pass before it is sponsored, each on its own: which chain and entry point, the
 * rate limits, the gas caps (preVerificationGas against what the operation needs), the fee against the chain's,
 * the nonce, the deposit, the key's policy. `service.ts` runs them in order; each throws a SponsorError that names
 * the problem.
 */
import type { Address } from "viem";
import type { ChainRuntime, EntryPointRuntime } from "../chain/chainRuntime";
import { clientKey } from "../http/clientAddress";
import type { RateLimiter } from "../platform/rateLimit";
import type { DepositMonitor } from "./depositMonitor";
import { SponsorError, invalidParams } from "./errors";
import { type PolicyRules, evaluatePolicy } from "./policy";
import { preVerificationGasCeiling } from "./preVerificationGas";
import type { Caller, SponsorshipParams } from "./service";
import { type UserOperationInput, parseChainId, parseEntryPoint } from "./userOperation";

/** Where the deposit check reads a chain's deposit health, and asks for a fresh read. */
export type DepositHealthSource = Pick<DepositMonitor, "health" | "check">;

/** Paymaster gas limits beyond this many times the configured ones are refused: they only inflate the hold. */
const PAYMASTER_GAS_FACTOR = 4n;

/** The tip ceiling: a percentage of the chain's current priority fee, never below the configured floor. */
function tipCeiling(chain: ChainRuntime, tip: bigint): bigint {
  const scaled = (tip * BigInt(chain.config.maxPriorityFeePercent)) / 100n;
  return scaled > chain.config.priorityFeeFloorWei ? scaled : chain.config.priorityFeeFloorWei;
}

function above(chain: ChainRuntime, op: UserOperationInput, gasPrice: bigint, tip: bigint): boolean {
  return op.maxFeePerGas > (gasPrice * BigInt(chain.config.maxFeePercent)) / 100n || op.maxPriorityFeePerGas > tipCeiling(chain, tip);
}

/** Nonce sequence bits: the upper 192 bits of a nonce are its key (ERC-4337 semi-abstracted nonces). */
const SEQUENCE_MASK = (1n << 64n) - 1n;

/**
 * A request a browser sent (it carries an Origin) must come from an origin the selected policy allows. Requests
 * without one (a backend) are not judged: Origin proves nothing outside a browser.
 */
export function checkOrigin(policy: PolicyRules, caller: Caller): void {
  const allowed = policy.allowedOrigins;
  const origin = caller.origin?.toLowerCase();
  if (!allowed || origin === undefined || allowed.includes("*") || allowed.includes(origin)) return;
  throw new SponsorError("origin_not_allowed", `this API key may not be used from ${origin.slice(0, 100)}; its policy allows ${allowed.length ? allowed.join(", ") : "no browser origin"}`, {
    origin: origin.slice(0, 100),
  });
}

/** What a request is sponsored on: a chain and one of the EntryPoints it serves. */
export type SponsorTarget = { chain: ChainRuntime; entryPoint: EntryPointRuntime };

/** The chain and entry point the request names, when this server sponsors them. */
export function resolveTarget(chains: ReadonlyMap<number, ChainRuntime>, params: SponsorshipParams): SponsorTarget {
  const chainId = parseChainId(params.chainId);
  const chain = chains.get(chainId);
  if (!chain) {
    throw new SponsorError("unsupported_chain", `chain ${chainId} is not sponsored here; supported: ${[...chains.keys()].join(", ") || "none"}`, {
      supportedChainIds: [...chains.keys()],
    });
  }
  const address = parseEntryPoint(params.entryPoint);
  const entryPoint = chain.entryPoint(address);
  if (!entryPoint) {
    const supported = chain.entryPoints.map((ep) => `${ep.address} (v${ep.version})`).join(", ");
    throw new SponsorError("unsupported_entry_point", `entry point ${address} is not supported on chain ${chainId}; use ${supported}`, {
      supportedEntryPoints: chain.entryPoints.map((ep) => ep.address),
    });
  }
  return { chain, entryPoint };
}

/** The paymaster gas limits an operation is signed with. */
export type PaymasterGas = { verification: bigint; postOp: bigint };

/** The paymaster gas limits we sign: the wallet's (from our stub, or its estimate) when sane, else ours. */
export function paymasterGas(chain: ChainRuntime, raw: unknown): PaymasterGas {
  const op = raw as Record<string, unknown>;
  const configured = chain.config.paymasterVerificationGasLimit;
  let verification = configured;
  const sent = op.paymasterVerificationGasLimit;
  if (typeof sent === "string" && /^0x[0-9a-fA-F]{1,32}$/.test(sent) && BigInt(sent) > 0n) {
    verification = BigInt(sent);
    const cap = configured * PAYMASTER_GAS_FACTOR;
    if (verification > cap) {
      throw new SponsorError("gas_cap_exceeded", `userOp.paymasterVerificationGasLimit ${verification} is above the cap of ${cap}`, { field: "paymasterVerificationGasLimit", cap: cap.toString() });
    }
  }
  return { verification, postOp: chain.config.paymasterPostOpGasLimit };
}

/** Per IP, per API key, and per (sender, client): strangers exhausting a sender's limit must not stop its owner. */
export async function checkRateLimits(rateLimiter: RateLimiter | undefined, caller: Caller, sender: Address): Promise<void> {
  // the per-sender limit counts per (sender, client): strangers exhausting it must not stop the sender's owner
  const client = clientKey(caller.ip);
  const refusal = await rateLimiter?.consume({ ip: client, apiKey: caller.apiKey.id, sender: `${sender.toLowerCase()}|${client ?? "-"}` });
  if (refusal) {
    throw new SponsorError("rate_limited", `too many requests for this ${refusal.scope === "apiKey" ? "API key" : refusal.scope} (at most ${refusal.limit} a minute); retry in ${refusal.retryAfterSeconds} s`, {
      scope: refusal.scope,
      retryAfterSeconds: refusal.retryAfterSeconds,
    });
  }
}

/** The policy that judges the request (the key's default or a named one), with what the sender and the key have spent under it in its periods. */
export function checkPolicy(policy: PolicyRules, chain: ChainRuntime, op: UserOperationInput, maxChargeFen: bigint, spent: { sender: bigint; global: bigint }, now: Date): void {
  const decision = evaluatePolicy(policy, {
    chainId: chain.config.chainId,
    sender: op.sender,
    callData: op.callData,
    maxChargeFen,
    now,
    senderSpentFen: spent.sender,
    globalSpentFen: spent.global,
  });
  if (!decision.allowed) throw new SponsorError("policy_rejected", decision.message, { rule: decision.rule });
}

/** The chain's gas caps, and preVerificationGas against what the operation needs. */
export function checkGas({ chain, entryPoint }: SponsorTarget, op: UserOperationInput): void {
  const caps = chain.config.gasCaps;
  for (const field of ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas"] as const) {
    if (op[field] > caps[field]) {
      throw new SponsorError("gas_cap_exceeded", `userOp.${field} ${op[field]} is above this chain's cap of ${caps[field]}`, { field, cap: caps[field].toString() });
    }
  }
  if (op.maxPriorityFeePerGas > op.maxFeePerGas) throw invalidParams("userOp.maxPriorityFeePerGas is above userOp.maxFeePerGas", { field: "maxPriorityFeePerGas" });
  // preVerificationGas is paid to the bundler whether used or not: only what the operation needs, and a margin
  const pvgCeiling = preVerificationGasCeiling(op, entryPoint, { percent: chain.config.preVerificationGasPercent, allowance: chain.config.preVerificationGasAllowance });
  if (op.preVerificationGas > pvgCeiling) {
    throw new SponsorError(
      "gas_cap_exceeded",
      `userOp.preVerificationGas ${op.preVerificationGas} is above what this operation needs (at most ${pvgCeiling} on this chain: ${chain.config.preVerificationGasPercent}% of its calldata and overhead${chain.config.preVerificationGasAllowance > 0n ? ` plus ${chain.config.preVerificationGasAllowance}` : ""})`,
      { field: "preVerificationGas", cap: pvgCeiling.toString() },
    );
  }
}

/** The fee against the chain's current one: max fee and priority fee, each within its percentage. */
export async function checkFee(chain: ChainRuntime, op: UserOperationInput): Promise<void> {
  const read = async (fresherThanMs?: number) => {
    try {
      return await Promise.all([chain.gasPrice({ fresherThanMs }), chain.priorityFee({ fresherThanMs })]);
    } catch {
      throw new SponsorError("unavailable", `chain ${chain.config.chainId}'s RPC does not answer; cannot check the fee`);
    }
  };
  let [current, tip] = await read();
  // fees move from block to block: refuse only on figures read just now, not on the cached ones (one RPC call,
  // shared by concurrent refusals, on the refusal path only)
  if (above(chain, op, current, tip)) [current, tip] = await read(0);
  const ceiling = (current * BigInt(chain.config.maxFeePercent)) / 100n;
  if (op.maxFeePerGas > ceiling) {
    throw new SponsorError(
      "fee_too_high",
      `userOp.maxFeePerGas ${op.maxFeePerGas} wei is above ${chain.config.maxFeePercent}% of the chain's current gas price (${current} wei)`,
      { field: "maxFeePerGas", maxFeePerGas: op.maxFeePerGas.toString(), currentGasPrice: current.toString(), ceiling: ceiling.toString() },
    );
  }
  // the tip above what the chain asks is the bundler's profit, paid from the deposit: a self-bundling sender's lever
  const tips = tipCeiling(chain, tip);
  if (op.maxPriorityFeePerGas > tips) {
    throw new SponsorError(
      "fee_too_high",
      `userOp.maxPriorityFeePerGas ${op.maxPriorityFeePerGas} wei is above ${chain.config.maxPriorityFeePercent}% of the chain's current priority fee (${tip} wei; at most ${tips} wei)`,
      { field: "maxPriorityFeePerGas", maxPriorityFeePerGas: op.maxPriorityFeePerGas.toString(), currentPriorityFee: tip.toString(), ceiling: tips.toString() },
    );
  }
}

/** Only the sender's next nonce for its key can be sponsored: a used one can never land, a later one not yet. */
export async function checkNonce({ chain, entryPoint }: SponsorTarget, op: UserOperationInput): Promise<void> {
  let current: bigint;
  try {
    current = await entryPoint.currentNonce(op.sender, op.nonce);
  } catch {
    throw new SponsorError("unavailable", `chain ${chain.config.chainId}'s RPC does not answer; cannot read the sender's nonce`);
  }
  if (op.nonce === current) return;
  const key = op.nonce >> 64n;
  const data = { nonce: `0x${op.nonce.toString(16)}`, currentNonce: `0x${current.toString(16)}`, key: `0x${key.toString(16)}` };
  if (op.nonce < current) {
    throw new SponsorError("nonce_used", `userOp.nonce sequence ${op.nonce & SEQUENCE_MASK} of key 0x${key.toString(16)} is already used; the sender's next nonce for that key is ${current & SEQUENCE_MASK}`, data);
  }
  throw new SponsorError(
    "nonce_not_next",
    `userOp.nonce sequence ${op.nonce & SEQUENCE_MASK} of key 0x${key.toString(16)} is ahead of the sender's next one (${current & SEQUENCE_MASK}); sponsor operations in order, or use another nonce key for parallel ones`,
    data,
  );
}

/** Refuses while the deposit is low; an unreadable one (the RPC was down) is read again first. */
export async function checkDeposit({ chain, entryPoint }: SponsorTarget, deposits: DepositHealthSource, recheckTimeoutMs = 2_000): Promise<void> {
  const id = chain.config.chainId;
  let deposit = deposits.health(id, entryPoint.address);
  if (!deposit.healthy && deposit.unreadable) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([deposits.check(chain), new Promise<void>((r) => (timer = setTimeout(r, recheckTimeoutMs)))]);
    clearTimeout(timer);
    deposit = deposits.health(id, entryPoint.address);
  }
  if (deposit.healthy) return;
  if (deposit.unreadable) {
    throw new SponsorError("unavailable", `sponsorship on chain ${chain.config.chainId} (EntryPoint v${entryPoint.version}) is paused: ${deposit.reason ?? "the paymaster's deposit cannot be read"}`);
  }
  throw new SponsorError("deposit_low", `sponsorship on chain ${chain.config.chainId} (EntryPoint v${entryPoint.version}) is paused: ${deposit.reason ?? "the paymaster's deposit is too low"}`, {
    depositWei: deposit.depositWei?.toString(),
    outstandingWei: deposit.outstandingWei?.toString(),
  });
}
