import assert from "node:assert/strict";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { type ApprovalPayload, askApproval } from "./approval";
import type { ApprovalWebhook } from "./policy";

const payload: ApprovalPayload = {
  chainId: 8453,
  sender: "0x52908400098527886E0F7030069857D2E4169EE7",
  nonce: 2n ** 64n + 7n,
  callData: "0xb61d27f6",
  maxChargeFen: 12_345_678_901_234_567_890n,
  apiKeyId: "key_123",
};

type Received = { method?: string; url?: string; contentType?: string; body: string };

/** A webhook with one route per behaviour under test. */
const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  "/approve": (_req, res) => json(res, 200, { approve: true }),
  "/approve-with-reason": (_req, res) => json(res, 201, { approve: true, reason: "fine" }),
  "/reject": (_req, res) => json(res, 200, { approve: false, reason: "  this user is over their budget  " }),
  "/reject-bare": (_req, res) => json(res, 200, { approve: false }),
  "/slow": (_req, res) => {
    setTimeout(() => json(res, 200, { approve: true }), 2_000).unref();
  },
  "/stalled-body": (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write('{"approve":');
  },
  "/500": (_req, res) => json(res, 500, { error: "boom" }),
  "/503-reject": (_req, res) => json(res, 503, { approve: false, reason: "maintenance, and no" }),
  "/404": (_req, res) => json(res, 404, { approve: true }),
  "/429": (_req, res) => json(res, 429, {}),
  "/redirect": (_req, res) => {
    res.writeHead(302, { location: "/approve" });
    res.end();
  },
  "/garbage": (_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<html>ok</html>");
  },
  "/string-true": (_req, res) => json(res, 200, { approve: "true" }),
  "/array": (_req, res) => json(res, 200, [{ approve: true }]),
  "/empty": (_req, res) => {
    res.writeHead(204);
    res.end();
  },
  "/huge": (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ approve: true, padding: "x".repeat(100_000) }));
  },
};

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

