/**
 * Configuration, parsed once at start from the environment into a typed object that is handed down. Secrets
 * (keys, tokens) can come from files: `NAME_FILE` names a file holding the value of `NAME`. Problems are all
 * reported together, each naming its variable; secret values never appear in messages.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import type { AlipayGatewayConfig } from "./payments/alipay";
import type { WechatGatewayConfig } from "./payments/wechat";

export type Config = {
  host: string;
  port: number;
  /** How gateways reach us: notify URLs are built from it. */
  publicUrl: string;
  logLevel: string;
  database: { url?: string; dataDir: string; poolSize: number };
  adminToken?: string;
  orders: { minFen: bigint; maxFen: bigint; ttlSeconds: number };
  reconcile: { enabled: boolean; afterSeconds: number; intervalSeconds: number };
  gatewayTimeoutMs: number;
  /** Callbacks processed at once, and the longest one waits before it is refused with 503 (gateways retry). */
  callbacks: { concurrency: number; maxWaitMs: number };
  alipay?: AlipayGatewayConfig;
  wechat?: WechatGatewayConfig;
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

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    host,
    port,
    publicUrl,
    logLevel: text("LOG_LEVEL") ?? "info",
    database: { url: text("DATABASE_URL"), dataDir: text("DATA_DIR") ?? path.resolve(".data/pglite"), poolSize: int("DATABASE_POOL_SIZE", 16, 1, 500) },
    adminToken,
    orders,
    reconcile: {
      enabled: reconcileFlag === "on",
      afterSeconds: int("RECONCILE_AFTER_SECONDS", 120, 0, 86_400),
      intervalSeconds: int("RECONCILE_INTERVAL_SECONDS", 30, 1, 3_600),
    },
    gatewayTimeoutMs,
    callbacks: { concurrency: int("CALLBACK_CONCURRENCY", 16, 1, 1_000), maxWaitMs: int("CALLBACK_MAX_WAIT_MS", 3_000, 10, 60_000) },
    alipay,
    wechat,
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
