/**
 * The benchmarks' load generator, in a process of its own so that it never shares an event loop with the service
 * it measures: autocannon sends a file of pre-built requests (each exactly once, spread over the connections) and
 * checks every answer against the one expected.
 *
 * The parent forks this file (`child_process.fork` with `--import tsx`) and sends it `LoadRequest`s over IPC; each is
 * answered with a `LoadResult`. Files are read once and kept, so a second pass over the same requests costs no I/O.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";

/** One request as the file holds it: header names as sent, the body exactly as signed. */
export type PreparedRequest = { headers: Record<string, string>; body: string };

export type LoadRequest = {
  id: number;
  url: string;
  path: string;
  /** A JSON array of PreparedRequest; every one is sent once. */
  file: string;
  connections: number;
  /** What every answer must be; anything else is a failure (the body is compared only when `body` is set). */
  expected: { status: number; body?: string };
};

export type LoadResult = {
  id: number;
  sent: number;
  ok: number;
  failures: number;
  failureExamples: string[];
  /** Connection errors and timeouts (autocannon's count): requests that got no answer at all. */
  errors: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** This process's own CPU during the run, per request: the generator's cost, for comparison with the server's. */
  generatorCpuMsPerRequest: number;
};

const FAILURE_EXAMPLES = 5;
const cache = new Map<string, PreparedRequest[]>();

function load(file: string): PreparedRequest[] {
  let requests = cache.get(file);
  if (!requests) cache.set(file, (requests = JSON.parse(readFileSync(file, "utf8")) as PreparedRequest[]));
  return requests;
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: Float64Array, fraction: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]!;
}

type Context = { startedAt?: number };

async function run(request: LoadRequest): Promise<LoadResult> {
  const requests = load(request.file);
  if (requests.length < request.connections) throw new Error(`${requests.length} requests cannot keep ${request.connections} connections busy`);
  const latencies = new Float64Array(requests.length);
  let next = 0;
  let answered = 0;
  let firstSentAt = 0;
  let lastAnsweredAt = 0;
  let ok = 0;
  const failureExamples: string[] = [];
  const cpuBefore = process.cpuUsage();
  const result = await autocannon({
    url: request.url,
    connections: request.connections,
    pipelining: 1,
    // every prepared request exactly once: autocannon builds each connection's next request just before sending it
    amount: requests.length,
    timeout: 30,
    // autocannon notices the end on its sampling tick: a short one keeps the tail after the last answer short
    sampleInt: 50,
    requests: [
      {
        method: "POST",
        path: request.path,
        setupRequest: (req, context: Context) => {
          const prepared = requests[next++]!;
          context.startedAt = performance.now();
          if (next === 1) firstSentAt = context.startedAt;
          return { ...req, headers: prepared.headers, body: prepared.body };
        },
        // one request in flight per connection (pipelining 1): the connection's context is this request's
        onResponse: (status, body, context: Context) => {
          lastAnsweredAt = performance.now();
          latencies[answered++] = lastAnsweredAt - context.startedAt!;
          if (status === request.expected.status && (request.expected.body === undefined || body === request.expected.body)) ok++;
          else if (failureExamples.length < FAILURE_EXAMPLES) failureExamples.push(`HTTP ${status} ${body.slice(0, 160)}`);
        },
      },
    ],
  });
  // from the first request sent to the last answer: autocannon's own start-up and wind-down are not the server's
  const seconds = (lastAnsweredAt - firstSentAt) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const sorted = latencies.subarray(0, answered).sort();
  return {
    id: request.id,
    sent: next,
    ok,
    failures: next - ok,
    failureExamples,
    errors: result.errors,
    seconds,
    perSecond: ok / seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    generatorCpuMsPerRequest: (cpu.user + cpu.system) / 1000 / Math.max(1, next),
  };
}

process.on("message", (message: LoadRequest) => {
  run(message).then(
    (result) => process.send!(result),
    (error: unknown) => process.send!({ id: message.id, error: (error as Error).message }),
  );
});
process.on("disconnect", () => process.exit(0));
