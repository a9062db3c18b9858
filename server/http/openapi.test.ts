import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type express from "express";
import { startAdminApp } from "../../devtools/testing/adminClient";
import { createTestDatabase } from "../../devtools/testing/databases";
import type { App } from "../app";
import { PROVIDERS } from "../payments/gateway";
import { SPONSOR_ERROR_CODES, SponsorError, type SponsorErrorReason } from "../sponsorship/errors";
import { policySchema } from "../sponsorship/policy";
import { RPC_ERRORS } from "../sponsorship/rpc";
import { openApiDocument } from "./openapi";

type Json = Record<string, unknown>;
type Operation = { operationId?: string; tags?: string[]; security?: Record<string, string[]>[]; parameters?: Json[]; responses: Record<string, Json> } & Json;
type Doc = {
  openapi: string;
  info: { title: string; version: string; description: string };
  servers: { url: string }[];
  tags: { name: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> } & Json;
};

const PUBLIC_URL = "https://paymaster.example.com";
const doc = openApiDocument(PUBLIC_URL) as Doc;

const SERVER_DIR = path.join(__dirname, "..");
const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const SPONSOR_REASONS = Object.keys(SPONSOR_ERROR_CODES) as SponsorErrorReason[];

/**
 * Directories under server/ whose routes this service does not serve, each with the reason: app.ts must not import
 * them. (The routes are read from the app itself below, so a router of theirs would show up there if it were mounted.)
 */
const NOT_SERVED: Record<string, string> = {
  simulator:
    "the Alipay / WeChat Pay gateway simulator is a separate express app (scripts/simulator.ts, the local stack, tests) that createApp never mounts: its routes are the gateways' APIs, not ours",
};

/** The served source files under server/ (for the problem types the code sends). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return path.relative(SERVER_DIR, full) in NOT_SERVED ? [] : sourceFiles(full);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [full] : [];
  });
}

type Registration = { method: string; path: string };
type Layer = { route?: { path: unknown; methods: Record<string, boolean> }; handle?: { stack?: Layer[] }; rawPath?: unknown; name?: string };

/**
 * Every route the express app answers, as (METHOD, OpenAPI path), read from its router at runtime: route layers,
 * and the routers mounted at the root, recursively. Whatever this cannot translate exactly — a path that is not a
 * string, express 5 wildcard/optional syntax, `.all()`, a router mounted under a path prefix — is reported as
 * unreadable, so the test fails rather than silently skipping a route.
 */
function servedRoutes(app: express.Express): { routes: Registration[]; unreadable: string[] } {
  const routes: Registration[] = [];
  const unreadable: string[] = [];
  const visit = (stack: Layer[], where: string): void => {
    for (const layer of stack) {
      if (layer.route) {
        const { path: route, methods } = layer.route;
        if (typeof route !== "string" || /[*?+(){}]/.test(route)) {
          unreadable.push(`${where}: ${String(route)} (not a plain path)`);
          continue;
        }
        for (const [method, on] of Object.entries(methods)) {
          if (!on) continue;
          if (!HTTP_METHODS.includes(method)) unreadable.push(`${where}: ${method} ${route} (.all() or an unknown method)`);
          else routes.push({ method: method.toUpperCase(), path: route.replace(/:(\w+)/g, "{$1}") });
        }
      } else if (layer.handle?.stack) {
        if (layer.rawPath !== "/") unreadable.push(`${where}: a router mounted under ${String(layer.rawPath)}`);
        else visit(layer.handle.stack, `${where} > ${layer.name ?? "router"}`);
      }
    }
  };
  visit((app as unknown as { router: { stack: Layer[] } }).router.stack, "app");
  return { routes, unreadable };
}

/** What answers an admin-guarded route sends without a token: requireAdminToken's 401, before anything is read. */
async function isAdminGuarded(url: string, route: Registration): Promise<boolean> {
  const concrete = route.path.replace(/\{address\}/g, `0x${"0".repeat(40)}`).replace(/\{(\w+)\}/g, "x");
  const body = route.method === "GET" || route.method === "HEAD" ? undefined : "{}";
  const res = await fetch(`${url}${concrete}`, { method: route.method, headers: body ? { "content-type": "application/json" } : {}, body });
  const text = await res.text();
  return res.status === 401 && /admin token/.test(text);
}

function documentedOperations(): Map<string, Operation> {
  const ops = new Map<string, Operation>();
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) if (item[method]) ops.set(`${method.toUpperCase()} ${p}`, item[method]);
  }
  return ops;
}

