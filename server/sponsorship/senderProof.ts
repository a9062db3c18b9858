/**
 * Proof that the caller controls the sender (policy `senderProof`). An API key in a DApp's front end is public,
 * so without it anyone can ask for sponsorship of any sender and make its quota sit in holds. With it, every
 * sponsorship request carries, in the ERC-7677 `context` (or the REST body's `context`), a short-lived token:
 *
 *   context.senderProof = { validUntil: <unix seconds>, signature: <hex> }
 *
 * an EIP-712 signature of `SponsoredSender(address sender, uint64 validUntil)` under the domain
 * `{ name: "fiat-paymaster", version: "1", chainId, verifyingContract: <paymaster> }`, made by either
 *   - one of the policy's `signers`: the DApp's backend, after it authenticated its user (any account type); or
 *   - the sender itself (`account: true`): ERC-1271 for a deployed smart account, ERC-6492 for one not yet
 *     deployed, the owner key for accounts without ERC-1271 that expose `owner()` (SimpleAccount v0.7), ecrecover
 *     for an EOA (EIP-7702).
 * Verified proofs are remembered until they expire, so a wallet's repeated requests cost one check.
 *
 * On EntryPoint v0.9 the paymaster's signature is outside the userOpHash, so the account can sign first: with
 * `account: true`, a final request without context.senderProof may instead carry the account's signature of the
 * operation (userOp.signature, over the userOpHash with the stub's paymasterData), checked the same way
 * (`isSignedBySender`, called by the service).
 */
import { type Address, type Hex, type PublicClient, hashTypedData, isAddressEqual, parseAbi, recoverAddress } from "viem";
import { SponsorError } from "./errors";

export type SenderProofPolicy = {
  /** Backend signers whose proof is accepted (lower-case). */
  signers?: Address[];
  /** Accept a proof signed by the sender account itself. */
  account?: boolean;
  /** The furthest in the future a proof's validUntil may be. */
  maxValiditySeconds: number;
};

export const SENDER_PROOF_TYPES = {
  SponsoredSender: [
    { name: "sender", type: "address" },
    { name: "validUntil", type: "uint64" },
  ],
} as const;

/** The EIP-712 typed data a sender proof signs: what DApp backends and wallets pass to signTypedData. */
export function senderProofTypedData(p: { chainId: number; paymaster: Address; sender: Address; validUntil: number }) {
  return {
    domain: { name: "fiat-paymaster", version: "1", chainId: p.chainId, verifyingContract: p.paymaster },
    types: SENDER_PROOF_TYPES,
    primaryType: "SponsoredSender" as const,
    message: { sender: p.sender, validUntil: BigInt(p.validUntil) },
  };
}

const ownerAbi = parseAbi(["function owner() view returns (address)"]);
const MAX_CACHED = 10_000;

export type SenderProofRule = "sender_proof_missing" | "sender_proof_invalid" | "sender_proof_expired" | "sender_proof_rejected";

function refuse(rule: SenderProofRule, message: string): SponsorError {
  return new SponsorError("policy_rejected", message, { rule });
}

/** Reads `context.senderProof`; throws policy_rejected naming what is wrong with it. */
function parseProof(context: unknown): { validUntil: number; signature: Hex } {
  const proof = typeof context === "object" && context !== null ? (context as Record<string, unknown>).senderProof : undefined;
  if (proof === undefined) {
    throw refuse("sender_proof_missing", "this API key sponsors only senders whose control is proven: pass context.senderProof = { validUntil, signature } (see the README, 'Proof of control')");
  }
  if (typeof proof !== "object" || proof === null) throw refuse("sender_proof_invalid", "context.senderProof must be an object { validUntil, signature }");
  const { validUntil, signature } = proof as Record<string, unknown>;
  if (typeof validUntil !== "number" || !Number.isSafeInteger(validUntil) || validUntil <= 0) {
    throw refuse("sender_proof_invalid", "context.senderProof.validUntil must be a unix time in seconds");
  }
  if (typeof signature !== "string" || !/^0x([0-9a-fA-F]{2}){65,8192}$/.test(signature)) {
    throw refuse("sender_proof_invalid", "context.senderProof.signature must be 0x-prefixed hex bytes (at least 65)");
  }
  return { validUntil, signature: signature as Hex };
}

export type SenderProofVerifier = (p: { policy: SenderProofPolicy; chainId: number; paymaster: Address; sender: Address; context: unknown; now: Date }) => Promise<void>;

