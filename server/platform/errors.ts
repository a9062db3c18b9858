/**
 * The one error shape every domain throws when a request cannot be served: an HTTP status, a stable problem
 * `type`, a message that names the problem, and details a client can act on. The HTTP layer
 * (`server/http/problem.ts`) turns it into an RFC 9457 answer without knowing which domain threw it.
 */
export type AppErrorOptions = {
  /** What the answer says when it differs from the message (which logs keep). */
  detail?: string;
  /** Sent as Retry-After (seconds): the client may retry then. */
  retryAfterSeconds?: number;
  cause?: unknown;
};

export class AppError extends Error {
  override name = "AppError";
  readonly detail: string;
  readonly retryAfterSeconds?: number;
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    options: AppErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.detail = options.detail ?? message;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}
