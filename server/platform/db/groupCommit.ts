/**
 * Group commit: requests that arrive while a transaction is running wait for the next one and commit together.
 * A durable commit costs a WAL flush whatever it holds, so one transaction for 50 requests costs about what one
 * costs for 1 — that is what lets the sponsorship hot path go past the commits-per-second of the disk. At low
 * load a request runs at once in a batch of its own: there is no timer and no added latency.
 */
import { isDatabaseUnavailable } from "./database";

export type BatchRunner<I, R> = (items: readonly I[]) => Promise<ReadonlyArray<R | Error>>;

export type GroupCommitterOptions = {
  /** Most items in one transaction. */
  maxBatch: number;
  /** Transactions running at once (1 for PGlite, a few for a PostgreSQL pool). */
  maxConcurrent: number;
};

type Pending<I, R> = { item: I; resolve: (r: R) => void; reject: (e: Error) => void };

export class GroupCommitter<I, R> {
  private readonly queue: Pending<I, R>[] = [];
  private running = 0;
  private idle: Array<() => void> = [];
  private batches = 0;
  private items = 0;

  constructor(
    private readonly run: BatchRunner<I, R>,
    private readonly options: GroupCommitterOptions,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Resolves once nothing is queued or running (shutdown: the last batch commits before the pool closes). */
  drain(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Batches run and items committed so far: items / batches is the mean group size. */
  stats(): { batches: number; items: number; queued: number; running: number } {
    return { batches: this.batches, items: this.items, queued: this.queue.length, running: this.running };
  }

  private pump(): void {
    while (this.running < this.options.maxConcurrent && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.running++;
      void this.execute(batch).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.queue.length === 0) for (const resolve of this.idle.splice(0)) resolve();
      });
    }
  }

  private async execute(batch: Pending<I, R>[]): Promise<void> {
    this.batches++;
    this.items += batch.length;
    let results: ReadonlyArray<R | Error>;
    try {
      results = await this.run(batch.map((p) => p.item));
    } catch (error) {
      // an outage fails them all alike (trying each alone would only wait out the timeouts again)
      if (batch.length === 1 || isDatabaseUnavailable(error)) {
        for (const p of batch) p.reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      // one bad item must not fail the others: run each on its own
      await Promise.all(batch.map((p) => this.execute([p])));
      return;
    }
    batch.forEach((p, i) => {
      const result = results[i];
      if (result instanceof Error) p.reject(result);
      else p.resolve(result as R);
    });
  }
}
