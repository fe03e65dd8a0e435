/**
 * Typed errors thrown by the handlers become the answers the reason-code table documents, whole:
 * status, every field of the body, nothing more — through the real app (real Postgres, Anvil).
 */
import { describe, expect, it } from "vitest";
import type { Clock } from "../../../src/clock.js";
import { anonymousIdempotencyScope } from "../../../src/store/idempotency-repo.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { paymentBody } from "../../helpers/payments.js";
import { createHash } from "node:crypto";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

/** Real time, moved forward on demand: ends the Idempotency-Key wait without waiting it out. */
let clockOffsetMs = 0;
const clock: Clock = { nowMs: () => Date.now() + clockOffsetMs, monotonicMs: () => performance.now() + clockOffsetMs };

const fx = usePaymentFixture({
  label: "error_answers",
  payerBalanceAtomic: 100_000_000n,
  facilitator: { clock, policy: { auth: "off", allowedPayTo: [payTo.toLowerCase()], amountMaxAtomic: undefined } },
});

const body = (to = payTo) => paymentBody(fx.chain, { payerKey: keys.payer, payTo: to, amountAtomic });
const networkOf = (payload: Awaited<ReturnType<typeof body>>) => (payload.paymentRequirements as { network: string }).network;
const hashOf = (payload: unknown) => createHash("sha256").update(JSON.stringify(payload)).digest("hex");

describe("error answers of /settle and /verify", () => {
  it("answers a malformed Idempotency-Key 400 invalid_payload, naming no payment", async () => {
    const answer = await postJson(fx.facilitator.app, "/settle", await body(), { "idempotency-key": "two words" });
    const message = "Idempotency-Key must be 1-255 printable ASCII characters";
    expect(answer).toEqual({
      status: 400,
      body: { success: false, errorReason: "invalid_payload", errorMessage: message, transaction: "", network: "", error: "invalid_payload", message },
    });
  });

  it("answers a policy refusal 403 in each route's shape, naming the payer (and the network on /settle)", async () => {
    const stranger = addressOf(keys.stranger);
    const payload = await body(stranger);
    const message = `payTo ${stranger} is not allowed by this facilitator`;
    expect(await postJson(fx.facilitator.app, "/verify", payload)).toEqual({
      status: 403,
      body: { isValid: false, invalidReason: "pay_to_not_allowed", invalidMessage: message, payer, error: "pay_to_not_allowed", message },
    });
    expect(await postJson(fx.facilitator.app, "/settle", payload)).toEqual({
      status: 403,
      body: { success: false, errorReason: "pay_to_not_allowed", errorMessage: message, transaction: "", network: networkOf(payload), payer, error: "pay_to_not_allowed", message },
    });
  });

  it("answers an Idempotency-Key used with another body 422 idempotency_key_reused, naming no payment", async () => {
    const id = { scope: anonymousIdempotencyScope, route: "settle" as const, key: "error-answers-422" };
    expect(await fx.facilitator.services.idempotency.begin(id, hashOf({ another: "body" }))).toEqual({ kind: "new" });
    const answer = await postJson(fx.facilitator.app, "/settle", await body(), { "idempotency-key": id.key });
    const message = "this Idempotency-Key was used with a different request body";
    expect(answer).toEqual({
      status: 422,
      body: { success: false, errorReason: "idempotency_key_reused", errorMessage: message, transaction: "", network: "", error: "idempotency_key_reused", message },
    });
  });

  it("answers 409 idempotency_key_reused while the first request with the key is still running", async () => {
    const payload = await body();
    const id = { scope: anonymousIdempotencyScope, route: "settle" as const, key: "error-answers-409" };
    expect(await fx.facilitator.services.idempotency.begin(id, hashOf(payload))).toEqual({ kind: "new" });
    const answering = postJson(fx.facilitator.app, "/settle", payload, { "idempotency-key": id.key });
    try {
      await new Promise((resolve) => setTimeout(resolve, 250));
      clockOffsetMs = 3_600_000; // the wait for the first request is over
      const message = "a request with this Idempotency-Key is still running; retry later";
      expect(await answering).toEqual({
        status: 409,
        body: { success: false, errorReason: "idempotency_key_reused", errorMessage: message, transaction: "", network: "", error: "idempotency_key_reused", message },
      });
    } finally {
      clockOffsetMs = 0;
    }
  });

  it("answers a body too deeply nested to hash for its Idempotency-Key 400 invalid_payload, naming no payment", async () => {
    const depth = 20_000; // 40 kB, under the body limit; JSON.stringify overflows the stack on it
    // Sent as text: inject would stringify an object and overflow first.
    const payload = `${JSON.stringify(await body()).slice(0, -1)},"deep":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    const response = await fx.facilitator.app.inject({
      method: "POST",
      url: "/settle",
      payload,
      headers: { "content-type": "application/json", "idempotency-key": "error-answers-deep" },
    });
    const message = "request body is nested too deeply";
    expect({ status: response.statusCode, body: response.json() }).toEqual({
      status: 400,
      body: { success: false, errorReason: "invalid_payload", errorMessage: message, transaction: "", network: "", error: "invalid_payload", message },
    });
  });
});

describe("error answers of the operator routes", () => {
  it("answers an unknown settlement 404 not_found", async () => {
    const id = "00000000-0000-4000-8000-000000000000";
    const response = await fx.facilitator.app.inject({ method: "GET", url: `/settlements/${id}` });
    expect({ status: response.statusCode, body: response.json() }).toEqual({ status: 404, body: { error: "not_found", message: `no settlement with id ${id}` } });
  });
});
