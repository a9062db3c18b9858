/**
 * Several server processes behind one port (SERVER_PROCESSES > 1), with node:cluster: a single Node process runs
 * JavaScript on one core, and a sponsorship spends most of its time there (parsing, hashing, signing, the
 * database protocol), so on a machine of n cores n processes answer up to n times as many.
 *
 * The primary runs no service: it forks the processes (the first alone, so migrations and the bootstrap key run
 * once, then the rest), hands them connections round-robin, replaces one that dies, and on SIGTERM/SIGINT passes
 * the signal on and exits once every process has shut down gracefully (server/shutdown.ts).
 *
 * What is shared stays correct, because all of it is in PostgreSQL: holds and credits are decided under row locks,
 * and background work (settlement, reconciliation, the callback purge) under advisory locks. Only process 0 runs
 * the background work; every process watches the deposit, which its sponsorships check. Rate limits are per
 * process unless REDIS_URL is set. `/metrics` answers for all processes: the process a scrape reaches asks the
 * primary, which sums the processes' counters (prom-client's AggregatorRegistry) — gauges of shared state are
 * taken from one process, not summed (metrics.ts).
 */
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";
import type { Logger } from "./platform/logger";

/** The environment variable that tells a process its index: 0 runs the background work. */
export const PROCESS_INDEX_VARIABLE = "FIAT_PAYMASTER_PROCESS_INDEX";
const METRICS_REQUEST = "fiat-paymaster:metrics-request";
const METRICS_REPLY = "fiat-paymaster:metrics-reply";
/** A process that dies is started again after this long (a crash loop costs a fork a second, not a busy loop). */
const RESTART_DELAY_MS = 1_000;
/** How long a scrape waits for the processes' figures. */
const METRICS_TIMEOUT_MS = 5_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** This process's index among the server processes (0 when it is the only one). */
export function processIndex(): number {
  return Number(process.env[PROCESS_INDEX_VARIABLE] ?? 0);
}

type MetricsReply = { type: typeof METRICS_REPLY; id: number; text?: string; error?: string };

/**
 * The primary: forks `count` server processes and keeps them running until a signal stops them all. Resolves
 * once every process listens ("every server process listens" is logged then).
 */
export async function runPrimary(count: number, log: Logger): Promise<void> {
  cluster.setupPrimary({ serialization: "json" });
  const aggregator = new AggregatorRegistry();
  const indexOf = new Map<Worker, number>();
  let stopping = false;

  const fork = (index: number): Worker => {
    const worker = cluster.fork({ [PROCESS_INDEX_VARIABLE]: String(index) });
    indexOf.set(worker, index);
    worker.on("message", (message: { type?: string; id: number }) => {
      if (message?.type !== METRICS_REQUEST) return;
      aggregator.clusterMetrics().then(
        (text) => worker.isConnected() && worker.send({ type: METRICS_REPLY, id: message.id, text } satisfies MetricsReply),
        (error: Error) => worker.isConnected() && worker.send({ type: METRICS_REPLY, id: message.id, error: error.message } satisfies MetricsReply),
      );
    });
    return worker;
  };

  cluster.on("exit", (worker, code, signal) => {
    const index = indexOf.get(worker) ?? 0;
    indexOf.delete(worker);
    if (stopping) {
      if (indexOf.size === 0) {
        log.info("every server process has stopped");
        process.exit(0);
      }
      return;
    }
    log.error({ process: index, pid: worker.process.pid, code, signal }, "a server process died; starting another");
    setTimeout(() => fork(index), RESTART_DELAY_MS).unref();
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, processes: indexOf.size }, "shutting down every server process");
    for (const worker of indexOf.keys()) worker.process.kill(signal);
    if (indexOf.size === 0) process.exit(0);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  const listening = (worker: Worker, index: number) =>
    new Promise<void>((resolve, reject) => {
      worker.once("listening", () => resolve());
      worker.once("exit", (code) => reject(new Error(`server process ${index} exited (code ${code}) before it listened`)));
    });
  // the first alone: it migrates the database and installs the bootstrap key before the others open their pools
  await listening(fork(0), 0);
  const rest = Array.from({ length: count - 1 }, (_, i) => listening(fork(i + 1), i + 1));
  await Promise.all(rest);
  log.info({ processes: count, pids: [...indexOf.keys()].map((w) => w.process.pid) }, "every server process listens");
}

/**
 * In a server process: `registry` is what this process reports to the primary, and the returned function is what
 * its `/metrics` answers — every process's figures together.
 */
export function clusterMetrics(registry: Registry): () => Promise<string> {
  // prom-client answers the primary's requests from a process that has made an AggregatorRegistry
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  process.on("message", (message: MetricsReply) => {
    if (message?.type !== METRICS_REPLY) return;
    const pending = waiting.get(message.id);
    if (!pending) return;
    waiting.delete(message.id);
    if (message.text !== undefined) pending.resolve(message.text);
    else pending.reject(new Error(message.error ?? "no figures"));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the primary did not answer with every process's metrics within ${METRICS_TIMEOUT_MS} ms`));
      }, METRICS_TIMEOUT_MS);
      waiting.set(id, {
        resolve: (text) => (clearTimeout(timer), resolve(text)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      process.send?.({ type: METRICS_REQUEST, id });
    });
}
