/** Giving up on work that outside systems (a gateway, an RPC) may keep waiting on, when the server stops. */

/** `work`, unless `signal` aborts first: then an AbortError at once, and `work`'s own outcome is ignored. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  work.catch(() => {}); // abandoned on abort: its failure (e.g. the pool closed under it) is nobody's to handle
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
