/**
 * The benchmarks' side of the load generator (bench/load/loadGenerator.ts): forks it as a process of its own and
 * sends it jobs over IPC. One generator process runs one load at a time as a rule; a benchmark that needs two loads
 * at once (sponsorship beside a burst of callbacks) starts two generators, so that neither shares an event loop.
 */
import { fork } from "node:child_process";
import path from "node:path";
import { exited } from "../lib/exited";
import type { GeneratorMessage, GeneratorReply, LoadJob, LoadResult } from "./loadGenerator";

export type { LoadJob, LoadResult, PreparedRequest, SecondFigures } from "./loadGenerator";

/** A job under way: its result once it ends, and a way to end it early (a job that runs until stopped). */
export type RunningLoad = { result: Promise<LoadResult>; stop: () => void };

export type LoadGenerator = {
  pid: number;
  /** Runs `job` to its end. */
  run: (job: LoadJob) => Promise<LoadResult>;
  /** Starts `job` and returns at once. */
  start: (job: LoadJob) => RunningLoad;
  close: () => Promise<void>;
};

export function startLoadGenerator(): LoadGenerator {
  const child = fork(path.join(__dirname, "loadGenerator.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting = new Map<number, { resolve: (result: LoadResult) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  child.on("message", (reply: GeneratorReply) => {
    const pending = waiting.get(reply.id);
    waiting.delete(reply.id);
    if ("error" in reply) pending?.reject(new Error(`load generator: ${reply.error}`));
    else pending?.resolve(reply.result);
  });
  child.on("exit", (code) => {
    for (const pending of waiting.values()) pending.reject(new Error(`the load generator exited (${code})`));
    waiting.clear();
  });
  const send = (message: GeneratorMessage) => {
    if (child.connected) child.send(message);
  };
  const start = (job: LoadJob): RunningLoad => {
    const id = nextId++;
    if (!child.connected) return { result: Promise.reject(new Error("the load generator has exited")), stop: () => {} };
    const result = new Promise<LoadResult>((resolve, reject) => waiting.set(id, { resolve, reject }));
    send({ type: "run", id, job });
    return { result, stop: () => send({ type: "stop", id }) };
  };
  return {
    pid: child.pid!,
    run: (job) => start(job).result,
    start,
    close: async () => {
      if (child.connected) child.disconnect();
      await exited(child);
    },
  };
}
