/**
 * Why a JSON-RPC call failed, as a person should read it. viem reports a JSON-RPC error answer as an
 * RpcRequestError whose message is only "RPC Request failed."; the answer's code, message and `data.reason` (what
 * fiat-paymaster sends, README "Errors") sit on it, possibly under the action's own error in the `cause` chain.
 * Used by the demo DApp and `npm run demo`, which show the paymaster's or the bundler's reason, not viem's wrapper.
 * No DOM, no viem import: both the browser bundle and Node load it.
 */
export type RpcRefusal = {
  code: number;
  /** The answer's error.message. */
  message: string;
  /** fiat-paymaster's stable reason (data.reason), e.g. insufficient_quota. */
  reason?: string;
  /** The URL that answered. */
  url?: string;
};

type Wrapped = { code?: unknown; details?: unknown; data?: unknown; url?: unknown; cause?: unknown; name?: unknown };

/** The innermost JSON-RPC error answer in `error`'s cause chain, if it holds one. */
export function rpcRefusal(error: unknown): RpcRefusal | undefined {
  let found: RpcRefusal | undefined;
  for (let e = error as Wrapped | undefined, depth = 0; e && typeof e === "object" && depth < 10; e = e.cause as Wrapped | undefined, depth++) {
    if (e.name === "RpcRequestError" && typeof e.code === "number" && typeof e.details === "string") {
      const data = e.data as { reason?: unknown } | undefined;
      found = { code: e.code, message: e.details, reason: typeof data?.reason === "string" ? data.reason : undefined, url: typeof e.url === "string" ? e.url : undefined };
    }
  }
  return found;
}

/**
 * One line for a failed call: "the paymaster refused: insufficient_quota (-32127): account … has 0 fen available…".
 * `paymasterUrl` tells the paymaster's answers from the bundler's.
 */
export function describeRpcFailure(error: unknown, options: { paymasterUrl?: string } = {}): string {
  const refusal = rpcRefusal(error);
  if (refusal) {
    const fromPaymaster = refusal.reason !== undefined || (options.paymasterUrl !== undefined && refusal.url?.split("?")[0] === options.paymasterUrl.split("?")[0]);
    const who = fromPaymaster ? "the paymaster" : "the bundler";
    return `${who} refused: ${refusal.reason ? `${refusal.reason} (${refusal.code})` : `error ${refusal.code}`}: ${refusal.message}`;
  }
  const wrapped = error as { shortMessage?: unknown; message?: unknown };
  if (typeof wrapped?.shortMessage === "string") return wrapped.shortMessage;
  return typeof wrapped?.message === "string" ? wrapped.message : String(error);
}
