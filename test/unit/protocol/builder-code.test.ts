import { encodeBuilderCodeSuffix, parseBuilderCodeSuffixFromCalldata } from "@x402/extensions/builder-code";
import { size } from "viem";
import { describe, expect, it } from "vitest";
import { builderCodeSuffix, erc8021Marker, withDataSuffix } from "../../../src/protocol/builder-code.js";

/** ERC-8021 Schema 2 suffixes, checked against the x402 spec's worked example and @x402/extensions 2.27. */
describe("builderCodeSuffix", () => {
  it("encodes { w: code } as the spec's example does: CBOR, its length, 0x02, the marker", () => {
    // specs/extensions/builder_code.md, "App + Facilitator Attribution": the `w` pair of
    // {"a": "bc_myapp", "w": "bc_myfacilitator"} is 61 77 70 62635f6d79666163696c697461746f72.
    const cbor = "a1" + "6177" + "70" + "62635f6d79666163696c697461746f72";
    expect(builderCodeSuffix("bc_myfacilitator")).toBe(`0x${cbor}0014` + "02" + "80218021802180218021802180218021");
  });

  it.each(["a", "bc_myfacilitator", "x".repeat(23), "y".repeat(24), "z_9".repeat(10) + "ab"])("matches @x402/extensions for %s, which parses it back", (code) => {
    const suffix = builderCodeSuffix(code);
    expect(suffix).toBe(encodeBuilderCodeSuffix({ w: code }));
    expect(parseBuilderCodeSuffixFromCalldata(withDataSuffix("0xa9059cbb0000", suffix))).toEqual({ w: code });
    expect(suffix.endsWith(erc8021Marker.slice(2))).toBe(true);
  });

  it("is 56 bytes at most (a 32-character code)", () => {
    expect(size(builderCodeSuffix("q".repeat(32)))).toBe(56);
    expect(size(builderCodeSuffix("bc_myfacilitator"))).toBe(39);
  });

  it.each(["", "Upper", "has-dash", "has space", "é", "x".repeat(33)])("refuses %j", (code) => {
    expect(() => builderCodeSuffix(code)).toThrow(/not a builder code/);
  });
});

describe("withDataSuffix", () => {
  it("appends the suffix, and nothing without one", () => {
    expect(withDataSuffix("0x1234", "0xabcd")).toBe("0x1234abcd");
    expect(withDataSuffix("0x1234", undefined)).toBe("0x1234");
  });
});
