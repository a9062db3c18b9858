/**
 * The HTTP ceiling of the callback benchmark: node:http and nothing else, answering each gateway's notify path with
 * that gateway's success reply once the whole body has arrived. What the same load generator gets from it is the
 * most any Node service on this machine could answer: no framework, no verification, no database.
 *
 * Forked by the benchmark (`--import tsx`); sends `{ port }` over IPC once it listens.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const REPLIES: Record<string, { status: number; contentType: string; body: string }> = {
  "/v1/payments/alipay/notify": { status: 200, contentType: "text/plain", body: "success" },
  "/v1/payments/wechat/notify": { status: 204, contentType: "application/json", body: "" },
};

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    // decoded as the service decodes it, so the ceiling does the same byte work
    Buffer.concat(chunks).toString("utf8");
    const reply = REPLIES[req.url ?? ""] ?? { status: 404, contentType: "text/plain", body: "no such path" };
    res.writeHead(reply.status, { "content-type": reply.contentType });
    res.end(reply.body);
  });
});

server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on("disconnect", () => server.close(() => process.exit(0)));
