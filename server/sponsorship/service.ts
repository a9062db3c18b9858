/**
 * Sponsorship: the checks a UserOperation must pass, the hold, and the signature, in that order (docs/architecture.md, "A sponsorship").
 * Both front doors — ERC-7677 JSON-RPC (`rpc.ts`) and REST (`routes.ts`) — call this one service, so they
 * accept and refuse exactly the same operations.
 *
 * Each request is judged by one policy: the key's default, or the named one its ERC-7677 context selects
 * (context.ts).
 *
 *   stub:  the policy, origin, chain, entry point, userOp shape, rate limits, proof of control (if the policy asks
 *          for it), the fee (when the userOp carries one), the nonce, deposit health, the policy with spend, and
 *          whether any hold could be taken (quota, holds per sender) → stub paymasterData. What the final call
 *          would certainly refuse is refused here (ERC-7677), so a wallet learns before estimating; only what
 *          needs the gas limits (gas caps, the worst-case charge) and the approval webhook wait for the final call.
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
import { type DepositHealthSource, type PaymasterGas, checkDeposit, checkOrigin, checkFee, checkGas, checkNonce, checkPolicy, checkRateLimits, paymasterGas, resolveChain } from "./checks";
import { SponsorError } from "./errors";
import { type SelectedPolicy, selectPolicy } from "./context";
import { HoldWindowConflict, type HoldReserver, previewHoldRefusal, spentInPolicyPeriods } from "./holds";
import { type Quote, holdFen, maxGasCostWei } from "./pricing";
import { type SenderProofVerifier, createSenderProofVerifier } from "./senderProof";
import { paymasterHashBuffer, userOperationHashV07 } from "./signing/hashing";
import { encodePaymasterData, encodeStubPaymasterData } from "./signing/paymasterData";
import type { PaymasterSigner } from "./signing/signer";
import { type UserOperationInput, parseChainId, parseUserOperation } from "./userOperation";

export type SponsorshipParams = {
  userOp: unknown;
  entryPoint: unknown;
  chainId: unknown;
  context?: unknown;
};

/** Who asks: the API key, the client address, and the Origin a browser sent (undefined from a backend). */
export type Caller = { apiKey: ApiKey; ip?: string; origin?: string };

/** ERC-7677's result for EntryPoint v0.7. */
export type PaymasterFields = {
  paymaster: Address;
  paymasterData: Hex;
  paymasterVerificationGasLimit: bigint;
  paymasterPostOpGasLimit: bigint;
  sponsor: { name: string; icon?: string };
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
  /** ERC-7677 `sponsor.icon`: an RFC 2397 data URI. */
  sponsorIcon?: string;
  validSeconds: number;
  maxHoldsPerSender: number;
  /** Open holds one API key may take on one sender. */
  maxHoldsPerSenderPerApiKey?: number;
  /** Open holds one client IP may take on one sender. */
  maxHoldsPerSenderPerIp?: number;
  /**
   * The deposit health of each chain (the deposit monitor): a request that finds the deposit unreadable asks for
   * one fresh read, so sponsorship resumes as soon as the RPC answers again.
   */
  deposits: DepositHealthSource;
  /** How long a request waits for that re-read. */
  recheckTimeoutMs?: number;
  /** Replaceable clock, for tests of validity windows. */
  now?: () => Date;
};

/** A replacement whose hold's window has less than this left is refused (nonce_held) rather than signed. */
const MIN_USEFUL_WINDOW_MS = 10_000;

/** Counts each request's outcome per chain; only configured chains become label values (a caller cannot mint series). */
async function measured<T>(options: Pick<SponsorServiceOptions, "chains" | "metrics">, method: string, params: SponsorshipParams, run: () => Promise<T & { chainId?: number }>): Promise<T> {
  const count = (chain: number | undefined, outcome: string) => {
    const label = chain !== undefined && options.chains.has(chain) ? String(chain) : "unsupported";
    options.metrics?.sponsorships.inc({ chain: label, method, outcome });
  };
  try {
    const result = await run();
    count(result.chainId, method === "stub" ? "stub" : "signed");
    return result;
  } catch (error) {
    const chain = (() => {
      try {
        return parseChainId(params.chainId);
      } catch {
        return undefined;
      }
    })();
    count(chain, error instanceof SponsorError ? error.reason : "error");
    throw error;
  }
}

/** The one sponsorship service both front doors call. */
export interface SponsorService {
  /** ERC-7677 pm_getPaymasterStubData: data of the final length for gas estimation; reserves nothing. */
  getStubData(params: SponsorshipParams, caller: Caller): Promise<PaymasterFields>;
  /** ERC-7677 pm_getPaymasterData and POST /v1/sponsorships: checks, holds the worst case, signs. */
  sponsor(params: SponsorshipParams, caller: Caller): Promise<Sponsorship>;
}

