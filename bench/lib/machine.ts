/** What the benchmarks print about the machine they ran on. */
import os from "node:os";

export type MachineInfo = { cores: number; cpuModel: string; memoryGiB: number; node: string; platform: string };

export function machineInfo(): MachineInfo {
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

export type LoadAverage = [number, number, number];

/** Anything else busy on the machine skews every figure: the load average at start and end says whether it was quiet. */
export const loadAverage = (): LoadAverage => os.loadavg() as LoadAverage;

export const formatLoadAverage = (load: readonly number[]) => load.map((l) => l.toFixed(2)).join(" ");
