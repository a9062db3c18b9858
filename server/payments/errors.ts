/** Errors the payments API answers with a 4xx/503 (see server/http/problem.ts for the mapping). */

/** The request is malformed or outside the configured limits (400). */
export class PaymentInputError extends Error {
  override name = "PaymentInputError";
}

/** The resource does not exist (404). */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** The request contradicts the current state: an idempotency key reused with other parameters, a refund larger than what is left (409). */
export class PaymentConflictError extends Error {
  override name = "PaymentConflictError";
  constructor(
    message: string,
    readonly details: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The gateway could not be reached or is failing; the circuit may be open (503, retry later). */
export class GatewayUnavailableError extends Error {
  override name = "GatewayUnavailableError";
}
