/** Errors the payments API answers with a 4xx/503 (each carries its status and problem type). */
import { AppError } from "../platform/errors";

/** The request is malformed or outside the configured limits (400). */
export class PaymentInputError extends AppError {
  override name = "PaymentInputError";
  constructor(message: string) {
    super(400, "invalid_request", message);
  }
}

/** The resource does not exist (404). */
export class NotFoundError extends AppError {
  override name = "NotFoundError";
  constructor(message: string) {
    super(404, "not_found", message);
  }
}

/** The request contradicts the current state: an idempotency key reused with other parameters, a refund larger than what is left (409). */
export class PaymentConflictError extends AppError {
  override name = "PaymentConflictError";
  constructor(
    message: string,
    override readonly details: Record<string, string> = {},
  ) {
    super(409, "conflict", message, details);
  }
}

/** The gateway could not be reached or is failing; the circuit may be open (503, retry later). */
export class GatewayUnavailableError extends AppError {
  override name = "GatewayUnavailableError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(503, "gateway_unavailable", message, {}, options);
  }
}
