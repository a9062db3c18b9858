/**
 * The ERC-7677 endpoint (`POST /rpc`) and the REST front door (`POST /v1/sponsorships`) under malformed,
 * hostile and fuzzed input, against the real app on a real anvil chain: every answer must be a well-formed
 * JSON-RPC response (HTTP 200, or 413 for an oversized body) with a stable code and a message naming the
 * problem — never an internal error, never a dead server. REST answers bad input with problem+json 4xx.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { after, before, it } from "node:test";
import { type Address, type Hex, getAddress, numberToHex, recoverMessageAddress, size, slice } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ENTRY_POINT_V07, SIMPLE_ACCOUNT_FACTORY_V07 } from "../chain/addresses";
import { newSimpleAccountAddress } from "../../devtools/userOperations";
import { describeWithDatabases } from "../../devtools/testing/databases";
import { getBalance } from "../ledger/ledger";
import { ADMIN_TOKEN, type SponsorStack, signerAddress, startSponsorStack } from "../../devtools/testing/sponsorStack";
import { SPONSOR_ERROR_CODES } from "./errors";
import { listHolds } from "./holds";
import { PAYMASTER_DATA_LENGTH, SIGNATURE_OFFSET, decodePaymasterData, getPaymasterHash } from "./signing/paymasterData";
import { RPC_ERRORS } from "./rpc";

const CHAIN_ID_HEX = "0x7a69";
const ENTRY_POINT_V06: Address = "0x5FF137D4b0FDCD49DcA30c7CF57E578a026d2789";
const MAX_BODY_BYTES = 64 * 1024;
/** Fixed so a run replays exactly; FUZZ_SEED / FUZZ_ITERATIONS in the environment explore further. */
const FUZZ_SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : 0x7677_2024;
const FUZZ_ITERATIONS = process.env.FUZZ_ITERATIONS ? Number(process.env.FUZZ_ITERATIONS) : 400;

type RpcErrorObject = { code: number; message: string; data?: Record<string, unknown> };
type RpcResponse = { jsonrpc: string; id: unknown; result?: Record<string, unknown>; error?: RpcErrorObject };
type RawAnswer = { status: number; contentType: string; text: string; headers: Headers };

/** mulberry32: a tiny seeded PRNG, so a failing fuzz run can be replayed exactly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const newSmartAccountAddress = (stack: SponsorStack): Promise<Address> => newSimpleAccountAddress(stack.chain.client);

function randomAddress(): Address {
  return privateKeyToAccount(generatePrivateKey()).address;
}

/** A valid v0.7 userOp as ERC-7677 clients send it: every quantity hex. */
function userOpFor(sender: Address, maxFeePerGas: bigint, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sender,
    nonce: "0x0",
    callData: "0x",
    callGasLimit: "0x186a0",
    verificationGasLimit: "0x7a120",
    preVerificationGas: "0xc350",
    maxFeePerGas: numberToHex(maxFeePerGas),
    maxPriorityFeePerGas: numberToHex(maxFeePerGas),
    signature: "0x",
    ...overrides,
  };
}

function request(method: string, userOp: unknown, extra: { id?: unknown; entryPoint?: unknown; chainId?: unknown } = {}): Record<string, unknown> {
  return {
    jsonrpc: "2.0",
    id: "id" in extra ? extra.id : 1,
    method,
    params: [userOp, "entryPoint" in extra ? extra.entryPoint : ENTRY_POINT_V07, "chainId" in extra ? extra.chainId : CHAIN_ID_HEX, {}],
  };
}

async function postRaw(url: string, body: string | Uint8Array | undefined, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  return { status: response.status, contentType: response.headers.get("content-type") ?? "", text: await response.text(), headers: response.headers };
}

function parseJson<T>(answer: RawAnswer): T {
  try {
    return JSON.parse(answer.text) as T;
  } catch {
    assert.fail(`not JSON (HTTP ${answer.status}, ${answer.contentType}): ${answer.text.slice(0, 200)}`);
  }
}

/** Checks one JSON-RPC response object; returns a problem description, or undefined when it is well formed. */
function malformedResponse(r: unknown): string | undefined {
  if (typeof r !== "object" || r === null || Array.isArray(r)) return `not a response object: ${JSON.stringify(r)?.slice(0, 200)}`;
  const o = r as Record<string, unknown>;
  if (o.jsonrpc !== "2.0") return `jsonrpc is ${JSON.stringify(o.jsonrpc)}`;
  if (!("id" in o)) return "no id";
  const hasResult = "result" in o;
  const hasError = "error" in o;
  if (hasResult === hasError) return "must have exactly one of result and error";
  if (hasError) {
    const e = o.error as Record<string, unknown> | null;
    if (typeof e !== "object" || e === null) return "error is not an object";
    if (!Number.isInteger(e.code)) return `error.code ${JSON.stringify(e.code)} is not an integer`;
    if (typeof e.message !== "string" || e.message.trim() === "") return "error.message is empty";
    if (e.code === RPC_ERRORS.internal) return `internal error: ${e.message}`;
  }
  return undefined;
}

function assertErrorCode(response: RpcResponse, code: number, message?: RegExp): RpcErrorObject {
  assert.equal(malformedResponse(response), undefined, JSON.stringify(response));
  assert.ok(response.error, `expected error ${code}, got a result: ${JSON.stringify(response.result)}`);
  assert.equal(response.error.code, code, response.error.message);
  if (message) assert.match(response.error.message, message);
  return response.error;
}

const hexQuantity = /^0x(0|[1-9a-f][0-9a-f]*)$/;

/** A placeholder for a value nested 10,000 arrays deep: JSON.parse reads it, JSON.stringify cannot write it. */
const DEEP = "__deeply_nested__";
function withDeepNesting(body: unknown, depth = 10_000): string {
  return JSON.stringify(body).replace(`"${DEEP}"`, "[".repeat(depth) + "]".repeat(depth));
}

