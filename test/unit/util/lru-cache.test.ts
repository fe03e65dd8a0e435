import { describe, expect, it } from "vitest";
import { LruCache } from "../../../src/util/lru-cache.js";

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
});
