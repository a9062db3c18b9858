/**
 * The simulator's notification sender: delivers each gateway notification until the merchant acknowledges it,
 * on the gateway's real retry schedule (optionally time-compressed), with injectable faults for tests.
 */

/** Alipay retries unacknowledged notifications 8 times over 25 hours: 4m, 10m, 10m, 1h, 2h, 6h, 15h. */
export const ALIPAY_RETRY_SCHEDULE_MS = [0, 4, 10, 10, 60, 120, 360, 900].map((m) => m * 60_000);

/** WeChat Pay v3 retries at 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (about 24h 4m). */
export const WECHAT_RETRY_SCHEDULE_MS = [0, 15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600].map(
  (s) => s * 1000,
);

export type NotificationFaults = {
  /** Send the first attempt this many extra times, concurrently (a gateway delivering one message twice). */
  duplicate?: number;
  /** Hold each notification this many (real) milliseconds before its first attempt. */
  delayMs?: number;
  /** Drop this many attempts of each notification before delivering (the retries then deliver). */
  dropAttempts?: number;
  /** Never deliver: only the merchant's query (reconciliation) can learn of the payment. */
  dropAll?: boolean;
  /** Collect notifications for this many milliseconds, then send them in shuffled order. */
  reorderWindowMs?: number;
  /** Send a tampered copy (a signed field changed after signing) before each real attempt. */
  tamper?: boolean;
};

/** One notification: `send` posts it (tampered or not) and says whether the merchant acknowledged it. */
export type Notification = { key: string; send: (options: { tampered: boolean }) => Promise<boolean> };

export type DeliveryRecord = { key: string; attempts: number; acknowledged: boolean; lastError?: string };

export type NotifierOptions = {
  scheduleMs: number[];
  /** Multiplies every retry delay: 1 = real time, 0.001 = a thousand times faster. */
  timeScale?: number;
  faults?: NotificationFaults;
  /** At most this many notifications in flight at once, like a gateway's sender pool (default 256). */
  maxInFlight?: number;
  onError?: (key: string, error: unknown) => void;
};

export class NotificationDispatcher {
  private faults: NotificationFaults;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly records = new Map<string, DeliveryRecord>();
  private reorderBuffer: Notification[] = [];
  /** Attempts waiting for a free sender. */
  private backlog: (() => void)[] = [];
  private reorderTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: NotifierOptions) {
    this.faults = { ...options.faults };
  }

  setFaults(faults: NotificationFaults): void {
    this.faults = { ...faults };
  }

  getFaults(): NotificationFaults {
    return { ...this.faults };
  }

  /** What happened to each notification so far. */
  deliveries(): DeliveryRecord[] {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  dispatch(notification: Notification): void {
    if (this.closed) return;
    const record = this.recordFor(notification.key);
    const faults = this.faults;
    if (faults.dropAll) return;
    if (faults.reorderWindowMs) {
      this.reorderBuffer.push(notification);
      this.reorderTimer ??= this.schedule(() => this.releaseShuffled(faults), faults.reorderWindowMs);
      return;
    }
    if (faults.delayMs) this.schedule(() => this.attempt(notification, record, 0, faults), faults.delayMs);
    else this.attempt(notification, record, 0, faults);
  }

  private recordFor(key: string): DeliveryRecord {
    let record = this.records.get(key);
    if (!record) {
      record = { key, attempts: 0, acknowledged: false };
      this.records.set(key, record);
    }
    return record;
  }

  private releaseShuffled(faults: NotificationFaults): void {
    const batch = this.reorderBuffer;
    this.reorderBuffer = [];
    this.reorderTimer = undefined;
    for (let i = batch.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [batch[i], batch[j]] = [batch[j]!, batch[i]!];
    }
    for (const notification of batch) this.attempt(notification, this.recordFor(notification.key), 0, faults);
  }

  private attempt(notification: Notification, record: DeliveryRecord, index: number, faults: NotificationFaults): void {
    if (this.closed || record.acknowledged) return;
    if (this.inFlight.size >= (this.options.maxInFlight ?? 256)) {
      this.backlog.push(() => this.attempt(notification, record, index, faults));
      return;
    }
    const run = (async () => {
      record.attempts++;
      if (index < (faults.dropAttempts ?? 0)) return false;
      const sends: Promise<boolean>[] = [];
      if (faults.tamper) sends.push(notification.send({ tampered: true }).then(() => false));
      const copies = index === 0 ? 1 + (faults.duplicate ?? 0) : 1;
      for (let copy = 0; copy < copies; copy++) sends.push(notification.send({ tampered: false }));
      const results = await Promise.allSettled(sends);
      for (const r of results) {
        if (r.status === "rejected") {
          record.lastError = String(r.reason);
          this.options.onError?.(notification.key, r.reason);
        }
      }
      return results.some((r) => r.status === "fulfilled" && r.value);
    })().then((acknowledged) => {
      if (acknowledged) {
        record.acknowledged = true;
        return;
      }
      const next = index + 1;
      if (next < this.options.scheduleMs.length) {
        this.schedule(() => this.attempt(notification, record, next, faults), this.options.scheduleMs[next]! * (this.options.timeScale ?? 1));
      }
    });
    const tracked = run.finally(() => {
      this.inFlight.delete(tracked);
      this.backlog.shift()?.();
    });
    this.inFlight.add(tracked);
  }

  private schedule(fn: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
    return timer;
  }

  /** Resolves once no attempt is in flight and none is scheduled (after acknowledgements or exhausted retries). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0 || this.timers.size > 0 || this.backlog.length > 0) {
      await Promise.race([...this.inFlight, new Promise((r) => setTimeout(r, 10))]);
    }
  }

  close(): void {
    this.closed = true;
    this.backlog = [];
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
