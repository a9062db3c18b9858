/**
 * Test support: an HTTP JSON-RPC proxy in front of a chain's RPC that counts the methods it forwards and can answer
 * some requests itself the way real providers refuse them (a JSON-RPC error object, HTTP 200), e.g. an eth_getLogs
 * over too many blocks. Everything else is forwarded unchanged, batches included.
 */
import { type IncomingMessage, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";

type RpcRequest = { jsonrpc: "2.0"; id: unknown; method: string; params?: unknown[] };
export type RpcRefusal = { code: number; message: string };

export type RpcProxy = {
  url: string;
  /** Requests forwarded (or refused) per method since the start or the last reset. */
  calls: Map<string, number>;
  /** Decides per request: undefined forwards it, a refusal answers it with that JSON-RPC error. */
  refuse: (request: RpcRequest) => RpcRefusal | undefined;
  close: () => Promise<void>;
};

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startRpcProxy(targetUrl: string): Promise<RpcProxy> {
  const proxy: RpcProxy = { url: "", calls: new Map(), refuse: () => undefined, close: async () => {} };
  const answerOne = async (request: RpcRequest): Promise<unknown> => {
    proxy.calls.set(request.method, (proxy.calls.get(request.method) ?? 0) + 1);
    const refusal = proxy.refuse(request);
    if (refusal) return { jsonrpc: "2.0", id: request.id, error: refusal };
    const response = await fetch(targetUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request) });
    return response.json();
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const parsed = JSON.parse(await body(req)) as RpcRequest | RpcRequest[];
      const answer = Array.isArray(parsed) ? await Promise.all(parsed.map(answerOne)) : await answerOne(parsed);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(answer));
    })().catch(() => {
      res.writeHead(502);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
