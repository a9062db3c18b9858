import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "./env";

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
      ALIPAY_APP_ID: "2021000000000001",
      ALIPAY_PRIVATE_KEY_FILE: path.join(dir, "key.pem"),
      ALIPAY_PUBLIC_KEY: "MIIBIjANBg",
    });
    assert.match(config.alipay!.privateKey, /BEGIN PRIVATE KEY/);
    assert.equal(config.alipay!.notifyUrl, "https://pay.example.com/v1/payments/alipay/notify");
    assert.match(problems({ ALIPAY_PRIVATE_KEY_FILE: path.join(dir, "missing.pem") })[0]!, /ALIPAY_PRIVATE_KEY_FILE: cannot read .*ENOENT/);
  });

  it("needs a platform key for WeChat Pay and a 32-character APIv3 key", () => {
    const wechat = {
      WECHAT_APP_ID: "wx1",
      WECHAT_MCH_ID: "1900000001",
      WECHAT_MERCHANT_SERIAL_NO: "ABC",
      WECHAT_MERCHANT_PRIVATE_KEY: "k",
      WECHAT_MERCHANT_CERTIFICATE: "c",
      WECHAT_API_V3_KEY: "too-short",
    };
    const found = problems(wechat);
    assert.ok(found.some((p) => /WECHAT_API_V3_KEY must be 32 characters/.test(p)));
    assert.ok(found.some((p) => /WECHAT_PAY_PUBLIC_KEY.*WECHAT_PLATFORM_CERTIFICATES_DIR/.test(p)));
    const ok = loadConfig({ ...wechat, WECHAT_API_V3_KEY: "a".repeat(32), WECHAT_PAY_PUBLIC_KEY: "pk", WECHAT_PAY_PUBLIC_KEY_ID: "PUB_KEY_ID_1" });
    assert.deepEqual(ok.wechat!.platform, { mode: "publicKey", publicKey: "pk", publicKeyId: "PUB_KEY_ID_1" });
  });
  describe("sponsorship", () => {
    const chain = { chainId: 8453, rpcUrl: "https://mainnet.base.org", paymaster: "0x1111111111111111111111111111111111111111", fenPerNative: "2500000" };
    const key = `0x${"11".repeat(32)}`;

    it("is off without CHAINS, and parses a chain with its defaults", () => {
      assert.deepEqual(loadConfig({}).sponsorship.chains, []);
      const config = loadConfig({ CHAINS: JSON.stringify([chain]), SIGNER_PRIVATE_KEY: key });
      const [parsed] = config.sponsorship.chains;
      assert.equal(parsed?.fenPerNative, 2_500_000n);
      assert.equal(parsed?.entryPoint, "0x0000000071727De22E5E9d8BAf0edAc6f37da032");
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
