/**
 * The OAuth `state` of a WeChat JSAPI order: what binds WeChat's answer (the payer's openid) to one order *and* to
 * the browser that created it, so that nobody can get their order paid by someone else's openid (a link with an
 * attacker's order sent to a victim: WeChat's snsapi_base authorizes silently). The state is
 * `<orderId><expiry, 10 digits><HMAC-SHA256(key, orderId | expiry | browser nonce), 40 hex>`, only [0-9a-z] as WeChat
 * allows (at most 128 bytes); the browser nonce lives in an HttpOnly cookie set with the order's answer.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** How long the payer has between creating the order and coming back from WeChat's authorize page. */
export const OAUTH_STATE_TTL_SECONDS = 600;
export const OAUTH_COOKIE = "fp_wx_oauth";
/** The cookie is only ever sent to the OAuth callback. */
export const OAUTH_CALLBACK_PATH = "/v1/payments/wechat/oauth/callback";

const ORDER_ID_LENGTH = 26;
const MAC_HEX = 40;

export function newBrowserNonce(): string {
  return randomBytes(24).toString("base64url");
}

export function signOAuthState(key: Buffer, orderId: string, browserNonce: string, now = new Date()): string {
  const expiry = String(Math.floor(now.getTime() / 1000) + OAUTH_STATE_TTL_SECONDS).padStart(10, "0");
  return `${orderId}${expiry}${mac(key, orderId, expiry, browserNonce)}`;
}

export type StateCheck = { ok: true; orderId: string } | { ok: false; problem: string };

export function checkOAuthState(key: Buffer, state: string, browserNonce: string | undefined, now = new Date()): StateCheck {
  const match = new RegExp(`^(fp[0-9a-f]{24})(\\d{10})([0-9a-f]{${MAC_HEX}})$`).exec(state);
  if (!match || match[1]!.length !== ORDER_ID_LENGTH) return { ok: false, problem: "state is not one of ours" };
  const [, orderId, expiry, signature] = match as unknown as [string, string, string, string];
  if (!browserNonce) return { ok: false, problem: "this browser did not start the payment (its OAuth cookie is missing): open the payment from the checkout again" };
  const expected = Buffer.from(mac(key, orderId, expiry, browserNonce), "hex");
  if (!timingSafeEqual(expected, Buffer.from(signature, "hex"))) return { ok: false, problem: "state does not belong to this browser's payment" };
  if (Number(expiry) * 1000 < now.getTime()) return { ok: false, problem: "the OAuth step took too long: open the payment from the checkout again" };
  return { ok: true, orderId };
}

function mac(key: Buffer, orderId: string, expiry: string, browserNonce: string): string {
  return createHmac("sha256", key).update(`${orderId}|${expiry}|${browserNonce}`).digest("hex").slice(0, MAC_HEX);
}

/** The one cookie value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}
