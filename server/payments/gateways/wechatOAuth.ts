/**
 * WeChat's web OAuth2 (网页授权) with scope `snsapi_base`: the silent way to learn the openid of the payer in
 * WeChat's browser, which a JSAPI trade needs (`payer.openid`). The browser goes to open.weixin.qq.com's authorize
 * page and comes back to our redirect_uri with a one-time `code` (valid 5 minutes); the server exchanges it, with
 * the official account's AppSecret, at api.weixin.qq.com/sns/oauth2/access_token for the openid. Both base URLs
 * are configurable so that the simulator can stand in for WeChat.
 */
import { hkdfSync } from "node:crypto";
import { z } from "zod";
import { GatewayUnavailableError, PaymentInputError } from "../errors";
import type { PayerIdentification } from "../gateway";

export type WechatOAuthConfig = {
  appId: string;
  /** The official account's AppSecret (公众号 开发者密码): never logged, never sent but to the token endpoint. */
  appSecret: string;
  /** https://open.weixin.qq.com/connect/oauth2/authorize */
  authorizeUrl: string;
  /** https://api.weixin.qq.com (the token endpoint is /sns/oauth2/access_token below it). */
  apiBaseUrl: string;
  timeoutMs: number;
};

export const WECHAT_OAUTH_AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize";
export const WECHAT_OAUTH_API_URL = "https://api.weixin.qq.com";

const tokenAnswer = z.object({ openid: z.string().min(1), access_token: z.string().optional(), scope: z.string().optional() });
const errorAnswer = z.object({ errcode: z.number(), errmsg: z.string().optional() });
/** The codes that mean "this code is no good" (a payer problem, 400), not "WeChat is failing" (503). */
const BAD_CODE_ERRORS = new Set([40029, 40163, 41008]);

export function createWechatOAuth(config: WechatOAuthConfig): PayerIdentification {
  // the OAuth state is signed with a key derived from the AppSecret: the same on every instance, useless elsewhere
  const stateKey = Buffer.from(hkdfSync("sha256", config.appSecret, "fiat-paymaster", "wechat oauth state", 32));
  return {
    stateKey,
    authorizeUrl(redirectUri: string, state: string): string {
      const url = new URL(config.authorizeUrl);
      // WeChat reads the parameters in this order, and the page must end in #wechat_redirect
      url.search = new URLSearchParams({ appid: config.appId, redirect_uri: redirectUri, response_type: "code", scope: "snsapi_base", state }).toString();
      url.hash = "wechat_redirect";
      return url.toString();
    },
    async openIdFor(code: string): Promise<string> {
      const url = new URL(`${config.apiBaseUrl.replace(/\/+$/, "")}/sns/oauth2/access_token`);
      url.search = new URLSearchParams({ appid: config.appId, secret: config.appSecret, code, grant_type: "authorization_code" }).toString();
      let body: unknown;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(config.timeoutMs) });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        body = await response.json();
      } catch (error) {
        // never the URL: it carries the AppSecret
        const why = error instanceof Error && error.name === "TimeoutError" ? `no answer within ${config.timeoutMs} ms` : "unreachable or not JSON";
        throw new GatewayUnavailableError(`WeChat OAuth is unavailable: ${why}; try again later`);
      }
      const failed = errorAnswer.safeParse(body);
      if (failed.success && failed.data.errcode !== 0) {
        if (BAD_CODE_ERRORS.has(failed.data.errcode)) throw new PaymentInputError(`WeChat OAuth code is invalid or already used (errcode ${failed.data.errcode}): open the payment again`);
        throw new GatewayUnavailableError(`WeChat OAuth refused the code exchange (errcode ${failed.data.errcode}); try again later`);
      }
      const ok = tokenAnswer.safeParse(body);
      if (!ok.success) throw new GatewayUnavailableError("WeChat OAuth answered without an openid");
      return ok.data.openid;
    },
  };
}