describe("askApproval", () => {
  let server: Server;
  let base: string;
  let refusedUrl: string;
  const received: Received[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
      req.on("end", () => {
        received.push({ method: req.method, url: req.url, contentType: req.headers["content-type"], body });
        const route = routes[req.url ?? ""];
        if (route) route(req, res);
        else json(res, 404, {});
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // a port that was just open and now is not: connections to it are refused
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    refusedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/approve`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const hook = (path: string, extra: Partial<ApprovalWebhook> = {}): ApprovalWebhook => ({ url: `${base}${path}`, timeoutMs: 300, failOpen: false, ...extra });

  it("approves on 2xx with {approve: true}, POSTing the operation as JSON with amounts as decimal strings", async () => {
    received.length = 0;
    assert.deepEqual(await askApproval(hook("/approve"), payload), { approved: true });
    assert.equal(received.length, 1);
    assert.equal(received[0]!.method, "POST");
    assert.equal(received[0]!.contentType, "application/json");
    assert.deepEqual(JSON.parse(received[0]!.body), {
      chainId: 8453,
      sender: "0x52908400098527886E0F7030069857D2E4169EE7",
      nonce: "18446744073709551623",
      callData: "0xb61d27f6",
      maxChargeFen: "12345678901234567890",
      apiKeyId: "key_123",
      policyId: null,
    });
    assert.deepEqual(await askApproval(hook("/approve-with-reason"), payload), { approved: true }, "any 2xx");
    await askApproval(hook("/approve"), { ...payload, policyId: "sp_launch" });
    assert.equal(JSON.parse(received[2]!.body).policyId, "sp_launch", "the named policy that judged the operation");
  });

  it("refuses on {approve: false}, passing on the webhook's reason", async () => {
    assert.deepEqual(await askApproval(hook("/reject"), payload), { approved: false, reason: "the approval webhook refused: this user is over their budget" });
    assert.deepEqual(await askApproval(hook("/reject-bare"), payload), { approved: false, reason: "the approval webhook refused" });
  });

  it("refuses when the webhook does not answer within the timeout, and gives up on time", async () => {
    const started = Date.now();
    const result = await askApproval(hook("/slow", { timeoutMs: 150 }), payload);
    assert.deepEqual(result, { approved: false, reason: "the approval webhook did not answer within 150 ms" });
    assert.ok(Date.now() - started < 1_500, `took ${Date.now() - started} ms`);
  });

  it("counts the body in the timeout: headers then silence is a timeout", async () => {
    const result = await askApproval(hook("/stalled-body", { timeoutMs: 150 }), payload);
    assert.deepEqual(result, { approved: false, reason: "the approval webhook did not answer within 150 ms" });
  });

  it("refuses on a 5xx", async () => {
    assert.deepEqual(await askApproval(hook("/500"), payload), { approved: false, reason: "the approval webhook answered HTTP 500" });
  });

  it("refuses on a 4xx or a redirect, even one whose body says approve", async () => {
    assert.deepEqual(await askApproval(hook("/404"), payload), { approved: false, reason: "the approval webhook answered HTTP 404" });
    assert.deepEqual(await askApproval(hook("/redirect"), payload), { approved: false, reason: "the approval webhook answered HTTP 302" });
  });

  it("refuses a 2xx whose body is not {approve: true|false}", async () => {
    for (const path of ["/garbage", "/string-true", "/array", "/empty"]) {
      const result = await askApproval(hook(path), payload);
      assert.equal(result.approved, false, path);
      assert.match(result.reason!, /answered HTTP 20\d with a body that is not \{"approve": true\|false\}/, path);
    }
  });

  it("does not buffer an oversized answer, and refuses it", async () => {
    assert.deepEqual(await askApproval(hook("/huge"), payload), { approved: false, reason: "the approval webhook answered HTTP 200 with a body over 16384 bytes" });
  });

  it("refuses when the webhook cannot be reached, naming the error", async () => {
    const result = await askApproval({ url: refusedUrl, timeoutMs: 1_000, failOpen: false }, payload);
    assert.deepEqual(result, { approved: false, reason: "the approval webhook could not be reached (ECONNREFUSED)" });
  });

  describe("with failOpen", () => {
    const open = (path: string, extra: Partial<ApprovalWebhook> = {}) => hook(path, { failOpen: true, ...extra });

    it("approves when the webhook times out, saying why", async () => {
      assert.deepEqual(await askApproval(open("/slow", { timeoutMs: 150 }), payload), {
        approved: true,
        reason: "approved without the webhook, which fails open: the approval webhook did not answer within 150 ms",
      });
    });

    it("approves when the webhook cannot be reached", async () => {
      const result = await askApproval({ url: refusedUrl, timeoutMs: 1_000, failOpen: true }, payload);
      assert.deepEqual(result, { approved: true, reason: "approved without the webhook, which fails open: the approval webhook could not be reached (ECONNREFUSED)" });
    });

    it("approves on a 5xx", async () => {
      assert.deepEqual(await askApproval(open("/500"), payload), { approved: true, reason: "approved without the webhook, which fails open: the approval webhook answered HTTP 500" });
    });

    it("still refuses an explicit {approve: false}, even on a 5xx", async () => {
      assert.deepEqual(await askApproval(open("/reject"), payload), { approved: false, reason: "the approval webhook refused: this user is over their budget" });
      assert.deepEqual(await askApproval(open("/503-reject"), payload), { approved: false, reason: "the approval webhook refused: maintenance, and no" });
    });

    it("still refuses answers that are not outages: 4xx, 429, redirects, unreadable bodies", async () => {
      for (const path of ["/404", "/429", "/redirect", "/garbage", "/string-true", "/huge"]) {
        assert.equal((await askApproval(open(path), payload)).approved, false, path);
      }
    });

    it("still refuses a webhook URL that is not http(s): a configuration error is not an outage", async () => {
      const result = await askApproval({ url: "ftp://127.0.0.1/approve", timeoutMs: 100, failOpen: true }, payload);
      assert.deepEqual(result, { approved: false, reason: "the approval webhook URL is not an http(s) URL" });
    });
  });

  describe("with an injected fetch", () => {
    it("keeps to the deadline even when fetch ignores the abort signal", async () => {
      const neverAnswers = (() => new Promise<Response>(() => undefined)) as typeof fetch;
      const started = Date.now();
      const result = await askApproval({ url: "http://webhook.invalid/", timeoutMs: 100, failOpen: false }, payload, { fetch: neverAnswers });
      assert.deepEqual(result, { approved: false, reason: "the approval webhook did not answer within 100 ms" });
      assert.ok(Date.now() - started < 1_000);
    });

    it("never throws, whatever fetch does", async () => {
      const throwsSync = (() => {
        throw new Error("kaput");
      }) as typeof fetch;
      assert.deepEqual(await askApproval({ url: "http://webhook.invalid/", timeoutMs: 100, failOpen: false }, payload, { fetch: throwsSync }), {
        approved: false,
        reason: "the approval webhook could not be reached (kaput)",
      });
      const weird = (async () => ({ status: 200, body: { getReader: () => { throw new Error("odd stream"); } } })) as unknown as typeof fetch;
      assert.deepEqual(await askApproval({ url: "http://webhook.invalid/", timeoutMs: 100, failOpen: false }, payload, { fetch: weird }), {
        approved: false,
        reason: "the approval webhook could not be reached (odd stream)",
      });
      const respond = (body: string) => (async () => new Response(body, { status: 200 })) as typeof fetch;
      assert.deepEqual(await askApproval({ url: "http://webhook.invalid/", timeoutMs: 100, failOpen: false }, payload, { fetch: respond('{"approve":true}') }), { approved: true });
    });
  });
});
