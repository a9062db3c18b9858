/**
 * Sponsorship: the checks a UserOperation must pass, the hold, and the signature, in that order (SPEC §5.2).
 * Both front doors — ERC-7677 JSON-RPC (`rpc.ts`) and REST (`routes.ts`) — call this one service, so they
 * accept and refuse exactly the same operations.
 *
 *   stub:  chain, entry point, userOp shape, rate limits, proof of control (if the key's policy asks for it), the
 *          policy's static rules → stub paymasterData
 *   final: all of the above, gas caps (preVerificationGas against what the operation needs), fee sanity (max fee
 *          and priority fee against the chain's), the nonce is the sender's next one for its key, deposit health,
 *          the policy with spend, the approval webhook, then sign, commit the hold (group-committed), and only
 *          then return the signature
 */
import type { Address, Hex } from "viem";
import type { ChainRuntime } from "../chain/chainRuntime";
import type { Database } from "../platform/db/database";
import { clientKey } from "../http/clientAddress";
import type { Metrics } from "../platform/metrics";
import type { RateLimiter } from "../platform/rateLimit";
import type { ApiKey } from "./apiKeys";
import { askApproval } from "./approval";
import { SponsorError, invalidParams } from "./errors";
import { HoldWindowConflict, type HoldReserver, spentSince } from "./holds";
import { paymasterHashBuffer, userOperationHashV07 } from "./signing/hashing";
import { encodePaymasterData, encodeStubPaymasterData } from "./signing/paymasterData";
import { evaluatePolicy, spendPeriodStart } from "./policy";
import { preVerificationGasCeiling } from "./preVerificationGas";
import { type Quote, holdFen, maxGasCostWei } from "./pricing";
import { type SenderProofVerifier, createSenderProofVerifier } from "./senderProof";
import type { PaymasterSigner } from "./signing/signer";
import { type UserOperationInput, parseChainId, parseEntryPoint, parseUserOperation } from "./userOperation";

export type SponsorshipParams = {
  userOp: unknown;
  entryPoint: unknown;
  chainId: unknown;
  context?: unknown;
};

export type Caller = { apiKey: ApiKey; ip?: string };

/** ERC-7677's result for EntryPoint v0.7. */
export type PaymasterFields = {
  paymaster: Address;
  paymasterData: Hex;
  paymasterVerificationGasLimit: bigint;
  paymasterPostOpGasLimit: bigint;
  sponsor: { name: string };
  isFinal: false;
};

export type Sponsorship = PaymasterFields & {
  chainId: number;
  userOpHash: Hex;
  holdId: string;
  validUntil: number;
  validAfter: number;
  quote: Quote & { maxChargeFen: bigint; heldFen: bigint; availableFen: bigint };
};

export type SponsorServiceOptions = {
  db: Database;
  chains: ReadonlyMap<number, ChainRuntime>;
  signer: PaymasterSigner;
  holds: HoldReserver;
  rateLimiter?: RateLimiter;
  metrics?: Metrics;
  sponsorName: string;
  validSeconds: number;
  maxHoldsPerSender: number;
  /** Open holds one API key may take on one sender. */
  maxHoldsPerSenderPerApiKey?: number;
  /** Open holds one client IP may take on one sender. */
  maxHoldsPerSenderPerIp?: number;
  /**
   * Re-reads a chain's deposit now (the deposit monitor's shared check): a request that finds the deposit
   * unreadable asks once, so sponsorship resumes as soon as the RPC answers again.
   */
  recheckDeposit?: (chain: ChainRuntime) => Promise<void>;
  /** How long a request waits for that re-check. */
  recheckTimeoutMs?: number;
  /** Replaceable clock, for tests of validity windows. */
  now?: () => Date;
};

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

/** A replacement whose hold's window has less than this left is refused (nonce_held) rather than signed. */
const MIN_USEFUL_WINDOW_MS = 10_000;

/** Nonce sequence bits: the upper 192 bits of a nonce are its key (ERC-4337 semi-abstracted nonces). */
const SEQUENCE_MASK = (1n << 64n) - 1n;