function resolvePointer(ref: string): unknown {
  assert.ok(ref.startsWith("#/"), `${ref} is not a reference within the document`);
  let node: unknown = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (typeof node !== "object" || node === null || !(key in node)) return undefined;
    node = (node as Json)[key];
  }
  return node;
}

/** Visits every object in `root` (depth first), with its JSON pointer-ish location. */
function walk(root: unknown, visit: (node: Json, at: string) => void, at = "#"): void {
  if (Array.isArray(root)) root.forEach((item, i) => walk(item, visit, `${at}/${i}`));
  else if (typeof root === "object" && root !== null) {
    visit(root as Json, at);
    for (const [key, value] of Object.entries(root)) walk(value, visit, `${at}/${key}`);
  }
}

/** Follows `$ref`s until a schema without one. */
function deref(node: Json): Json {
  let current = node;
  for (let i = 0; typeof current.$ref === "string"; i++) {
    assert.ok(i < 20, "a $ref cycle");
    current = resolvePointer(current.$ref as string) as Json;
  }
  return current;
}

/** The problem `type`s a response documents (its application/problem+json schema's type enum). */
function problemTypes(response: Json): string[] {
  const content = (response.content ?? {}) as Record<string, { schema: { allOf?: Json[] } }>;
  const problem = content["application/problem+json"]?.schema;
  if (!problem) return [];
  const narrowed = problem.allOf?.[1] as { properties?: { type?: { enum?: string[] } } } | undefined;
  return narrowed?.properties?.type?.enum ?? [];
}

