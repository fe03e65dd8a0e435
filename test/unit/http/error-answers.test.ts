import { describe, expect, it } from "vitest";
import { FacilitatorError } from "../../../src/errors.js";
import { errorAnswer } from "../../../src/http/error-answers.js";
import { ReasonCode } from "../../../src/protocol/reason-codes.js";

/** errorAnswer: every thrown error becomes an answer in the route's shape, with the route's fault code. */
const payment = { payer: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", network: "eip155:84532" };

describe("errorAnswer", () => {
  it("answers a bug on /verify with 500 unexpected_verify_error in the verify shape", () => {
    const answer = errorAnswer(new TypeError("cannot read properties of undefined"), "verify", payment);
    expect(answer).toEqual({
      statusCode: 500,
      isFault: true,
      body: {
        isValid: false,
        invalidReason: ReasonCode.unexpectedVerifyError,
        invalidMessage: "internal error; see the facilitator logs",
        payer: payment.payer,
        error: "unexpected_verify_error",
        message: "internal error; see the facilitator logs",
      },
    });
  });

  it("answers a bug on /settle with 500 unexpected_settle_error, transaction and network included", () => {
    const answer = errorAnswer(new Error("boom"), "settle", payment);
    expect(answer.statusCode).toBe(500);
    expect(answer.body).toMatchObject({ success: false, errorReason: "unexpected_settle_error", transaction: "", network: "eip155:84532", payer: payment.payer });
  });

  it("answers a bug on any other route with 500 internal_error: it is neither a verify nor a settle", () => {
    const answer = errorAnswer(new Error("boom"), "other");
    expect(answer).toMatchObject({ statusCode: 500, isFault: true, body: { error: "internal_error" } });
  });

  it("keeps a FacilitatorError's own code and status on every route", () => {
    const refused = new FacilitatorError(ReasonCode.networkNotAllowed, "not this network");
    expect(errorAnswer(refused, "verify", payment)).toMatchObject({ statusCode: 403, isFault: false, body: { invalidReason: "network_not_allowed" } });
    expect(errorAnswer(refused, "settle", payment)).toMatchObject({ statusCode: 403, isFault: false, body: { errorReason: "network_not_allowed" } });
  });
});
