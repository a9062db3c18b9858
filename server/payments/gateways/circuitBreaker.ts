import CircuitBreaker from "opossum";
import { GatewayUnavailableError } from "../errors";
import { GatewayError, type PaymentGateway } from "../gateway";

export type ResilienceOptions = {
  /** A gateway call slower than this fails (and counts against the circuit). */
  timeoutMs: number;
  /** Open the circuit when this share of recent calls failed… */
  errorThresholdPercentage?: number;
  /** …out of at least this many calls. */
  volumeThreshold?: number;
  /** Try one call again after this long open. */
  resetTimeoutMs?: number;
  onStateChange?: (provider: string, state: "open" | "halfOpen" | "close") => void;
};

type Outbound = "createPayment" | "queryTrade" | "closeTrade" | "refund" | "queryRefund" | "downloadBill";
const OUTBOUND: Outbound[] = ["createPayment", "queryTrade", "closeTrade", "refund", "queryRefund", "downloadBill"];

/**
 * Wraps a gateway's outbound calls in one circuit breaker with a timeout, so a slow or failing gateway makes
 * requests fail fast with GatewayUnavailableError (503) instead of piling up. The gateway's business answers
 * (a GatewayError with a gateway code: "trade does not exist", "refund exceeds") are not failures of the
 * gateway and do not trip the circuit. Callback verification is local and is passed through.
 */
export function withCircuitBreaker(gateway: PaymentGateway, options: ResilienceOptions): PaymentGateway & { breaker: CircuitBreaker } {
  const breaker = new CircuitBreaker(<T>(call: () => Promise<T>) => call(), {
    timeout: options.timeoutMs,
    errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
    volumeThreshold: options.volumeThreshold ?? 5,
    resetTimeout: options.resetTimeoutMs ?? 10_000,
    errorFilter: (error: unknown) => error instanceof GatewayError && error.gatewayCode !== undefined,
  });
  breaker.on("open", () => options.onStateChange?.(gateway.provider, "open"));
  breaker.on("halfOpen", () => options.onStateChange?.(gateway.provider, "halfOpen"));
  breaker.on("close", () => options.onStateChange?.(gateway.provider, "close"));

  const guard =
    <K extends Outbound>(method: K) =>
    async (...args: Parameters<PaymentGateway[K]>): Promise<Awaited<ReturnType<PaymentGateway[K]>>> => {
      try {
        return (await breaker.fire(() => (gateway[method] as (...a: unknown[]) => Promise<unknown>).apply(gateway, args))) as Awaited<
          ReturnType<PaymentGateway[K]>
        >;
      } catch (error) {
        if (error instanceof GatewayError && error.gatewayCode !== undefined) throw error;
        const code = (error as { code?: string }).code;
        const why =
          code === "EOPENBREAKER" ? "its circuit is open after repeated failures" : code === "ETIMEDOUT" ? `it did not answer within ${options.timeoutMs} ms` : (error as Error).message;
        throw new GatewayUnavailableError(`${gateway.provider} is unavailable: ${why}; try again later`);
      }
    };

  const wrapped = Object.fromEntries(OUTBOUND.map((m) => [m, guard(m)])) as Pick<PaymentGateway, Outbound>;
  return {
    provider: gateway.provider,
    flows: gateway.flows,
    defaultFlow: gateway.defaultFlow,
    ...(gateway.payerIdentification ? { payerIdentification: gateway.payerIdentification } : {}),
    ...wrapped,
    verifyCallback: (callback) => gateway.verifyCallback(callback),
    successReply: () => gateway.successReply(),
    failureReply: (message) => gateway.failureReply(message),
    breaker,
  };
}
