/**
 * Rate limits (rate-limiter-flexible), each a number of requests per minute under a named scope: sponsorship per
 * client IP, API key and (sender, client IP); top-up orders per client IP and per account; payment notifications
 * per client IP. With REDIS_URL the counters live in Redis, so the limits hold across every instance behind the
 * load balancer; without it they are per process (one instance, the local stack). If Redis stops answering —
 * refused, dropped, or wedged (every command has a timeout) — an in-memory limiter takes over for that instance
 * rather than refusing or stalling every request.
 */
import { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

export type RateLimitScope = "ip" | "apiKey" | "sender" | "orderIp" | "orderAccount" | "notifyIp";

export type RateLimitRefusal = { scope: RateLimitScope; retryAfterSeconds: number; limit: number };

export type RateLimiter = {
  /** Counts one request against each given key; returns the first limit it exceeds, if any. */
  consume(keys: Partial<Record<RateLimitScope, string>>): Promise<RateLimitRefusal | undefined>;
  /** Whether one more request for these keys would exceed a limit, without counting it. */
  peek(keys: Partial<Record<RateLimitScope, string>>): Promise<RateLimitRefusal | undefined>;
  close(): Promise<void>;
  readonly backend: "redis" | "memory";
};

export type RateLimitOptions = {
  /** Requests per minute per scope; 0 or absent turns a scope off. */
  limits: Partial<Record<RateLimitScope, number>>;
  redisUrl?: string;
  keyPrefix?: string;
  /** How long one Redis command may take before the in-memory limiter answers instead. */
  commandTimeoutMs?: number;
};

export const REDIS_COMMAND_TIMEOUT_MS = 500;
/** After Redis made a request wait a whole command timeout, how long the in-memory limiters answer alone. */
const REDIS_BYPASS_MS = 5_000;

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, {
        enableAutoPipelining: true,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
        enableOfflineQueue: false,
        connectTimeout: 2_000,
        commandTimeout: options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS,
      })
    : undefined;
  // connection errors are handled by the insurance limiter; without a listener ioredis would log each one
  redis?.on("error", () => {});
  const limits = options.limits;
  const commandTimeoutMs = options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS;
  const limiters = new Map<RateLimitScope, RateLimiterAbstract>();
  const insurance = new Map<RateLimitScope, RateLimiterAbstract>();
  for (const [scope, points] of Object.entries(limits) as [RateLimitScope, number][]) {
    if (!points || points <= 0) continue;
    const common = { points, duration: 60, keyPrefix: `${options.keyPrefix ?? "fp"}:rl:${scope}` };
    const memory = new RateLimiterMemory(common);
    insurance.set(scope, memory);
    limiters.set(scope, redis ? new RateLimiterRedis({ ...common, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter: memory }) : memory);
  }
  // A Redis that accepts commands but answers none costs every request a command timeout before the insurance
  // limiter answers; after one such wait, go straight to the in-memory limiters for a while, then try Redis again.
  let bypassUntil = 0;
  const active = () => (Date.now() < bypassUntil ? insurance : limiters);
  return {
    backend: redis ? "redis" : "memory",
    async consume(keys) {
      const started = Date.now();
      const checks = [...active()].filter(([scope]) => keys[scope] !== undefined);
      const outcomes = await Promise.all(
        checks.map(([scope, limiter]) =>
          limiter.consume(keys[scope]!).then(
            () => undefined,
            (rejection: unknown) => {
              if (rejection instanceof RateLimiterRes) return { scope, retryAfterSeconds: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)), limit: limits[scope]! };
              return undefined; // a store error with no insurance: let the request through rather than fail it
            },
          ),
        ),
      );
      if (redis && Date.now() - started >= commandTimeoutMs) bypassUntil = Date.now() + REDIS_BYPASS_MS;
      return outcomes.find((o) => o !== undefined);
    },
    async peek(keys) {
      const checks = [...active()].filter(([scope]) => keys[scope] !== undefined);
      const outcomes = await Promise.all(
        checks.map(([scope, limiter]) =>
          limiter.get(keys[scope]!).then(
            (res) => (res && res.consumedPoints >= limits[scope]! ? { scope, retryAfterSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)), limit: limits[scope]! } : undefined),
            () => undefined,
          ),
        ),
      );
      return outcomes.find((o) => o !== undefined);
    },
    async close() {
      if (!redis) return;
      // quit() waits for Redis to answer; one that is wedged must not hold up shutdown
      const quit = redis.quit().catch(() => undefined);
      const timer = setTimeout(() => redis.disconnect(), commandTimeoutMs);
      await quit;
      clearTimeout(timer);
      redis.disconnect();
    },
  };
}
