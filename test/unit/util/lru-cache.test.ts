import { describe, expect, it } from "vitest";
import { approximateStringBytes, LruCache } from "../../../src/util/lru-cache.js";

describe("LruCache", () => {
  it("never holds more than maxEntries, dropping the least recently used first", () => {
    const cache = new LruCache<string, number>(3);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("c", 3);
    expect(cache.get("a")).toBe(1); // a is now the most recent; b the least
    cache.set("d", 4);
    expect(cache.size).toBe(3);
    expect(cache.get("b")).toBeUndefined();
    expect([cache.get("a"), cache.get("c"), cache.get("d")]).toEqual([1, 3, 4]);
    for (let i = 0; i < 1_000; i += 1) cache.set(`k${i}`, i);
    expect(cache.size).toBe(3);
    expect(cache.get("k999")).toBe(999);
  });

  it("overwrites, deletes and clears", () => {
    const cache = new LruCache<string, number>(2);
    cache.set("a", 1);
    cache.set("a", 2);
    expect(cache.size).toBe(1);
    expect(cache.get("a")).toBe(2);
    cache.delete("a");
    expect(cache.get("a")).toBeUndefined();
    cache.set("b", 1);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it("refuses a bound that is not a positive integer", () => {
    expect(() => new LruCache(0)).toThrow(RangeError);
    expect(() => new LruCache(1.5)).toThrow(RangeError);
  });

  it("with a byte bound, never holds more than maxBytes as sizeOf estimates, dropping the least recently used first", () => {
    const cache = new LruCache<string, string>(1_000, { maxBytes: 100, sizeOf: (key, value) => key.length + value.length });
    cache.set("a", "x".repeat(29)); // 30
    cache.set("b", "x".repeat(29)); // 60
    cache.set("c", "x".repeat(29)); // 90
    expect(cache.get("a")).toBeDefined(); // a is now the most recent; b the least
    cache.set("d", "x".repeat(29)); // 120 → b goes
    expect(cache.bytes).toBe(90);
    expect(cache.get("b")).toBeUndefined();
    cache.set("a", "y"); // overwrite: a's bytes are replaced, not added
    expect(cache.bytes).toBe(62);
    cache.set("huge", "x".repeat(200)); // larger than the budget: not kept, nothing evicted for it
    expect(cache.get("huge")).toBeUndefined();
    expect(cache.size).toBe(3);
    cache.delete("c");
    expect(cache.bytes).toBe(32);
    cache.clear();
    expect([cache.size, cache.bytes]).toEqual([0, 0]);
    for (let i = 0; i < 1_000; i += 1) cache.set(`k${i}`, "v");
    expect(cache.bytes).toBeLessThanOrEqual(100);
    expect(cache.get("k999")).toBe("v");
  });

  it("keeps the count bound beside the byte bound", () => {
    const cache = new LruCache<string, string>(2, { maxBytes: 1_000_000, sizeOf: () => 1 });
    for (const key of ["a", "b", "c"]) cache.set(key, key);
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBe(2);
  });

  it("drops the oldest entries while they are stale, up to a number", () => {
    const cache = new LruCache<string, number>(10);
    for (const [key, age] of [["a", 9], ["b", 8], ["c", 1], ["d", 9]] as const) cache.set(key, age);
    cache.dropOldestWhile((_, age) => age > 5, 1);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(3);
    cache.dropOldestWhile((_, age) => age > 5);
    // b went; c is fresh, so d (stale, but behind c) stays until it reaches the old end.
    expect([cache.get("b"), cache.get("c"), cache.get("d")]).toEqual([undefined, 1, 9]);
  });

  it("refuses a byte bound that is not a positive integer", () => {
    expect(() => new LruCache(1, { maxBytes: 0, sizeOf: () => 1 })).toThrow(RangeError);
  });

  it("estimates a string's heap bytes from above", () => {
    expect(approximateStringBytes("")).toBe(16);
    expect(approximateStringBytes("0x12")).toBe(24);
  });
});
