import { describe, expect, it } from "vitest";
import { batchSettlerAddress } from "../../../src/contracts/batch-settler.js";

/**
 * BatchSettler's address is CREATE2(deployment proxy, salt 0, creation code): any change to the
 * contract or the compiler settings moves it, and every chain where operators deployed the old one
 * silently loses batching until they deploy again. Change it on purpose only, and say so in the
 * release notes (`x402-facilitator batch-settler deploy` on each chain).
 */
describe("BatchSettler", () => {
  it("keeps its deterministic address", () => {
    expect(batchSettlerAddress).toBe("0x408fED2efC39552AaA66ed18B26405f915e27027");
  });
});
