/**
 * Error answers never carry an RPC URL: a 503 says which dependency is down, not its address
 * (the key is in the path or query). See src/redact.ts.
 */
import { describe, expect, it } from "vitest";
import { HttpRequestError } from "viem";
import { DependencyUnavailableError, FacilitatorError } from "../../../src/errors.js";
import { errorAnswer } from "../../../src/http/error-answers.js";

const secret = "SECRETKEY123";
const url = `https://base-mainnet.g.alchemy.com/v2/${secret}?apikey=${secret}`;

describe("errorAnswer", () => {
  it.each(["verify", "settle", "other"] as const)("answers a 503 on /%s without the RPC URL in its message", (route) => {
    const error = new DependencyUnavailableError("rpc", `RPC unavailable at ${url}`, { cause: new HttpRequestError({ url }) });
    const answer = errorAnswer(error, route, { payer: "0x1", network: "eip155:8453" });
    expect(answer.statusCode).toBe(503);
    expect(JSON.stringify(answer.body)).not.toContain(secret);
    expect(answer.body.message).toBe("RPC unavailable at https://base-mainnet.g.alchemy.com/…");
  });

  it("redacts any FacilitatorError's message and a framework 4xx message", () => {
    const refused = errorAnswer(new FacilitatorError("invalid_payload", `bad ${url}`), "settle");
    expect(JSON.stringify(refused.body)).not.toContain(secret);
    const fastify = errorAnswer(Object.assign(new Error(`body of ${url} too large`), { statusCode: 413 }), "other");
    expect(fastify.statusCode).toBe(413);
    expect(JSON.stringify(fastify.body)).not.toContain(secret);
  });

  it("answers an unexpected viem error with a 500 that shows nothing of it", () => {
    const answer = errorAnswer(new HttpRequestError({ url }), "verify");
    expect(answer.statusCode).toBe(500);
    expect(JSON.stringify(answer.body)).not.toContain(secret);
  });
});