export function createSponsorService(options: SponsorServiceOptions) {
  const now = options.now ?? (() => new Date());
  const proofVerifiers = new Map<number, SenderProofVerifier>();
  const proofVerifier = (chain: ChainRuntime) => {
    let verifier = proofVerifiers.get(chain.config.chainId);
    if (!verifier) proofVerifiers.set(chain.config.chainId, (verifier = createSenderProofVerifier(chain.requestClient)));
    return verifier;
  };

  function chainFor(params: SponsorshipParams): ChainRuntime {
    const chainId = parseChainId(params.chainId);
    const chain = options.chains.get(chainId);
    if (!chain) {
      throw new SponsorError("unsupported_chain", `chain ${chainId} is not sponsored here; supported: ${[...options.chains.keys()].join(", ") || "none"}`, {
        supportedChainIds: [...options.chains.keys()],
      });
    }
    const entryPoint = parseEntryPoint(params.entryPoint);
    if (entryPoint !== chain.config.entryPoint) {
      throw new SponsorError("unsupported_entry_point", `entry point ${entryPoint} is not supported on chain ${chainId}; use ${chain.config.entryPoint} (v0.7)`, {
        supportedEntryPoints: [chain.config.entryPoint],
      });
    }
    return chain;
  }

  /** The paymaster gas limits we sign: the wallet's (from our stub, or its estimate) when sane, else ours. */
  function paymasterGas(chain: ChainRuntime, raw: unknown): { verification: bigint; postOp: bigint } {
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

  async function checkRateLimits(caller: Caller, sender: Address): Promise<void> {
    // the per-sender limit counts per (sender, client): strangers exhausting it must not stop the sender's owner
    const client = clientKey(caller.ip);
    const refusal = await options.rateLimiter?.consume({ ip: client, apiKey: caller.apiKey.id, sender: `${sender.toLowerCase()}|${client ?? "-"}` });
    if (refusal) {
      throw new SponsorError("rate_limited", `too many requests for this ${refusal.scope === "apiKey" ? "API key" : refusal.scope} (at most ${refusal.limit} a minute); retry in ${refusal.retryAfterSeconds} s`, {
        scope: refusal.scope,
        retryAfterSeconds: refusal.retryAfterSeconds,
      });
    }
  }

  function policyCheck(caller: Caller, chain: ChainRuntime, op: UserOperationInput, maxChargeFen: bigint, spent: { sender: bigint; global: bigint }): void {
    const decision = evaluatePolicy(caller.apiKey.policy, {
      chainId: chain.config.chainId,
      sender: op.sender,
      callData: op.callData,
      maxChargeFen,
      now: now(),
      senderSpentFen: spent.sender,
      globalSpentFen: spent.global,
    });
    if (!decision.allowed) throw new SponsorError("policy_rejected", decision.message, { rule: decision.rule });
  }

  function checkGas(chain: ChainRuntime, op: UserOperationInput): void {
    const caps = chain.config.gasCaps;
    for (const field of ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas"] as const) {
      if (op[field] > caps[field]) {
        throw new SponsorError("gas_cap_exceeded", `userOp.${field} ${op[field]} is above this chain's cap of ${caps[field]}`, { field, cap: caps[field].toString() });
      }
    }
    if (op.maxPriorityFeePerGas > op.maxFeePerGas) throw invalidParams("userOp.maxPriorityFeePerGas is above userOp.maxFeePerGas", { field: "maxPriorityFeePerGas" });
    // preVerificationGas is paid to the bundler whether used or not: only what the operation needs, and a margin
    const pvgCeiling = preVerificationGasCeiling(op, chain.config.paymaster, { percent: chain.config.preVerificationGasPercent, allowance: chain.config.preVerificationGasAllowance });
    if (op.preVerificationGas > pvgCeiling) {
      throw new SponsorError(
        "gas_cap_exceeded",
        `userOp.preVerificationGas ${op.preVerificationGas} is above what this operation needs (at most ${pvgCeiling} on this chain: ${chain.config.preVerificationGasPercent}% of its calldata and overhead${chain.config.preVerificationGasAllowance > 0n ? ` plus ${chain.config.preVerificationGasAllowance}` : ""})`,
        { field: "preVerificationGas", cap: pvgCeiling.toString() },
      );
    }
  }

  async function checkFee(chain: ChainRuntime, op: UserOperationInput): Promise<void> {
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
  async function checkNonce(chain: ChainRuntime, op: UserOperationInput): Promise<void> {
    let current: bigint;
    try {
      current = await chain.currentNonce(op.sender, op.nonce);
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

  /** When the key's policy asks for it, the caller proves control of the sender (server/sponsorship/senderProof.ts). */
  async function checkSenderProof(caller: Caller, chain: ChainRuntime, op: UserOperationInput, context: unknown): Promise<void> {
    const policy = caller.apiKey.policy.senderProof;
    if (!policy) return;
    await proofVerifier(chain)({ policy, chainId: chain.config.chainId, paymaster: chain.config.paymaster, sender: op.sender, context, now: now() });
  }

  /** Refuses while the deposit is low; an unreadable one (the RPC was down) is read again first. */
  async function checkDeposit(chain: ChainRuntime): Promise<void> {
    if (!chain.deposit.healthy && chain.deposit.unreadable && options.recheckDeposit) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([options.recheckDeposit(chain), new Promise<void>((r) => (timer = setTimeout(r, options.recheckTimeoutMs ?? 2_000)))]);
      clearTimeout(timer);
    }
    if (chain.deposit.healthy) return;
    if (chain.deposit.unreadable) {
      throw new SponsorError("unavailable", `sponsorship on chain ${chain.config.chainId} is paused: ${chain.deposit.reason ?? "the paymaster's deposit cannot be read"}`);
    }
    throw new SponsorError("deposit_low", `sponsorship on chain ${chain.config.chainId} is paused: ${chain.deposit.reason ?? "the paymaster's deposit is too low"}`, {
      depositWei: chain.deposit.depositWei?.toString(),
      outstandingWei: chain.deposit.outstandingWei?.toString(),
    });
  }

  async function spendSoFar(caller: Caller, op: UserOperationInput): Promise<{ sender: bigint; global: bigint }> {
    const policy = caller.apiKey.policy;
    const at = now();
    const [sender, global] = await Promise.all([
      policy.senderSpendLimit
        ? spentSince(options.db, { apiKeyId: caller.apiKey.id, account: op.sender, since: spendPeriodStart(at, policy.senderSpendLimit.periodSeconds) })
        : 0n,
      policy.globalSpendLimit ? spentSince(options.db, { apiKeyId: caller.apiKey.id, since: spendPeriodStart(at, policy.globalSpendLimit.periodSeconds) }) : 0n,
    ]);
    return { sender, global };
  }

  function fields(chain: ChainRuntime, paymasterData: Hex, gas: { verification: bigint; postOp: bigint }): PaymasterFields {
    return {
      paymaster: chain.config.paymaster,
      paymasterData,
      paymasterVerificationGasLimit: gas.verification,
      paymasterPostOpGasLimit: gas.postOp,
      sponsor: { name: options.sponsorName },
      isFinal: false,
    };
  }

  function count(chain: number | undefined, method: string, outcome: string): void {
    // only configured chains become label values: a caller must not be able to mint metric series
    const label = chain !== undefined && options.chains.has(chain) ? String(chain) : "unsupported";
    options.metrics?.sponsorships.inc({ chain: label, method, outcome });
  }

  async function measured<T>(method: string, params: SponsorshipParams, run: () => Promise<T & { chainId?: number }>): Promise<T> {
    try {
      const result = await run();
      count(result.chainId, method, method === "stub" ? "stub" : "signed");
      return result;
    } catch (error) {
      const chain = (() => {
        try {
          return parseChainId(params.chainId);
        } catch {
          return undefined;
        }
      })();
      count(chain, method, error instanceof SponsorError ? error.reason : "error");
      throw error;
    }
  }

  return {
    /** ERC-7677 pm_getPaymasterStubData: data of the final length for gas estimation; reserves nothing. */
    getStubData(params: SponsorshipParams, caller: Caller): Promise<PaymasterFields> {
      return measured("stub", params, async () => {
        const chain = chainFor(params);
        const op = parseUserOperation(params.userOp, { requireGas: false });
        await checkRateLimits(caller, op.sender);
        await checkSenderProof(caller, chain, op, params.context);
        policyCheck(caller, chain, op, 0n, { sender: 0n, global: 0n });
        const validUntil = Math.floor(now().getTime() / 1000) + options.validSeconds;
        return { ...fields(chain, encodeStubPaymasterData({ validUntil, validAfter: 0 }), paymasterGas(chain, params.userOp)), chainId: chain.config.chainId };
      });
    },

    /** ERC-7677 pm_getPaymasterData and POST /v1/sponsorships: checks, holds the worst case, signs. */
    sponsor(params: SponsorshipParams, caller: Caller): Promise<Sponsorship> {
      return measured("final", params, async () => {
        const chain = chainFor(params);
        const parsed = parseUserOperation(params.userOp, { requireGas: true });
        const gas = paymasterGas(chain, params.userOp);
        const op: UserOperationInput = { ...parsed, paymasterVerificationGasLimit: gas.verification, paymasterPostOpGasLimit: gas.postOp };
        await checkRateLimits(caller, op.sender);
        checkGas(chain, op);
        await checkSenderProof(caller, chain, op, params.context);
        await Promise.all([checkFee(chain, op), checkNonce(chain, op)]);
        await checkDeposit(chain);
        const quote = await chain.quote();
        const maxCostWei = maxGasCostWei(op);
        // a free operation (a zero fee) still holds 1 fen, so every signature has a hold behind it
        const maxChargeFen = holdFen(op, quote) || 1n;
        policyCheck(caller, chain, op, maxChargeFen, await spendSoFar(caller, op));
        const webhook = caller.apiKey.policy.approvalWebhook;
        if (webhook) {
          const answer = await askApproval(webhook, {
            chainId: chain.config.chainId,
            sender: op.sender,
            nonce: op.nonce,
            callData: op.callData,
            maxChargeFen,
            apiKeyId: caller.apiKey.id,
          });
          if (!answer.approved) throw new SponsorError("policy_rejected", answer.reason ?? "the approval webhook refused the operation", { rule: "approval_webhook" });
        }

        const validAfter = 0;
        const { chainId, paymaster, entryPoint } = chain.config;
        const account = op.sender.toLowerCase();
        // A replacement is signed with its hold's validUntil: asking again never stretches how long quota is held.
        // Optimistically: sign a fresh window; if an open hold for this nonce keeps an earlier one, the reservation
        // answers HoldWindowConflict and the operation is signed again with that window (only replacements pay).
        let validUntilDate = new Date(now().getTime() + options.validSeconds * 1000);
        for (let attempt = 1; ; attempt++) {
          const validUntil = Math.floor(validUntilDate.getTime() / 1000);
          const hash = paymasterHashBuffer({ userOperation: op, chainId, paymaster, entryPoint, validUntil, validAfter });
          const signature = await options.signer.signHash(`0x${hash.toString("hex")}`);
          const paymasterData = encodePaymasterData({ validUntil, validAfter, signature });
          const userOpHash = userOperationHashV07({ userOperation: op, paymaster, paymasterData, chainId, entryPoint });
          // the hold commits before the signature leaves: a crash after this line can only over-reserve
          let hold;
          try {
            hold = await options.holds.reserve({
              chainId,
              account,
              nonce: op.nonce,
              amountFen: maxChargeFen,
              maxCostWei,
              validUntil: new Date(validUntil * 1000),
              apiKeyId: caller.apiKey.id,
              clientIp: clientKey(caller.ip),
              userOpHash,
              quote,
              maxHolds: options.maxHoldsPerSender,
              maxHoldsPerApiKey: options.maxHoldsPerSenderPerApiKey,
              maxHoldsPerIp: options.maxHoldsPerSenderPerIp,
            });
          } catch (error) {
            if (!(error instanceof HoldWindowConflict)) throw error;
            // an open hold for this nonce keeps an earlier window: sign again with it — unless too little of it is
            // left to be of use, which waiting for the hold's release (or another nonce key) cures
            const left = error.validUntil.getTime() - now().getTime();
            if (left < MIN_USEFUL_WINDOW_MS) {
              throw new SponsorError(
                "nonce_held",
                `the sponsorship already signed for this nonce is valid until ${error.validUntil.toISOString()} and is never extended; it is released once the chain is past that time — meanwhile use another nonce key`,
                { validUntil: Math.floor(error.validUntil.getTime() / 1000) },
              );
            }
            if (attempt >= 3) throw new SponsorError("unavailable", "requests for this nonce are racing each other; retry");
            validUntilDate = error.validUntil;
            continue;
          }
          if (hold.addedFen > 0n) options.metrics?.heldFen.inc({ chain: String(chainId) }, Number(hold.addedFen));
          return {
            ...fields(chain, paymasterData, gas),
            chainId,
            userOpHash,
            holdId: hold.holdId,
            validUntil,
            validAfter,
            quote: { ...quote, maxChargeFen, heldFen: hold.heldFen, availableFen: hold.availableFen },
          };
        }
      });
    },
  };
}

export type SponsorService = ReturnType<typeof createSponsorService>;
