import { describe, expect, it } from "vitest";
import { GroupCommit } from "../../../src/util/group-commit.js";

/** A flush that stays open until the test releases it, recording the groups it was given. */
function gatedFlush() {
  const groups: Array<{ key: string; items: number[] }> = [];
  const gates: Array<() => void> = [];
  const flush = async (key: string, items: readonly number[]) => {
    groups.push({ key, items: [...items] });
    await new Promise<void>((resolve) => gates.push(resolve));
    return items.map((item) => item * 10);
  };
  const openNext = async () => {
    while (gates.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    gates.shift()!();
  };
  return { groups, flush, openNext };
}

describe("GroupCommit", () => {
  it("flushes a lone item at once, and hands the items that queued meanwhile to the next flush together", async () => {
    const gate = gatedFlush();
    const commit = new GroupCommit(16, gate.flush);
    const first = commit.submit("signer", 1);
    const queued = [2, 3, 4].map((item) => commit.submit("signer", item));
    await gate.openNext();
    await gate.openNext();
    expect(await first).toBe(10);
    expect(await Promise.all(queued)).toEqual([20, 30, 40]);
    expect(gate.groups).toEqual([
      { key: "signer", items: [1] },
      { key: "signer", items: [2, 3, 4] },
    ]);
  });

  it("never puts more than itemsPerFlushMax items in one flush", async () => {
    const gate = gatedFlush();
    const commit = new GroupCommit(2, gate.flush);
    const all = [1, 2, 3, 4, 5].map((item) => commit.submit("signer", item));
    for (let i = 0; i < 3; i++) await gate.openNext();
    expect(await Promise.all(all)).toEqual([10, 20, 30, 40, 50]);
    expect(gate.groups.map((group) => group.items)).toEqual([[1], [2, 3], [4, 5]]);
  });

  it("runs different keys independently", async () => {
    const gate = gatedFlush();
    const commit = new GroupCommit(16, gate.flush);
    const a = commit.submit("a", 1);
    const b = commit.submit("b", 2);
    await gate.openNext();
    await gate.openNext();
    expect(await Promise.all([a, b])).toEqual([10, 20]);
    expect(gate.groups.map((group) => group.key).sort()).toEqual(["a", "b"]);
  });

  it("rejects only the items of a flush that threw, and keeps serving the key", async () => {
    let calls = 0;
    const commit = new GroupCommit(16, async (_key, items: readonly number[]) => {
      calls += 1;
      if (calls === 1) throw new Error("postgres is down");
      return items.map((item) => item + 1);
    });
    await expect(commit.submit("signer", 1)).rejects.toThrow("postgres is down");
    expect(await commit.submit("signer", 2)).toBe(3);
  });

  it("rejects a flush that answers the wrong number of items", async () => {
    const commit = new GroupCommit(16, async () => [] as number[]);
    await expect(commit.submit("signer", 1)).rejects.toThrow("answered 0 of 1");
  });
});
