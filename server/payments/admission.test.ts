import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdmissionQueue, YieldToSponsorship } from "./admission";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("callback admission", () => {
  it("runs at most `concurrency` at once and admits the waiting ones in arrival order", async () => {
    const queue = new AdmissionQueue({ concurrency: 2, maxWaitMs: 10_000 });
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        queue.run(async () => {
          started.push(i);
          peak = Math.max(peak, ++running);
          await sleep(10);
          running--;
          return i;
        }),
      ),
    );
    assert.equal(peak, 2);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5].map((i) => ({ admitted: true, result: i })));
  });

  it("refuses, without running it, a request that waited longer than maxWaitMs", async () => {
    const queue = new AdmissionQueue({ concurrency: 1, maxWaitMs: 20 });
    let ran = 0;
    const slow = queue.run(() => sleep(60).then(() => ++ran));
    const late = queue.run(async () => ++ran);
    assert.equal(queue.queued, 1);
    assert.deepEqual(await late, { admitted: false });
    assert.deepEqual(await slow, { admitted: true, result: 1 });
    assert.equal(ran, 1);
    assert.deepEqual(await queue.run(async () => "free again"), { admitted: true, result: "free again" });
  });

  it("a failing request frees its slot", async () => {
    const queue = new AdmissionQueue({ concurrency: 1, maxWaitMs: 1_000 });
    await assert.rejects(queue.run(async () => Promise.reject(new Error("boom"))), /boom/);
    assert.deepEqual(await queue.run(async () => 1), { admitted: true, result: 1 });
  });

  it("refuses a waiting request at its deadline, while the slot is still busy", async () => {
    const queue = new AdmissionQueue({ concurrency: 1, maxWaitMs: 30 });
    const slow = queue.run(() => sleep(300));
    const started = Date.now();
    assert.deepEqual(await queue.run(async () => "ran"), { admitted: false });
    const waited = Date.now() - started;
    assert.ok(waited >= 25 && waited < 250, `refused after ${waited} ms, not when the slow one ended`);
    assert.equal(queue.queued, 0);
    await slow;
  });

  it("counts the wait from the request's arrival: time spent reaching the queue is not waited again", async () => {
    const queue = new AdmissionQueue({ concurrency: 1, maxWaitMs: 200 });
    const slow = queue.run(() => sleep(400));
    let started = Date.now();
    assert.deepEqual(await queue.run(async () => "ran", Date.now() - 250), { admitted: false }, "arrived 250 ms ago: refused at once");
    assert.ok(Date.now() - started < 50);
    started = Date.now();
    assert.deepEqual(await queue.run(async () => "ran", Date.now() - 150), { admitted: false });
    const waited = Date.now() - started;
    assert.ok(waited >= 40 && waited < 150, `arrived 150 ms ago: waited the 50 ms left, not 200 (${waited} ms)`);
    await slow;
    assert.deepEqual(await queue.run(async () => "ran", Date.now() - 10_000), { admitted: true, result: "ran" }, "a free slot admits however long it took to arrive");
  });

  it("a lowered limit lets running requests finish and admits no more until it is raised", async () => {
    const queue = new AdmissionQueue({ concurrency: 4, maxWaitMs: 10_000 });
    let running = 0;
    let peak = 0;
    const gates: Array<() => void> = [];
    const task = () =>
      queue.run(async () => {
        peak = Math.max(peak, ++running);
        await new Promise<void>((open) => gates.push(open));
        running--;
      });
    const first = [task(), task(), task(), task()];
    await sleep(5);
    assert.equal(running, 4);
    queue.setLimit(1);
    const later = [task(), task()];
    for (const open of gates.splice(0)) open();
    await Promise.all(first);
    await sleep(5);
    assert.equal(running, 1, "one admitted under the lowered limit");
    assert.equal(queue.queued, 1);
    queue.setLimit(4);
    await sleep(5);
    assert.equal(running, 2, "raising the limit admits the waiting one at once");
    for (const open of gates.splice(0)) open();
    await Promise.all(later);
    assert.equal(queue.limit, 4);
    queue.setLimit(100);
    assert.equal(queue.limit, 4, "never above the configured concurrency");
    queue.setLimit(0);
    assert.equal(queue.limit, 1, "never below one");
  });
});

describe("callbacks yield to sponsorship", () => {
  /** Blocks this event loop for `blockMs` every `everyMs` (a real late loop, as a saturated process has). */
  function lateLoop(blockMs: number, everyMs: number): () => void {
    const timer = setInterval(() => {
      const until = Date.now() + blockMs;
      while (Date.now() < until) {
        // busy
      }
    }, everyMs);
    return () => clearInterval(timer);
  }

  it("halves the callback limit down to its floor while sponsorship is served on a late loop, and grows it back after", async () => {
    const queue = new AdmissionQueue({ concurrency: 64, maxWaitMs: 1_000 });
    const changes: number[] = [];
    const governor = new YieldToSponsorship(queue, 64, { lagMs: 50, minConcurrency: 4, intervalMs: 100 }, (limit) => changes.at(-1) !== limit && changes.push(limit));
    const sponsorship = setInterval(() => governor.sponsorshipSeen(), 10);
    const stopLag = lateLoop(90, 20);
    try {
      await sleep(1_200);
      assert.equal(queue.limit, 4, `at the floor after a second of lag (limits ${changes.join(", ")})`);
      assert.deepEqual(changes.filter((l) => l < 64).slice(0, 4), [32, 16, 8, 4], "halved each interval");
      assert.ok(governor.lagMs > 50, `the loop's p99 delay was measured late: ${governor.lagMs} ms`);
    } finally {
      stopLag();
    }
    const lowered = changes.length;
    await sleep(1_500);
    clearInterval(sponsorship);
    governor.stop();
    // eight intervals grow it back from the floor (a busy machine may make one interval late meanwhile)
    assert.equal(Math.max(...changes.slice(lowered)), 64, `back to full concurrency once the loop is on time (limits ${changes.join(", ")})`);
  });

  it("keeps full concurrency on a late loop when no sponsorship is being served (a callbacks-only burst)", async () => {
    const queue = new AdmissionQueue({ concurrency: 64, maxWaitMs: 1_000 });
    const changes: number[] = [];
    let worstLagMs = 0;
    const governor = new YieldToSponsorship(queue, 64, { lagMs: 50, minConcurrency: 4, intervalMs: 100 }, (limit, lagMs) => {
      worstLagMs = Math.max(worstLagMs, lagMs);
      if (changes.at(-1) !== limit) changes.push(limit);
    });
    const stopLag = lateLoop(90, 20);
    try {
      await sleep(800);
    } finally {
      stopLag();
      governor.stop();
    }
    assert.ok(worstLagMs > 50, `the loop was late: ${worstLagMs} ms`);
    assert.equal(queue.limit, 64);
    assert.deepEqual(changes, [64], "never lowered");
  });

  it("keeps full concurrency while sponsorship is served on a loop that is on time", async () => {
    const queue = new AdmissionQueue({ concurrency: 64, maxWaitMs: 1_000 });
    const governor = new YieldToSponsorship(queue, 64, { lagMs: 50, minConcurrency: 4, intervalMs: 100 });
    const sponsorship = setInterval(() => governor.sponsorshipSeen(), 10);
    await sleep(800);
    clearInterval(sponsorship);
    governor.stop();
    assert.equal(queue.limit, 64);
  });
});
