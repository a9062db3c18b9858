/** Latency statistics the benchmarks print. */

/** Nearest-rank percentile of ascending `sorted` (`fraction` 0.5 for p50); NaN when there is nothing. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]!;
}