// both HTTP stacks that serve /rpc — the fast path in front of express, and express alone — must answer alike
for (const pipeline of ["fast path", "express"] as const)
describeWithDatabases(`ERC-7677 POST /rpc and REST under malformed and fuzzed input (${pipeline})`, (db) => {
  let stack: SponsorStack;
  let maxFeePerGas: bigint;
  let rpcUrl: string;
  /** A funded sender: the stub call refuses an account without quota, as the final call would. */
  let quotaSender: Address;
  /** A good request; by default for `quotaSender`. */
  const goodUserOp = (sender: Address = quotaSender, overrides: Record<string, unknown> = {}) => userOpFor(sender, maxFeePerGas, overrides);

  async function rpc(body: unknown, options: { apiKey?: string | null; status?: number } = {}): Promise<RpcResponse> {
    const headers: Record<string, string> = {};
    const apiKey = options.apiKey === undefined ? stack.apiKey : options.apiKey;
    if (apiKey !== null) headers["x-api-key"] = apiKey;
    const answer = await postRaw(rpcUrl, typeof body === "string" ? body : JSON.stringify(body), headers);
    assert.equal(answer.status, options.status ?? 200, answer.text);
    assert.match(answer.contentType, /^application\/json/);
    return parseJson<RpcResponse>(answer);
  }

  async function createKey(): Promise<{ id: string; key: string }> {
    const response = await fetch(`${stack.url}/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "rpc-test" }),
    });
    assert.equal(response.status, 201, await response.clone().text());
    return (await response.json()) as { id: string; key: string };
  }

  async function revokeKey(id: string): Promise<void> {
    const response = await fetch(`${stack.url}/admin/api-keys/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(response.status, 204, await response.text());
  }

  before(async () => {
    stack = await startSponsorStack({
      db: db(),
      app: { rpcFastPath: pipeline === "fast path" },
      env: { RATE_LIMIT_SENDER_PER_MINUTE: "0", RATE_LIMIT_IP_PER_MINUTE: "0", RATE_LIMIT_API_KEY_PER_MINUTE: "0" },
    });
    rpcUrl = `${stack.url}/rpc`;
    maxFeePerGas = await stack.chain.client.getGasPrice();
    quotaSender = randomAddress();
    await stack.fund(quotaSender, 1_000_000_000n);
  });
  after(async () => {
    await stack?.stop();
  });

  // ---- the happy paths: the ERC-7677 result shape -------------------------------------------------------------

  it("a good stub request answers ERC-7677's v0.7 fields: 77-byte paymasterData whose stub signature has no zero byte, hex paymaster gas limits, the sponsor's name, isFinal false", async () => {
    const sender = await newSmartAccountAddress(stack);
    await stack.fund(sender, 100_000n);
    const response = await rpc(request("pm_getPaymasterStubData", goodUserOp(sender)));
    assert.equal(malformedResponse(response), undefined);
    const result = response.result!;
    assert.equal(getAddress(result.paymaster as string), getAddress(stack.chain.paymaster));
    const paymasterData = result.paymasterData as Hex;
    assert.match(paymasterData, /^0x[0-9a-f]*$/);
    assert.equal(size(paymasterData), PAYMASTER_DATA_LENGTH);
    const signaturePart = slice(paymasterData, SIGNATURE_OFFSET).slice(2);
    const zeroBytes = signaturePart.match(/../g)!.filter((b) => b === "00");
    assert.deepEqual(zeroBytes, [], "a zero byte in the stub signature makes estimation under-count calldata gas");
    const { validUntil, validAfter } = decodePaymasterData(paymasterData);
    assert.equal(validAfter, 0);
    assert.ok(validUntil > Date.now() / 1000, "the stub's validUntil is in the future");
    assert.match(result.paymasterVerificationGasLimit as string, hexQuantity);
    assert.match(result.paymasterPostOpGasLimit as string, hexQuantity);
    assert.deepEqual(result.sponsor, { name: "fiat-paymaster" });
    assert.equal(result.isFinal, false);
  });

  it("a page on another origin may call /rpc: the preflight is answered, and the answer carries Access-Control-Allow-Origin", async () => {
    const origin = "https://dapp.example";
    const preflight = await fetch(rpcUrl, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-api-key" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /x-api-key/);
    assert.equal(preflight.headers.get("access-control-allow-credentials"), null, "never with credentials");

    const answer = await postRaw(rpcUrl, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [goodUserOp(), ENTRY_POINT_V07, CHAIN_ID_HEX, {}] }), {
      origin,
      "x-api-key": stack.apiKey,
    });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers.get("access-control-allow-origin"), "*");
    assert.match(answer.headers.get("access-control-expose-headers") ?? "", /x-request-id/);
    const refused = await postRaw(rpcUrl, "{", { origin });
    assert.equal(refused.headers.get("access-control-allow-origin"), "*", "errors are readable by the page too");
  });

  it("a key whose policy lists allowedOrigins serves pages on those origins and backends, and refuses another origin before any hold", async () => {
    const created = await fetch(`${stack.url}/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "dapp-origin", policy: { allowedOrigins: ["https://DApp.example"] } }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { key, policy } = (await created.json()) as { key: string; policy: { allowedOrigins: string[] } };
    assert.deepEqual(policy.allowedOrigins, ["https://dapp.example"], "stored lower-case");
    const sender = await newSmartAccountAddress(stack);
    await stack.fund(sender, 100_000n);
    const call = async (method: string, headers: Record<string, string>) =>
      parseJson<RpcResponse>(await postRaw(rpcUrl, JSON.stringify(request(method, goodUserOp(sender))), { "x-api-key": key, ...headers }));

    for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
      const refused = await call(method, { origin: "https://evil.example" });
      assert.equal(refused.error?.code, -32135, JSON.stringify(refused));
      assert.deepEqual(refused.error?.data, { reason: "origin_not_allowed", origin: "https://evil.example" });
      assert.match(refused.error!.message, /may not be used from https:\/\/evil\.example; its policy allows https:\/\/dapp\.example/);
    }
    assert.deepEqual(await listHolds(db(), sender), [], "the refused origin took no hold");
    const rest = await postRaw(`${stack.url}/v1/sponsorships`, JSON.stringify({ userOp: goodUserOp(sender), entryPoint: ENTRY_POINT_V07, chainId: 31337 }), {
      "x-api-key": key,
      origin: "https://evil.example",
    });
    assert.equal(rest.status, 403, rest.text);
    assert.equal(parseJson<{ type: string }>(rest).type, "origin_not_allowed");

    assert.ok((await call("pm_getPaymasterStubData", { origin: "https://dapp.example" })).result, "the listed origin is served");
    assert.ok((await call("pm_getPaymasterStubData", {})).result, "a backend (no Origin) is not judged by it");
  });

  it("a stub request may leave out every gas field (wallets ask for the stub before estimating)", async () => {
    const op = goodUserOp();
    for (const field of ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"]) delete op[field];
    const response = await rpc(request("pm_getPaymasterStubData", op));
    assert.equal(malformedResponse(response), undefined);
    assert.ok(response.result, JSON.stringify(response.error));
    assert.equal(size(response.result.paymasterData as Hex), PAYMASTER_DATA_LENGTH);
  });

  it("a good final request on a funded account answers paymasterData of the stub's length, signed over the sponsored operation by the paymaster signer, and holds quota", async () => {
    const sender = await newSmartAccountAddress(stack);
    await stack.fund(sender, 100_000n);
    const op = goodUserOp(sender);
    const stub = (await rpc(request("pm_getPaymasterStubData", op))).result!;
    const response = await rpc({ ...request("pm_getPaymasterData", op), id: "final-1" });
    assert.equal(malformedResponse(response), undefined);
    assert.equal(response.id, "final-1");
    const result = response.result!;
    assert.ok(result, JSON.stringify(response.error));
    assert.equal(getAddress(result.paymaster as string), getAddress(stack.chain.paymaster));
    assert.equal(size(result.paymasterData as Hex), size(stub.paymasterData as Hex));
    assert.equal(result.paymasterVerificationGasLimit, stub.paymasterVerificationGasLimit);
    assert.equal(result.paymasterPostOpGasLimit, stub.paymasterPostOpGasLimit);
    assert.match(result.paymasterVerificationGasLimit as string, hexQuantity);
    assert.match(result.paymasterPostOpGasLimit as string, hexQuantity);
    assert.deepEqual(result.sponsor, { name: "fiat-paymaster" });
    assert.equal(result.isFinal, false);

    const { validUntil, validAfter, signature } = decodePaymasterData(result.paymasterData as Hex);
    const hash = getPaymasterHash({
      userOperation: {
        sender,
        nonce: 0n,
        callData: "0x",
        callGasLimit: 100_000n,
        verificationGasLimit: 500_000n,
        preVerificationGas: 50_000n,
        maxFeePerGas,
        maxPriorityFeePerGas: maxFeePerGas,
        paymasterVerificationGasLimit: BigInt(result.paymasterVerificationGasLimit as string),
        paymasterPostOpGasLimit: BigInt(result.paymasterPostOpGasLimit as string),
      },
      chainId: 31337,
      paymaster: getAddress(stack.chain.paymaster),
      entryPoint: ENTRY_POINT_V07,
      validUntil,
      validAfter,
    });
    assert.equal(await recoverMessageAddress({ message: { raw: hash }, signature }), signerAddress());
    const balance = await getBalance(db(), sender);
    assert.ok(balance.heldFen > 0n, "the final request held quota");
    assert.equal(balance.availableFen + balance.heldFen, 100_000n);
  });

  it("the entry point is compared case-insensitively and the chain id may be hex or a decimal string", async () => {
    for (const entryPoint of [ENTRY_POINT_V07.toLowerCase(), `0x${ENTRY_POINT_V07.slice(2).toUpperCase()}`]) {
      for (const chainId of [CHAIN_ID_HEX, "0x7A69", "31337", 31337]) {
        const response = await rpc(request("pm_getPaymasterStubData", goodUserOp(), { entryPoint, chainId }));
        assert.ok(response.result, `${entryPoint} ${JSON.stringify(chainId)}: ${JSON.stringify(response.error)}`);
      }
    }
  });

  // ---- bodies that are not JSON-RPC at all -------------------------------------------------------------------------

  it("a body that is not JSON, or empty, answers HTTP 200 with a JSON-RPC parse error (-32700) and id null", async () => {
    const bodies = ["", " ", "not json", "{", '{"jsonrpc":"2.0",', "[1,", "undefined", "NaN", "{'single':'quotes'}", "\u0000\u0001\u0002", '{"a":1}}', "0x", "<xml/>"];
    for (const body of bodies) {
      const response = await rpc(body);
      assertErrorCode(response, RPC_ERRORS.parse, /not valid JSON/);
      assert.equal(response.id, null, JSON.stringify(body));
    }
    // raw bytes that are not UTF-8, declared as JSON
    const binary = await postRaw(rpcUrl, new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28]), { "content-type": "application/json", "x-api-key": stack.apiKey });
    assert.equal(binary.status, 200);
    assertErrorCode(parseJson<RpcResponse>(binary), RPC_ERRORS.parse);
  });

  it("a body not declared as JSON (a cross-origin 'simple' request: text/plain, a form, or no type) answers 415 and signs and holds nothing", async () => {
    const sender = await newSmartAccountAddress(stack);
    await stack.fund(sender, 50_000n);
    const body = JSON.stringify(request("pm_getPaymasterData", goodUserOp(sender)));
    for (const contentType of ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream"]) {
      const answer = await postRaw(rpcUrl, body, { "content-type": contentType, "x-api-key": stack.apiKey });
      assert.equal(answer.status, 415, contentType);
      assertErrorCode(parseJson<RpcResponse>(answer), RPC_ERRORS.invalidRequest, /content-type application\/json/);
    }
    // fetch with a Blob body and no type sends no content-type at all: the other simple request
    const response = await fetch(rpcUrl, { method: "POST", headers: { "x-api-key": stack.apiKey }, body: new Blob([body]) });
    assert.equal(response.status, 415);
    assert.deepEqual(await listHolds(db(), sender), [], "nothing was held for any of them");
    // the same request declared as JSON is served, charset or not
    for (const contentType of ["application/json", "application/json; charset=utf-8"]) {
      const served = await postRaw(rpcUrl, JSON.stringify(request("pm_getPaymasterStubData", goodUserOp(sender))), { "content-type": contentType, "x-api-key": stack.apiKey });
      assert.equal(served.status, 200, contentType);
      assert.ok(parseJson<RpcResponse>(served).result);
    }
  });

  it("a JSON-RPC notification (no id) is never executed: no signature, no hold, and no answer (204)", async () => {
    const sender = await newSmartAccountAddress(stack);
    await stack.fund(sender, 50_000n);
    const notification = (method: string) => {
      const r = request(method, goodUserOp(sender)) as Record<string, unknown>;
      delete r.id;
      return r;
    };
    const single = await postRaw(rpcUrl, JSON.stringify(notification("pm_getPaymasterData")), { "x-api-key": stack.apiKey });
    assert.equal(single.status, 204);
    assert.equal(single.text, "");
    const all = await postRaw(rpcUrl, JSON.stringify([notification("pm_getPaymasterData"), notification("pm_getPaymasterStubData")]), { "x-api-key": stack.apiKey });
    assert.equal(all.status, 204);
    assert.equal(all.text, "");
    // in a batch with requests, the requests are answered and the notifications are not
    const mixed = parseJson<RpcResponse[]>(await postRaw(rpcUrl, JSON.stringify([notification("pm_getPaymasterData"), request("pm_getPaymasterStubData", goodUserOp(sender), { id: "s" })]), { "x-api-key": stack.apiKey }));
    assert.deepEqual(mixed.map((r) => r.id), ["s"]);
    assert.deepEqual(await listHolds(db(), sender), [], "no notification took a hold");
    // an explicit id: null is a request, not a notification
    const withNullId = parseJson<RpcResponse>(await postRaw(rpcUrl, JSON.stringify(request("pm_getPaymasterStubData", goodUserOp(sender), { id: null })), { "x-api-key": stack.apiKey }));
    assert.ok(withNullId.result);
  });

  it("a body over 64 KiB answers 413 with a JSON-RPC error naming the limit, whatever its content", async () => {
    const big = JSON.stringify(request("pm_getPaymasterStubData", goodUserOp(undefined, { callData: `0x${"ab".repeat(MAX_BODY_BYTES)}` })));
    const junk = "x".repeat(MAX_BODY_BYTES + 1);
    for (const body of [big, junk]) {
      const answer = await postRaw(rpcUrl, body, { "x-api-key": stack.apiKey });
      assert.equal(answer.status, 413);
      assert.match(answer.contentType, /^application\/json/);
      const response = parseJson<RpcResponse>(answer);
      assertErrorCode(response, RPC_ERRORS.invalidRequest, new RegExp(`larger than ${MAX_BODY_BYTES} bytes`));
      assert.equal(response.id, null);
    }
    // exactly at the limit is still read
    const padded = JSON.stringify(request("pm_getPaymasterStubData", goodUserOp()));
    const atLimit = padded + " ".repeat(MAX_BODY_BYTES - Buffer.byteLength(padded));
    const answer = await postRaw(rpcUrl, atLimit, { "x-api-key": stack.apiKey });
    assert.equal(answer.status, 200);
    assert.ok(parseJson<RpcResponse>(answer).result, answer.text);
  });

  it("a gzip body is inflated, and one that inflates past 64 KiB answers 413 (no decompression bomb)", async () => {
    const small = gzipSync(JSON.stringify(request("pm_getPaymasterStubData", goodUserOp())));
    const ok = await postRaw(rpcUrl, small, { "content-encoding": "gzip", "x-api-key": stack.apiKey });
    assert.equal(ok.status, 200);
    assert.ok(parseJson<RpcResponse>(ok).result, ok.text);
    const bomb = gzipSync(" ".repeat(10 * 1024 * 1024));
    assert.ok(bomb.length < MAX_BODY_BYTES);
    const answer = await postRaw(rpcUrl, bomb, { "content-encoding": "gzip", "x-api-key": stack.apiKey });
    assert.equal(answer.status, 413);
    assertErrorCode(parseJson<RpcResponse>(answer), RPC_ERRORS.invalidRequest);
  });

  it("a body that cannot be decoded (unknown content encoding or charset, corrupt gzip) answers a JSON-RPC parse error, never a 500", async () => {
    const body = JSON.stringify(request("pm_getPaymasterStubData", goodUserOp()));
    const cases: Array<[string, string | Uint8Array, Record<string, string>]> = [
      ["unknown content-encoding", body, { "content-encoding": "br-bogus" }],
      ["unknown charset", body, { "content-type": "application/json; charset=klingon" }],
      ["corrupt gzip", new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03]), { "content-encoding": "gzip" }],
    ];
    for (const [name, payload, headers] of cases) {
      const answer = await postRaw(rpcUrl, payload, { "x-api-key": stack.apiKey, ...headers });
      // rpc.ts answers these 400 (the module comment promises 200 for every failure but 413)
      assert.ok(answer.status === 400 || answer.status === 200, `${name}: HTTP ${answer.status}`);
      assert.match(answer.contentType, /^application\/json/, name);
      assertErrorCode(parseJson<RpcResponse>(answer), RPC_ERRORS.parse);
    }
  });

  // ---- the JSON-RPC envelope ---------------------------------------------------------------------------------------

  it("a request that is not an object (a number, a string, null, a boolean) is an invalid request (-32600)", async () => {
    for (const body of ["42", '"pm_getPaymasterData"', "null", "true", "false"]) {
      assertErrorCode(await rpc(body), RPC_ERRORS.invalidRequest, /must be an object/);
    }
  });

  it('a jsonrpc other than "2.0" is an invalid request, and the request id is echoed', async () => {
    for (const jsonrpc of ["1.0", "2", 2, 2.0, null, undefined, ["2.0"], { v: "2.0" }, " 2.0"]) {
      const body = { ...request("pm_getPaymasterStubData", goodUserOp()), jsonrpc, id: "abc" };
      if (jsonrpc === undefined) delete (body as Record<string, unknown>).jsonrpc;
      const response = await rpc(body);
      assertErrorCode(response, RPC_ERRORS.invalidRequest, /jsonrpc must be "2.0"/);
      assert.equal(response.id, "abc");
    }
  });

  it("a string or numeric id is echoed; any other id becomes null", async () => {
    const cases: Array<[unknown, unknown]> = [
      ["x", "x"],
      [0, 0],
      [-7, -7],
      [1.5, 1.5],
      ["", ""],
      [null, null],
      [true, null],
      [{ a: 1 }, null],
      [[1], null],
    ];
    for (const [id, echoed] of cases) {
      const response = await rpc(request("pm_getPaymasterStubData", goodUserOp(), { id }));
      assert.equal(malformedResponse(response), undefined);
      assert.deepEqual(response.id, echoed, JSON.stringify(id));
    }
  });

  it("an unknown or non-string method is refused: -32601 naming the method, -32600 when it is not a string", async () => {
    for (const method of ["eth_sendUserOperation", "pm_sponsorUserOperation", "pm_getpaymasterdata", "", "x".repeat(10_000), "__proto__", "constructor"]) {
      const error = assertErrorCode(await rpc({ jsonrpc: "2.0", id: 1, method, params: [] }), RPC_ERRORS.methodNotFound, /pm_getPaymasterStubData and pm_getPaymasterData/);
      assert.ok(error.message.length < 400, "a long method name is cut in the message");
    }
    for (const method of [null, 1, true, ["pm_getPaymasterData"], { name: "pm_getPaymasterData" }]) {
      assertErrorCode(await rpc({ jsonrpc: "2.0", id: 1, method, params: [] }), RPC_ERRORS.invalidRequest, /method must be a string/);
    }
    assertErrorCode(await rpc({ jsonrpc: "2.0", id: 1, params: [] }), RPC_ERRORS.invalidRequest);
  });

  it("params that are not an array of 3 or 4 are invalid params (-32602)", async () => {
    const op = goodUserOp();
    const cases: unknown[] = [undefined, null, {}, { userOp: op }, "params", 42, true, [], [op], [op, ENTRY_POINT_V07], [op, ENTRY_POINT_V07, CHAIN_ID_HEX, {}, "extra"]];
    for (const params of cases) {
      for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
        const body: Record<string, unknown> = { jsonrpc: "2.0", id: 1, method, params };
        if (params === undefined) delete body.params;
        assertErrorCode(await rpc(body), RPC_ERRORS.invalidParams, /params must be \[userOp, entryPoint, chainId, context\?\]/);
      }
    }
    // three params (no context) are enough
    assert.ok((await rpc({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterStubData", params: [op, ENTRY_POINT_V07, CHAIN_ID_HEX] })).result);
  });

  // ---- API keys ----------------------------------------------------------------------------------------------------

  it("a missing or invalid API key is refused with code unauthorized (-32121); the key may come as header or ?apikey=", async () => {
    const body = request("pm_getPaymasterStubData", goodUserOp());
    const unauthorized = SPONSOR_ERROR_CODES.unauthorized;
    assertErrorCode(await rpc(body, { apiKey: null }), unauthorized, /valid API key is required/);
    for (const key of ["", "nope", `${stack.apiKey}x`, stack.apiKey.replace(/_[^_]+$/, `_${"A".repeat(43)}`), "fpk_000000000000_" + "a".repeat(43)]) {
      assertErrorCode(await rpc(body, { apiKey: key }), unauthorized);
    }
    const viaQuery = await postRaw(`${rpcUrl}?apikey=${encodeURIComponent(stack.apiKey)}`, JSON.stringify(body));
    assert.ok(parseJson<RpcResponse>(viaQuery).result, viaQuery.text);
    // a repeated query parameter is not a key
    const repeated = await postRaw(`${rpcUrl}?apikey=${stack.apiKey}&apikey=${stack.apiKey}`, JSON.stringify(body));
    assertErrorCode(parseJson<RpcResponse>(repeated), unauthorized);
    // the final method refuses the same way, before looking at the params
    assertErrorCode(await rpc({ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: "junk" }, { apiKey: null }), unauthorized);
  });

  it("a key revoked before it was ever used is refused at once", async () => {
    const { id, key } = await createKey();
    await revokeKey(id);
    assertErrorCode(await rpc(request("pm_getPaymasterStubData", goodUserOp()), { apiKey: key }), SPONSOR_ERROR_CODES.unauthorized);
    const again = await fetch(`${stack.url}/admin/api-keys/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(again.status, 404);
    assert.match(again.headers.get("content-type") ?? "", /application\/problem\+json/);
  });

  it("a key revoked after use is refused once its cache entry expires (within 5 s)", async () => {
    const { id, key } = await createKey();
    const body = request("pm_getPaymasterStubData", goodUserOp());
    assert.ok((await rpc(body, { apiKey: key })).result, "the new key works");
    await revokeKey(id);
    await new Promise((resolve) => setTimeout(resolve, 5_200));
    assertErrorCode(await rpc(body, { apiKey: key }), SPONSOR_ERROR_CODES.unauthorized);
    assertErrorCode(await rpc(request("pm_getPaymasterData", goodUserOp()), { apiKey: key }), SPONSOR_ERROR_CODES.unauthorized);
  });

  // ---- chain and entry point ---------------------------------------------------------------------------------------

  it("an unsupported chain id answers unsupported_chain listing the supported chains; a malformed one is invalid params", async () => {
    for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
      for (const chainId of ["0x1", "0x2105", 1, "8453", "0xfffffffffffff"]) {
        const error = assertErrorCode(await rpc(request(method, goodUserOp(), { chainId })), SPONSOR_ERROR_CODES.unsupported_chain, /is not sponsored here; supported: 31337/);
        assert.deepEqual(error.data?.supportedChainIds, [31337]);
        assert.equal(error.data?.reason, "unsupported_chain");
      }
      for (const chainId of ["", "0x", "0x0", 0, -1, "-0x7a69", 1.5, 31337.5, 2 ** 300, "0x" + "f".repeat(14), "7a69", "0x7a69 ", null, true, [CHAIN_ID_HEX], { id: 31337 }]) {
        assertErrorCode(await rpc(request(method, goodUserOp(), { chainId })), RPC_ERRORS.invalidParams, /chainId must be a positive hex quantity/);
      }
    }
  });

  it("an unsupported entry point (v0.6's) answers unsupported_entry_point naming v0.7's; a malformed one is invalid params", async () => {
    for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
      const error = assertErrorCode(await rpc(request(method, goodUserOp(), { entryPoint: ENTRY_POINT_V06 })), SPONSOR_ERROR_CODES.unsupported_entry_point);
      assert.match(error.message, new RegExp(ENTRY_POINT_V07));
      assert.deepEqual(error.data?.supportedEntryPoints, [ENTRY_POINT_V07]);
      for (const entryPoint of ["", "0x", "0x1234", ENTRY_POINT_V07.slice(0, 41), `${ENTRY_POINT_V07}00`, ENTRY_POINT_V07.slice(2), null, 42, true, [ENTRY_POINT_V07], { address: ENTRY_POINT_V07 }]) {
        assertErrorCode(await rpc(request(method, goodUserOp(), { entryPoint })), RPC_ERRORS.invalidParams, /entryPoint must be a 20-byte 0x-prefixed address/);
      }
    }
  });

  // ---- the userOp --------------------------------------------------------------------------------------------------

  it("a userOp that is not an object is invalid params", async () => {
    for (const userOp of [null, "0x", 42, true, [], [goodUserOp()]]) {
      for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
        assertErrorCode(await rpc(request(method, userOp)), RPC_ERRORS.invalidParams, /userOp must be an object/);
      }
    }
  });

  it("a v0.6-format userOp (initCode, paymasterAndData) is refused as such", async () => {
    const v06 = goodUserOp(undefined, { initCode: "0x", paymasterAndData: "0x" });
    for (const field of ["factory", "factoryData", "paymaster", "paymasterData", "paymasterVerificationGasLimit", "paymasterPostOpGasLimit"]) delete v06[field];
    for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
      assertErrorCode(await rpc(request(method, v06)), RPC_ERRORS.invalidParams, /v0\.6 format/);
      assertErrorCode(await rpc(request(method, { ...goodUserOp(), initCode: "0x" })), RPC_ERRORS.invalidParams, /v0\.6 format/);
      assertErrorCode(await rpc(request(method, { ...goodUserOp(), paymasterAndData: "0x" })), RPC_ERRORS.invalidParams, /v0\.6 format/);
    }
  });

  it("each bad userOp field is invalid params naming that field (malformed hex, odd-length bytes, missing, huge, negative, wrong type)", async () => {
    const huge = `0x1${"0".repeat(75)}`; // 2^300
    const cases: Array<[string, unknown]> = [
      // quantities
      ...["nonce", "callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"].flatMap((field): Array<[string, unknown]> =>
        ["0xzz", "186a0", "0x", "0x-1", "-0x1", " 0x1", "0x1 ", "1e5", huge, 2 ** 300, -1, 100000, 1.5, true, false, [], ["0x1"], {}, { hex: "0x1" }, "0x" + "f".repeat(65)].map((v): [string, unknown] => [field, v]),
      ),
      // above uint128 for the gas fields (the nonce is a uint256)
      ...["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"].map((field): [string, unknown] => [field, `0x1${"0".repeat(32)}`]),
      // bytes
      ...["callData", "signature", "factoryData"].flatMap((field): Array<[string, unknown]> =>
        ["0xabc", "0x1", "abcd", "0xgg", "0x 00", 0, true, [], {}, ["0x"]].map((v): [string, unknown] => [field, v]),
      ),
      ["callData", `0x${"a".repeat(30_001)}`], // long and odd
      // addresses
      ...["sender", "factory"].flatMap((field): Array<[string, unknown]> =>
        ["0x1234", "", "0x" + "g".repeat(40), "0x" + "a".repeat(42), "a".repeat(40), 0, true, [], {}, [randomAddress()]].map((v): [string, unknown] => [field, v]),
      ),
    ];
    for (const [field, value] of cases) {
      const op = goodUserOp(undefined, { [field]: value });
      if (field === "factoryData") op.factory = SIMPLE_ACCOUNT_FACTORY_V07;
      for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
        const response = await rpc(request(method, op));
        const error = assertErrorCode(response, RPC_ERRORS.invalidParams);
        assert.match(error.message, new RegExp(`userOp\\.${field}`), `${method} ${field}=${JSON.stringify(value)?.slice(0, 60)}: ${error.message}`);
        assert.equal(error.data?.field, field, error.message);
        assert.ok(error.message.length < 300, "the message quotes a bounded excerpt of the value");
      }
    }
  });

  it("missing required fields are named: sender, nonce and callData always; every gas field on the final request", async () => {
    for (const field of ["sender", "nonce", "callData"]) {
      for (const method of ["pm_getPaymasterStubData", "pm_getPaymasterData"]) {
        const op = goodUserOp();
        delete op[field];
        const error = assertErrorCode(await rpc(request(method, op)), RPC_ERRORS.invalidParams, new RegExp(`userOp\\.${field} is required`));
        assert.equal(error.data?.field, field);
      }
    }
    for (const field of ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"]) {
      for (const missing of [undefined, null]) {
        const op = goodUserOp();
        if (missing === undefined) delete op[field];
        else op[field] = null;
        assertErrorCode(await rpc(request("pm_getPaymasterData", op)), RPC_ERRORS.invalidParams, new RegExp(`userOp\\.${field} is required`));
      }
    }
    const error = assertErrorCode(await rpc(request("pm_getPaymasterData", goodUserOp(undefined, { factoryData: "0xabcd" }))), RPC_ERRORS.invalidParams);
    assert.match(error.message, /factoryData is set but userOp\.factory is not/);
  });

  it("the final request refuses gas over the chain's caps, a priority fee above the max fee, and a fee far above the chain's price", async () => {
    const over = (field: string, value: string) => rpc(request("pm_getPaymasterData", goodUserOp(undefined, { [field]: value })));
    assertErrorCode(await over("callGasLimit", numberToHex(5_000_001n)), SPONSOR_ERROR_CODES.gas_cap_exceeded, /callGasLimit 5000001 is above this chain's cap/);
    assertErrorCode(await over("paymasterVerificationGasLimit", numberToHex(10_000_000n)), SPONSOR_ERROR_CODES.gas_cap_exceeded, /paymasterVerificationGasLimit/);
    assertErrorCode(
      await rpc(request("pm_getPaymasterData", goodUserOp(undefined, { maxPriorityFeePerGas: numberToHex(maxFeePerGas + 1n) }))),
      RPC_ERRORS.invalidParams,
      /maxPriorityFeePerGas is above userOp\.maxFeePerGas/,
    );
    const tooHigh = maxFeePerGas * 11n;
    assertErrorCode(
      await rpc(request("pm_getPaymasterData", goodUserOp(undefined, { maxFeePerGas: numberToHex(tooHigh), maxPriorityFeePerGas: "0x1" }))),
      SPONSOR_ERROR_CODES.fee_too_high,
      /above 1000% of the chain's current gas price/,
    );
  });

  it("an unfunded sender's final request answers insufficient_quota with the available and required fen", async () => {
    const error = assertErrorCode(await rpc(request("pm_getPaymasterData", goodUserOp(randomAddress()))), SPONSOR_ERROR_CODES.insufficient_quota, /has 0 fen available/);
    assert.equal(error.data?.availableFen, "0");
    assert.match(String(error.data?.requiredFen), /^[1-9]\d*$/);
  });

  it("a deeply nested value where a string goes is invalid params, not an internal error", async () => {
    const cases: Array<[string, unknown]> = [
      ["userOp.sender (stub)", request("pm_getPaymasterStubData", goodUserOp(undefined, { sender: DEEP }))],
      ["userOp.callGasLimit (final)", request("pm_getPaymasterData", goodUserOp(undefined, { callGasLimit: DEEP }))],
      ["userOp.callData (final)", request("pm_getPaymasterData", goodUserOp(undefined, { callData: DEEP }))],
      ["entryPoint", request("pm_getPaymasterData", goodUserOp(), { entryPoint: DEEP })],
      ["chainId", request("pm_getPaymasterData", goodUserOp(), { chainId: DEEP })],
    ];
    const failures: string[] = [];
    for (const [name, body] of cases) {
      const response = await rpc(withDeepNesting(body));
      if (malformedResponse(response) || response.error?.code !== RPC_ERRORS.invalidParams) failures.push(`${name}: ${JSON.stringify(response.error)}`);
    }
    assert.deepEqual(failures, []);
  });

  // ---- batches -----------------------------------------------------------------------------------------------------

  it("a batch answers one response per request, in order, each judged on its own", async () => {
    const batch = [
      request("pm_getPaymasterStubData", goodUserOp(), { id: "a" }),
      { jsonrpc: "2.0", id: "b", method: "eth_chainId", params: [] },
      request("pm_getPaymasterData", goodUserOp(), { id: "c", chainId: "0x1" }),
      42,
      { jsonrpc: "1.0", id: "e", method: "pm_getPaymasterStubData", params: [] },
      request("pm_getPaymasterData", "nope", { id: "f" }),
    ];
    const responses = (await rpc(batch)) as unknown as RpcResponse[];
    assert.ok(Array.isArray(responses));
    assert.equal(responses.length, batch.length);
    for (const r of responses) assert.equal(malformedResponse(r), undefined, JSON.stringify(r));
    assert.deepEqual(
      responses.map((r) => r.id),
      ["a", "b", "c", null, "e", "f"],
    );
    assert.ok(responses[0]!.result);
    assert.deepEqual(
      responses.slice(1).map((r) => r.error?.code),
      [RPC_ERRORS.methodNotFound, SPONSOR_ERROR_CODES.unsupported_chain, RPC_ERRORS.invalidRequest, RPC_ERRORS.invalidRequest, RPC_ERRORS.invalidParams],
    );
  });

  it("a batch of 20 is served; an empty batch or one of 21 is a single invalid-request error", async () => {
    const twenty = Array.from({ length: 20 }, (_, i) => request("pm_getPaymasterStubData", goodUserOp(), { id: i }));
    const responses = (await rpc(twenty)) as unknown as RpcResponse[];
    assert.equal(responses.length, 20);
    assert.deepEqual(
      responses.map((r) => r.id),
      twenty.map((_, i) => i),
    );
    assert.ok(responses.every((r) => r.result));
    for (const batch of [[], [...twenty, request("pm_getPaymasterStubData", goodUserOp())]]) {
      const response = await rpc(batch);
      assert.ok(!Array.isArray(response));
      assertErrorCode(response, RPC_ERRORS.invalidRequest, /a batch must hold 1 to 20 requests/);
    }
    // a nested batch is not a request
    const nested = (await rpc([[request("pm_getPaymasterStubData", goodUserOp())]])) as unknown as RpcResponse[];
    assert.equal(nested.length, 1);
    assertErrorCode(nested[0]!, RPC_ERRORS.invalidRequest);
  });

  it("a batch without an API key refuses each sponsorship request and still answers the others", async () => {
    const responses = (await rpc([request("pm_getPaymasterStubData", goodUserOp()), { jsonrpc: "2.0", id: 2, method: "nope" }], { apiKey: null })) as unknown as RpcResponse[];
    assert.deepEqual(
      responses.map((r) => r.error?.code),
      [SPONSOR_ERROR_CODES.unauthorized, RPC_ERRORS.methodNotFound],
    );
  });

  // ---- the fuzzer --------------------------------------------------------------------------------------------------

  it(`fuzz: ${FUZZ_ITERATIONS} seeded mutations of a valid request all answer 200/413 with a well-formed JSON-RPC response (204 only for notifications), never -32603, and the server lives`, async (t) => {
    t.diagnostic(`fuzz seed 0x${FUZZ_SEED.toString(16)} (${FUZZ_ITERATIONS} iterations); change FUZZ_SEED to explore, keep it to replay`);
    const random = mulberry32(FUZZ_SEED);
    const int = (n: number) => Math.floor(random() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
    const hexDigits = (n: number) => Array.from({ length: n }, () => "0123456789abcdefABCDEF"[int(22)]).join("");
    const seededAddress = () => `0x${hexDigits(40)}` as Address;
    const fundedSender = await newSmartAccountAddress(stack);
    await stack.fund(fundedSender, 50_000n);

    const randomString = (): string =>
      pick([
        () => "",
        () => "0x",
        () => `0x${hexDigits(int(80))}`,
        () => `0x${hexDigits(2 * int(40))}`,
        () => hexDigits(int(40)),
        () => `-0x${hexDigits(1 + int(8))}`,
        () => `0x1${"0".repeat(75)}`,
        () => "x".repeat(int(2_000)),
        () => "\u0000\ud800\udfff\u202e😀".repeat(1 + int(20)),
        () => pick(["__proto__", "constructor", "toString", "NaN", "Infinity", "null", "true", "0x7a69", "31337", ENTRY_POINT_V07, ENTRY_POINT_V06]),
        () => seededAddress(),
        () => String(random() * 1e20),
      ])();
    const randomValue = (depth = 0): unknown => {
      const choices: Array<() => unknown> = [
        () => null,
        () => random() < 0.5,
        () => int(2 ** 31) - 2 ** 30,
        () => pick([0, -0, -1, 1.5, 2 ** 53 + 1, 2 ** 300, -(2 ** 300), Number.MAX_VALUE, Number.MIN_VALUE, 1e-300]),
        randomString,
        randomString,
      ];
      if (depth < 4) {
        choices.push(
          () => Array.from({ length: int(5) }, () => randomValue(depth + 1)),
          () => Object.fromEntries(Array.from({ length: int(5) }, () => [pick([randomString(), "sender", "nonce", "__proto__", "callData"]), randomValue(depth + 1)])),
        );
      }
      choices.push(() => {
        // deep nesting, kept within what JSON.stringify survives (very deep nesting has its own test above)
        const levels = 1 + int(200);
        let v: unknown = randomString();
        for (let i = 0; i < levels; i++) v = random() < 0.5 ? [v] : { [pick(["a", "sender", "0"])]: v };
        return v;
      });
      return pick(choices)();
    };

    const base = (): Record<string, unknown> => {
      const method = pick(["pm_getPaymasterStubData", "pm_getPaymasterData"]);
      const sender = random() < 0.5 ? fundedSender : seededAddress();
      return request(method, goodUserOp(sender, { nonce: numberToHex(BigInt(int(1_000_000))) }), { id: int(1_000) });
    };
    const userOpFields = ["sender", "nonce", "factory", "factoryData", "callData", "callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas", "paymasterVerificationGasLimit", "paymasterPostOpGasLimit", "paymaster", "paymasterData", "signature", "initCode", "paymasterAndData"];
    const mutate = (req: Record<string, unknown>): void => {
      const params = Array.isArray(req.params) ? (req.params as unknown[]) : undefined;
      const userOp = params && typeof params[0] === "object" && params[0] !== null && !Array.isArray(params[0]) ? (params[0] as Record<string, unknown>) : undefined;
      const roll = random();
      if (roll < 0.45 && userOp) {
        const field = pick([...userOpFields, randomString().slice(0, 20)]);
        if (random() < 0.3) delete userOp[field];
        else userOp[field] = randomValue();
      } else if (roll < 0.6 && params) {
        const index = int(5);
        if (random() < 0.3) params.splice(index, 1);
        else params[index] = randomValue();
      } else if (roll < 0.75) {
        const key = pick(["jsonrpc", "id", "method", "params", randomString().slice(0, 10)]);
        if (random() < 0.3) delete req[key];
        else req[key] = randomValue();
      } else if (roll < 0.85) {
        req.method = pick(["pm_getPaymasterStubData", "pm_getPaymasterData", "pm_sponsorUserOperation", "eth_chainId", randomString().slice(0, 100)]);
      } else if (userOp) {
        // a plausible-looking but wrong gas value
        userOp[pick(["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas", "paymasterVerificationGasLimit"])] = numberToHex(BigInt(int(2 ** 31)) ** BigInt(1 + int(4)));
      }
    };

    const failures: string[] = [];
    const one = async (iteration: number): Promise<void> => {
      let body: string;
      const shape = random();
      if (shape < 0.08) {
        const batch = Array.from({ length: 1 + int(4) }, () => {
          const r = base();
          mutate(r);
          return random() < 0.2 ? randomValue() : r;
        });
        body = JSON.stringify(batch);
      } else {
        const r = base();
        for (let m = 0, n = 1 + int(3); m < n; m++) mutate(r);
        body = JSON.stringify(r);
        if (shape > 0.94) {
          // textual corruption: truncate, splice in junk, or pad past the size limit
          const cut = int(body.length);
          body = pick([() => body.slice(0, cut), () => body.slice(0, cut) + pick(["\u0000", "}", "]", ",", '"', "\\", "{{"]) + body.slice(cut), () => body + " ".repeat(MAX_BODY_BYTES)])();
        }
      }
      const answer = await postRaw(rpcUrl, body, { "x-api-key": stack.apiKey });
      const where = `#${iteration} ${body.slice(0, 300)}`;
      if (answer.status === 204) {
        // nothing to answer is right only when every request sent was a notification (an object with a method, no id)
        const sent = (() => {
          try {
            return JSON.parse(body) as unknown;
          } catch {
            return undefined;
          }
        })();
        const notification = (r: unknown) => typeof r === "object" && r !== null && !Array.isArray(r) && !("id" in r) && typeof (r as { method?: unknown }).method === "string";
        const onlyNotifications = Array.isArray(sent) ? sent.length > 0 && sent.every(notification) : notification(sent);
        if (!onlyNotifications || answer.text !== "") failures.push(`${where}\n  → HTTP 204 for requests that expect an answer`);
        return;
      }
      if (answer.status !== 200 && answer.status !== 413) return void failures.push(`${where}\n  → HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(answer.text);
      } catch {
        return void failures.push(`${where}\n  → not JSON: ${answer.text.slice(0, 200)}`);
      }
      for (const r of Array.isArray(parsed) ? parsed : [parsed]) {
        const problem = malformedResponse(r);
        if (problem) failures.push(`${where}\n  → ${problem}`);
      }
    };
    const concurrency = 8;
    for (let i = 0; i < FUZZ_ITERATIONS; i += concurrency) {
      // bodies are built in a fixed order (the PRNG is consumed synchronously), so the run is reproducible
      await Promise.all(Array.from({ length: Math.min(concurrency, FUZZ_ITERATIONS - i) }, (_, j) => one(i + j)));
    }
    assert.deepEqual(failures, [], `seed 0x${FUZZ_SEED.toString(16)}: ${failures.length} bad answers`);

    const health = await fetch(`${stack.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    assert.ok((await rpc(request("pm_getPaymasterStubData", goodUserOp()))).result, "still sponsoring after the fuzz run");
  });

  // ---- REST --------------------------------------------------------------------------------------------------------

  it("REST POST /v1/sponsorships answers bad input with application/problem+json 4xx, never a 500", async () => {
    const url = `${stack.url}/v1/sponsorships`;
    const good = { userOp: goodUserOp(), entryPoint: ENTRY_POINT_V07, chainId: 31337 };
    const cases: Array<[string, string | Uint8Array | undefined, Record<string, string>, number]> = [
      ["no API key", JSON.stringify(good), { "x-api-key": "" }, 401],
      ["a wrong API key", JSON.stringify(good), { "x-api-key": "fpk_000000000000_" + "a".repeat(43) }, 401],
      ["not JSON", "not json", {}, 400],
      ["truncated JSON", JSON.stringify(good).slice(0, 40), {}, 400],
      ["an empty body", "", {}, 400],
      ["a JSON string", '"x"', {}, 400],
      ["JSON null", "null", {}, 400],
      ["a JSON array", JSON.stringify([good]), {}, 400],
      ["an empty object", "{}", {}, 400],
      ["an unknown field", JSON.stringify({ ...good, extra: 1 }), {}, 400],
      ["userOp an array", JSON.stringify({ ...good, userOp: [] }), {}, 400],
      ["userOp a string", JSON.stringify({ ...good, userOp: "0x" }), {}, 400],
      ["chainId an object", JSON.stringify({ ...good, chainId: { id: 1 } }), {}, 400],
      ["chainId negative", JSON.stringify({ ...good, chainId: -1 }), {}, 400],
      ["chainId 2^300", JSON.stringify({ ...good, chainId: 2 ** 300 }), {}, 400],
      ["an unsupported chain", JSON.stringify({ ...good, chainId: 1 }), {}, 400],
      ["entryPoint a number", JSON.stringify({ ...good, entryPoint: 7 }), {}, 400],
      ["the v0.6 entry point", JSON.stringify({ ...good, entryPoint: ENTRY_POINT_V06 }), {}, 400],
      ["a malformed quantity", JSON.stringify({ ...good, userOp: goodUserOp(undefined, { callGasLimit: "0xzz" }) }), {}, 400],
      ["a huge quantity", JSON.stringify({ ...good, userOp: goodUserOp(undefined, { nonce: `0x1${"0".repeat(75)}` }) }), {}, 400],
      ["odd-length callData", JSON.stringify({ ...good, userOp: goodUserOp(undefined, { callData: "0xabc" }) }), {}, 400],
      ["a missing sender", JSON.stringify({ ...good, userOp: { ...goodUserOp(), sender: undefined } }), {}, 400],
      ["a v0.6 userOp", JSON.stringify({ ...good, userOp: { ...goodUserOp(), initCode: "0x" } }), {}, 400],
      ["a gas cap exceeded", JSON.stringify({ ...good, userOp: goodUserOp(undefined, { callGasLimit: numberToHex(50_000_000n) }) }), {}, 400],
      ["no quota", JSON.stringify({ ...good, userOp: goodUserOp(randomAddress()) }), {}, 402],
      ["an unknown charset", JSON.stringify(good), { "content-type": "application/json; charset=klingon" }, 415],
      ["a corrupt gzip", new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 0x01]), { "content-encoding": "gzip" }, 400],
      ["over 64 KiB", JSON.stringify({ ...good, userOp: goodUserOp(undefined, { callData: `0x${"ab".repeat(MAX_BODY_BYTES)}` }) }), {}, 413],
    ];
    for (const [name, body, headers, status] of cases) {
      const answer = await postRaw(url, body, { "x-api-key": stack.apiKey, ...headers });
      assert.equal(answer.status, status, `${name}: ${answer.text.slice(0, 300)}`);
      assert.match(answer.contentType, /^application\/problem\+json/, name);
      const problem = parseJson<{ type: string; status: number; detail: string }>(answer);
      assert.equal(problem.status, status, name);
      assert.ok(typeof problem.type === "string" && problem.type !== "internal", name);
      assert.ok(problem.detail.length > 0, name);
    }
    // a body not declared as JSON is refused before anything reads it (a cross-origin simple POST must not sponsor)
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded"]) {
      const plain = await postRaw(url, JSON.stringify(good), { "x-api-key": stack.apiKey, "content-type": contentType });
      assert.equal(plain.status, 415, contentType);
      assert.match(plain.contentType, /^application\/problem\+json/);
      assert.equal(parseJson<{ type: string }>(plain).type, "unsupported_media_type");
    }
  });

  it("REST POST /v1/sponsorships answers a deeply nested field with a 400, not a 500", async () => {
    const body = withDeepNesting({ userOp: goodUserOp(undefined, { sender: DEEP }), entryPoint: ENTRY_POINT_V07, chainId: 31337 });
    const answer = await postRaw(`${stack.url}/v1/sponsorships`, body, { "x-api-key": stack.apiKey });
    assert.equal(answer.status, 400, answer.text);
    assert.match(answer.contentType, /^application\/problem\+json/);
  });

  it("refusals for chains we do not serve do not create a metrics series per requested chain id", async () => {
    const ids = Array.from({ length: 5 }, (_, i) => 900_000_000 + i);
    for (const id of ids) assertErrorCode(await rpc(request("pm_getPaymasterStubData", goodUserOp(), { chainId: numberToHex(id) })), SPONSOR_ERROR_CODES.unsupported_chain);
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    const series = metrics.split("\n").filter((line) => line.startsWith("fiat_paymaster_sponsorships_total{") && ids.some((id) => line.includes(`chain="${id}"`)));
    assert.deepEqual(series, []);
  });
});
