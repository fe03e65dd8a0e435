import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChangeWaiters, type ChangeWaitersOptions, type WaitEnd } from "../../../src/store/notifications.js";

/**
 * The in-process half of "duplicates never poll": waiters of one key share every read, take a
 * published write without any, and each wait ends at its deadline. Fake timers: every step is
 * driven by the test, nothing depends on the machine's speed.
 */
interface Value {
  version: number;
  final: boolean;
}

const isFinal = (value: Value | undefined) => value?.final === true;

/** A store whose reads the test answers one by one (each load() waits until the test resolves it). */
function harness(overrides: Partial<ChangeWaitersOptions<Value | undefined>> = {}) {
  const pendingReads: Array<{ key: string; answer(value: Value | undefined): void }> = [];
  const waiters = new ChangeWaiters<Value | undefined>({
    load: (key) => new Promise((resolve) => pendingReads.push({ key, answer: resolve })),
    perKeyMax: 3,
    totalMax: 5,
    recheckMs: 3_000,
    clock: { nowMs: () => Date.now() },
    ...overrides,
  });
  /** Answers the oldest read in flight. */
  const answerRead = async (value: Value | undefined) => {
    const read = pendingReads.shift();
    if (!read) throw new Error("no read in flight");
    read.answer(value);
    await vi.advanceTimersByTimeAsync(0);
    return read.key;
  };
  return { waiters, pendingReads, answerRead };
}

/** Records how each wait ended, as soon as it does. */
function track(promise: Promise<WaitEnd<Value | undefined>>) {
  const tracked: { end?: WaitEnd<Value | undefined> } = {};
  void promise.then((end) => (tracked.end = end));
  return tracked;
}

