/** What goes on the wire as invalidMessage / errorMessage is bounded and carries no URL secret. */
import { describe, expect, it } from "vitest";
import { renderSettle, renderVerify } from "../../../src/protocol/render.js";

const secret = "SECRETKEY123";
const message = `simulation failed: HTTP request failed.\n\nURL: https://x.quiknode.pro/${secret}/\nVersion: viem`;

describe("render", () => {
  it("redacts URLs in a verify answer's invalidMessage", () => {
    const answer = renderVerify(false, "0x1", "invalid_exact_evm_transaction_simulation_failed", message);
    expect(answer.invalidMessage).toContain("URL: https://x.quiknode.pro/…");
    expect(JSON.stringify(answer)).not.toContain(secret);
  });

  it("redacts URLs in a settle answer's errorMessage", () => {
    const answer = renderSettle({ success: false, reason: "unexpected_settle_error", message, transaction: "" }, "eip155:8453", "0x1");
    expect(answer.errorMessage).toContain("URL: https://x.quiknode.pro/…");
    expect(JSON.stringify(answer)).not.toContain(secret);
  });

  it("bounds the message to 500 characters, redacted", () => {
    const long = `${"x".repeat(460)} https://x.quiknode.pro/${secret}/ ${"y".repeat(100)}`;
    const answer = renderVerify(false, "0x1", "invalid_payload", long);
    expect(answer.invalidMessage!.length).toBeLessThanOrEqual(500);
    expect(answer.invalidMessage).not.toContain("SECRET");
  });
});
