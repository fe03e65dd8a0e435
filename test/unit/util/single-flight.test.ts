import { describe, expect, it } from "vitest";
import { SingleFlight } from "../../../src/util/single-flight.js";

describe("SingleFlight", () => {
  it("shares one call among concurrent callers of a key, and starts a fresh one after it settled", async () => {
    const flights = new SingleFlight();
    let calls = 0;
    let release!: (value: number) => void;
    const call = () => {
      calls += 1;
      return new Promise<number>((resolve) => (release = resolve));
    };
    const sharers = [flights.run("fees", call), flights.run("fees", call), flights.run("fees", call)];
    expect(calls).toBe(1);
    expect(flights.size).toBe(1);
    release(7);
    expect(await Promise.all(sharers)).toEqual([7, 7, 7]);
    expect(flights.size).toBe(0);
    const next = flights.run("fees", call);
    expect(calls).toBe(2); // never a cached answer
    release(8);
    expect(await next).toBe(8);
  });

  it("keeps keys apart, and hands a failure to every sharer without keeping it", async () => {
    const flights = new SingleFlight();
    const failing = Promise.reject(new Error("rpc down"));
    failing.catch(() => undefined);
    const [a, b] = [flights.run("nonce:a", () => failing), flights.run("nonce:a", () => Promise.resolve(1))];
    const other = flights.run("nonce:b", () => Promise.resolve(2));
    await expect(a).rejects.toThrow("rpc down");
    await expect(b).rejects.toThrow("rpc down");
    expect(await other).toBe(2);
    expect(await flights.run("nonce:a", () => Promise.resolve(3))).toBe(3);
  });
});
