/**
 * Admission control for bursts (a gateway replaying a backlog of notifications): at most `concurrency` requests
 * are processed at once, the rest wait in FIFO order, and one that has waited longer than `maxWaitMs` is
 * refused at once. Without it every request of a burst is slowed alike until all of them outlast the gateway's
 * timeout, the gateway retries them all, and the work done is wasted (congestion collapse). Refused requests are
 * simply retried by the gateway later.
 */
export class AdmissionQueue {
  private active = 0;
  private readonly waiting: { enqueuedAt: number; admit: (admitted: boolean) => void }[] = [];

  constructor(private readonly options: { concurrency: number; maxWaitMs: number }) {}

  /** Runs `fn` when admitted; returns `{ admitted: false }` without running it if it waited too long. */
  async run<T>(fn: () => Promise<T>): Promise<{ admitted: true; result: T } | { admitted: false }> {
    if (this.active >= this.options.concurrency) {
      const admitted = await new Promise<boolean>((admit) => this.waiting.push({ enqueuedAt: Date.now(), admit }));
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

  private release(): void {
    const now = Date.now();
    for (let next = this.waiting.shift(); next; next = this.waiting.shift()) {
      if (now - next.enqueuedAt <= this.options.maxWaitMs) {
        next.admit(true); // the slot passes to it: `active` stays the same
        return;
      }
      next.admit(false);
    }
    this.active--;
  }

  get queued(): number {
    return this.waiting.length;
  }
}
