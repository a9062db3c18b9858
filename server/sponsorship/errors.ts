/**
 * Why a sponsorship was refused. Each reason has a stable JSON-RPC error code (ERC-7677 answers), a stable
 * problem `type` and HTTP status (REST answers), a message that names the problem, and data a client can act on
 * (the available and required fen of an insufficient quota, the seconds to wait when rate limited).
 *
 * The codes sit at -32121…-32136, clear of EIP-1474's -32000…-32006: viem gives those a meaning of their own
 * and retries some of them (-32005 "limit exceeded"), which would resend a refused sponsorship request.
 */
import { isDatabaseUnavailable } from "../platform/db/database";
import { AppError } from "../platform/errors";

export type SponsorErrorReason =
  | "invalid_params"
  | "unauthorized"
  | "unsupported_chain"
  | "unsupported_entry_point"
  | "gas_cap_exceeded"
  | "fee_too_high"
  | "policy_rejected"
  | "insufficient_quota"
  | "too_many_holds"
  | "rate_limited"
  | "deposit_low"
  | "unavailable"
  | "nonce_used"
  | "nonce_not_next"
  | "nonce_held"
  | "origin_not_allowed"
  | "unknown_policy";

const codes: Record<SponsorErrorReason, { rpc: number; http: number }> = {
  invalid_params: { rpc: -32602, http: 400 },
  unauthorized: { rpc: -32121, http: 401 },
  unsupported_chain: { rpc: -32122, http: 400 },
  unsupported_entry_point: { rpc: -32123, http: 400 },
  gas_cap_exceeded: { rpc: -32124, http: 400 },
  fee_too_high: { rpc: -32125, http: 400 },
  policy_rejected: { rpc: -32126, http: 403 },
  insufficient_quota: { rpc: -32127, http: 402 },
  too_many_holds: { rpc: -32128, http: 409 },
  rate_limited: { rpc: -32129, http: 429 },
  deposit_low: { rpc: -32130, http: 503 },
  unavailable: { rpc: -32131, http: 503 },
  nonce_used: { rpc: -32132, http: 409 },
  nonce_not_next: { rpc: -32133, http: 409 },
  nonce_held: { rpc: -32134, http: 409 },
  origin_not_allowed: { rpc: -32135, http: 403 },
  unknown_policy: { rpc: -32136, http: 400 },
};

export const SPONSOR_ERROR_CODES = Object.fromEntries(Object.entries(codes).map(([k, v]) => [k, v.rpc])) as Record<SponsorErrorReason, number>;

export class SponsorError extends AppError {
  override name = "SponsorError";
  constructor(
    readonly reason: SponsorErrorReason,
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(codes[reason].http, reason, message, data, reason === "rate_limited" ? { retryAfterSeconds: Number(data.retryAfterSeconds ?? 60) } : {});
  }
  get rpcCode(): number {
    return codes[this.reason].rpc;
  }
  get httpStatus(): number {
    return codes[this.reason].http;
  }
}

/**
 * A dependency outage as a sponsorship answer: the database not answering becomes `unavailable` (503 / -32131),
 * which clients may retry, instead of an internal error. Anything else is not ours to translate.
 */
export function asSponsorError(error: unknown): SponsorError | undefined {
  if (error instanceof SponsorError) return error;
  if (isDatabaseUnavailable(error)) return new SponsorError("unavailable", "the database is unavailable; retry shortly");
  return undefined;
}

export const invalidParams = (message: string, data: Record<string, unknown> = {}) => new SponsorError("invalid_params", message, data);
