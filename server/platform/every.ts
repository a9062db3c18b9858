/** A periodic background task: one tick at a time, stoppable, and driveable by hand in tests. */
export type Worker = { stop: () => Promise<void>; tick: () => Promise<void> };

/** Runs `tick` every `intervalMs` (or as long as `intervalMs()` says after each tick; never two at once); `stop` waits for the running tick. */
export function every(intervalMs: number | (() => number), tick: () => Promise<void>): Worker {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const run = () => {
    running = tick().finally(() => {
      if (!stopped) timer = setTimeout(run, typeof intervalMs === "number" ? intervalMs : intervalMs());
    });
  };
  timer = setTimeout(run, 0);
  return {
    tick: async () => {
      await running;
      await tick();
    },
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