const open = { version: 1, final: false };
const done = { version: 2, final: true };

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("ChangeWaiters", () => {
  it("reads a key once when it gets its first waiter, and hands a published write to all its waiters without another read", async () => {
    const { waiters, pendingReads, answerRead } = harness();
    const ends = [1, 2, 3].map(() => track(waiters.wait("row", open, isFinal, Date.now() + 10_000)));
    expect(pendingReads.map((read) => read.key)).toEqual(["row"]); // one read for three waiters
    await answerRead(open);
    expect(ends.map((end) => end.end)).toEqual([undefined, undefined, undefined]);

    waiters.publish("row", done);
    await vi.advanceTimersByTimeAsync(0);
    expect(ends.map((end) => end.end)).toEqual([0, 1, 2].map(() => ({ kind: "done", value: done })));
    expect(pendingReads).toHaveLength(0);
    expect(waiters.stats()).toMatchObject({ waiting: 0, published: 1, reads: { first: 1, notified: 0, recheck: 0, reconnect: 0 } });
  });

  it("answers the first waiter at once when its first read finds the value done (a change it would have missed)", async () => {
    const { waiters, answerRead } = harness();
    const end = track(waiters.wait("row", open, isFinal, Date.now() + 10_000));
    await answerRead(done);
    expect(end.end).toEqual({ kind: "done", value: done });
  });

  it("serves a notification with one read for every waiter of the key; notifications during that read cost one more read, not one each", async () => {
    const { waiters, pendingReads, answerRead } = harness();
    const ends = [1, 2, 3].map(() => track(waiters.wait("row", open, isFinal, Date.now() + 10_000)));
    await answerRead(open); // the first read
    waiters.changed("row");
    waiters.changed("row");
    waiters.changed("row");
    expect(pendingReads).toHaveLength(1);
    await answerRead(open); // the read was in flight during the later notifications: read once more
    expect(pendingReads).toHaveLength(1);
    await answerRead(done);
    expect(ends.every((end) => end.end?.kind === "done")).toBe(true);
    expect(waiters.stats().reads).toEqual({ first: 1, notified: 2, recheck: 0, reconnect: 0 });
    waiters.changed("row"); // nobody waits: nothing read
    waiters.changed("other");
    expect(pendingReads).toHaveLength(0);
  });

  it("drops a read that was in flight when a write was published (it may be older than the write)", async () => {
    const { waiters, answerRead } = harness();
    const neverDone = (value: Value | undefined) => value?.version === 9;
    const end = track(waiters.wait("row", open, neverDone, Date.now() + 10_000));
    waiters.publish("row", { version: 3, final: false });
    await answerRead(open); // began before the publish: dropped
    await vi.advanceTimersByTimeAsync(10_000);
    expect(end.end).toEqual({ kind: "deadline", value: { version: 3, final: false } });
  });

  it("lets a later waiter of the key take a value already published as done without waiting", async () => {
    const { waiters, answerRead } = harness();
    const wantsVersion2 = (value: Value | undefined) => value?.version === 2;
    const first = track(waiters.wait("row", open, (value) => value?.version === 5, Date.now() + 10_000));
    await answerRead(open);
    waiters.publish("row", done); // version 2: ends nobody yet
    expect(await waiters.wait("row", open, wantsVersion2, Date.now() + 10_000)).toEqual({ kind: "done", value: done });
    expect(first.end).toBeUndefined();
  });

  it("re-reads a key with waiters every recheckMs (a lost notification), once for all of them, and stops when nobody waits", async () => {
    const { waiters, pendingReads, answerRead } = harness();
    const ends = [1, 2].map(() => track(waiters.wait("row", open, isFinal, Date.now() + 10_000)));
    await answerRead(open);
    await vi.advanceTimersByTimeAsync(2_999);
    expect(pendingReads).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(pendingReads).toHaveLength(1);
    await answerRead(done);
    expect(ends.every((end) => end.end?.kind === "done")).toBe(true);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(pendingReads).toHaveLength(0);
    expect(waiters.stats().reads).toEqual({ first: 1, notified: 0, recheck: 1, reconnect: 0 });
  });

  it("reads every key with waiters once after a reconnect", async () => {
    const { waiters, pendingReads, answerRead } = harness();
    track(waiters.wait("a", open, isFinal, Date.now() + 10_000));
    track(waiters.wait("a", open, isFinal, Date.now() + 10_000));
    track(waiters.wait("b", open, isFinal, Date.now() + 10_000));
    await answerRead(open);
    await answerRead(open);
    waiters.changedAll();
    expect(pendingReads.map((read) => read.key).sort()).toEqual(["a", "b"]);
    expect(waiters.stats().reads.reconnect).toBe(2);
  });

  it("ends each wait at its own deadline with the last value seen, and counts it", async () => {
    const { waiters, answerRead } = harness();
    const early = track(waiters.wait("row", open, isFinal, Date.now() + 1_000));
    const late = track(waiters.wait("row", open, isFinal, Date.now() + 2_000));
    const newer = { version: 3, final: false };
    await answerRead(newer);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(early.end).toEqual({ kind: "deadline", value: newer });
    expect(late.end).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(late.end).toEqual({ kind: "deadline", value: newer });
    expect(waiters.stats()).toMatchObject({ waiting: 0, deadline: 2 });
    // A deadline already past answers at once, with the caller's value, and reads nothing.
    expect(await waiters.wait("row", open, isFinal, Date.now())).toEqual({ kind: "deadline", value: open });
  });

  it("refuses waiters beyond the per-key and the total cap at once", async () => {
    const { waiters } = harness();
    for (let i = 0; i < 3; i += 1) track(waiters.wait("a", open, isFinal, Date.now() + 10_000));
    expect(await waiters.wait("a", open, isFinal, Date.now() + 10_000)).toEqual({ kind: "full" });
    track(waiters.wait("b", open, isFinal, Date.now() + 10_000));
    track(waiters.wait("c", open, isFinal, Date.now() + 10_000));
    expect(await waiters.wait("d", open, isFinal, Date.now() + 10_000)).toEqual({ kind: "full" });
    expect(waiters.stats()).toMatchObject({ waiting: 5, full: 2 });
  });

  it("keeps waiting after a failed read; the next read answers", async () => {
    const reads: Array<() => Promise<Value | undefined>> = [() => Promise.reject(new Error("pool timeout")), () => Promise.resolve(done)];
    const warn = vi.fn();
    const waiters = new ChangeWaiters<Value | undefined>({ load: () => reads.shift()!(), perKeyMax: 3, totalMax: 5, recheckMs: 3_000, clock: { nowMs: () => Date.now() }, log: { info: () => {}, warn } });
    const end = track(waiters.wait("row", open, isFinal, Date.now() + 10_000));
    await vi.advanceTimersByTimeAsync(0);
    expect(end.end).toBeUndefined();
    expect(warn).toHaveBeenCalledOnce();
    waiters.changed("row");
    await vi.advanceTimersByTimeAsync(0);
    expect(end.end).toEqual({ kind: "done", value: done });
  });

  it("ends every wait at close and takes no more", async () => {
    const { waiters } = harness();
    const end = track(waiters.wait("row", open, isFinal, Date.now() + 10_000));
    waiters.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(end.end).toEqual({ kind: "deadline", value: open });
    expect(await waiters.wait("row", open, isFinal, Date.now() + 10_000)).toEqual({ kind: "deadline", value: open });
  });
});
