/**
 * The client a request counts against, for per-client rate limits and hold caps. An IPv4 address is itself (an
 * IPv4-mapped IPv6 address too); an IPv6 address counts as its /64, the block one subscriber is routinely given —
 * otherwise one host could be any number of "clients".
 */
import { isIPv4, isIPv6 } from "node:net";
import proxyAddr from "proxy-addr";

/** Which hops' X-Forwarded-For to believe: the TRUST_PROXY setting compiled once, as express compiles it. */
export type TrustProxy = (address: string, hop: number) => boolean;

/**
 * TRUST_PROXY as a function. express is given this same function (`app.set("trust proxy", fn)`) and the /rpc
 * fast path calls `proxyAddr` with it, so both stacks see the same client address.
 */
export function compileTrustProxy(setting: boolean | number | string): TrustProxy {
  if (setting === false) return () => false;
  if (setting === true) return () => true;
  if (typeof setting === "number") return (_address, hop) => hop < setting;
  return proxyAddr.compile(setting.split(",").map((s) => s.trim()));
}

/** Expands an IPv6 address to its eight 16-bit groups (no zone, no embedded IPv4 handled beyond the mapped form). */
function groups(ip: string): string[] | undefined {
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  if (ip.includes("::")) {
    const missing = 8 - left.length - right.length;
    return [...left, ...Array<string>(missing).fill("0"), ...right];
  }
  return left.length === 8 ? left : undefined;
}

export function clientKey(ip: string | undefined): string | undefined {
  if (ip === undefined || ip === "") return undefined;
  const address = ip.split("%")[0]!;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (isIPv4(address)) return address;
  if (!isIPv6(address) || address.includes(".")) return address.toLowerCase();
  const g = groups(address.toLowerCase());
  if (!g) return address.toLowerCase();
  return `${g.slice(0, 4).map((x) => x.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
