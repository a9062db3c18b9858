/**
 * The benchmarks' load generator, in a process of its own so that it never shares an event loop with the service
 * it measures: autocannon with keep-alive connections, one request in flight on each, a new body for every request,
 * every answer checked against the one expected.
 *
 * Two sources of bodies:
 *   - "sponsorship": a pm_getPaymasterData call for the next sender (round-robin over `sendersFile`, one address a
 *     line), each on a nonce key of its own (`nonceKeyBase` + a counter) at sequence 0 — a new operation every
 *     time; the job runs for `seconds`, or until the parent stops it;
 *   - "prepared": a JSON file of PreparedRequests (headers and body exactly as signed), each sent exactly once; the
 *     job ends when every one is answered. A request may name its own path and expected answer, so one file can
 *     mix gateways.
 * `rate` caps the requests per second over all connections (autocannon's overallRate: each connection sends at
 * most its share in each second, so a slow service makes the generator fall behind the rate; `bySecond` shows by
 * how much). Latency is timed here for every request with performance.now (autocannon's own histogram has whole
 * milliseconds). `okFile` receives the tag of every request answered as expected, one a line (sponsorship: its
 * nonce; prepared: the request's `tag`), so that the parent can check each against the database or send again
 * the ones that were not.
 *
 * The parent (bench/load/client.ts) forks this file with `--import tsx` and talks to it over IPC: a `run` message
 * starts a job, a `stop` message ends it early, and each job is answered with its LoadResult. Prepared files are
 * read once and kept, so a second pass over the same requests costs no I/O.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import { percentile } from "../lib/stats";

/** One request as a prepared file holds it: header names as sent, the body exactly as signed. */
export type PreparedRequest = {
  headers: Record<string, string>;
  body: string;
  /** Written to the job's okFile when this request is answered as expected (e.g. the order it pays). */
  tag?: string;
  /** Instead of the job's `path` and `expected`. */
  path?: string;
  expected?: ExpectedAnswer;
};

/** What an answer must be to count as ok: its status, and its body exactly (`body`) or containing `bodyIncludes`. */
export type ExpectedAnswer = { status: number; body?: string; bodyIncludes?: string };

export type SponsorshipBodies = {
  kind: "sponsorship";
  sendersFile: string;
  nonceKeyBase: string;
  entryPoint: string;
  chainId: number;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
};

export type PreparedBodies = { kind: "prepared"; file: string };

export type LoadJob = {
  url: string;
  /** The path and expected answer of every request that does not name its own. */
  path?: string;
  expected?: ExpectedAnswer;
  connections: number;
  /** How long a sponsorship job runs at most (a prepared job ends once every request is answered). */
  seconds?: number;
  /** Requests per second over all connections; unset: as fast as the answers come. */
  rate?: number;
  headers?: Record<string, string>;
  bodies: SponsorshipBodies | PreparedBodies;
  okFile?: string;
  /** Where `bySecond` counts from (epoch ms), so that two generators' seconds line up; default the first request sent. */
  secondsFrom?: number;
};

/** One second of a run: requests sent in it, and the answers that arrived in it with their latencies. */
export type SecondFigures = { sent: number; answered: number; ok: number; p50Ms: number; p99Ms: number; maxMs: number };

export type LoadResult = {
  sent: number;
  answered: number;
  ok: number;
  /** Answered, but not with the expected answer (requests without any answer are `sent - answered`). */
  failed: number;
  /** The first few failed answers, to say why. */
  failureExamples: string[];
  /** Answers by HTTP status. */
  statusCounts: Record<string, number>;
  /** Connection errors and timeouts (autocannon's counts): requests that got no answer. */
  errors: number;
  timeouts: number;
  /** Epoch ms of the first request sent, the last one sent and the last answer. */
  firstSentAt: number;
  lastSentAt: number;
  lastAnsweredAt: number;
  /** From the first request sent to the last answer: autocannon's own start-up and wind-down are not the server's. */
  seconds: number;
  perSecond: number;
  okPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  bySecond: SecondFigures[];
  /** This process's CPU during the job: the generator's own cost, to compare with the server's. */
  cpuMs: number;
  cpuMsPerRequest: number;
};

