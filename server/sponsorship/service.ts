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
import {
  type DepositHealthSource,
  type PaymasterGas,
  type SponsorTarget,
  checkDeposit,
  checkOrigin,
  checkFee,
  checkGas,
  checkNonce,
  checkPolicy,
  checkRateLimits,
  paymasterGas,
  resolveTarget,
} from "./checks";
import { SponsorError, invalidParams } from "./errors";
import { type SelectedPolicy, selectPolicy } from "./context";
import { HoldWindowConflict, type HoldReserver, previewHoldRefusal, spentInPolicyPeriods } from "./holds";
import { type Quote, holdFen, maxGasCostWei } from "./pricing";
import { type SenderProofVerifier, createSenderProofVerifier, isSignedBySender } from "./senderProof";
import { paymasterHashBuffer, userOperationHashV07, userOperationHashV08V09 } from "./signing/hashing";
import {
  STUB_SIGNATURE,
  encodePaymasterData,
  encodePaymasterDataV09,
  encodeStubPaymasterData,
  getPaymasterHashV09,
  isEip7702Marker,
} from "./signing/paymasterData";
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

/** ERC-7677's result (v0.7, v0.8; v0.9 adds the paymasterSignature that travels outside the userOpHash). */
export type PaymasterFields = {
  paymaster: Address;
  paymasterData: Hex;
  paymasterSignature?: Hex;
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
  /** Called as each sponsorship request (stub or final) starts: callbacks yield to this traffic. */
  onRequest?: () => void;
};

/** A replacement whose hold's window has less than this left is refused (nonce_held) rather than signed. */
const MIN_USEFUL_WINDOW_MS = 10_000;

/**
 * Counts each request's outcome per (chain, EntryPoint version); only configured chains and EntryPoints become
 * label values (a caller cannot mint series).
 */
async function measured<T>(options: Pick<SponsorServiceOptions, "chains" | "metrics" | "onRequest">, method: string, params: SponsorshipParams, run: () => Promise<T>): Promise<T> {
  options.onRequest?.();
  const count = (outcome: string) => {
    let chain = "unsupported";
    let entryPoint = "unsupported";
    try {
      const runtime = options.chains.get(parseChainId(params.chainId));
      if (runtime) {
        chain = String(runtime.config.chainId);
        entryPoint = typeof params.entryPoint === "string" && /^0x[0-9a-fA-F]{40}$/.test(params.entryPoint) ? (runtime.entryPoint(params.entryPoint as Address)?.version ?? "unsupported") : "unsupported";
      }
    } catch {
      // an unparsable chainId counts as unsupported
    }
    options.metrics?.sponsorships.inc({ chain, entry_point: entryPoint, method, outcome });
  };
  try {
    const result = await run();
    count(method === "stub" ? "stub" : "signed");
    return result;
  } catch (error) {
    count(error instanceof SponsorError ? error.reason : "error");
    throw error;
  }
}

/**
 * The delegate an EIP-7702 operation's marker initCode stands for: the one its authorization names, or, for an EOA
 * that has delegated already, the one in its code. The EntryPoint hashes it into the userOpHash and
 * FiatPaymasterV08 into its hash: a sponsorship is good for that delegate only. The authorization's signature is
 * not checked: wallets sign it after the paymaster has (viem sends a placeholder signature to pm_getPaymaster*),
 * and an authorization the EOA did not sign only means the EntryPoint finds another delegate, or none, and the
 * operation fails validation without costing the deposit anything. Undefined for an operation without the marker.
 */
