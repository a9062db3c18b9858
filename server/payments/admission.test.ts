import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdmissionQueue } from "./admission";

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
});
