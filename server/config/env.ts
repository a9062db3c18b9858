/**
 * Configuration, parsed once at start from the environment into a typed object that is handed down: one zod
 * schema over the variables (`environmentSchema`) yields the `Config`. Any variable `NAME` can instead come from
 * the file named by `NAME_FILE` (a mounted secret; surrounding whitespace trimmed), never from both. Problems are
 * all reported together, each naming its variable; secret values never appear in messages.
 */
import { readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { type ChainConfig, ChainConfigError, parseChains } from "./chains";
import { type SandboxFile, readSandboxFile } from "./sandbox";
import { expect, expectSecret, httpUrl, iconDataUri, oneOf, positiveFen, text, wholeNumber } from "./values";
import { POSTGRES_DEFAULTS } from "../platform/db/database";
import type { AlipayGatewayConfig } from "../payments/gateways/alipay";
import type { WechatGatewayConfig } from "../payments/gateways/wechat";
import { WECHAT_OAUTH_API_URL, WECHAT_OAUTH_AUTHORIZE_URL } from "../payments/gateways/wechatOAuth";

export type Config = {
  host: string;
  port: number;
  /** How gateways reach us: notify URLs are built from it. */
  publicUrl: string;
  logLevel: string;
  database: { url?: string; dataDir: string; poolSize: number; connectTimeoutMs: number; statementTimeoutMs: number };
  adminToken?: string;
  orders: { minFen: bigint; maxFen: bigint; ttlSeconds: number };
  /** Orders a client IP and an account may create per minute (0: no limit): each one is a real gateway trade. */
  orderRateLimits: { perIp: number; perAccount: number };
  reconcile: { enabled: boolean; afterSeconds: number; intervalSeconds: number };
  /** The daily three-way reconciliation: how often it looks for days without a final result, and how far back. */
  dailyReconciliation: { enabled: boolean; intervalSeconds: number; lookbackDays: number };
  gatewayTimeoutMs: number;
  /**
   * Callbacks processed at once, and the longest one waits before it is refused with 503 (gateways retry); how
   * many callbacks that fail verification one client IP may send a minute before its notifications are refused
   * unread; how long those unverified callbacks are kept.
   */
  callbacks: { concurrency: number; maxWaitMs: number; yieldLagMs: number; minConcurrency: number; answerWithinMs: number; unverifiedPerIpPerMinute: number; unverifiedRetentionHours: number };
  alipay?: AlipayGatewayConfig;
  wechat?: WechatGatewayConfig;
  sponsorship: SponsorshipConfig;
  /** Express "trust proxy": false, a hop count, or a list of proxy addresses/subnets (TRUST_PROXY). */
  trustProxy: boolean | number | string;
  /** The `sponsor.name` in ERC-7677 answers. */
  sponsorName: string;
  /** ERC-7677 `sponsor.icon` (an RFC 2397 data URI), when set. */
  sponsorIcon?: string;
  /** An API key installed at start if missing (the local stack's demo key). */
  bootstrapApiKey?: string;
  /**
   * On SIGTERM: how long the server keeps accepting with readiness failing (so a load balancer takes it out of
   * rotation before connections are refused), then how long in-flight requests get to finish before their
   * connections are closed.
   */
  shutdownDelayMs: number;
  shutdownDrainMs: number;
  /**
   * Server processes behind the one port (node:cluster): 1 runs the service in this process; more need PostgreSQL
   * (PGlite belongs to one process). Each process has its own database pool of `database.poolSize`.
   */
  serverProcesses: number;
  /**
   * Sandbox mode (SANDBOX_DIR: the gateway simulator): the demo DApp page may learn the chain's RPC and bundler
   * URLs and the bootstrap API key from /v1/config. Never on in production.
   */
  sandbox: boolean;
};

export type SponsorshipConfig = {
  chains: ChainConfig[];
  /** 32-byte hex key of the paymaster signer (SIGNER_PRIVATE_KEY or SIGNER_PRIVATE_KEY_FILE). */
  signerKey?: `0x${string}`;
  /** Seconds a signed sponsorship stays valid (its validUntil) and the hold with it. */
  validSeconds: number;
  /** Seconds after validUntil before an unused hold is released (the op can no longer land). */
  holdGraceSeconds: number;
  /** Most open holds one sender may have. */
  maxHoldsPerSender: number;
  /** Most open holds one API key may take on one sender. */
  maxHoldsPerSenderPerApiKey: number;
  /** Most open holds one client IP may take on one sender. */
  maxHoldsPerSenderPerIp: number;
  /** Timeout of an RPC call on the request path (fees, nonce, proof checks): then `unavailable`. */
  rpcRequestTimeoutMs: number;
  /** Timeout of one Redis command (rate limits): then the in-memory limiter answers. */
  redisCommandTimeoutMs: number;
  /** Settlement worker's polling interval. */
  settleIntervalMs: number;
  /** Deposit monitor's polling interval. */
  depositIntervalMs: number;
  /** Rate limits per minute; 0 turns one off. Shared through Redis when REDIS_URL is set. */
  rateLimits: { perIp: number; perApiKey: number; perSender: number };
  redisUrl?: string;
  /** Largest JSON body accepted on /rpc and /v1/sponsorships. */
  maxBodyBytes: number;
};

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

export type Env = Record<string, string | undefined>;

// ---- What a variable may hold ------------------------------------------------------------------------------

/** A variable without a default: its value, or undefined when unset. */
function optional<T>(schema: z.ZodType<T, string>) {
  return variable(schema, undefined);
}

/**
 * A variable's value, `fallback` when unset. A bad value is reported and `invalid` (by default the fallback) used
 * in its place, so the checks across variables still run and every problem is reported at once (the result is
 * then thrown away): `invalid` is what a bad value stands for there, e.g. "set, but unusable".
 */
function variable<T, const F>(schema: z.ZodType<T, string>, fallback: F, options: { secret?: boolean; invalid?: T | F } = {}) {
  return z
    .string()
    .optional()
    .transform((raw, ctx): T | F => {
      if (raw === undefined) return fallback;
      const parsed = schema.safeParse(raw);
      if (parsed.success) return parsed.data;
      for (const issue of parsed.error.issues) {
        // the schemas of secrets never quote their input; this makes sure of it (a value of a few characters
        // would match ordinary words of the message)
        const message = options.secret && raw.length >= 4 && issue.message.includes(raw) ? "is not valid" : issue.message;
        ctx.issues.push({ code: "custom", message, input: options.secret ? "(secret)" : raw, continue: true });
      }
      return "invalid" in options ? (options.invalid as T | F) : fallback;
    });
}

/** A key, token or password (or a URL that may hold one): never quoted in a message. */
function secret<T>(schema: z.ZodType<T, string>, options: { invalid?: T } = {}) {
  return variable(schema, undefined, { secret: true, ...options });
}

const signerKey = expectSecret(z.string().regex(/^0x[0-9a-fA-F]{64}$/).transform((key) => key as `0x${string}`), "32 bytes of 0x-prefixed hex");
const redisUrl = expectSecret(z.string().regex(/^rediss?:\/\//), "a redis:// or rediss:// URL");

/** The chains array (./chains.ts), as JSON text. */
const chainsJson = z.string().transform((raw, ctx): ChainConfig[] => {
  try {
    return parseChains(JSON.parse(raw));
  } catch (error) {
    ctx.issues.push({ code: "custom", message: `CHAINS (or CHAINS_FILE): ${error instanceof ChainConfigError ? error.message : `not valid JSON (${(error as Error).message})`}`, input: raw });
    return z.NEVER;
  }
});

/**
 * Which X-Forwarded-For hops to believe. Default none: behind a load balancer set the number of proxies in
 * front of the server (e.g. 1) or their addresses, or every client can pick its own IP for the rate limits.
 */
const trustProxy = z.string().transform((raw, ctx): boolean | number | string => {
  if (raw === "false") return false;
  if (/^\d{1,2}$/.test(raw)) return Number(raw);
  if (/^[0-9a-fA-F.:/, ]+$|^(loopback|linklocal|uniquelocal)(,|$)/.test(raw)) return raw;
  const message =
    raw === "true"
      ? "TRUST_PROXY=true would let any client forge its IP; give the number of proxies in front of the server or their addresses"
      : `TRUST_PROXY must be false, a number of proxy hops, or a comma-separated list of proxy addresses/subnets: got ${raw}`;
  ctx.issues.push({ code: "custom", message, input: raw });
  return z.NEVER;
});

/** The simulator's sandbox folder (./sandbox.ts): the gateways' merchant configuration. */
const sandboxDir = z.string().transform((dir, ctx): { dir: string; file: SandboxFile } => {
  const read = readSandboxFile(dir);
  if ("problem" in read) {
    ctx.issues.push({ code: "custom", message: read.problem, input: dir });
    return z.NEVER;
  }
  return { dir, file: read.sandbox };
});

/** A folder of WeChat Pay platform certificates, `<serial>.pem` each: the certificates by serial. */
const certificatesDir = z.string().transform((dir, ctx): Record<string, string> => {
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith(".pem"));
    if (files.length === 0) ctx.issues.push({ code: "custom", message: `WECHAT_PLATFORM_CERTIFICATES_DIR ${dir} holds no <serial>.pem file`, input: dir });
    return Object.fromEntries(files.map((f) => [f.replace(/\.pem$/, ""), readFileSync(path.join(dir, f), "utf8")]));
  } catch (error) {
    ctx.issues.push({ code: "custom", message: `WECHAT_PLATFORM_CERTIFICATES_DIR: cannot read ${dir} (${(error as NodeJS.ErrnoException).code ?? "error"})`, input: dir });
    return z.NEVER;
  }
});

/** A comma-separated list of a provider's payment flows, e.g. `qr,wap`. */
function flowList<const T extends readonly [string, ...string[]]>(flows: T): z.ZodType<T[number][], string> {
  return expect(
    z
      .string()
      .transform((raw) => raw.split(",").map((f) => f.trim()).filter(Boolean))
      .pipe(z.array(z.enum(flows)).min(1))
      .transform((list) => [...new Set(list)]),
    `a comma-separated list of ${flows.join(", ")}`,
  );
}

/** How many server processes: a number, or `auto` for one per core the machine gives this process. */
const serverProcesses = z.string().transform((raw, ctx): number => {
  if (raw === "auto") return os.availableParallelism();
  if (/^\d{1,3}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 256) return Number(raw);
  ctx.issues.push({ code: "custom", message: `SERVER_PROCESSES must be auto or a whole number from 1 to 256: got ${raw.slice(0, 40)}`, input: raw });
  return z.NEVER;
});

const minutely = (fallback: number) => variable(wholeNumber(0, 10_000_000), fallback);

// ---- The environment ---------------------------------------------------------------------------------------

/** The longest a gateway's payment QR code lives (WeChat Pay Native, Alipay precreate): 2 hours. */
const QR_CODE_MAX_SECONDS = 7_200;

// the seller id (PID) too: notifications are ours only when app_id and seller_id both are
const ALIPAY_REQUIRED = ["ALIPAY_APP_ID", "ALIPAY_SELLER_ID", "ALIPAY_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"] as const;
const WECHAT_REQUIRED = ["WECHAT_APP_ID", "WECHAT_MCH_ID", "WECHAT_MERCHANT_SERIAL_NO", "WECHAT_MERCHANT_PRIVATE_KEY", "WECHAT_MERCHANT_CERTIFICATE", "WECHAT_API_V3_KEY"] as const;

/** Every variable the service reads, what it may hold and its default; secrets are marked `secret`. */
const variables = z.object({
  PORT: variable(wholeNumber(0, 65_535), 3000),
  HOST: variable(text, "0.0.0.0"),
  PUBLIC_URL: optional(httpUrl),
  LOG_LEVEL: variable(text, "info"),
  DATABASE_URL: secret(text),
  DATA_DIR: optional(text),
  DATABASE_POOL_SIZE: variable(wholeNumber(1, 500), 16),
  DATABASE_CONNECT_TIMEOUT_MS: variable(wholeNumber(100, 120_000), POSTGRES_DEFAULTS.connectTimeoutMs),
  DATABASE_STATEMENT_TIMEOUT_MS: variable(wholeNumber(100, 600_000), POSTGRES_DEFAULTS.statementTimeoutMs),
  ADMIN_TOKEN: secret(expectSecret(z.string().min(16), "at least 16 characters")),
  ORDER_MIN_FEN: variable(positiveFen, 100n),
  ORDER_MAX_FEN: variable(positiveFen, 500_000n),
  ORDER_TTL_SECONDS: variable(wholeNumber(60, 86_400), 900),
  RATE_LIMIT_ORDERS_IP_PER_MINUTE: minutely(30),
  RATE_LIMIT_ORDERS_ACCOUNT_PER_MINUTE: minutely(10),
  RECONCILE: variable(oneOf(["on", "off"]), "on"),
  RECONCILE_AFTER_SECONDS: variable(wholeNumber(0, 86_400), 120),
  RECONCILE_INTERVAL_SECONDS: variable(wholeNumber(1, 3_600), 30),
  RECONCILE_DAILY: variable(oneOf(["on", "off"]), "on"),
  RECONCILE_DAILY_INTERVAL_SECONDS: variable(wholeNumber(60, 86_400), 3_600),
  RECONCILE_DAILY_LOOKBACK_DAYS: variable(wholeNumber(1, 60), 3),
  GATEWAY_TIMEOUT_MS: variable(wholeNumber(100, 120_000), 10_000),
  // the callbacks processed at once are those a credit transaction can take together (they are group-committed):
  // 64 credits about 1.4× as many a second as 16 did (npm run bench:callbacks), on the same two transactions
  CALLBACK_CONCURRENCY: variable(wholeNumber(1, 1_000), 64),
  CALLBACK_MAX_WAIT_MS: variable(wholeNumber(10, 60_000), 3_000),
  // callbacks give sponsorship the event loop first (server/payments/admission.ts): while sponsorship requests are
  // served and the loop's p99 delay is above this many ms, fewer callbacks run at once; 0: never
  CALLBACK_YIELD_LAG_MS: variable(wholeNumber(0, 10_000), 20),
  CALLBACK_MIN_CONCURRENCY: variable(wholeNumber(1, 1_000), 4),
  // WeChat Pay waits 5 s for an answer: one not done by then is answered the failure reply and redelivered
  CALLBACK_ANSWER_WITHIN_MS: variable(wholeNumber(100, 120_000), 4_500),
  RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE: minutely(30),
  UNVERIFIED_CALLBACK_RETENTION_HOURS: variable(wholeNumber(1, 100_000), 168),
  TRUST_PROXY: variable(trustProxy, false),
  SPONSOR_NAME: variable(text, "fiat-paymaster"),
  SPONSOR_ICON: optional(iconDataUri),
  BOOTSTRAP_API_KEY: secret(text),
  SHUTDOWN_DELAY_MS: variable(wholeNumber(0, 600_000), 0),
  SERVER_PROCESSES: variable(serverProcesses, 1),
  SHUTDOWN_DRAIN_MS: variable(wholeNumber(0, 600_000), 10_000),
  SANDBOX_DIR: optional(sandboxDir),

  CHAINS: variable(chainsJson, [] as ChainConfig[]),
  // a bad key is still a key that is set: CHAINS is not reported as lacking one
  SIGNER_PRIVATE_KEY: secret(signerKey, { invalid: "0x" as const }),
  SPONSORSHIP_VALID_SECONDS: variable(wholeNumber(30, 86_400), 600),
  HOLD_GRACE_SECONDS: variable(wholeNumber(0, 86_400), 120),
  MAX_HOLDS_PER_SENDER: variable(wholeNumber(1, 1_000), 8),
  MAX_HOLDS_PER_SENDER_PER_API_KEY: variable(wholeNumber(1, 1_000), 4),
  MAX_HOLDS_PER_SENDER_PER_IP: variable(wholeNumber(1, 1_000), 2),
  RPC_REQUEST_TIMEOUT_MS: variable(wholeNumber(100, 60_000), 2_000),
  REDIS_COMMAND_TIMEOUT_MS: variable(wholeNumber(10, 60_000), 500),
  SETTLE_INTERVAL_MS: variable(wholeNumber(50, 600_000), 2_000),
  DEPOSIT_CHECK_INTERVAL_MS: variable(wholeNumber(50, 3_600_000), 15_000),
  RATE_LIMIT_IP_PER_MINUTE: minutely(600),
  RATE_LIMIT_API_KEY_PER_MINUTE: minutely(6_000),
  RATE_LIMIT_SENDER_PER_MINUTE: minutely(60),
  REDIS_URL: secret(redisUrl),
  SPONSORSHIP_MAX_BODY_BYTES: variable(wholeNumber(1_024, 10 * 1024 * 1024), 64 * 1024),

  ALIPAY_APP_ID: optional(text),
  ALIPAY_SELLER_ID: optional(text),
  ALIPAY_PRIVATE_KEY: secret(text),
  ALIPAY_PUBLIC_KEY: optional(text),
  ALIPAY_GATEWAY_URL: variable(httpUrl, "https://openapi.alipay.com/gateway.do"),
  ALIPAY_CHECKOUT: variable(oneOf(["qr", "page"]), "qr"),
  ALIPAY_RETURN_URL: optional(httpUrl),
  ALIPAY_FLOWS: optional(flowList(["qr", "page", "wap"])),
  ALIPAY_WAP_RETURN_URL: optional(httpUrl),
  ALIPAY_QUIT_URL: optional(httpUrl),

  WECHAT_APP_ID: optional(text),
  WECHAT_MCH_ID: optional(text),
  WECHAT_MERCHANT_SERIAL_NO: optional(text),
  WECHAT_MERCHANT_PRIVATE_KEY: secret(text),
  WECHAT_MERCHANT_CERTIFICATE: optional(text),
  WECHAT_API_V3_KEY: secret(text),
  WECHAT_PAY_PUBLIC_KEY: optional(text),
  WECHAT_PAY_PUBLIC_KEY_ID: optional(text),
  // an unreadable folder is still the platform key mode chosen: not reported as lacking one
  WECHAT_PLATFORM_CERTIFICATES_DIR: variable(certificatesDir, undefined, { invalid: {} }),
  WECHAT_BASE_URL: variable(httpUrl, "https://api.mch.weixin.qq.com"),
  WECHAT_FLOWS: optional(flowList(["qr", "h5", "jsapi"])),
  WECHAT_APP_SECRET: secret(text),
  WECHAT_OAUTH_AUTHORIZE_URL: variable(httpUrl, WECHAT_OAUTH_AUTHORIZE_URL),
  WECHAT_OAUTH_API_URL: variable(httpUrl, WECHAT_OAUTH_API_URL),
});
type Variables = z.infer<typeof variables>;

/** The variables' names: each may also come from `NAME_FILE`. */
export const VARIABLES = Object.keys(variables.shape) as (keyof Variables)[];

/** What no single variable can say: limits that contradict each other, a gateway configured in part. */
function checkTogether(v: Variables, ctx: z.RefinementCtx): void {
  const problem = (message: string) => ctx.addIssue({ code: "custom", message, input: undefined, continue: true });
  if (v.SERVER_PROCESSES > 1 && v.DATABASE_URL === undefined) {
    problem(`SERVER_PROCESSES=${v.SERVER_PROCESSES} needs DATABASE_URL (PostgreSQL): the embedded PGlite database belongs to one process`);
  }
  if (v.CALLBACK_MAX_WAIT_MS >= v.CALLBACK_ANSWER_WITHIN_MS) problem(`CALLBACK_MAX_WAIT_MS (${v.CALLBACK_MAX_WAIT_MS}) must be below CALLBACK_ANSWER_WITHIN_MS (${v.CALLBACK_ANSWER_WITHIN_MS}): a callback admitted at the end of its wait needs time to be processed`);
  if (v.CALLBACK_MIN_CONCURRENCY > v.CALLBACK_CONCURRENCY) problem(`CALLBACK_MIN_CONCURRENCY (${v.CALLBACK_MIN_CONCURRENCY}) is above CALLBACK_CONCURRENCY (${v.CALLBACK_CONCURRENCY})`);
  if (v.ORDER_MIN_FEN > v.ORDER_MAX_FEN) problem(`ORDER_MIN_FEN (${v.ORDER_MIN_FEN}) is above ORDER_MAX_FEN (${v.ORDER_MAX_FEN})`);
  const missing = (names: readonly (keyof Variables)[]) => names.filter((n) => v[n] === undefined);
  const partly = (names: readonly (keyof Variables)[], provider: string) => {
    const absent = missing(names);
    if (absent.length > 0 && absent.length < names.length) problem(`${provider} is partly configured: missing ${absent.join(", ")} (or their _FILE variants)`);
  };
  const sandbox = v.SANDBOX_DIR?.file;
  if (!sandbox?.alipay) partly(ALIPAY_REQUIRED, "Alipay");
  if (v.ALIPAY_SELLER_ID !== undefined && !/^2088\d{12}$/.test(v.ALIPAY_SELLER_ID)) problem("ALIPAY_SELLER_ID must be the merchant's PID: 2088 and 12 digits");
  if (!sandbox?.wechat) {
    partly(WECHAT_REQUIRED, "WeChat Pay");
    if (missing(WECHAT_REQUIRED).length === 0) {
      if (v.WECHAT_API_V3_KEY!.length !== 32) problem("WECHAT_API_V3_KEY must be 32 characters");
      if (!(v.WECHAT_PAY_PUBLIC_KEY && v.WECHAT_PAY_PUBLIC_KEY_ID) && !v.WECHAT_PLATFORM_CERTIFICATES_DIR) {
        problem("WeChat Pay needs WECHAT_PAY_PUBLIC_KEY and WECHAT_PAY_PUBLIC_KEY_ID, or WECHAT_PLATFORM_CERTIFICATES_DIR");
      }
    }
  }
  const wechatOn = Boolean(sandbox?.wechat) || missing(WECHAT_REQUIRED).length === 0;
  const alipayOn = Boolean(sandbox?.alipay) || missing(ALIPAY_REQUIRED).length === 0;
  const alipayFlows = alipayFlowsOf(v);
  const wechatFlows = wechatFlowsOf(v);
  if (alipayOn && !alipayFlows.includes(v.ALIPAY_CHECKOUT)) problem(`ALIPAY_CHECKOUT (${v.ALIPAY_CHECKOUT}) is not one of ALIPAY_FLOWS (${alipayFlows.join(",")})`);
  if (wechatOn && wechatFlows.includes("jsapi") && !sandbox?.wechat?.oauth && !v.WECHAT_APP_SECRET) {
    problem("WECHAT_FLOWS has jsapi but WECHAT_APP_SECRET (or WECHAT_APP_SECRET_FILE) is not set: JSAPI needs the official account's AppSecret for the payer's openid (OAuth)");
  }
  // a payment QR code lives at most 2 hours at either gateway (WeChat Pay Native's code_url, Alipay's precreate
  // qr_code), and so does a JSAPI prepay_id: an order must not outlive what the payer pays it with
  const wechatLimited = wechatOn && (wechatFlows.includes("qr") || wechatFlows.includes("jsapi"));
  const alipayQr = alipayOn && alipayFlows.includes("qr");
  if (v.ORDER_TTL_SECONDS > QR_CODE_MAX_SECONDS && (wechatLimited || alipayQr)) {
    const qrFlows = [wechatLimited && wechatFlows.includes("qr") && "WeChat Pay Native", alipayQr && "Alipay QR (precreate)"].filter(Boolean).join(" and ");
    const jsapi = wechatLimited && wechatFlows.includes("jsapi") ? "WeChat Pay JSAPI prepay_ids" : "";
    const what = [qrFlows && `${qrFlows} payment QR codes`, jsapi].filter(Boolean).join(" and ");
    problem(`ORDER_TTL_SECONDS (${v.ORDER_TTL_SECONDS}) is above ${QR_CODE_MAX_SECONDS}: ${what} live at most 2 hours, and an order must not outlive its code`);
  }
  if (v.CHAINS.length > 0 && v.SIGNER_PRIVATE_KEY === undefined) problem("CHAINS is set but SIGNER_PRIVATE_KEY (or SIGNER_PRIVATE_KEY_FILE) is not: sponsorships cannot be signed");
}

function toConfig(v: Variables): Config {
  const publicUrl = v.PUBLIC_URL ?? `http://127.0.0.1:${v.PORT}`;
  return {
    host: v.HOST,
    port: v.PORT,
    publicUrl,
    logLevel: v.LOG_LEVEL,
    database: {
      url: v.DATABASE_URL,
      dataDir: v.DATA_DIR ?? path.resolve(".data/pglite"),
      poolSize: v.DATABASE_POOL_SIZE,
      connectTimeoutMs: v.DATABASE_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: v.DATABASE_STATEMENT_TIMEOUT_MS,
    },
    adminToken: v.ADMIN_TOKEN,
    orders: { minFen: v.ORDER_MIN_FEN, maxFen: v.ORDER_MAX_FEN, ttlSeconds: v.ORDER_TTL_SECONDS },
    orderRateLimits: { perIp: v.RATE_LIMIT_ORDERS_IP_PER_MINUTE, perAccount: v.RATE_LIMIT_ORDERS_ACCOUNT_PER_MINUTE },
    reconcile: { enabled: v.RECONCILE === "on", afterSeconds: v.RECONCILE_AFTER_SECONDS, intervalSeconds: v.RECONCILE_INTERVAL_SECONDS },
    dailyReconciliation: { enabled: v.RECONCILE_DAILY === "on", intervalSeconds: v.RECONCILE_DAILY_INTERVAL_SECONDS, lookbackDays: v.RECONCILE_DAILY_LOOKBACK_DAYS },
    gatewayTimeoutMs: v.GATEWAY_TIMEOUT_MS,
    callbacks: {
      concurrency: v.CALLBACK_CONCURRENCY,
      maxWaitMs: v.CALLBACK_MAX_WAIT_MS,
      yieldLagMs: v.CALLBACK_YIELD_LAG_MS,
      minConcurrency: v.CALLBACK_MIN_CONCURRENCY,
      answerWithinMs: v.CALLBACK_ANSWER_WITHIN_MS,
      unverifiedPerIpPerMinute: v.RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE,
      unverifiedRetentionHours: v.UNVERIFIED_CALLBACK_RETENTION_HOURS,
    },
    alipay: alipayConfig(v, publicUrl),
    wechat: wechatConfig(v, publicUrl),
    sponsorship: {
      chains: v.CHAINS,
      signerKey: v.SIGNER_PRIVATE_KEY,
      validSeconds: v.SPONSORSHIP_VALID_SECONDS,
      holdGraceSeconds: v.HOLD_GRACE_SECONDS,
      maxHoldsPerSender: v.MAX_HOLDS_PER_SENDER,
      maxHoldsPerSenderPerApiKey: v.MAX_HOLDS_PER_SENDER_PER_API_KEY,
      maxHoldsPerSenderPerIp: v.MAX_HOLDS_PER_SENDER_PER_IP,
      rpcRequestTimeoutMs: v.RPC_REQUEST_TIMEOUT_MS,
      redisCommandTimeoutMs: v.REDIS_COMMAND_TIMEOUT_MS,
      settleIntervalMs: v.SETTLE_INTERVAL_MS,
      depositIntervalMs: v.DEPOSIT_CHECK_INTERVAL_MS,
      rateLimits: { perIp: v.RATE_LIMIT_IP_PER_MINUTE, perApiKey: v.RATE_LIMIT_API_KEY_PER_MINUTE, perSender: v.RATE_LIMIT_SENDER_PER_MINUTE },
      redisUrl: v.REDIS_URL,
      maxBodyBytes: v.SPONSORSHIP_MAX_BODY_BYTES,
    },
    trustProxy: v.TRUST_PROXY,
    sponsorName: v.SPONSOR_NAME,
    sponsorIcon: v.SPONSOR_ICON,
    bootstrapApiKey: v.BOOTSTRAP_API_KEY,
    shutdownDelayMs: v.SHUTDOWN_DELAY_MS,
    serverProcesses: v.SERVER_PROCESSES,
    shutdownDrainMs: v.SHUTDOWN_DRAIN_MS,
    sandbox: v.SANDBOX_DIR !== undefined,
  };
}

/** In sandbox mode the merchant's side comes from sandbox.json; otherwise all four variables, or no Alipay. */
/**
 * The flows each gateway offers: as configured; else the default flow alone (Alipay's ALIPAY_CHECKOUT, WeChat Pay
 * Native), and in sandbox mode the phone flows too (the simulator has every product).
 */
function alipayFlowsOf(v: Variables): ("qr" | "page" | "wap")[] {
  return v.ALIPAY_FLOWS ?? (v.SANDBOX_DIR?.file.alipay ? [v.ALIPAY_CHECKOUT, "wap"] : [v.ALIPAY_CHECKOUT]);
}

function wechatFlowsOf(v: Variables): ("qr" | "h5" | "jsapi")[] {
  return v.WECHAT_FLOWS ?? (v.SANDBOX_DIR?.file.wechat ? ["qr", "h5", "jsapi"] : ["qr"]);
}

function alipayConfig(v: Variables, publicUrl: string): AlipayGatewayConfig | undefined {
  const common = {
    notifyUrl: `${publicUrl}/v1/payments/alipay/notify`,
    returnUrl: v.ALIPAY_RETURN_URL,
    checkout: v.ALIPAY_CHECKOUT,
    flows: alipayFlowsOf(v),
    // 手机网站支付 comes back to our checkout page, which shows the order (and credits nothing)
    wapReturnUrl: v.ALIPAY_WAP_RETURN_URL ?? `${publicUrl}/checkout`,
    quitUrl: v.ALIPAY_QUIT_URL ?? `${publicUrl}/checkout`,
    timeoutMs: v.GATEWAY_TIMEOUT_MS,
  };
  const sandbox = v.SANDBOX_DIR?.file.alipay;
  if (sandbox) return { ...sandbox, ...common };
  if (!v.ALIPAY_APP_ID || !v.ALIPAY_SELLER_ID || !v.ALIPAY_PRIVATE_KEY || !v.ALIPAY_PUBLIC_KEY) return undefined;
  return { appId: v.ALIPAY_APP_ID, sellerId: v.ALIPAY_SELLER_ID, privateKey: v.ALIPAY_PRIVATE_KEY, alipayPublicKey: v.ALIPAY_PUBLIC_KEY, gatewayUrl: v.ALIPAY_GATEWAY_URL, ...common };
}

function wechatConfig(v: Variables, publicUrl: string): WechatGatewayConfig | undefined {
  const flows = wechatFlowsOf(v);
  const oauth = v.WECHAT_APP_SECRET
    ? { appSecret: v.WECHAT_APP_SECRET, authorizeUrl: v.WECHAT_OAUTH_AUTHORIZE_URL, apiBaseUrl: v.WECHAT_OAUTH_API_URL }
    : undefined;
  const common = { notifyUrl: `${publicUrl}/v1/payments/wechat/notify`, timeoutMs: v.GATEWAY_TIMEOUT_MS, flows };
  const sandbox = v.SANDBOX_DIR?.file.wechat;
  // the sandbox file names the simulator's OAuth and WeixinJSBridge stand-in; nothing outside sandbox mode can
  if (sandbox) return { ...sandbox, ...common, ...(oauth ? { oauth } : {}) };
  const { WECHAT_APP_ID, WECHAT_MCH_ID, WECHAT_MERCHANT_SERIAL_NO, WECHAT_MERCHANT_PRIVATE_KEY, WECHAT_MERCHANT_CERTIFICATE, WECHAT_API_V3_KEY } = v;
  if (!WECHAT_APP_ID || !WECHAT_MCH_ID || !WECHAT_MERCHANT_SERIAL_NO || !WECHAT_MERCHANT_PRIVATE_KEY || !WECHAT_MERCHANT_CERTIFICATE || !WECHAT_API_V3_KEY) return undefined;
  const publicKey = v.WECHAT_PAY_PUBLIC_KEY && v.WECHAT_PAY_PUBLIC_KEY_ID ? { publicKey: v.WECHAT_PAY_PUBLIC_KEY, publicKeyId: v.WECHAT_PAY_PUBLIC_KEY_ID } : undefined;
  const certificates = v.WECHAT_PLATFORM_CERTIFICATES_DIR;
  // both at once while migrating from platform certificates to the public key: each message names its key
  const platform: WechatGatewayConfig["platform"] | undefined =
    publicKey && certificates
      ? { mode: "certificateAndPublicKey", certificates, ...publicKey }
      : publicKey
        ? { mode: "publicKey", ...publicKey }
        : certificates && { mode: "certificate", certificates };
  if (!platform) return undefined;
  return {
    appId: WECHAT_APP_ID,
    mchId: WECHAT_MCH_ID,
    merchantSerialNo: WECHAT_MERCHANT_SERIAL_NO,
    merchantPrivateKey: WECHAT_MERCHANT_PRIVATE_KEY,
    merchantCertificate: WECHAT_MERCHANT_CERTIFICATE,
    apiV3Key: WECHAT_API_V3_KEY,
    platform,
    baseUrl: v.WECHAT_BASE_URL,
    ...common,
    ...(flows.includes("jsapi") && oauth ? { oauth } : {}),
  };
}

/** The configuration: the variables' schema, checked together, as the typed object the service is built from. */
export const environmentSchema = variables.superRefine(checkTogether).transform(toConfig);

// ---- Reading the environment -------------------------------------------------------------------------------

/**
 * Each variable's text, from `NAME` or from the file named by `NAME_FILE` (trimmed; empty means unset). Files
 * are the only I/O here: what cannot be read is a problem naming the variable and the path, never the contents.
 */
function readVariables(env: Env): { values: Record<string, string | undefined>; problems: string[] } {
  const values: Record<string, string | undefined> = {};
  const problems: string[] = [];
  for (const name of VARIABLES) {
    const direct = env[name]?.trim() || undefined;
    const file = env[`${name}_FILE`]?.trim() || undefined;
    values[name] = direct;
    if (file === undefined) continue;
    if (direct !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set: set only one`);
      continue;
    }
    try {
      values[name] = readFileSync(file, "utf8").trim() || undefined;
      if (values[name] === undefined) problems.push(`${name}_FILE: ${file} is empty`);
    } catch (error) {
      problems.push(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  return { values, problems };
}

/** A problem as a person reads it: the variable first (unless the message starts with it already). */
function describeIssue(issue: z.core.$ZodIssue): string {
  const name = issue.path.map(String).join(".");
  return name === "" || issue.message.startsWith(name) ? issue.message : `${name} ${issue.message}`;
}

export function loadConfig(env: Env): Config {
  const { values, problems } = readVariables(env);
  const parsed = environmentSchema.safeParse(values);
  if (parsed.success && problems.length === 0) return parsed.data;
  throw new ConfigError([...problems, ...(parsed.error?.issues.map(describeIssue) ?? [])]);
}