async function eip7702DelegateOf({ chain }: SponsorTarget, op: UserOperationInput): Promise<Address | undefined> {
  if (!isEip7702Marker(op.factory)) return undefined;
  const auth = op.eip7702Auth;
  if (auth) {
    if (auth.chainId !== 0 && auth.chainId !== chain.config.chainId) {
      throw invalidParams(`userOp.eip7702Auth is for chain ${auth.chainId}, not ${chain.config.chainId}`, { field: "eip7702Auth.chainId" });
    }
    return auth.address;
  }
  let delegate: Address | undefined;
  try {
    delegate = await chain.delegateOf(op.sender);
  } catch {
    throw new SponsorError("unavailable", `chain ${chain.config.chainId}'s RPC does not answer; cannot read the sender's EIP-7702 delegate`);
  }
  if (!delegate) {
    throw invalidParams(`userOp.factory is the EIP-7702 marker but the sender ${op.sender} has not delegated and userOp.eip7702Auth is missing`, { field: "eip7702Auth" });
  }
  return delegate;
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

  /**
   * When the key's policy asks for it, the caller proves control of the sender (server/sponsorship/senderProof.ts):
   * with context.senderProof, or — EntryPoint v0.9, a policy that accepts the sender's own signature — with the
   * account's signature of the operation itself (`accountSigned`: the final call, over the userOpHash with the
   * stub's window; the stub call leaves that proof to the final one).
   */
  async function checkSenderProof(
    selected: SelectedPolicy,
    target: SponsorTarget,
    op: UserOperationInput,
    context: unknown,
    accountSigned?: { window: { validUntil: number; validAfter: number } | undefined; eip7702Delegate: Address | undefined },
  ): Promise<void> {
    const policy = selected.rules.senderProof;
    if (!policy) return;
    const { chain, entryPoint } = target;
    const hasContextProof = typeof context === "object" && context !== null && (context as Record<string, unknown>).senderProof !== undefined;
    if (!hasContextProof && policy.account && entryPoint.version === "0.9") {
      if (!accountSigned) return; // the stub, or before the delegate is known: checked with the account's signature
      if (!accountSigned.window || op.signature === "0x") {
        throw new SponsorError(
          "policy_rejected",
          "this API key sponsors only senders whose control is proven: pass context.senderProof, or (EntryPoint v0.9) sign the operation with the paymasterData pm_getPaymasterStubData returned and send that signature",
          { rule: "sender_proof_missing" },
        );
      }
      const userOpHash = userOperationHashV08V09({
        version: "0.9",
        userOperation: op,
        paymaster: entryPoint.paymaster,
        paymasterData: encodePaymasterDataV09(accountSigned.window),
        chainId: chain.config.chainId,
        entryPoint: entryPoint.address,
        eip7702Delegate: accountSigned.eip7702Delegate,
      });
      if (!(await isSignedBySender(chain.requestClient, op.sender, userOpHash, op.signature))) {
        throw new SponsorError("policy_rejected", `userOp.signature is not the sender ${op.sender}'s signature of this operation (userOpHash ${userOpHash})`, { rule: "sender_proof_rejected" });
      }
      return;
    }
    if (accountSigned) return; // the context proof was checked on the first call
    await proofVerifier(chain)({ policy, chainId: chain.config.chainId, paymaster: entryPoint.paymaster, sender: op.sender, context, now: now() });
  }

  /**
   * v0.9: the window of the paymasterData the request carries (the stub's), when it is one this server would sign
   * now — so an account that signed in parallel, over the stub's paymasterData, keeps a valid signature.
   */
  function requestedWindowV09(target: SponsorTarget, raw: unknown): { validUntil: number; validAfter: number } | undefined {
    if (target.entryPoint.version !== "0.9") return undefined;
    const data = (raw as Record<string, unknown>).paymasterData;
    if (typeof data !== "string" || !/^0x[0-9a-fA-F]{24}$/.test(data)) return undefined;
    const validUntil = Number.parseInt(data.slice(2, 14), 16);
    const validAfter = Number.parseInt(data.slice(14, 26), 16);
    const nowMs = now().getTime();
    if (validAfter !== 0 || validUntil * 1000 - nowMs < MIN_USEFUL_WINDOW_MS || validUntil * 1000 > nowMs + options.validSeconds * 1000) return undefined;
    return { validUntil, validAfter };
  }

  function fields({ entryPoint }: SponsorTarget, paymasterData: Hex, gas: { verification: bigint; postOp: bigint }, paymasterSignature?: Hex): PaymasterFields {
    return {
      paymaster: entryPoint.paymaster,
      paymasterData,
      ...(paymasterSignature ? { paymasterSignature } : {}),
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
  /** paymasterData (and for v0.9 paymasterSignature) signed for `op` in the window, and the userOpHash they give. */
  async function signFor(target: SponsorTarget, op: UserOperationInput, window: { validUntil: number; validAfter: number }, eip7702Delegate: Address | undefined) {
    const { chainId } = target.chain.config;
    const { paymaster, address: entryPoint, version } = target.entryPoint;
    if (version === "0.9") {
      const paymasterData = encodePaymasterDataV09(window);
      const userOpHash = userOperationHashV08V09({ version, userOperation: op, paymaster, paymasterData, chainId, entryPoint, eip7702Delegate });
      const paymasterSignature = await options.signer.signHash(getPaymasterHashV09({ userOpHash, paymaster }));
      return { paymasterData, paymasterSignature, userOpHash };
    }
    const hash = paymasterHashBuffer({ userOperation: op, chainId, paymaster, entryPoint, ...window, eip7702Delegate });
    const signature = await options.signer.signHash(`0x${hash.toString("hex")}`);
    const paymasterData = encodePaymasterData({ ...window, signature });
    const userOpHash =
      version === "0.7"
        ? userOperationHashV07({ userOperation: op, paymaster, paymasterData, chainId, entryPoint })
        : userOperationHashV08V09({ version, userOperation: op, paymaster, paymasterData, chainId, entryPoint, eip7702Delegate });
    return { paymasterData, paymasterSignature: undefined, userOpHash };
  }

  async function signAndHold(p: {
    target: SponsorTarget;
    op: UserOperationInput;
    eip7702Delegate: Address | undefined;
    gas: PaymasterGas;
    caller: Caller;
    policy: SelectedPolicy;
    quote: Quote;
    maxChargeFen: bigint;
    maxCostWei: bigint;
    /** v0.9: the stub's window, which the account may have signed over already. */
    requestedValidUntil?: number;
  }): Promise<Sponsorship> {
    const { target, op, gas, caller, policy, quote, maxChargeFen, maxCostWei } = p;
    const validAfter = 0;
    const { chainId } = target.chain.config;
    const account = op.sender.toLowerCase();
    // A replacement is signed with its hold's validUntil: asking again never stretches how long quota is held.
    // Optimistically: sign a fresh window; if an open hold for this nonce keeps an earlier one, the reservation
    // answers HoldWindowConflict and the operation is signed again with that window (only replacements pay).
    let validUntilDate = p.requestedValidUntil !== undefined ? new Date(p.requestedValidUntil * 1000) : new Date(now().getTime() + options.validSeconds * 1000);
    for (let attempt = 1; ; attempt++) {
      const validUntil = Math.floor(validUntilDate.getTime() / 1000);
      const { paymasterData, paymasterSignature, userOpHash } = await signFor(target, op, { validUntil, validAfter }, p.eip7702Delegate);
      // the hold commits before the signature leaves: a crash after this line can only over-reserve
      let hold;
      try {
        hold = await options.holds.reserve({
          chainId,
          entryPoint: target.entryPoint.address.toLowerCase(),
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
      if (hold.addedFen > 0n) options.metrics?.heldFen.inc({ chain: String(chainId), entry_point: target.entryPoint.version }, Number(hold.addedFen));
      return {
        ...fields(target, paymasterData, gas, paymasterSignature),
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
        const target = resolveTarget(options.chains, params);
        const { chain } = target;
        const op = parseUserOperation(params.userOp, { requireGas: false, entryPointVersion: target.entryPoint.version });
        await checkRateLimits(options.rateLimiter, caller, op.sender);
        await checkSenderProof(policy, target, op, params.context);
        // the fee is set before the stub is asked for (viem, permissionless); the gas limits are not yet
        await Promise.all([op.maxFeePerGas > 0n ? checkFee(chain, op) : undefined, checkNonce(target, op), eip7702DelegateOf(target, op)]);
        await checkDeposit(target, options.deposits, options.recheckTimeoutMs);
        // every operation holds at least 1 fen: the smallest charge the final call could ask of the policy and quota
        // (both read at once; the policy's refusal is reported first, as the final call would)
        const [spent, refusal] = await Promise.all([
          spentInPolicyPeriods(options.db, caller.apiKey, policy, op.sender, now()),
          previewHoldRefusal(options.db, {
            chainId: chain.config.chainId,
            entryPoint: target.entryPoint.address.toLowerCase(),
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
        // the stub has the final length and no more zero bytes than the final data (ERC-7677)
        const window = { validUntil: Math.floor(now().getTime() / 1000) + options.validSeconds, validAfter: 0 };
        const gas = paymasterGas(chain, params.userOp);
        if (target.entryPoint.version === "0.9") return fields(target, encodePaymasterDataV09(window), gas, STUB_SIGNATURE);
        return fields(target, encodeStubPaymasterData(window), gas);
      });
    },

    /** ERC-7677 pm_getPaymasterData and POST /v1/sponsorships: checks, holds the worst case, signs. */
    sponsor(params: SponsorshipParams, caller: Caller): Promise<Sponsorship> {
      return measured(options, "final", params, async () => {
        const policy = selectPolicy(caller.apiKey, params.context);
        checkOrigin(policy.rules, caller);
        const target = resolveTarget(options.chains, params);
        const { chain } = target;
        const parsed = parseUserOperation(params.userOp, { requireGas: true, entryPointVersion: target.entryPoint.version });
        const gas = paymasterGas(chain, params.userOp);
        const op: UserOperationInput = { ...parsed, paymasterVerificationGasLimit: gas.verification, paymasterPostOpGasLimit: gas.postOp };
        await checkRateLimits(options.rateLimiter, caller, op.sender);
        checkGas(target, op);
        // context.senderProof is checked before any RPC call; v0.9's account signature needs the 7702 delegate first
        await checkSenderProof(policy, target, op, params.context);
        const window = requestedWindowV09(target, params.userOp);
        const [, , eip7702Delegate] = await Promise.all([checkFee(chain, op), checkNonce(target, op), eip7702DelegateOf(target, op)]);
        await checkSenderProof(policy, target, op, params.context, { window, eip7702Delegate });
        await checkDeposit(target, options.deposits, options.recheckTimeoutMs);
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

        return signAndHold({ target, op, eip7702Delegate, gas, caller, policy, quote, maxChargeFen, maxCostWei: maxGasCostWei(op), requestedValidUntil: window?.validUntil });
      });
    },
  };
}