export function createSponsorService(options: SponsorServiceOptions): SponsorService {
  const now = options.now ?? (() => new Date());
  const proofVerifiers = new Map<number, SenderProofVerifier>();
  const proofVerifier = (chain: ChainRuntime) => {
    let verifier = proofVerifiers.get(chain.config.chainId);
    if (!verifier) proofVerifiers.set(chain.config.chainId, (verifier = createSenderProofVerifier(chain.requestClient)));
    return verifier;
  };

  /** When the key's policy asks for it, the caller proves control of the sender (server/sponsorship/senderProof.ts). */
  async function checkSenderProof(selected: SelectedPolicy, chain: ChainRuntime, op: UserOperationInput, context: unknown): Promise<void> {
    const policy = selected.rules.senderProof;
    if (!policy) return;
    await proofVerifier(chain)({ policy, chainId: chain.config.chainId, paymaster: chain.config.paymaster, sender: op.sender, context, now: now() });
  }

  function fields(chain: ChainRuntime, paymasterData: Hex, gas: { verification: bigint; postOp: bigint }): PaymasterFields {
    return {
      paymaster: chain.config.paymaster,
      paymasterData,
      paymasterVerificationGasLimit: gas.verification,
      paymasterPostOpGasLimit: gas.postOp,
      sponsor: options.sponsorIcon ? { name: options.sponsorName, icon: options.sponsorIcon } : { name: options.sponsorName },
      isFinal: false,
    };
  }

  /**
   * Signs the operation and commits its hold, in that order of effect: the hold commits before the signature
   * leaves. A replacement is signed with its hold's validUntil: asking again never stretches how long quota is
   * held.
   */
  async function signAndHold(p: { chain: ChainRuntime; op: UserOperationInput; gas: PaymasterGas; caller: Caller; policy: SelectedPolicy; quote: Quote; maxChargeFen: bigint; maxCostWei: bigint }): Promise<Sponsorship> {
    const { chain, op, gas, caller, policy, quote, maxChargeFen, maxCostWei } = p;
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
          policyId: policy.id,
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
  }

  return {
    /** ERC-7677 pm_getPaymasterStubData: data of the final length for gas estimation; reserves nothing. */
    getStubData(params: SponsorshipParams, caller: Caller): Promise<PaymasterFields> {
      return measured(options, "stub", params, async () => {
        const policy = selectPolicy(caller.apiKey, params.context);
        checkOrigin(policy.rules, caller);
        const chain = resolveChain(options.chains, params);
        const op = parseUserOperation(params.userOp, { requireGas: false });
        await checkRateLimits(options.rateLimiter, caller, op.sender);
        await checkSenderProof(policy, chain, op, params.context);
        // the fee is set before the stub is asked for (viem, permissionless); the gas limits are not yet
        await Promise.all([op.maxFeePerGas > 0n ? checkFee(chain, op) : undefined, checkNonce(chain, op)]);
        await checkDeposit(chain, options.deposits, options.recheckTimeoutMs);
        // every operation holds at least 1 fen: the smallest charge the final call could ask of the policy and quota
        // (both read at once; the policy's refusal is reported first, as the final call would)
        const [spent, refusal] = await Promise.all([
          spentInPolicyPeriods(options.db, caller.apiKey, policy, op.sender, now()),
          previewHoldRefusal(options.db, {
            chainId: chain.config.chainId,
            account: op.sender.toLowerCase(),
            nonce: op.nonce,
            apiKeyId: caller.apiKey.id,
            clientIp: clientKey(caller.ip),
            maxHolds: options.maxHoldsPerSender,
            maxHoldsPerApiKey: options.maxHoldsPerSenderPerApiKey,
            maxHoldsPerIp: options.maxHoldsPerSenderPerIp,
          }),
        ]);
        checkPolicy(policy.rules, chain, op, 1n, spent, now());
        if (refusal) throw refusal;
        const validUntil = Math.floor(now().getTime() / 1000) + options.validSeconds;
        return { ...fields(chain, encodeStubPaymasterData({ validUntil, validAfter: 0 }), paymasterGas(chain, params.userOp)), chainId: chain.config.chainId };
      });
    },

    /** ERC-7677 pm_getPaymasterData and POST /v1/sponsorships: checks, holds the worst case, signs. */
    sponsor(params: SponsorshipParams, caller: Caller): Promise<Sponsorship> {
      return measured(options, "final", params, async () => {
        const policy = selectPolicy(caller.apiKey, params.context);
        checkOrigin(policy.rules, caller);
        const chain = resolveChain(options.chains, params);
        const parsed = parseUserOperation(params.userOp, { requireGas: true });
        const gas = paymasterGas(chain, params.userOp);
        const op: UserOperationInput = { ...parsed, paymasterVerificationGasLimit: gas.verification, paymasterPostOpGasLimit: gas.postOp };
        await checkRateLimits(options.rateLimiter, caller, op.sender);
        checkGas(chain, op);
        await checkSenderProof(policy, chain, op, params.context);
        await Promise.all([checkFee(chain, op), checkNonce(chain, op)]);
        await checkDeposit(chain, options.deposits, options.recheckTimeoutMs);
        const quote = await chain.quote();
        // a free operation (a zero fee) still holds 1 fen, so every signature has a hold behind it
        const maxChargeFen = holdFen(op, quote) || 1n;
        checkPolicy(policy.rules, chain, op, maxChargeFen, await spentInPolicyPeriods(options.db, caller.apiKey, policy, op.sender, now()), now());
        const webhook = policy.rules.approvalWebhook;
        if (webhook) {
          const answer = await askApproval(webhook, {
            chainId: chain.config.chainId,
            sender: op.sender,
            nonce: op.nonce,
            callData: op.callData,
            maxChargeFen,
            apiKeyId: caller.apiKey.id,
            policyId: policy.id,
          });
          if (!answer.approved) throw new SponsorError("policy_rejected", answer.reason ?? "the approval webhook refused the operation", { rule: "approval_webhook" });
        }

        return signAndHold({ chain, op, gas, caller, policy, quote, maxChargeFen, maxCostWei: maxGasCostWei(op) });
      });
    },
  };
}