/**
 * A verifier for one chain's client. Throws SponsorError: policy_rejected (`sender_proof_missing`,
 * `sender_proof_invalid`, `sender_proof_expired`, `sender_proof_rejected`), or unavailable when the chain could not
 * be asked about a smart account's signature.
 */
export function createSenderProofVerifier(client: PublicClient): SenderProofVerifier {
  const verified = new Map<string, number>();
  return async ({ policy, chainId, paymaster, sender, context, now }) => {
    const { validUntil, signature } = parseProof(context);
    const nowSeconds = Math.floor(now.getTime() / 1000);
    if (validUntil <= nowSeconds) throw refuse("sender_proof_expired", `context.senderProof expired at ${new Date(validUntil * 1000).toISOString()}; ask for a new one`);
    if (validUntil - nowSeconds > policy.maxValiditySeconds) {
      throw refuse("sender_proof_invalid", `context.senderProof.validUntil is more than ${policy.maxValiditySeconds} s ahead; this key accepts proofs valid for at most that long`);
    }
    // remembered per policy: a proof one key's signers vouch for says nothing to a key that trusts others, and a
    // signer removed from a policy stops counting at once
    const trusted = `${[...(policy.signers ?? [])].map((a) => a.toLowerCase()).sort().join(",")}|${policy.account ? "account" : ""}`;
    const cacheKey = `${trusted}:${chainId}:${sender.toLowerCase()}:${validUntil}:${signature.toLowerCase()}`;
    if ((verified.get(cacheKey) ?? 0) > nowSeconds) return;

    const hash = hashTypedData(senderProofTypedData({ chainId, paymaster, sender, validUntil }));
    const recovered = signature.length === 132 ? await recoverAddress({ hash, signature }).catch(() => undefined) : undefined;
    let ok = recovered !== undefined && (policy.signers ?? []).some((s) => isAddressEqual(s, recovered));
    if (!ok && policy.account) ok = await signedBySender(client, sender, hash, signature, recovered);
    if (!ok) {
      throw refuse(
        "sender_proof_rejected",
        `context.senderProof is not signed by ${[policy.signers?.length ? "one of this key's proof signers" : "", policy.account ? `the sender ${sender}` : ""].filter(Boolean).join(" or ")}`,
      );
    }
    if (verified.size >= MAX_CACHED) verified.clear();
    verified.set(cacheKey, validUntil);
  };
}

/**
 * Whether `signature` is the sender's over `hash`, as signedBySender judges a proof: for EntryPoint v0.9, whose
 * userOpHash does not cover the paymaster's signature, the account's own signature of the operation proves control
 * (the account signs the raw userOpHash: SimpleAccount 0.8+, Simple7702Account). Throws unavailable on an outage.
 */
export async function isSignedBySender(client: PublicClient, sender: Address, hash: Hex, signature: Hex): Promise<boolean> {
  const recovered = signature.length === 132 ? await recoverAddress({ hash, signature }).catch(() => undefined) : undefined;
  return signedBySender(client, sender, hash, signature, recovered);
}

/** ERC-1271 / ERC-6492 / EOA through viem's universal check; then, for accounts without ERC-1271, their owner(). */
async function signedBySender(client: PublicClient, sender: Address, hash: Hex, signature: Hex, recovered: Address | undefined): Promise<boolean> {
  try {
    if (await client.verifyHash({ address: sender, hash, signature })) return true;
  } catch (error) {
    // a reverting isValidSignature is a "no"; an RPC that does not answer is an outage
    if (isTransportFailure(error)) throw new SponsorError("unavailable", "the chain's RPC does not answer; cannot check the sender's signature");
  }
  if (!recovered) return false;
  try {
    const owner = await client.readContract({ address: sender, abi: ownerAbi, functionName: "owner" });
    return isAddressEqual(owner, recovered);
  } catch (error) {
    if (isTransportFailure(error)) throw new SponsorError("unavailable", "the chain's RPC does not answer; cannot check the sender's owner");
    return false;
  }
}

function isTransportFailure(error: unknown): boolean {
  const e = error as { walk?: (fn: (e: unknown) => boolean) => unknown };
  const found = typeof e?.walk === "function" ? e.walk((x) => x instanceof Error && /HttpRequestError|TimeoutError/.test(x.name)) : undefined;
  return found !== undefined && found !== null;
}