export type GeneratorMessage = { type: "run"; id: number; job: LoadJob } | { type: "stop"; id: number };
export type GeneratorReply = { id: number; result: LoadResult } | { id: number; error: string };

const FAILURE_EXAMPLES = 5;
/** Far more than any run: a sponsorship job without `seconds` runs until it is stopped. */
const UNTIL_STOPPED_SECONDS = 24 * 3_600;
const prepared = new Map<string, PreparedRequest[]>();

function preparedRequests(file: string): PreparedRequest[] {
  let requests = prepared.get(file);
  if (!requests) prepared.set(file, (requests = JSON.parse(readFileSync(file, "utf8")) as PreparedRequest[]));
  return requests;
}

type BodySource = { next: () => PreparedRequest; total?: number };

function preparedSource(file: string): BodySource {
  const requests = preparedRequests(file);
  let next = 0;
  return {
    total: requests.length,
    next: () => {
      // autocannon asks for exactly `amount` bodies (the job's connections share them out)
      if (next >= requests.length) throw new Error(`autocannon asked for more than the ${requests.length} prepared requests`);
      return requests[next++]!;
    },
  };
}

function sponsorshipSource(bodies: SponsorshipBodies): BodySource {
  const senders = readFileSync(bodies.sendersFile, "utf8").split("\n").filter(Boolean);
  const base = BigInt(bodies.nonceKeyBase);
  let n = 0;
  return {
    next: () => {
      const sender = senders[n % senders.length]!;
      const nonce = (base + BigInt(n++)) << 64n;
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
            maxFeePerGas: bodies.maxFeePerGas,
            maxPriorityFeePerGas: bodies.maxPriorityFeePerGas,
            paymasterVerificationGasLimit: "0xea60",
            signature: "0x",
          },
          bodies.entryPoint,
          `0x${bodies.chainId.toString(16)}`,
          null,
        ],
      });
      return { headers: {}, body, tag: nonce.toString() };
    },
  };
}

const isExpected = (expected: ExpectedAnswer, status: number, body: string) =>
  status === expected.status && (expected.body === undefined || body === expected.body) && (expected.bodyIncludes === undefined || body.includes(expected.bodyIncludes));

/** Epoch ms, at performance.now's resolution: comparable across the benchmark's processes. */
const epochNow = () => performance.timeOrigin + performance.now();

type Context = { sentAt?: number; tag?: string; expected?: ExpectedAnswer };

const running = new Map<number, { stop: () => void }>();

