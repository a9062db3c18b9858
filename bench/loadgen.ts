/**
 * The benchmarks' load generator, run as its own process (never in the service's): autocannon with a fixed
 * number of connections, one request in flight on each, a new request body for every request.
 *
 * Reads one JSON job from argv[2] and prints one JSON result line to stdout. Bodies:
 *   - "sponsorship": a pm_getPaymasterData call for the next sender (round-robin over `sendersFile`, one address a
 *     line), each on a nonce key of its own (`nonceKeyBase` + a counter) at sequence 0 — a new operation every time;
 *   - "file": the next line of `bodiesFile` (JSON lines of {headers, body}), each sent once; the run ends when they
 *     are all answered (or at `seconds`).
 * An answer counts as `ok` when its status is 2xx and its body holds `okText` (e.g. `"result"`); latencies are
 * timed here per request (autocannon's own histogram has whole milliseconds). `rate` caps requests per second.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";

export type LoadJob = {
  url: string;
  path: string;
  connections: number;
  seconds: number;
  /** Requests per second over all connections (autocannon's overallRate); unset: as fast as answers come. */
  rate?: number;
  headers: Record<string, string>;
  okText: string;
  /** Where to write, one a line, the tag of each request answered ok (sponsorship: its nonce; file: its line's tag). */
  okFile?: string;
  body:
    | { kind: "sponsorship"; sendersFile: string; nonceKeyBase: string; entryPoint: string; chainId: number; maxFeePerGas: string; maxPriorityFeePerGas: string }
    | { kind: "file"; bodiesFile: string };
};

export type LoadResult = {
  sent: number;
  ok: number;
  failed: number;
  /** The first few failed answers, to say why. */
  failures: string[];
  errors: number;
  timeouts: number;
  seconds: number;
  perSecond: number;
  okPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** ok answers per second in each second of the run. */
  okBySecond: number[];
  cpuMs: number;
};

type Item = { body: string; headers?: Record<string, string>; tag?: string };

function bodySource(job: LoadJob): { next: () => Item | undefined; total?: number } {
  const b = job.body;
  if (b.kind === "file") {
    const lines = readFileSync(b.bodiesFile, "utf8").split("\n").filter(Boolean);
    let i = 0;
    return {
      total: lines.length,
      next: () => {
        if (i >= lines.length) return undefined;
        return JSON.parse(lines[i++]!) as Item;
      },
    };
  }
  const senders = readFileSync(b.sendersFile, "utf8").split("\n").filter(Boolean);
  let n = 0;
  const base = BigInt(b.nonceKeyBase);
  return {
    next: () => {
      const sender = senders[n % senders.length]!;
      const key = base + BigInt(n++);
      const nonce = key << 64n;
      const body = JSON.stringify({
        jsonrpc: "2.0",
        id: n,
        method: "pm_getPaymasterData",
        params: [
          {
            sender,
            nonce: `0x${nonce.toString(16)}`,
            callData: "0xb61d27f6" + "00".repeat(128),
            callGasLimit: "0x186a0",
            verificationGasLimit: "0x7a120",
            preVerificationGas: "0xc350",
            maxFeePerGas: b.maxFeePerGas,
            maxPriorityFeePerGas: b.maxPriorityFeePerGas,
            paymasterVerificationGasLimit: "0xea60",
            signature: "0x",
          },
          b.entryPoint,
          `0x${b.chainId.toString(16)}`,
          null,
        ],
      });
      return { body, tag: nonce.toString() };
    },
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(job: LoadJob): Promise<LoadResult> {
  const source = bodySource(job);
  const latencies: number[] = [];
  const okBySecond: number[] = [];
  const failures: string[] = [];
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let last: Item = { body: "" };
  const okTags: string[] = [];
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const result = await autocannon({
    url: job.url,
    connections: job.connections,
    pipelining: 1,
    duration: job.seconds,
    ...(job.rate ? { overallRate: job.rate } : {}),
    ...(source.total !== undefined ? { amount: source.total } : {}),
    timeout: 30,
    requests: [
      {
        method: "POST",
        path: job.path,
        headers: job.headers,
        setupRequest: (request, context) => {
          // past the last body (a file job stops at `amount`): the last one again, never reached in practice
          const item = source.next() ?? last;
          last = item;
          sent++;
          Object.assign(context, { t0: performance.now(), tag: item.tag });
          return { ...request, body: item.body, headers: { ...request.headers, ...item.headers } };
        },
        onResponse: (status, body, context) => {
          const now = performance.now();
          const sent = context as { t0?: number; tag?: string };
          latencies.push(now - (sent.t0 ?? now));
          if (status >= 200 && status < 300 && body.includes(job.okText)) {
            ok++;
            if (sent.tag !== undefined) okTags.push(sent.tag);
            const second = Math.floor((now - started) / 1000);
            okBySecond[second] = (okBySecond[second] ?? 0) + 1;
          } else {
            failed++;
            if (failures.length < 5) failures.push(`${status} ${body.slice(0, 300)}`);
          }
        },
      },
    ],
  });
  const seconds = (performance.now() - started) / 1000;
  if (job.okFile) writeFileSync(job.okFile, okTags.join("\n"));
  const sorted = Float64Array.from(latencies).sort();
  const cpu = process.cpuUsage(cpu0);
  return {
    sent,
    ok,
    failed,
    failures,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds,
    perSecond: latencies.length / seconds,
    okPerSecond: ok / seconds,
    latencyMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : NaN },
    okBySecond: Array.from(okBySecond, (v) => v ?? 0),
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

if (require.main === module) {
  const job = JSON.parse(process.argv[2] ?? "") as LoadJob;
  run(job).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      process.stderr.write(`load generator failed: ${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}
