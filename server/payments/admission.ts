/**
 * Admission control for bursts (a gateway replaying a backlog of notifications, a flash sale's payments): at most
 * `limit` requests are processed at once, the rest wait in FIFO order, and one that has waited `maxWaitMs` is
 * refused then (the gateway's failure reply: it retries later). Without it every request of a burst is slowed alike
 * until all of them outlast the gateway's timeout, the gateway retries them all, and the work done is wasted
 * (congestion collapse).
 *
 * The limit moves: `YieldToSponsorship` lowers it while sponsorship requests are being served and this process's
 * event loop runs late, so a burst of callbacks (which may take seconds: WeChat Pay waits 5) cannot starve
 * sponsorship (a wallet waits on it for every operation).
 */
import { type IntervalHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";

type Waiter = { admit: (admitted: boolean) => void; timer: NodeJS.Timeout };

export class AdmissionQueue {
  private active = 0;
  private current: number;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly options: { concurrency: number; maxWaitMs: number }) {
    this.current = options.concurrency;
  }

  /**
   * Runs `fn` when admitted; returns `{ admitted: false }` without running it if no slot was free by `maxWaitMs`
   * after `arrivedAt` (Date.now() ms; default now): a request that spent its time reaching the queue (its body read
   * on a busy loop) waits that much less in it.
   */
  async run<T>(fn: () => Promise<T>, arrivedAt = Date.now()): Promise<{ admitted: true; result: T } | { admitted: false }> {
    if (this.active >= this.current) {
      const waitMs = arrivedAt + this.options.maxWaitMs - Date.now();
      if (waitMs <= 0) return { admitted: false };
      const admitted = await new Promise<boolean>((admit) => {
        const waiter: Waiter = {
          admit,
          // refused at its deadline, not when a slot frees: a slot may stay busy long past it
          timer: setTimeout(() => {
            const at = this.waiting.indexOf(waiter);
            if (at >= 0) this.waiting.splice(at, 1);
            admit(false);
          }, waitMs),
        };
        this.waiting.push(waiter);
      });
      if (!admitted) return { admitted: false };
    } else {
      this.active++;
    }
    try {
      return { admitted: true, result: await fn() };
    } finally {
      this.release();
    }
  }

  /** How many may run at once from now on (at least 1, at most the configured concurrency). */
  setLimit(limit: number): void {
    this.current = Math.max(1, Math.min(this.options.concurrency, Math.floor(limit)));
    while (this.active < this.current && this.admitNext()) this.active++;
  }

  get limit(): number {
    return this.current;
  }

  get queued(): number {
    return this.waiting.length;
  }

  private admitNext(): boolean {
    const next = this.waiting.shift();
    if (!next) return false;
    clearTimeout(next.timer);
    next.admit(true);
    return true;
  }

  private release(): void {
    // the slot passes to the next in line (`active` stays the same), unless the limit was lowered meanwhile
    if (this.active > this.current || !this.admitNext()) this.active--;
  }
}

export type YieldOptions = {
  /** The event loop's p99 delay (ms) over one interval above which callbacks give way. */
  lagMs: number;
  /** The fewest callbacks processed at once while giving way (they still progress). */
  minConcurrency: number;
  /** How often the delay is read and the limit moved. */
  intervalMs?: number;
};

/**
 * Gives sponsorship the event loop first: every `intervalMs`, if sponsorship requests were served in the interval
 * and the loop's p99 delay was above `lagMs`, the callback limit is halved (down to `minConcurrency`); otherwise it
 * grows back by an eighth of the configured concurrency (additive increase, multiplicative decrease: it settles at
 * what the machine has to spare). With no sponsorship traffic callbacks run at full concurrency however busy the
 * loop is. Callbacks that wait out `maxWaitMs` are answered the failure reply and redelivered by the gateway.
 */
export class YieldToSponsorship {
  private readonly delay: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;
  private sponsorships = 0;
  private lastLagMs = 0;
  private lastTick = performance.now();

  constructor(
    private readonly queue: AdmissionQueue,
    private readonly max: number,
    private readonly options: YieldOptions,
    /** Told the limit and the loop's delay after every interval (the metrics). */
    private readonly report?: (limit: number, lagMs: number) => void,
  ) {
    this.delay = monitorEventLoopDelay({ resolution: 5 });
    this.delay.enable();
    this.timer = setInterval(() => this.tick(), options.intervalMs ?? 200);
    this.timer.unref();
  }

  /** A sponsorship request arrived (counted; what the limit reacts to). */
  sponsorshipSeen(): void {
    this.sponsorships++;
  }

  /** The p99 event-loop delay of the last interval, in ms. */
  get lagMs(): number {
    return this.lastLagMs;
  }

  stop(): void {
    clearInterval(this.timer);
    this.delay.disable();
  }

  private tick(): void {
    // the tick's own lateness counts too: a loop blocked for a whole interval leaves the histogram no sample
    const now = performance.now();
    const late = now - this.lastTick - (this.options.intervalMs ?? 200);
    this.lastTick = now;
    const lagMs = Math.max(this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0, late);
    this.delay.reset();
    this.lastLagMs = lagMs;
    const busy = this.sponsorships > 0;
    this.sponsorships = 0;
    const before = this.queue.limit;
    const next = busy && lagMs > this.options.lagMs ? Math.max(this.options.minConcurrency, Math.floor(before / 2)) : Math.min(this.max, before + Math.ceil(this.max / 8));
    if (next !== before) this.queue.setLimit(next);
    this.report?.(this.queue.limit, lagMs);
  }
}