async function run(id: number, job: LoadJob): Promise<LoadResult> {
  const source = job.bodies.kind === "prepared" ? preparedSource(job.bodies.file) : sponsorshipSource(job.bodies);
  if (source.total !== undefined && source.total < job.connections) throw new Error(`${source.total} requests cannot keep ${job.connections} connections busy`);
  const unchecked = job.bodies.kind === "prepared" ? preparedRequests(job.bodies.file).some((r) => !r.expected) : true;
  if (!job.expected && unchecked) throw new Error("every request needs an expected answer: the job's or its own");
  const sentAt: number[] = [];
  const answeredAt: number[] = [];
  const latencies: number[] = [];
  const okAnswers: boolean[] = [];
  const okTags: string[] = [];
  const failureExamples: string[] = [];
  const statusCounts: Record<string, number> = {};
  let ok = 0;
  const cpuBefore = process.cpuUsage();
  const options: autocannon.Options = {
    url: job.url,
    connections: job.connections,
    pipelining: 1,
    ...(source.total !== undefined ? { amount: source.total } : { duration: job.seconds ?? UNTIL_STOPPED_SECONDS }),
    ...(job.rate ? { overallRate: job.rate } : {}),
    timeout: 30,
    // autocannon notices the end on its sampling tick: a short one keeps the tail after the last answer short
    sampleInt: 50,
    requests: [
      {
        method: "POST",
        path: job.path,
        headers: job.headers,
        // autocannon builds each connection's next request just before sending it
        setupRequest: (request, context: Context) => {
          const next = source.next();
          context.sentAt = epochNow();
          context.tag = next.tag;
          context.expected = next.expected ?? job.expected;
          sentAt.push(context.sentAt);
          return { ...request, path: next.path ?? job.path, headers: { ...request.headers, ...next.headers }, body: next.body };
        },
        // one request in flight per connection (pipelining 1): the connection's context is this request's
        onResponse: (status, body, context: Context) => {
          const now = epochNow();
          answeredAt.push(now);
          latencies.push(now - context.sentAt!);
          statusCounts[status] = (statusCounts[status] ?? 0) + 1;
          const expected = isExpected(context.expected!, status, body);
          okAnswers.push(expected);
          if (expected) {
            ok++;
            if (context.tag !== undefined) okTags.push(context.tag);
          } else if (failureExamples.length < FAILURE_EXAMPLES) {
            failureExamples.push(`HTTP ${status} ${body.slice(0, 160)}`);
          }
        },
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (error: Error | null, done) => (error ? reject(error) : resolve(done)));
    running.set(id, { stop: () => instance.stop() });
  }).finally(() => running.delete(id));
  const cpu = process.cpuUsage(cpuBefore);
  if (job.okFile) writeFileSync(job.okFile, okTags.join("\n"));

  const firstSentAt = sentAt[0] ?? epochNow();
  const lastAnsweredAt = answeredAt.length > 0 ? answeredAt[answeredAt.length - 1]! : firstSentAt;
  const seconds = (lastAnsweredAt - firstSentAt) / 1000;
  const zero = job.secondsFrom ?? firstSentAt;
  const secondOf = (at: number) => Math.max(0, Math.floor((at - zero) / 1000));
  const perSecond: Array<{ sent: number; ok: number; latencies: number[] }> = [];
  const bucket = (second: number) => (perSecond[second] ??= { sent: 0, ok: 0, latencies: [] });
  for (const at of sentAt) bucket(secondOf(at)).sent++;
  answeredAt.forEach((at, i) => {
    const b = bucket(secondOf(at));
    b.latencies.push(latencies[i]!);
    if (okAnswers[i]) b.ok++;
  });
  const bySecond = Array.from(perSecond, (b = { sent: 0, ok: 0, latencies: [] }): SecondFigures => {
    const sorted = Float64Array.from(b.latencies).sort();
    return { sent: b.sent, answered: sorted.length, ok: b.ok, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN };
  });
  const sorted = Float64Array.from(latencies).sort();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    sent: sentAt.length,
    answered: answeredAt.length,
    ok,
    failed: answeredAt.length - ok,
    failureExamples,
    statusCounts,
    errors: result.errors,
    timeouts: result.timeouts,
    firstSentAt,
    lastSentAt: sentAt[sentAt.length - 1] ?? firstSentAt,
    lastAnsweredAt,
    seconds,
    perSecond: answeredAt.length / seconds,
    okPerSecond: ok / seconds,
    latencyMs: { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN },
    bySecond,
    cpuMs,
    cpuMsPerRequest: cpuMs / Math.max(1, sentAt.length),
  };
}

process.on("message", (message: GeneratorMessage) => {
  if (message.type === "stop") return running.get(message.id)?.stop();
  run(message.id, message.job).then(
    (result) => process.send!({ id: message.id, result } satisfies GeneratorReply),
    (error: unknown) => process.send!({ id: message.id, error: (error as Error).message } satisfies GeneratorReply),
  );
});
process.on("disconnect", () => process.exit(0));
