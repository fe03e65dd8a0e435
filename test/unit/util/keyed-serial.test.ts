import { describe, expect, it } from "vitest";
import { KeyedSerial } from "../../../src/util/keyed-serial.js";

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
};

describe("KeyedSerial", () => {
  it("runs one key's tasks one at a time in order, other keys alongside, and forgets idle keys", async () => {
    const serial = new KeyedSerial();
    const events: string[] = [];
    const gate = deferred();
    const first = serial.run("a", async () => {
      events.push("a1 start");
      await gate.promise;
      events.push("a1 end");
      return 1;
    });
    const second = serial.run("a", async () => {
      events.push("a2");
      return 2;
    });
    const other = serial.run("b", async () => {
      events.push("b1");
      return 3;
    });
    expect(await other).toBe(3);
    expect(events).toEqual(["a1 start", "b1"]);
    gate.resolve();
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(events).toEqual(["a1 start", "b1", "a1 end", "a2"]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(serial.size()).toBe(0);
  });

  it("a task that throws rejects its own caller only; the next one still runs", async () => {
    const serial = new KeyedSerial();
    const failed = serial.run("a", async () => {
      throw new Error("boom");
    });
    const next = serial.run("a", async () => "ran");
    await expect(failed).rejects.toThrow("boom");
    expect(await next).toBe("ran");
  });
});
