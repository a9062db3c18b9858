/**
 * The one JSON-RPC call every sponsorship makes (the sender's nonce, an eth_call), sent without viem's transport:
 * calls made in the same turn of the event loop go out as one JSON-RPC batch, POSTed over a keep-alive
 * node:http(s) agent. viem's http transport is built on fetch (undici, web streams, a timeout wrapper and an
 * error class per call) and was about a tenth of a sponsorship's CPU; this is a plain request per batch. Every
 * other chain read still goes through viem.
 *
 * A batch that fails (no answer within `timeoutMs`, a refused connection, a non-2xx status, an answer that is not a
 * JSON-RPC batch) fails each of its calls; a call the node answers with a JSON-RPC error fails alone.
 */
import http from "node:http";
import https from "node:https";

export class RpcCallError extends Error {
  override name = "RpcCallError";
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

type Pending = { method: string; params: unknown[]; resolve: (value: unknown) => void; reject: (error: Error) => void };

export type RpcBatcher = { call(method: string, params: unknown[]): Promise<unknown>; close(): void };

export function createRpcBatcher(rpcUrl: string, options: { timeoutMs: number; maxBatch?: number }): RpcBatcher {
  const url = new URL(rpcUrl);
  const secure = url.protocol === "https:";
  const agent = new (secure ? https : http).Agent({ keepAlive: true, maxSockets: 32 });
  const maxBatch = options.maxBatch ?? 100;
  let queue: Pending[] = [];
  let scheduled = false;

  const send = (batch: Pending[]) => {
    const body = JSON.stringify(batch.map((p, id) => ({ jsonrpc: "2.0", id, method: p.method, params: p.params })));
    const failAll = (error: Error) => {
      for (const p of batch) p.reject(error);
    };
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      failAll(error);
    };
    const request = (secure ? https : http).request(
      {
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: "POST",
        agent,
        auth: url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        timeout: options.timeoutMs,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", (error) => fail(new RpcCallError(`the RPC's answer broke off: ${error.message}`)));
        response.on("end", () => {
          if (settled) return;
          const status = response.statusCode ?? 0;
          if (status < 200 || status >= 300) return fail(new RpcCallError(`the RPC answered HTTP ${status}`));
          let answers: unknown;
          try {
            answers = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            return fail(new RpcCallError("the RPC's answer is not JSON"));
          }
          if (!Array.isArray(answers)) {
            const error = (answers as { error?: { message?: string; code?: number } } | null)?.error;
            return fail(new RpcCallError(`the RPC refused the batch: ${error?.message ?? "not a JSON-RPC batch answer"}`, error?.code));
          }
          settled = true;
          const byId = new Map<unknown, { result?: unknown; error?: { message?: string; code?: number } }>();
          for (const answer of answers as Array<{ id?: unknown; result?: unknown; error?: { message?: string; code?: number } }>) byId.set(answer?.id, answer);
          batch.forEach((p, id) => {
            const answer = byId.get(id);
            if (!answer) p.reject(new RpcCallError(`the RPC did not answer ${p.method}`));
            else if (answer.error) p.reject(new RpcCallError(`${p.method}: ${answer.error.message ?? "error"}`, answer.error.code));
            else p.resolve(answer.result);
          });
        });
      },
    );
    request.on("timeout", () => {
      fail(new RpcCallError(`the RPC did not answer within ${options.timeoutMs} ms`));
      request.destroy();
    });
    request.on("error", (error) => fail(new RpcCallError(`the RPC is unreachable: ${error.message}`)));
    request.end(body);
  };

  const flush = () => {
    scheduled = false;
    const all = queue;
    queue = [];
    for (let i = 0; i < all.length; i += maxBatch) send(all.slice(i, i + maxBatch));
  };

  return {
    call: (method, params) =>
      new Promise((resolve, reject) => {
        queue.push({ method, params, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }),
    close: () => agent.destroy(),
  };
}
