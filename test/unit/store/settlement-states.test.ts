import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { allowedPredecessors, settlementStatuses, type SettlementStatus } from "../../../src/store/settlement-states.js";

/** The module's comment lists every transition for a reader; it must be the machine the code enforces. */
const source = readFileSync(path.resolve(import.meta.dirname, "../../../src/store/settlement-states.ts"), "utf8");

describe("settlement-states.ts", () => {
  it("lists in its comment exactly the transitions allowedPredecessors allows", () => {
    const listed = [...source.matchAll(/^ \*\s+(\w+)\s+→ (\w+)\s{2,}\S/gm)].map(([, from, to]) => `${from} → ${to}`).sort();
    const allowed = settlementStatuses.flatMap((to) => allowedPredecessors[to].map((from: SettlementStatus) => `${from} → ${to}`)).sort();
    expect(listed).toEqual(allowed);
    expect(listed.length).toBeGreaterThan(5);
  });

  it("never moves a confirmed row", () => {
    for (const to of settlementStatuses) expect(allowedPredecessors[to]).not.toContain("confirmed");
  });
});
