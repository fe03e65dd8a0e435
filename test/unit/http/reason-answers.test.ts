/**
 * The reason-code table (src/protocol/reason-codes.ts `reasonAnswers`): every code has a status
 * and a shape, and a FacilitatorError with an error code is answered (http/error-answers.ts) with
 * the table's status, in the table's shape, on every route.
 */
import { describe, expect, it } from "vitest";
import { DependencyUnavailableError, FacilitatorError, IdempotencyKeyBusyError, InvalidRequestError, SignerCannotPayError, SignersBusyError } from "../../../src/errors.js";
import { errorAnswer } from "../../../src/http/error-answers.js";
import { ReasonCode, reasonAnswers, type ErrorReasonCode } from "../../../src/protocol/reason-codes.js";

const payment = { payer: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", network: "eip155:84532" };
const codes = Object.values(ReasonCode);
const errorCodes = codes.filter((code): code is ErrorReasonCode => reasonAnswers[code].shape !== "outcome");

describe("reasonAnswers", () => {
  it("has exactly one entry per reason code, and no code twice", () => {
    expect(new Set(codes).size).toBe(codes.length);
    expect(Object.keys(reasonAnswers).sort()).toEqual([...codes].sort());
  });

  it.each(codes)("maps %s to a status and a shape: outcomes are 200, errors 4xx or 5xx", (code) => {
    const { status, shape } = reasonAnswers[code];
    expect(["outcome", "error", "request-error"]).toContain(shape);
    if (shape === "outcome") expect(status).toBe(200);
    else expect(status === 503 || status === 500 || (status >= 400 && status < 500)).toBe(true);
  });

  it("keeps the statuses the README documents", () => {
    const documented: Partial<Record<ReasonCode, number>> = {
      invalid_payload: 400,
      invalid_payment_requirements: 400,
      unauthorized: 401,
      forbidden: 403,
      pay_to_not_allowed: 403,
      network_not_allowed: 403,
      asset_not_allowed: 403,
      amount_above_limit: 403,
      not_found: 404,
      idempotency_key_reused: 422,
      payment_identifier_conflict: 409,
      idempotency_keys_differ: 400,
      rate_limited: 429,
      gas_budget_exhausted: 429,
      payer_busy: 429,
      unexpected_verify_error: 500,
      unexpected_settle_error: 500,
      internal_error: 500,
      service_unavailable: 503,
    };
    for (const [code, status] of Object.entries(documented)) expect([code, reasonAnswers[code as ReasonCode].status]).toEqual([code, status]);
    // Everything else is a business outcome.
    for (const code of codes.filter((code) => documented[code] === undefined)) expect([code, reasonAnswers[code].shape]).toEqual([code, "outcome"]);
  });
});

describe("a FacilitatorError is answered as the table says", () => {
  it.each(errorCodes)("%s: the table's status, the route's shape on /verify, /settle and other routes", (code) => {
    const error = new FacilitatorError(code, `refused: ${code}`);
    const { status, shape } = reasonAnswers[code];
    expect(error.httpStatus).toBe(status);
    const named = shape === "error";
    const message = `refused: ${code}`;
    const isFault = status >= 500;
    expect(errorAnswer(error, "verify", payment)).toEqual({
      statusCode: status,
      isFault,
      body: { isValid: false, invalidReason: code, invalidMessage: message, ...(named ? { payer: payment.payer } : {}), error: code, message },
    });
    expect(errorAnswer(error, "settle", payment)).toEqual({
      statusCode: status,
      isFault,
      body: {
        success: false,
        errorReason: code,
        errorMessage: message,
        transaction: "",
        network: named ? payment.network : "",
        ...(named ? { payer: payment.payer } : {}),
        error: code,
        message,
      },
    });
    expect(errorAnswer(error, "other", payment)).toEqual({ statusCode: status, isFault, body: { error: code, message } });
  });

  it("answers before the body parsed (no payment known) with transaction and network empty, no payer", () => {
    const answer = errorAnswer(new FacilitatorError(ReasonCode.serviceUnavailable, "down"), "settle");
    expect(answer.body).toEqual({ success: false, errorReason: "service_unavailable", errorMessage: "down", transaction: "", network: "", error: "service_unavailable", message: "down" });
  });

  it.each([
    ["DependencyUnavailableError (rpc)", new DependencyUnavailableError("rpc", "RPC unavailable while reading fees"), 503, "service_unavailable"],
    ["DependencyUnavailableError (postgres)", new DependencyUnavailableError("postgres", "Postgres unavailable"), 503, "service_unavailable"],
    ["SignersBusyError", new SignersBusyError("all 1 signer(s) have 64 settlements in flight; retry shortly"), 503, "service_unavailable"],
    ["SignerCannotPayError", new SignerCannotPayError("0x0000000000000000000000000000000000000001", "fund it"), 503, "service_unavailable"],
    ["InvalidRequestError", new InvalidRequestError(ReasonCode.invalidPaymentRequirements, "paymentRequirements/payTo is required"), 400, "invalid_payment_requirements"],
    ["IdempotencyKeyBusyError", new IdempotencyKeyBusyError("still running"), 409, "idempotency_key_reused"],
  ] as const)("%s → %i %s", (_name, error, status, code) => {
    const answer = errorAnswer(error, "settle", payment);
    expect(answer.statusCode).toBe(status);
    expect(answer.body).toMatchObject({ success: false, errorReason: code, error: code });
  });

  it("an IdempotencyKeyBusyError is a 409, while the same code for another body is the table's 422", () => {
    expect(new IdempotencyKeyBusyError("still running").httpStatus).toBe(409);
    expect(new FacilitatorError(ReasonCode.idempotencyKeyReused, "another body").httpStatus).toBe(422);
  });

  it("answers a body that fails the route schema with 400 invalid_payload, and Fastify's 429 with rate_limited", () => {
    const invalid = errorAnswer(Object.assign(new Error("body must have required property 'paymentPayload'"), { validation: [{}], statusCode: 400 }), "verify");
    expect(invalid).toMatchObject({ statusCode: reasonAnswers.invalid_payload.status, body: { invalidReason: "invalid_payload" } });
    const limited = errorAnswer(Object.assign(new Error("Rate limit exceeded, retry in 1 minute"), { statusCode: 429 }), "settle", payment);
    expect(limited).toMatchObject({ statusCode: 429, body: { errorReason: "rate_limited", network: "" } });
    expect(limited.body).not.toHaveProperty("payer");
  });
});
