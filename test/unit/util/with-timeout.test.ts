import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { withTimeout } from "../../../src/util/with-timeout.js";

/** A promise settled by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Follows a promise from the start (so its rejection is handled): state() is "pending", "resolved: x" or "rejected: message". */
function track(promise: Promise<unknown>) {
  let state = "pending";
  promise.then(
    (value) => (state = `resolved: ${String(value)}`),
    (error: Error) => (state = `rejected: ${error.message}`),
  );
  return {
    state: async () => {
      await vi.advanceTimersByTimeAsync(0);
      return state;
    },
  };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("withTimeout", () => {
  it("answers the promise's value when it comes first, and clears its timer", async () => {
    const work = deferred<string>();
    const raced = track(withTimeout(work.promise, 1_000, () => "timeout"));
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(await raced.state()).toBe("pending");
    work.resolve("done");
    expect(await raced.state()).toBe("resolved: done");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("passes the promise's rejection on when it comes first, and clears its timer", async () => {
    const work = deferred<string>();
    const raced = track(withTimeout(work.promise, 1_000, () => "timeout"));
    work.reject(new Error("refused"));
    expect(await raced.state()).toBe("rejected: refused");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("answers onTimeout's value after timeoutMs; a later outcome of the promise changes nothing", async () => {
    const work = deferred<string>();
    const onTimeout = vi.fn(() => "timeout");
    const raced = track(withTimeout(work.promise, 1_000, onTimeout));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await raced.state()).toBe("resolved: timeout");
    work.resolve("late");
    expect(await raced.state()).toBe("resolved: timeout");
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });

  it("rejects with what onTimeout throws (or its rejected promise); the promise's late rejection is handled", async () => {
    const unhandled = vi.fn();
    process.on("unhandledRejection", unhandled);
    try {
      const work = deferred<string>();
      const thrown = track(
        withTimeout(work.promise, 10, () => {
          throw new Error("no answer within 10 ms");
        }),
      );
      const asyncRejected = track(withTimeout(new Promise<never>(() => {}), 10, () => Promise.reject(new Error("async timeout"))));
      await vi.advanceTimersByTimeAsync(10);
      expect(await thrown.state()).toBe("rejected: no answer within 10 ms");
      expect(await asyncRejected.state()).toBe("rejected: async timeout");
      work.reject(new Error("late failure"));
      await vi.advanceTimersByTimeAsync(0);
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off("unhandledRejection", unhandled);
    }
  });

  it("keeps its timer referenced unless asked to unref it", () => {
    const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout");
    void withTimeout(new Promise(() => {}), 1_000, () => undefined);
    void withTimeout(new Promise(() => {}), 1_000, () => undefined, { unref: true });
    const [kept, unrefd] = setTimeoutSpy.mock.results.map((result) => result.value as NodeJS.Timeout);
    expect(kept!.hasRef()).toBe(true);
    expect(unrefd!.hasRef()).toBe(false);
  });
});
