/**
 * Configuration, parsed once at start from the environment into a typed object that is handed down. Secrets
 * (keys, tokens) can come from files: `NAME_FILE` names a file holding the value of `NAME`. Problems are all
 * reported together, each naming its variable; secret values never appear in messages.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { type ChainConfig, ChainConfigError, parseChains } from "./chains";
import { POSTGRES_DEFAULTS } from "../platform/db/database";
import type { AlipayGatewayConfig } from "../payments/gateways/alipay";
import type { WechatGatewayConfig } from "../payments/gateways/wechat";

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
  gatewayTimeoutMs: number;
  /**
   * Callbacks processed at once, and the longest one waits before it is refused with 503 (gateways retry); how
   * many callbacks that fail verification one client IP may send a minute before its notifications are refused
   * unread; how long those unverified callbacks are kept.
   */
  callbacks: { concurrency: number; maxWaitMs: number; unverifiedPerIpPerMinute: number; unverifiedRetentionHours: number };
  alipay?: AlipayGatewayConfig;
  wechat?: WechatGatewayConfig;
  sponsorship: SponsorshipConfig;
  /** Express "trust proxy": false, a hop count, or a list of proxy addresses/subnets (TRUST_PROXY). */
  trustProxy: boolean | number | string;
  /** The `sponsor.name` in ERC-7677 answers. */
  sponsorName: string;
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

/** Reads a sandbox folder written by the gateway simulator (`npm run simulator`): its credentials and URLs. */
export type SandboxFile = { alipay?: Omit<AlipayGatewayConfig, "notifyUrl" | "timeoutMs" | "checkout">; wechat?: Omit<WechatGatewayConfig, "notifyUrl" | "timeoutMs"> };