describe("the OpenAPI document (GET /openapi.json)", () => {
  describe("is a structurally valid OpenAPI 3.1 document", () => {
    it("declares OpenAPI 3.1.x, the package's name and version, and the public URL as its server", () => {
      const pkg = JSON.parse(readFileSync(path.join(SERVER_DIR, "..", "package.json"), "utf8")) as { name: string; version: string };
      assert.match(doc.openapi, /^3\.1\.\d+$/);
      assert.equal(doc.info.title, pkg.name);
      assert.equal(doc.info.version, pkg.version);
      assert.deepEqual(doc.servers, [{ url: PUBLIC_URL }]);
      assert.deepEqual((openApiDocument("http://127.0.0.1:8080") as Doc).servers, [{ url: "http://127.0.0.1:8080" }]);
    });

    it("is plain JSON: it survives JSON.stringify unchanged (no bigint, undefined or functions)", () => {
      assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
    });

    it("is a fresh object on every call, so a caller that mutates one cannot change the next", () => {
      const first = openApiDocument(PUBLIC_URL) as Doc;
      first.paths["/healthz"]!.get!.summary = "changed";
      assert.notEqual((openApiDocument(PUBLIC_URL) as Doc).paths["/healthz"]!.get!.summary, "changed");
    });

    it("gives every path at least one operation, and every operation responses with a status code and a description", () => {
      const pathItemKeys = new Set([...HTTP_METHODS, "summary", "description", "servers", "parameters", "$ref"]);
      for (const [p, item] of Object.entries(doc.paths)) {
        assert.match(p, /^\//, `${p} starts with /`);
        for (const key of Object.keys(item)) assert.ok(pathItemKeys.has(key), `${p} has an unknown field ${key}`);
        const methods = HTTP_METHODS.filter((m) => item[m]);
        assert.ok(methods.length > 0, `${p} has no operation`);
        for (const m of methods) {
          const responses = Object.entries(item[m]!.responses ?? {});
          assert.ok(responses.length > 0, `${m} ${p} has no responses`);
          for (const [status, response] of responses) {
            assert.match(status, /^([1-5]\d\d|[1-5]XX|default)$/, `${m} ${p}: ${status} is not a status code`);
            assert.equal(typeof deref(response).description, "string", `${m} ${p} ${status} has no description`);
          }
        }
      }
    });

    it("gives every operation a unique operationId and only declared tags", () => {
      const declared = new Set(doc.tags.map((t) => t.name));
      const ids = [...documentedOperations().values()].map((op) => op.operationId);
      assert.equal(new Set(ids).size, ids.length, `duplicate operationIds: ${ids.join(", ")}`);
      for (const [key, op] of documentedOperations()) {
        assert.equal(typeof op.operationId, "string", `${key} has no operationId`);
        for (const tag of op.tags ?? []) assert.ok(declared.has(tag), `${key}: tag ${tag} is not declared`);
      }
    });

    it("declares each {param} of a path template as a required path parameter, and no other", () => {
      for (const [key, op] of documentedOperations()) {
        const template = [...key.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        const declared = (op.parameters ?? []).map(deref).filter((p) => p.in === "path");
        assert.deepEqual(declared.map((p) => p.name).sort(), template, key);
        for (const p of declared) assert.equal(p.required, true, `${key}: path parameter ${String(p.name)} must be required`);
      }
    });

    it("resolves every $ref within the document", () => {
      const refs: { ref: string; at: string }[] = [];
      walk(doc, (node, at) => {
        if (typeof node.$ref === "string") refs.push({ ref: node.$ref, at });
      });
      assert.ok(refs.length > 50, "the document uses references");
      for (const { ref, at } of refs) assert.notEqual(resolvePointer(ref), undefined, `${ref} (at ${at}) does not resolve`);
    });

    it("uses only declared security schemes: apiKey (x-api-key header; apikey query as apiKeyQuery) and adminToken (HTTP bearer)", () => {
      const schemes = doc.components.securitySchemes;
      assert.deepEqual(schemes.apiKey, { ...schemes.apiKey, type: "apiKey", in: "header", name: "x-api-key" });
      assert.deepEqual(schemes.apiKeyQuery, { ...schemes.apiKeyQuery, type: "apiKey", in: "query", name: "apikey" });
      assert.deepEqual(schemes.adminToken, { ...schemes.adminToken, type: "http", scheme: "bearer" });
      for (const [key, op] of documentedOperations()) {
        for (const requirement of op.security ?? []) {
          for (const [name, scopes] of Object.entries(requirement)) {
            assert.ok(name in schemes, `${key}: security scheme ${name} is not declared`);
            assert.deepEqual(scopes, [], `${key}: ${name} takes no scopes`);
          }
        }
      }
    });
  });

  describe("lists exactly the routes the app serves", () => {
    let served: { routes: Registration[]; unreadable: string[] };
    let guarded: Map<string, boolean>;
    let stop: () => Promise<void>;
    let drop: () => Promise<void>;
    before(async () => {
      const database = await createTestDatabase("pglite");
      drop = database.drop;
      const started: { app: App; client: { url: string }; stop: () => Promise<void> } = await startAdminApp(database.db);
      stop = started.stop;
      served = servedRoutes(started.app.app);
      guarded = new Map();
      for (const route of served.routes) guarded.set(`${route.method} ${route.path}`, await isAdminGuarded(started.client.url, route));
    });
    after(async () => {
      await stop?.();
      await drop?.();
    });

    it("can read every route the app serves", () => {
      assert.deepEqual(served.unreadable, []);
      // the walk works: routes of each router the app mounts are found
      const keys = new Set(served.routes.map((r) => `${r.method} ${r.path}`));
      for (const key of ["GET /healthz", "POST /v1/orders", "GET /v1/accounts/{address}", "GET /v1/config", "POST /v1/sponsorships", "POST /rpc", "GET /admin/orders", "GET /admin/api-keys", "GET /checkout"]) {
        assert.ok(keys.has(key), `${key} is not found in the app's router`);
      }
    });

    it("does not mount the routers of the directories it skips (the simulator is a separate app)", () => {
      const app = readFileSync(path.join(SERVER_DIR, "app.ts"), "utf8");
      for (const dir of Object.keys(NOT_SERVED)) assert.doesNotMatch(app, new RegExp(`from "\\./${dir}/`), `app.ts imports ${dir}/: ${NOT_SERVED[dir]}`);
    });

    it("documents every served (method, path), :param written {param}", () => {
      const documented = documentedOperations();
      const missing = [...new Set(served.routes.map((r) => `${r.method} ${r.path}`))].filter((key) => !documented.has(key));
      assert.deepEqual(missing, [], "routes the app serves but missing from the OpenAPI document");
    });

    it("documents no route the app does not serve", () => {
      const registered = new Set(served.routes.map((r) => `${r.method} ${r.path}`));
      const stale = [...documentedOperations().keys()].filter((key) => !registered.has(key));
      assert.deepEqual(stale, [], "operations in the OpenAPI document that the app does not serve");
    });

    it("documents a callback route for each payment provider", () => {
      for (const provider of PROVIDERS) assert.ok(doc.paths[`/v1/payments/${provider}/notify`]?.post, provider);
    });

    it("requires the admin token exactly on the routes that answer 401 without it", () => {
      for (const route of served.routes) {
        const op = doc.paths[route.path]?.[route.method.toLowerCase()];
        if (!op) continue; // reported by "documents every served (method, path)"
        const admin = (op.security ?? []).some((r) => "adminToken" in r);
        assert.equal(admin, guarded.get(`${route.method} ${route.path}`), `${route.method} ${route.path}`);
        if (admin) {
          const statuses = Object.keys(op.responses);
          assert.ok(statuses.includes("401") && statuses.includes("403"), `${route.method} ${route.path} documents 401 unauthorized and 403 admin_disabled`);
        }
      }
      for (const p of Object.keys(doc.paths).filter((p) => p.startsWith("/admin/"))) {
        for (const [method, op] of Object.entries(doc.paths[p]!)) assert.deepEqual(op.security, [{ adminToken: [] }], `${method} ${p}`);
      }
    });
  });

  describe("documents authentication as the routes enforce it", () => {
    it("requires an API key (header or query) on sponsorship, and on nothing else", () => {
      const withKey = [...documentedOperations()].filter(([, op]) => (op.security ?? []).some((r) => "apiKey" in r)).map(([key]) => key);
      assert.deepEqual(withKey.sort(), ["POST /rpc", "POST /v1/sponsorships"]);
      for (const key of withKey) assert.deepEqual(documentedOperations().get(key)!.security, [{ apiKey: [] }, { apiKeyQuery: [] }]);
    });
  });

  describe("documents errors as the code answers them", () => {
    const problemSchema = doc.components.schemas.Problem as { required: string[]; properties: { type: { enum: string[] } } };
    const problemTypeEnum = new Set(problemSchema.properties.type.enum);

    it("describes problems as application/problem+json with type, title, status and detail", () => {
      assert.deepEqual([...problemSchema.required].sort(), ["detail", "status", "title", "type"]);
    });

    it("lists every problem type the code sends (sendProblem, new AppError or an AppError subclass, with a literal type) in the Problem type enum", () => {
      const sent = new Set<string>();
      for (const file of sourceFiles(SERVER_DIR)) {
        const source = readFileSync(file, "utf8");
        for (const m of source.matchAll(/(?:sendProblem\(\s*\w+,\s*\d{3}|new AppError\(\s*\d{3}|super\(\s*\d{3}),\s*"(\w+)"/g)) sent.add(m[1]!);
      }
      assert.ok(sent.has("invalid_json") && sent.has("admin_disabled") && sent.has("gateway_unavailable") && sent.has("insufficient_balance"), "the scan finds problem types");
      for (const type of sent) assert.ok(problemTypeEnum.has(type), `problem type ${type} is not documented`);
    });

    it("lists every SponsorError reason as a problem type and in the description, with its HTTP status and JSON-RPC code", () => {
      for (const reason of SPONSOR_REASONS) {
        assert.ok(problemTypeEnum.has(reason), reason);
        const status = new SponsorError(reason, "").httpStatus;
        assert.match(doc.info.description, new RegExp(`\\| \`${reason}\` \\| ${status} \\| ${SPONSOR_ERROR_CODES[reason]} \\|`), reason);
      }
    });

    it("documents each SponsorError reason on POST /v1/sponsorships under the reason's HTTP status", () => {
      const responses = doc.paths["/v1/sponsorships"]!.post!.responses;
      for (const reason of SPONSOR_REASONS) {
        const status = String(new SponsorError(reason, "").httpStatus);
        assert.ok(problemTypes(responses[status] ?? {}).includes(reason), `${reason} under ${status}`);
      }
      assert.ok("retry-after" in (responses["429"]!.headers as Json), "a 429 carries Retry-After");
    });

    it("gives each problem response a status const equal to its status code and only documented types", () => {
      for (const [key, op] of documentedOperations()) {
        for (const [status, response] of Object.entries(op.responses)) {
          const types = problemTypes(response);
          if (types.length === 0) continue;
          for (const type of types) assert.ok(problemTypeEnum.has(type), `${key} ${status}: ${type}`);
          const schema = (response.content as Record<string, { schema: { allOf: { properties: { status: { const: number } } }[] } }>)["application/problem+json"]!.schema;
          assert.equal(schema.allOf[1]!.properties.status.const, Number(status), `${key} ${status}`);
        }
      }
    });

    it("documents 500 internal on every operation (problemHandler answers any unexpected error)", () => {
      for (const [key, op] of documentedOperations()) assert.ok(problemTypes(op.responses["500"] ?? {}).includes("internal"), key);
    });
  });

  describe("documents the ERC-7677 JSON-RPC endpoint as one operation", () => {
    const rpc = doc.paths["/rpc"]!.post!;

    it("accepts a request or a batch, and lists exactly the methods rpc.ts serves", () => {
      const source = readFileSync(path.join(SERVER_DIR, "sponsorship", "rpc.ts"), "utf8");
      const served = [...new Set([...source.matchAll(/(?<!typeof )\bmethod (?:!==|===) "(\w+)"/g)].map((m) => m[1]!))].sort();
      assert.deepEqual(served, ["pm_getPaymasterData", "pm_getPaymasterStubData"]);
      const request = doc.components.schemas.PaymasterRpcRequest as { properties: { method: { enum: string[] } } };
      assert.deepEqual([...request.properties.method.enum].sort(), served);
      assert.deepEqual((rpc["x-json-rpc-methods"] as { name: string }[]).map((m) => m.name).sort(), served);
      for (const method of served) assert.match(String(rpc.description), new RegExp(method));
      const body = (rpc.requestBody as { content: { "application/json": { schema: { oneOf: Json[] } } } }).content["application/json"].schema;
      assert.equal(body.oneOf.length, 2, "one request, or a batch of them");
    });

    it("answers JSON-RPC responses, with every JSON-RPC code rpc.ts and SponsorError use in the error code enum", () => {
      const error = doc.components.schemas.JsonRpcError as { properties: { error: { properties: { code: { enum: number[] } } } } };
      const codes = new Set(error.properties.error.properties.code.enum);
      for (const code of [...Object.values(RPC_ERRORS), ...Object.values(SPONSOR_ERROR_CODES)]) assert.ok(codes.has(code), String(code));
      assert.ok(rpc.responses["200"], "errors are answered with HTTP 200");
      for (const status of ["400", "413", "503"]) assert.ok(rpc.responses[status], `the HTTP ${status} JSON-RPC error is documented`);
    });
  });

  describe("documents inputs and money as the code reads and writes them", () => {
    it("documents exactly the policy fields policySchema accepts", () => {
      const input = doc.components.schemas.PolicyInput as { properties: Json; additionalProperties: boolean };
      assert.deepEqual(Object.keys(input.properties).sort(), Object.keys(policySchema.shape).sort());
      assert.equal(input.additionalProperties, false, "an unknown policy field is refused");
    });

    it("writes every fen and wei amount in an answer as a decimal string", () => {
      const checked: string[] = [];
      const seen = new Set<unknown>();
      const visit = (node: unknown, at: string): void => {
        if (typeof node !== "object" || node === null || seen.has(node)) return;
        seen.add(node);
        if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${at}/${i}`));
        const schema = node as Json;
        if (typeof schema.$ref === "string") return visit(resolvePointer(schema.$ref), schema.$ref);
        for (const [name, property] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
          if (!/(Fen|Wei|gasPrice)$/.test(name)) continue;
          checked.push(`${at}.${name}`);
          const resolved = deref(property);
          // null is allowed where an amount can be unknown (a deposit the RPC did not answer, a hold not yet charged)
          const nullable = Array.isArray(resolved.type) && resolved.type.length === 2 && resolved.type.includes("string") && resolved.type.includes("null");
          assert.ok(resolved.type === "string" || nullable, `${at}.${name} is a string (or null when unknown)`);
          assert.ok(resolved.pattern === "^\\d+$" || resolved.pattern === "^-?\\d+$", `${at}.${name} is decimal digits (signed, for a change)`);
        }
        for (const [key, value] of Object.entries(schema)) visit(value, `${at}/${key}`);
      };
      for (const [key, op] of documentedOperations()) visit(op.responses, key);
      assert.ok(checked.length >= 15, `fen/wei members found in answers: ${checked.length}`);
      assert.ok(checked.some((c) => c.includes("availableFen")) && checked.some((c) => c.includes("costWei")));
    });

    it("says in the description that fen and wei are decimal strings and userOp quantities are hex", () => {
      assert.match(doc.info.description, /fen/);
      assert.match(doc.info.description, /decimal\s+string/);
      assert.match(doc.info.description, /wei/);
      assert.match(doc.info.description, /hex quantities/);
    });

    it("describes the v0.7 userOp with hex quantities, and requires every gas field for a final sponsorship", () => {
      const userOp = doc.components.schemas.UserOperation as { required: string[]; properties: Record<string, Json> };
      assert.deepEqual(userOp.required, ["sender", "nonce", "callData"]);
      for (const field of ["nonce", "callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"]) {
        assert.equal(deref(userOp.properties[field]!).pattern, "^0x[0-9a-fA-F]{1,64}$", field);
      }
      const final = doc.components.schemas.UserOperationFinal as { allOf: Json[] };
      assert.deepEqual((final.allOf[1] as { required: string[] }).required, ["callGasLimit", "verificationGasLimit", "preVerificationGas", "maxFeePerGas", "maxPriorityFeePerGas"]);
    });
  });
});
