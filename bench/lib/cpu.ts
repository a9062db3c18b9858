/**
 * CPU time read from /proc: a process (with its descendants: a cluster's primary and its server processes), the
 * PostgreSQL backends serving one database, every process of a name, the whole machine.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import type { Database } from "../../server/platform/db/database";

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** The fields of /proc/<pid>/stat after the command name: index 1 is the parent's pid, 11 and 12 utime and stime. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** utime + stime of a process (all its threads), in ms; 0 once it has ended. */
export function processCpuMs(pid: number): number {
  try {
    const fields = statFields(pid);
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU time (ms) all cores spent busy since boot. */
export function machineBusyMs(): number {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number) as number[];
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / CLOCK_TICKS;
}

const pids = (): number[] =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);

/** The pids of `root` and its descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of pids()) {
    try {
      const ppid = Number(statFields(pid)[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // gone meanwhile
    }
  }
  const tree: number[] = [];
  const walk = (pid: number) => {
    tree.push(pid);
    for (const child of children.get(pid) ?? []) walk(child);
  };
  walk(root);
  return tree;
}

/** CPU ms of `root` and its descendants. */
export const treeCpuMs = (root: number): number => processTree(root).reduce((sum, pid) => sum + processCpuMs(pid), 0);

/** CPU ms of every process whose command name is `comm` (e.g. anvil). */
export function commandCpuMs(comm: string): number {
  let total = 0;
  for (const pid of pids()) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === comm) total += processCpuMs(pid);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** The CPU ms of each PostgreSQL backend serving `databaseName` (their pids from pg_stat_activity). */
export async function backendsCpuMs(db: Database, databaseName: string): Promise<Map<number, number>> {
  const { rows } = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [databaseName]);
  return new Map(rows.map(({ pid }) => [pid, processCpuMs(pid)]));
}

/** CPU ms the backends used from `before` to `after` (a backend that started in between counts from 0). */
export function backendsCpuUsed(before: Map<number, number>, after: Map<number, number>): number {
  let used = 0;
  for (const [pid, ms] of after) used += ms - (before.get(pid) ?? 0);
  return used;
}
