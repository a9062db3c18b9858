/**
 * The sandbox folder the gateway simulator writes (`npm run simulator`, devtools/simulator/server.ts): its
 * `sandbox.json` holds both gateways' merchant configuration (credentials and the simulator's URLs), and a server
 * started with SANDBOX_DIR takes the gateways from it. The file is checked like any other input.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { alipayGatewayConfigSchema } from "../payments/gateways/alipay";
import type { WechatGatewayConfig } from "../payments/gateways/wechat";

const wechatPlatformKeysSchema = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("certificate"), certificates: z.record(z.string(), z.string().min(1)) }),
  z.object({ mode: z.literal("publicKey"), publicKeyId: z.string().min(1), publicKey: z.string().min(1) }),
  // a merchant migrating from platform certificates to the WeChat Pay public key holds both
  z.object({
    mode: z.literal("certificateAndPublicKey"),
    certificates: z.record(z.string(), z.string().min(1)),
    publicKeyId: z.string().min(1),
    publicKey: z.string().min(1),
  }),
]);

const wechatSandboxSchema = z.object({
  appId: z.string().min(1),
  mchId: z.string().min(1),
  merchantSerialNo: z.string().min(1),
  merchantPrivateKey: z.string().min(1),
  merchantCertificate: z.string().min(1),
  apiV3Key: z.string().length(32),
  platform: wechatPlatformKeysSchema,
  baseUrl: z.url(),
  /** The simulator's WeChat OAuth (JSAPI's openid) and the official account's AppSecret there. */
  oauth: z.object({ appSecret: z.string().min(1), authorizeUrl: z.url(), apiBaseUrl: z.url() }).optional(),
  /** The simulator's WeixinJSBridge stand-in: only a sandbox file can name one. */
  jsBridgeShimUrl: z.url().optional(),
}) satisfies z.ZodType<Omit<WechatGatewayConfig, "notifyUrl" | "timeoutMs" | "flows">>;

/** What the server needs of each gateway: the rest (notify URL, timeout, checkout) is the server's own. */
export const sandboxFileSchema = z.object({
  alipay: alipayGatewayConfigSchema.omit({ notifyUrl: true, timeoutMs: true, checkout: true }).optional(),
  wechat: wechatSandboxSchema.optional(),
});
export type SandboxFile = z.infer<typeof sandboxFileSchema>;

export function sandboxFilePath(dir: string): string {
  return path.join(dir, "sandbox.json");
}

/**
 * Reads `<dir>/sandbox.json`: the parsed file, or a problem naming the file (and the bad field). Field messages
 * never quote values: the file holds private keys.
 */
export function readSandboxFile(dir: string): { sandbox: SandboxFile } | { problem: string } {
  const file = sandboxFilePath(dir);
  let content: string;
  try {
    content = readFileSync(file, "utf8");
  } catch (error) {
    return { problem: `SANDBOX_DIR: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"}); start the simulator first` };
  }
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    // not the parser's message: it quotes the text around the error, and the file holds private keys
    return { problem: `SANDBOX_DIR: ${file} is not valid JSON; start the simulator again to rewrite it` };
  }
  const parsed = sandboxFileSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(the file)"} ${i.message}`);
    return { problem: `SANDBOX_DIR: ${file} is not a sandbox file the simulator wrote: ${fields.join("; ")}` };
  }
  return { sandbox: parsed.data };
}
