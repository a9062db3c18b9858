/**
 * Sponsorship rate limits per IP, API key and sender (rate-limiter-flexible). With REDIS_URL the counters live
 * in Redis, so the limits hold across every instance behind the load balancer; without it they are per
 * process (one instance, the local stack). If Redis stops answering, an in-memory limiter takes over for that
 * instance rather than refusing every request.
 */
import { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

export type RateLimitScope = "ip" | "apiKey" | "sender";

export type RateLimitRefusal = { scope: RateLimitScope; retryAfterSeconds: number; limit: number };

export type RateLimiter = {
  /** Counts one request against each given key; returns the first limit it exceeds, if any. */
  consume(keys: Partial<Record<RateLimitScope, string>>): Promise<RateLimitRefusal | undefined>;
  close(): Promise<void>;
  readonly backend: "redis" | "memory";
};

export type RateLimitOptions = { perIp: number; perApiKey: number; perSender: number; redisUrl?: string; keyPrefix?: string };

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 1, lazyConnect: false, enableOfflineQueue: false })
    : undefined;
  // connection errors are handled by the insurance limiter; without a listener ioredis would log each one
  redis?.on("error", () => {});
  const limits: Record<RateLimitScope, number> = { ip: options.perIp, apiKey: options.perApiKey, sender: options.perSender };
  const limiters = new Map<RateLimitScope, RateLimiterAbstract>();
  for (const scope of Object.keys(limits) as RateLimitScope[]) {
    const points = limits[scope];
    if (points <= 0) continue;
    const common = { points, duration: 60, keyPrefix: `${options.keyPrefix ?? "fp"}:rl:${scope}` };
    limiters.set(
      scope,
      redis ? new RateLimiterRedis({ ...common, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter: new RateLimiterMemory(common) }) : new RateLimiterMemory(common),
    );
  }
  return {
    backend: redis ? "redis" : "memory",
    async consume(keys) {
      const checks = [...limiters].filter(([scope]) => keys[scope] !== undefined);
      const outcomes = await Promise.all(
        checks.map(([scope, limiter]) =>
          limiter.consume(keys[scope]!).then(
            () => undefined,
            (rejection: unknown) => {
              if (rejection instanceof RateLimiterRes) return { scope, retryAfterSeconds: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)), limit: limits[scope] };
              return undefined; // a store error with no insurance: let the request through rather than fail it
            },
          ),
        ),
      );
      return outcomes.find((o) => o !== undefined);
    },
    async close() {
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}
