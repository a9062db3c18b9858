import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "./env";

/** A WeChat Pay merchant's identity, without the APIv3 key and platform key the tests vary. */
const WECHAT_MERCHANT = {
  WECHAT_APP_ID: "wx1",
  WECHAT_MCH_ID: "1900000001",
  WECHAT_MERCHANT_SERIAL_NO: "ABC",
  WECHAT_MERCHANT_PRIVATE_KEY: "k",
  WECHAT_MERCHANT_CERTIFICATE: "c",
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe("configuration", () => {
  it("has working defaults: PGlite, no gateway, admin API off", () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.database.url, undefined);
    assert.equal(config.alipay, undefined);
    assert.equal(config.wechat, undefined);
    assert.equal(config.adminToken, undefined);
    assert.deepEqual(config.orders, { minFen: 100n, maxFen: 500_000n, ttlSeconds: 900 });
  });

  it("takes SPONSOR_ICON only as an image data URI (ERC-7677's sponsor.icon)", () => {
    const icon = "data:image/png;base64,iVBORw0KGgo=";
    assert.equal(loadConfig({ SPONSOR_ICON: icon }).sponsorIcon, icon);
    assert.equal(loadConfig({}).sponsorIcon, undefined);
    for (const bad of ["https://dapp.example/icon.png", "data:text/html;base64,PGgxPg==", "data:image/png,raw", `data:image/png;base64,${"A".repeat(20_000)}`]) {
      const found = problems({ SPONSOR_ICON: bad });
      assert.equal(found.length, 1, bad.slice(0, 40));
      assert.match(found[0]!, /^SPONSOR_ICON (must be an RFC 2397 data URI of an image|must be at most 16384 characters)/);
    }
  });

  it("reports every problem at once, each naming its variable", () => {
    const found = problems({ PORT: "http", ORDER_MIN_FEN: "1.5", PUBLIC_URL: "ftp://x", ALIPAY_APP_ID: "2021", ADMIN_TOKEN: "short", RECONCILE: "maybe" });
    assert.equal(found.length, 6, found.join("\n"));
    for (const name of ["PORT", "ORDER_MIN_FEN", "PUBLIC_URL", "ALIPAY_PRIVATE_KEY", "ADMIN_TOKEN", "RECONCILE"]) {
      assert.ok(found.some((p) => p.includes(name)), `${name} is named`);
    }
  });

  it("never puts a secret's value in a message", () => {
    const secret = "super-secret-private-key-material";
    const found = problems({ ALIPAY_APP_ID: "2021", ALIPAY_PRIVATE_KEY: secret, WECHAT_API_V3_KEY: secret });
    assert.ok(found.length > 0);
    assert.ok(found.every((p) => !p.includes(secret)));
  });

  it("reads secrets from NAME_FILE and builds the notify URLs from PUBLIC_URL", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "fp-config-"));
    writeFileSync(path.join(dir, "key.pem"), "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n");
    const config = loadConfig({
      PUBLIC_URL: "https://pay.example.com/",
      ALIPAY_APP_ID: "2021000000000001", ALIPAY_SELLER_ID: "2088000000000001",
      ALIPAY_PRIVATE_KEY_FILE: path.join(dir, "key.pem"),
      ALIPAY_PUBLIC_KEY: "MIIBIjANBg",
    });
    assert.match(config.alipay!.privateKey, /BEGIN PRIVATE KEY/);
    assert.equal(config.alipay!.notifyUrl, "https://pay.example.com/v1/payments/alipay/notify");
    assert.match(problems({ ALIPAY_PRIVATE_KEY_FILE: path.join(dir, "missing.pem") })[0]!, /ALIPAY_PRIVATE_KEY_FILE: cannot read .*ENOENT/);
  });

  describe("secrets from files (NAME_FILE)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "fp-config-"));
    const secretFile = (name: string, content: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, content);
      return file;
    };
    const signerKey = `0x${"ab".repeat(32)}`;
    const apiV3Key = "k".repeat(32);
    const wechat = { WECHAT_APP_ID: "wx1", WECHAT_MCH_ID: "1900000001", WECHAT_MERCHANT_SERIAL_NO: "ABC", WECHAT_MERCHANT_CERTIFICATE: "c", WECHAT_PAY_PUBLIC_KEY: "pk", WECHAT_PAY_PUBLIC_KEY_ID: "PUB_KEY_ID_1" };

    it("reads every secret from its file, trailing newline trimmed", () => {
      const config = loadConfig({
        ...wechat,
        ALIPAY_APP_ID: "2021000000000001", ALIPAY_SELLER_ID: "2088000000000001",
        ALIPAY_PUBLIC_KEY: "MIIBIjANBg",
        SIGNER_PRIVATE_KEY_FILE: secretFile("signer", `${signerKey}\n`),
        ADMIN_TOKEN_FILE: secretFile("admin", "admin-token-0123456789\n"),
        DATABASE_URL_FILE: secretFile("database", "postgres://app:pw@db.internal/app\n"),
        REDIS_URL_FILE: secretFile("redis", "redis://:pw@cache.internal:6379\n"),
        BOOTSTRAP_API_KEY_FILE: secretFile("bootstrap", "fp_demo_key\n"),
        ALIPAY_PRIVATE_KEY_FILE: secretFile("alipay", "alipay-private-key\n"),
        WECHAT_MERCHANT_PRIVATE_KEY_FILE: secretFile("wechat-key", "wechat-private-key\n"),
        WECHAT_API_V3_KEY_FILE: secretFile("apiv3", `${apiV3Key}\n`),
      });
      assert.equal(config.sponsorship.signerKey, signerKey);
      assert.equal(config.adminToken, "admin-token-0123456789");
      assert.equal(config.database.url, "postgres://app:pw@db.internal/app");
      assert.equal(config.sponsorship.redisUrl, "redis://:pw@cache.internal:6379");
      assert.equal(config.bootstrapApiKey, "fp_demo_key");
      assert.equal(config.alipay!.privateKey, "alipay-private-key");
      assert.equal(config.wechat!.merchantPrivateKey, "wechat-private-key");
      assert.equal(config.wechat!.apiV3Key, apiV3Key);
    });

    it("refuses a variable set both directly and through its file, naming both and quoting neither", () => {
      const found = problems({ ADMIN_TOKEN: "direct-admin-token-value", ADMIN_TOKEN_FILE: secretFile("admin-both", "file-admin-token-value\n") });
      assert.deepEqual(found, ["ADMIN_TOKEN and ADMIN_TOKEN_FILE are both set: set only one"]);
    });

    it("reports an unreadable or empty file naming the variable and the path, with every other problem", () => {
      const missing = path.join(dir, "missing");
      const empty = secretFile("empty", "\n");
      const found = problems({ SIGNER_PRIVATE_KEY_FILE: missing, WECHAT_API_V3_KEY_FILE: empty, PORT: "http" });
      assert.equal(found.length, 3, found.join("\n"));
      assert.ok(found.includes(`SIGNER_PRIVATE_KEY_FILE: cannot read ${missing} (ENOENT)`), found.join("\n"));
      assert.ok(found.includes(`WECHAT_API_V3_KEY_FILE: ${empty} is empty`), found.join("\n"));
      assert.ok(found.some((p) => p.startsWith("PORT must be a whole number")));
    });

    it("never quotes a bad secret read from a file", () => {
      const found = problems({
        SIGNER_PRIVATE_KEY_FILE: secretFile("bad-signer", "0xnot-the-signer-secret\n"),
        ADMIN_TOKEN_FILE: secretFile("bad-admin", "shortsecret\n"),
        REDIS_URL_FILE: secretFile("bad-redis", "http://user:redis-password@cache\n"),
      });
      assert.equal(found.length, 3, found.join("\n"));
      for (const leaked of ["not-the-signer-secret", "shortsecret", "redis-password"]) assert.ok(found.every((p) => !p.includes(leaked)), leaked);
      assert.deepEqual([...found].sort(), ["ADMIN_TOKEN must be at least 16 characters", "REDIS_URL must be a redis:// or rediss:// URL", "SIGNER_PRIVATE_KEY must be 32 bytes of 0x-prefixed hex"]);
    });
  });

  describe("the simulator's sandbox folder (SANDBOX_DIR)", () => {
    const sandboxDir = (content: unknown) => {
      const dir = mkdtempSync(path.join(tmpdir(), "fp-sandbox-"));
      writeFileSync(path.join(dir, "sandbox.json"), typeof content === "string" ? content : JSON.stringify(content));
      return dir;
    };
    const alipay = { appId: "2021000000000001", sellerId: "2088000000000001", privateKey: "sandbox-private-key", alipayPublicKey: "pk", gatewayUrl: "http://127.0.0.1:4000/alipay/gateway.do" };

    it("takes the gateways from sandbox.json", () => {
      const config = loadConfig({ SANDBOX_DIR: sandboxDir({ alipay }), ALIPAY_CHECKOUT: "page" });
      assert.deepEqual(config.alipay, {
        ...alipay,
        notifyUrl: "http://127.0.0.1:3000/v1/payments/alipay/notify",
        returnUrl: undefined,
        checkout: "page",
        // sandbox mode: the default flow and the phone flow (手机网站支付), back to and out to our checkout
        flows: ["page", "wap"],
        wapReturnUrl: "http://127.0.0.1:3000/checkout",
        quitUrl: "http://127.0.0.1:3000/checkout",
        timeoutMs: 10_000,
      });
      assert.equal(config.wechat, undefined);
      assert.equal(config.sandbox, true);
    });

    it("refuses ORDER_TTL_SECONDS above 2 hours for QR orders (a gateway's QR code lives at most that), not for Alipay page pay", () => {
      const found = problems({ SANDBOX_DIR: sandboxDir({ alipay }), ORDER_TTL_SECONDS: "7201" });
      assert.deepEqual(found, ["ORDER_TTL_SECONDS (7201) is above 7200: Alipay QR (precreate) payment QR codes live at most 2 hours, and an order must not outlive its code"]);
      assert.equal(loadConfig({ SANDBOX_DIR: sandboxDir({ alipay }), ORDER_TTL_SECONDS: "7200" }).orders.ttlSeconds, 7200);
      assert.equal(loadConfig({ SANDBOX_DIR: sandboxDir({ alipay }), ALIPAY_CHECKOUT: "page", ORDER_TTL_SECONDS: "86400" }).orders.ttlSeconds, 86400);
    });

    it("names the file and the bad field of a sandbox.json it cannot use, without quoting its keys", () => {
      const dir = sandboxDir({ alipay: { ...alipay, gatewayUrl: "not a url" }, wechat: { appId: "wx" } });
      const found = problems({ SANDBOX_DIR: dir });
      assert.equal(found.length, 1, found.join("\n"));
      assert.ok(found[0]!.startsWith(`SANDBOX_DIR: ${path.join(dir, "sandbox.json")} is not a sandbox file the simulator wrote`), found[0]);
      assert.match(found[0]!, /alipay\.gatewayUrl/);
      assert.match(found[0]!, /wechat\.mchId/);
      const broken = sandboxDir('{"alipay": {"privateKey": "sandbox-private-key"');
      assert.deepEqual(problems({ SANDBOX_DIR: broken }), [`SANDBOX_DIR: ${path.join(broken, "sandbox.json")} is not valid JSON; start the simulator again to rewrite it`]);
    });
  });

  it("needs a platform key for WeChat Pay and a 32-character APIv3 key", () => {
    const wechat = { ...WECHAT_MERCHANT, WECHAT_API_V3_KEY: "too-short" };
    const found = problems(wechat);
    assert.ok(found.some((p) => /WECHAT_API_V3_KEY must be 32 characters/.test(p)));
    assert.ok(found.some((p) => /WECHAT_PAY_PUBLIC_KEY.*WECHAT_PLATFORM_CERTIFICATES_DIR/.test(p)));
    const ok = loadConfig({ ...wechat, WECHAT_API_V3_KEY: "a".repeat(32), WECHAT_PAY_PUBLIC_KEY: "pk", WECHAT_PAY_PUBLIC_KEY_ID: "PUB_KEY_ID_1" });
    assert.deepEqual(ok.wechat!.platform, { mode: "publicKey", publicKey: "pk", publicKeyId: "PUB_KEY_ID_1" });
  });

  describe("payment flows (mobile)", () => {
    const wechat = { ...WECHAT_MERCHANT, WECHAT_API_V3_KEY: "a".repeat(32), WECHAT_PAY_PUBLIC_KEY: "pk", WECHAT_PAY_PUBLIC_KEY_ID: "PUB_KEY_ID_1" };
    const alipay = { ALIPAY_APP_ID: "2021000000000001", ALIPAY_SELLER_ID: "2088000000000001", ALIPAY_PRIVATE_KEY: "alipay-private-key", ALIPAY_PUBLIC_KEY: "MIIBIjANBg" };
    const secretFile = (name: string, content: string) => {
      const file = path.join(mkdtempSync(path.join(tmpdir(), "fp-config-")), name);
      writeFileSync(file, content);
      return file;
    };

    it("keeps the old defaults: Alipay's ALIPAY_CHECKOUT alone, WeChat Pay Native alone, no OAuth", () => {
      const config = loadConfig({ ...wechat, ...alipay });
      assert.deepEqual(config.alipay!.flows, ["qr"]);
      assert.deepEqual(config.wechat!.flows, ["qr"]);
      assert.equal(config.wechat!.oauth, undefined);
      assert.equal(config.alipay!.wapReturnUrl, "http://127.0.0.1:3000/checkout");
      assert.equal(config.alipay!.quitUrl, "http://127.0.0.1:3000/checkout");
    });

    it("WECHAT_FLOWS with jsapi needs WECHAT_APP_SECRET (or its _FILE), and takes WeChat's OAuth URLs", () => {
      assert.ok(problems({ ...wechat, WECHAT_FLOWS: "h5,jsapi" }).some((p) => /WECHAT_FLOWS has jsapi but WECHAT_APP_SECRET/.test(p)));
      const config = loadConfig({ ...wechat, WECHAT_FLOWS: "jsapi, h5,qr", WECHAT_APP_SECRET_FILE: secretFile("appsecret", "app-secret-0123456789\n") });
      assert.deepEqual(config.wechat!.flows, ["jsapi", "h5", "qr"]);
      assert.deepEqual(config.wechat!.oauth, {
        appSecret: "app-secret-0123456789",
        authorizeUrl: "https://open.weixin.qq.com/connect/oauth2/authorize",
        apiBaseUrl: "https://api.weixin.qq.com",
      });
      // no AppSecret is handed to a gateway that has no JSAPI
      assert.equal(loadConfig({ ...wechat, WECHAT_APP_SECRET: "app-secret-0123456789" }).wechat!.oauth, undefined);
    });

    it("refuses an unknown flow, and an ALIPAY_CHECKOUT that is not one of ALIPAY_FLOWS, naming them", () => {
      assert.ok(problems({ ...wechat, WECHAT_FLOWS: "qr,app" }).some((p) => /WECHAT_FLOWS.*a comma-separated list of qr, h5, jsapi/.test(p)));
      assert.ok(problems({ ...alipay, ALIPAY_FLOWS: "wap", ALIPAY_CHECKOUT: "qr" }).some((p) => /ALIPAY_CHECKOUT \(qr\) is not one of ALIPAY_FLOWS \(wap\)/.test(p)));
    });

    it("lets an order live longer than 2 hours with Alipay page and WAP pay alone, not with a JSAPI prepay_id", () => {
      assert.equal(loadConfig({ ...alipay, ALIPAY_CHECKOUT: "page", ALIPAY_FLOWS: "page,wap", ORDER_TTL_SECONDS: "86400" }).orders.ttlSeconds, 86400);
      const found = problems({ ...wechat, WECHAT_FLOWS: "jsapi", WECHAT_APP_SECRET: "s", ORDER_TTL_SECONDS: "7201" });
      assert.ok(found.some((p) => /WeChat Pay JSAPI prepay_ids live at most 2 hours/.test(p)), found.join("\n"));
    });
  });

  describe("sponsorship", () => {
    const chain = { chainId: 8453, rpcUrl: "https://mainnet.base.org", paymaster: "0x1111111111111111111111111111111111111111", fenPerNative: "2500000" };
    const key = `0x${"11".repeat(32)}`;

    it("is off without CHAINS, and parses a chain with its defaults", () => {
      assert.deepEqual(loadConfig({}).sponsorship.chains, []);
      const config = loadConfig({ CHAINS: JSON.stringify([chain]), SIGNER_PRIVATE_KEY: key });
      const [parsed] = config.sponsorship.chains;
      assert.equal(parsed?.fenPerNative, 2_500_000n);
      assert.deepEqual(parsed?.entryPoints, [{ version: "0.7", address: "0x0000000071727De22E5E9d8BAf0edAc6f37da032", paymaster: chain.paymaster }]);
      assert.equal(parsed?.confirmations, 2);
      assert.equal(parsed?.gasCaps.callGasLimit, 5_000_000n);
      assert.equal(config.sponsorship.validSeconds, 600);
      assert.equal(config.trustProxy, false);
    });

    it("names each bad chain field, and refuses chains without a signer key", () => {
      const found = problems({ CHAINS: JSON.stringify([{ ...chain, paymaster: "0x12", fenPerNative: 1.5, extra: 1 }]) }).join("\n");
      assert.match(found, /chains\[0\]\.paymaster/);
      assert.match(found, /chains\[0\]\.fenPerNative/);
      assert.match(found, /extra/);
      assert.match(problems({ CHAINS: JSON.stringify([chain]) }).join("\n"), /SIGNER_PRIVATE_KEY/);
      assert.match(problems({ CHAINS: "[{" }).join("\n"), /CHAINS \(or CHAINS_FILE\): not valid JSON/);
      assert.match(problems({ CHAINS: JSON.stringify([chain, chain]), SIGNER_PRIVATE_KEY: key }).join("\n"), /chain 8453 is configured twice/);
    });

    it("reads CHAINS and the signer key from files, and never prints the key", () => {
      const dir = mkdtempSync(path.join(tmpdir(), "fp-config-"));
      writeFileSync(path.join(dir, "chains.json"), JSON.stringify([chain]));
      writeFileSync(path.join(dir, "signer"), `${key}\n`);
      const config = loadConfig({ CHAINS_FILE: path.join(dir, "chains.json"), SIGNER_PRIVATE_KEY_FILE: path.join(dir, "signer") });
      assert.equal(config.sponsorship.signerKey, key);
      const bad = problems({ SIGNER_PRIVATE_KEY: "0xsecretsecret" }).join("\n");
      assert.match(bad, /SIGNER_PRIVATE_KEY must be 32 bytes/);
      assert.ok(!bad.includes("secretsecret"));
    });

    it("accepts proxy hop counts and addresses for TRUST_PROXY, and refuses true", () => {
      assert.equal(loadConfig({ TRUST_PROXY: "1" }).trustProxy, 1);
      assert.equal(loadConfig({ TRUST_PROXY: "10.0.0.0/8, 127.0.0.1" }).trustProxy, "10.0.0.0/8, 127.0.0.1");
      assert.match(problems({ TRUST_PROXY: "true" }).join("\n"), /forge its IP/);
      assert.match(problems({ TRUST_PROXY: "everyone" }).join("\n"), /TRUST_PROXY must be/);
    });
  });

  it("every variable is checked, those of the service's timeouts and limits too: a bad one is reported, never defaulted", () => {
    const reported = problems({
      SHUTDOWN_DRAIN_MS: "30s",
      SHUTDOWN_DELAY_MS: "-1",
      DATABASE_CONNECT_TIMEOUT_MS: "soon",
      DATABASE_STATEMENT_TIMEOUT_MS: "0",
      DATABASE_POOL_SIZE: "many",
      UNVERIFIED_CALLBACK_RETENTION_HOURS: "0",
      RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE: "x",
      RECONCILE_INTERVAL_SECONDS: "0",
      RPC_REQUEST_TIMEOUT_MS: "fast",
      MAX_HOLDS_PER_SENDER_PER_IP: "0",
    }).join("\n");
    for (const name of ["SHUTDOWN_DRAIN_MS", "SHUTDOWN_DELAY_MS", "DATABASE_CONNECT_TIMEOUT_MS", "DATABASE_STATEMENT_TIMEOUT_MS", "DATABASE_POOL_SIZE", "UNVERIFIED_CALLBACK_RETENTION_HOURS", "RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE", "RECONCILE_INTERVAL_SECONDS", "RPC_REQUEST_TIMEOUT_MS", "MAX_HOLDS_PER_SENDER_PER_IP"]) {
      assert.match(reported, new RegExp(`${name} must be a whole number`), name);
    }
  });
});