export function loadConfig(env: Env): Config {
  const problems: string[] = [];

  const text = (name: string): string | undefined => {
    const file = env[`${name}_FILE`];
    if (file) {
      try {
        return readFileSync(file, "utf8").trim();
      } catch (error) {
        problems.push(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
        return undefined;
      }
    }
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be a whole number in [${min}, ${max}]: got ${raw}`);
      return fallback;
    }
    return Number(raw);
  };
  const fen = (name: string, fallback: bigint): bigint => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!/^\d{1,15}$/.test(raw) || BigInt(raw) === 0n) {
      problems.push(`${name} must be a positive whole number of fen: got ${raw}`);
      return fallback;
    }
    return BigInt(raw);
  };
  const url = (name: string, fallback?: string): string | undefined => {
    const raw = text(name) ?? fallback;
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error();
      return raw.replace(/\/+$/, "");
    } catch {
      problems.push(`${name} must be an http(s) URL: got ${raw}`);
      return fallback;
    }
  };

  const port = int("PORT", 3000, 0, 65535);
  const host = text("HOST") ?? "0.0.0.0";
  const publicUrl = url("PUBLIC_URL") ?? `http://127.0.0.1:${port}`;
  const gatewayTimeoutMs = int("GATEWAY_TIMEOUT_MS", 10_000, 100, 120_000);
  const orders = { minFen: fen("ORDER_MIN_FEN", 100n), maxFen: fen("ORDER_MAX_FEN", 500_000n), ttlSeconds: int("ORDER_TTL_SECONDS", 900, 60, 86_400) };
  const orderRateLimits = { perIp: int("RATE_LIMIT_ORDERS_IP_PER_MINUTE", 30, 0, 10_000_000), perAccount: int("RATE_LIMIT_ORDERS_ACCOUNT_PER_MINUTE", 10, 0, 10_000_000) };
  if (orders.minFen > orders.maxFen) problems.push(`ORDER_MIN_FEN (${orders.minFen}) is above ORDER_MAX_FEN (${orders.maxFen})`);
  const adminToken = text("ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 16) problems.push("ADMIN_TOKEN must be at least 16 characters");

  const sandboxDir = text("SANDBOX_DIR");
  let sandbox: SandboxFile = {};
  if (sandboxDir) {
    try {
      sandbox = JSON.parse(readFileSync(path.join(sandboxDir, "sandbox.json"), "utf8")) as SandboxFile;
    } catch (error) {
      problems.push(`SANDBOX_DIR: cannot read ${path.join(sandboxDir, "sandbox.json")} (${(error as Error).message}); start the simulator first`);
    }
  }

  const alipay = loadAlipay(text, url, problems, sandbox, { publicUrl, gatewayTimeoutMs });
  const wechat = loadWechat(text, url, problems, sandbox, { publicUrl, gatewayTimeoutMs });

  const reconcileFlag = text("RECONCILE") ?? "on";
  if (!["on", "off"].includes(reconcileFlag)) problems.push(`RECONCILE must be on or off: got ${reconcileFlag}`);

  const sponsorship = loadSponsorship(text, int, problems);
  const trustProxy = parseTrustProxy(text("TRUST_PROXY"), problems);

  // everything is parsed before the problems are counted: each bad variable is reported, none silently defaulted
  const config: Config = {
    host,
    port,
    publicUrl,
    logLevel: text("LOG_LEVEL") ?? "info",
    database: {
      url: text("DATABASE_URL"),
      dataDir: text("DATA_DIR") ?? path.resolve(".data/pglite"),
      poolSize: int("DATABASE_POOL_SIZE", 16, 1, 500),
      connectTimeoutMs: int("DATABASE_CONNECT_TIMEOUT_MS", POSTGRES_DEFAULTS.connectTimeoutMs, 100, 120_000),
      statementTimeoutMs: int("DATABASE_STATEMENT_TIMEOUT_MS", POSTGRES_DEFAULTS.statementTimeoutMs, 100, 600_000),
    },
    adminToken,
    orders,
    orderRateLimits,
    reconcile: {
      enabled: reconcileFlag === "on",
      afterSeconds: int("RECONCILE_AFTER_SECONDS", 120, 0, 86_400),
      intervalSeconds: int("RECONCILE_INTERVAL_SECONDS", 30, 1, 3_600),
    },
    gatewayTimeoutMs,
    callbacks: {
      concurrency: int("CALLBACK_CONCURRENCY", 16, 1, 1_000),
      maxWaitMs: int("CALLBACK_MAX_WAIT_MS", 3_000, 10, 60_000),
      unverifiedPerIpPerMinute: int("RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE", 30, 0, 10_000_000),
      unverifiedRetentionHours: int("UNVERIFIED_CALLBACK_RETENTION_HOURS", 168, 1, 100_000),
    },
    alipay,
    wechat,
    sponsorship,
    trustProxy,
    sponsorName: text("SPONSOR_NAME") ?? "fiat-paymaster",
    bootstrapApiKey: text("BOOTSTRAP_API_KEY"),
    shutdownDelayMs: int("SHUTDOWN_DELAY_MS", 0, 0, 600_000),
    shutdownDrainMs: int("SHUTDOWN_DRAIN_MS", 10_000, 0, 600_000),
    sandbox: sandboxDir !== undefined,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * Which X-Forwarded-For hops to believe. Default none: behind a load balancer set the number of proxies in
 * front of the server (e.g. 1) or their addresses, or every client can pick its own IP for the rate limits.
 */
function parseTrustProxy(raw: string | undefined, problems: string[]): boolean | number | string {
  if (raw === undefined || raw === "false") return false;
  if (/^\d{1,2}$/.test(raw)) return Number(raw);
  if (raw === "true") {
    problems.push("TRUST_PROXY=true would let any client forge its IP; give the number of proxies in front of the server or their addresses");
    return false;
  }
  if (/^[0-9a-fA-F.:/, ]+$|^(loopback|linklocal|uniquelocal)(,|$)/.test(raw)) return raw;
  problems.push(`TRUST_PROXY must be false, a number of proxy hops, or a comma-separated list of proxy addresses/subnets: got ${raw}`);
  return false;
}

function loadSponsorship(text: Text, int: (name: string, fallback: number, min: number, max: number) => number, problems: string[]): SponsorshipConfig {
  let chains: ChainConfig[] = [];
  const raw = text("CHAINS");
  if (raw !== undefined) {
    try {
      chains = parseChains(JSON.parse(raw));
    } catch (error) {
      problems.push(`CHAINS (or CHAINS_FILE): ${error instanceof ChainConfigError ? error.message : `not valid JSON (${(error as Error).message})`}`);
    }
  }
  const signerKey = text("SIGNER_PRIVATE_KEY");
  if (signerKey !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(signerKey)) problems.push("SIGNER_PRIVATE_KEY must be 32 bytes of 0x-prefixed hex");
  if (chains.length > 0 && signerKey === undefined) problems.push("CHAINS is set but SIGNER_PRIVATE_KEY (or SIGNER_PRIVATE_KEY_FILE) is not: sponsorships cannot be signed");
  const redisUrl = text("REDIS_URL");
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) problems.push("REDIS_URL must be a redis:// or rediss:// URL");
  return {
    chains,
    signerKey: signerKey as `0x${string}` | undefined,
    validSeconds: int("SPONSORSHIP_VALID_SECONDS", 600, 30, 86_400),
    holdGraceSeconds: int("HOLD_GRACE_SECONDS", 120, 0, 86_400),
    maxHoldsPerSender: int("MAX_HOLDS_PER_SENDER", 8, 1, 1_000),
    maxHoldsPerSenderPerApiKey: int("MAX_HOLDS_PER_SENDER_PER_API_KEY", 4, 1, 1_000),
    maxHoldsPerSenderPerIp: int("MAX_HOLDS_PER_SENDER_PER_IP", 2, 1, 1_000),
    rpcRequestTimeoutMs: int("RPC_REQUEST_TIMEOUT_MS", 2_000, 100, 60_000),
    redisCommandTimeoutMs: int("REDIS_COMMAND_TIMEOUT_MS", 500, 10, 60_000),
    settleIntervalMs: int("SETTLE_INTERVAL_MS", 2_000, 50, 600_000),
    depositIntervalMs: int("DEPOSIT_CHECK_INTERVAL_MS", 15_000, 50, 3_600_000),
    rateLimits: {
      perIp: int("RATE_LIMIT_IP_PER_MINUTE", 600, 0, 10_000_000),
      perApiKey: int("RATE_LIMIT_API_KEY_PER_MINUTE", 6_000, 0, 10_000_000),
      perSender: int("RATE_LIMIT_SENDER_PER_MINUTE", 60, 0, 10_000_000),
    },
    redisUrl,
    maxBodyBytes: int("SPONSORSHIP_MAX_BODY_BYTES", 64 * 1024, 1_024, 10 * 1024 * 1024),
  };
}

type Text = (name: string) => string | undefined;
type Url = (name: string, fallback?: string) => string | undefined;
type Shared = { publicUrl: string; gatewayTimeoutMs: number };

function required(text: Text, problems: string[], names: string[], provider: string): Record<string, string> | undefined {
  const values = Object.fromEntries(names.map((n) => [n, text(n)]));
  const missing = names.filter((n) => values[n] === undefined);
  if (missing.length === names.length) return undefined;
  if (missing.length > 0) {
    problems.push(`${provider} is partly configured: missing ${missing.join(", ")} (or their _FILE variants)`);
    return undefined;
  }
  return values as Record<string, string>;
}

function loadAlipay(text: Text, url: Url, problems: string[], sandbox: SandboxFile, shared: Shared): AlipayGatewayConfig | undefined {
  const checkout = text("ALIPAY_CHECKOUT") ?? "qr";
  if (checkout !== "qr" && checkout !== "page") problems.push(`ALIPAY_CHECKOUT must be qr or page: got ${checkout}`);
  const common = {
    notifyUrl: `${shared.publicUrl}/v1/payments/alipay/notify`,
    returnUrl: url("ALIPAY_RETURN_URL"),
    checkout: checkout === "page" ? ("page" as const) : ("qr" as const),
    timeoutMs: shared.gatewayTimeoutMs,
  };
  if (sandbox.alipay) return { ...sandbox.alipay, ...common };
  const values = required(text, problems, ["ALIPAY_APP_ID", "ALIPAY_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"], "Alipay");
  if (!values) return undefined;
  return {
    appId: values.ALIPAY_APP_ID!,
    privateKey: values.ALIPAY_PRIVATE_KEY!,
    alipayPublicKey: values.ALIPAY_PUBLIC_KEY!,
    gatewayUrl: url("ALIPAY_GATEWAY_URL", "https://openapi.alipay.com/gateway.do")!,
    ...common,
  };
}

function loadWechat(text: Text, url: Url, problems: string[], sandbox: SandboxFile, shared: Shared): WechatGatewayConfig | undefined {
  const common = { notifyUrl: `${shared.publicUrl}/v1/payments/wechat/notify`, timeoutMs: shared.gatewayTimeoutMs };
  if (sandbox.wechat) return { ...sandbox.wechat, ...common };
  const values = required(
    text,
    problems,
    ["WECHAT_APP_ID", "WECHAT_MCH_ID", "WECHAT_MERCHANT_SERIAL_NO", "WECHAT_MERCHANT_PRIVATE_KEY", "WECHAT_MERCHANT_CERTIFICATE", "WECHAT_API_V3_KEY"],
    "WeChat Pay",
  );
  if (!values) return undefined;
  if (values.WECHAT_API_V3_KEY!.length !== 32) problems.push("WECHAT_API_V3_KEY must be 32 characters");
  const publicKey = text("WECHAT_PAY_PUBLIC_KEY");
  const publicKeyId = text("WECHAT_PAY_PUBLIC_KEY_ID");
  const certificatesDir = text("WECHAT_PLATFORM_CERTIFICATES_DIR");
  let platform: WechatGatewayConfig["platform"] | undefined;
  if (publicKey && publicKeyId) {
    platform = { mode: "publicKey", publicKey, publicKeyId };
  } else if (certificatesDir) {
    try {
      const files = readdirSync(certificatesDir).filter((f) => f.endsWith(".pem"));
      const certificates = Object.fromEntries(files.map((f) => [f.replace(/\.pem$/, ""), readFileSync(path.join(certificatesDir, f), "utf8")]));
      if (files.length === 0) problems.push(`WECHAT_PLATFORM_CERTIFICATES_DIR ${certificatesDir} holds no <serial>.pem file`);
      platform = { mode: "certificate", certificates };
    } catch (error) {
      problems.push(`WECHAT_PLATFORM_CERTIFICATES_DIR: cannot read ${certificatesDir} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    }
  } else {
    problems.push("WeChat Pay needs WECHAT_PAY_PUBLIC_KEY and WECHAT_PAY_PUBLIC_KEY_ID, or WECHAT_PLATFORM_CERTIFICATES_DIR");
  }
  if (!platform) return undefined;
  return {
    appId: values.WECHAT_APP_ID!,
    mchId: values.WECHAT_MCH_ID!,
    merchantSerialNo: values.WECHAT_MERCHANT_SERIAL_NO!,
    merchantPrivateKey: values.WECHAT_MERCHANT_PRIVATE_KEY!,
    merchantCertificate: values.WECHAT_MERCHANT_CERTIFICATE!,
    apiV3Key: values.WECHAT_API_V3_KEY!,
    platform,
    baseUrl: url("WECHAT_BASE_URL", "https://api.mch.weixin.qq.com")!,
    ...common,
  };
}
