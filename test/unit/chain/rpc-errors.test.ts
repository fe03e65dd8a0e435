/** Messages made from viem errors (revert reasons, 503s) carry no RPC URL secret. */
import { describe, expect, it } from "vitest";
import { BaseError, HttpRequestError, RpcRequestError, TimeoutError } from "viem";
import { DependencyUnavailableError } from "../../../src/errors.js";
import { revertReason, throwIfTransportFailure } from "../../../src/chain/rpc-errors.js";

const secret = "SECRETKEY123";
const url = `https://mainnet.infura.io/v3/${secret}`;

describe("revertReason", () => {
  it("redacts a node's error text that quotes the URL", () => {
    const error = new RpcRequestError({ url, body: { method: "eth_call" }, error: { code: 3, message: `execution reverted: proxy ${url} refused` } });
    expect(revertReason(error)).toBe("proxy https://mainnet.infura.io/… refused");
  });

  it("redacts a plain Error's message", () => {
    expect(revertReason(new Error(`fetch to ${url} failed`))).toBe("fetch to https://mainnet.infura.io/… failed");
  });

  it("redacts a BaseError's short message when it has no details", () => {
    expect(revertReason(new BaseError(`reverted at ${url}`))).not.toContain(secret);
  });

  it("still reads a plain revert reason", () => {
    const error = new RpcRequestError({ url, body: {}, error: { code: 3, message: "execution reverted: FiatTokenV2: invalid signature" } });
    expect(revertReason(error)).toBe("FiatTokenV2: invalid signature");
  });
});

describe("throwIfTransportFailure", () => {
  it.each([new TimeoutError({ url, body: {} }), new HttpRequestError({ url })])("throws a 503 whose message names no URL for %s", (cause) => {
    let thrown: unknown;
    try {
      throwIfTransportFailure(cause, "reading the signer nonce");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DependencyUnavailableError);
    expect((thrown as Error).message).toBe("RPC unavailable while reading the signer nonce");
  });

  it.each([
    new RpcRequestError({ url, body: {}, error: { code: 3, message: "execution reverted: FiatTokenV2: invalid signature" } }),
    new BaseError("reverted"),
    new Error("not a viem error"),
  ])("returns for an error that is not a transport failure (%s): the caller judges it", (error) => {
    expect(throwIfTransportFailure(error, "simulating")).toBeUndefined();
  });
});
