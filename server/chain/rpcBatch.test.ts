/**
 * The request path's JSON-RPC batcher against a real anvil, through a TCP proxy that refuses or stops forwarding,
 * and through a JSON-RPC proxy that answers some calls with errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Anvil, startAnvil } from "../../devtools/chain/anvil";
import { type FaultProxy, startFaultProxy } from "../../devtools/testing/faultProxy";
import { type RpcProxy, startRpcProxy } from "../../devtools/testing/rpcProxy";
import { RpcCallError, createRpcBatcher } from "./rpcBatch";

describe("rpcBatch: the nonce read's JSON-RPC batches", () => {
  let anvil: Anvil;
  let tcp: FaultProxy;
  let rpc: RpcProxy;
  before(async () => {
    anvil = await startAnvil();
    tcp = await startFaultProxy({ port: anvil.port });
    rpc = await startRpcProxy(anvil.rpcUrl);
  });
  after(async () => {
    await rpc.close();
    await tcp.close();
    await anvil.stop();
  });

  it("sends the calls of one turn of the event loop as one batch and gives each its own answer", async () => {
    const batcher = createRpcBatcher(rpc.url, { timeoutMs: 2_000 });
    rpc.calls.clear();
    const [chainId, block, balance] = await Promise.all([
      batcher.call("eth_chainId", []),
      batcher.call("eth_blockNumber", []),
      batcher.call("eth_getBalance", ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "latest"]),
    ]);
    assert.equal(chainId, `0x${anvil.chainId.toString(16)}`);
    assert.match(String(block), /^0x[0-9a-f]+$/);
    assert.ok(BigInt(String(balance)) > 0n);
    assert.deepEqual([...rpc.calls.keys()].sort(), ["eth_blockNumber", "eth_chainId", "eth_getBalance"]);
    batcher.close();
  });

  it("a call the node answers with an error fails alone; the others of its batch answer", async () => {
    const batcher = createRpcBatcher(rpc.url, { timeoutMs: 2_000 });
    rpc.refuse = (request) => (request.method === "eth_getCode" ? { code: -32005, message: "limit exceeded" } : undefined);
    try {
      const [code, chainId] = await Promise.allSettled([batcher.call("eth_getCode", ["0x0000000000000000000000000000000000000001", "latest"]), batcher.call("eth_chainId", [])]);
      assert.equal(code.status, "rejected");
      assert.ok((code as PromiseRejectedResult).reason instanceof RpcCallError);
      assert.equal(((code as PromiseRejectedResult).reason as RpcCallError).code, -32005);
      assert.match(String((code as PromiseRejectedResult).reason.message), /eth_getCode: limit exceeded/);
      assert.deepEqual(chainId, { status: "fulfilled", value: `0x${anvil.chainId.toString(16)}` });
    } finally {
      rpc.refuse = () => undefined;
      batcher.close();
    }
  });

  it("a refused connection fails every call of the batch at once", async () => {
    const batcher = createRpcBatcher(`http://127.0.0.1:${tcp.port}`, { timeoutMs: 2_000 });
    await tcp.setMode("refuse");
    try {
      const started = Date.now();
      const results = await Promise.allSettled([batcher.call("eth_chainId", []), batcher.call("eth_blockNumber", [])]);
      assert.ok(results.every((r) => r.status === "rejected" && r.reason instanceof RpcCallError && /unreachable/.test(r.reason.message)));
      assert.ok(Date.now() - started < 1_500, "a refusal is not waited out");
    } finally {
      await tcp.setMode("forward");
      batcher.close();
    }
  });

  it("an RPC that stops answering fails the batch after the timeout, and the next batch answers once it forwards again", async () => {
    const batcher = createRpcBatcher(`http://127.0.0.1:${tcp.port}`, { timeoutMs: 300 });
    assert.equal(await batcher.call("eth_chainId", []), `0x${anvil.chainId.toString(16)}`); // a kept-alive connection
    await tcp.setMode("blackhole");
    try {
      const started = Date.now();
      await assert.rejects(batcher.call("eth_chainId", []), (error: Error) => error instanceof RpcCallError && /within 300 ms/.test(error.message));
      const waited = Date.now() - started;
      assert.ok(waited >= 250 && waited < 2_000, `waited ${waited} ms`);
    } finally {
      await tcp.setMode("forward");
    }
    assert.equal(await batcher.call("eth_chainId", []), `0x${anvil.chainId.toString(16)}`);
    batcher.close();
  });

  it("an answer that is not a JSON-RPC batch fails each call with what the RPC said", async () => {
    const { createServer } = await import("node:http");
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "batch requests are not supported" } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const batcher = createRpcBatcher(`http://127.0.0.1:${port}`, { timeoutMs: 2_000 });
    try {
      await assert.rejects(batcher.call("eth_chainId", []), /refused the batch: batch requests are not supported/);
    } finally {
      batcher.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
