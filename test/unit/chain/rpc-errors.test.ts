/** Messages made from viem errors (revert reasons, 503s) carry no RPC URL secret. */
import { describe, expect, it } from "vitest";
import { BaseError, HttpRequestError, MethodNotFoundRpcError, MethodNotSupportedRpcError, RpcRequestError, TimeoutError } from "viem";
import { DependencyUnavailableError } from "../../../src/errors.js";
import { isMethodUnsupported, revertReason, rpcErrorCode, throwIfTransportFailure } from "../../../src/chain/rpc-errors.js";

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

describe("isMethodUnsupported", () => {
  it.each([
    ["JSON-RPC -32601", new MethodNotFoundRpcError(new BaseError("Method not found"))],
    ["EIP-1474 -32004", new MethodNotSupportedRpcError(new BaseError("Method not supported"))],
    ["a node's text", new RpcRequestError({ url, body: {}, error: { code: -32000, message: "the method eth_sendRawTransactionSync does not exist/is not available" } })],
    ["an HTTP 403 saying so", new HttpRequestError({ url, status: 403, details: '{"code":-32601,"message":"method not whitelisted"}' })],
  ])("is true for %s", (_label, error) => {
    expect(isMethodUnsupported(error)).toBe(true);
  });

  it.each([
    ["a timeout", new TimeoutError({ url, body: {} })],
    ["a lost connection", new HttpRequestError({ url })],
    ["HTTP 429", new HttpRequestError({ url, status: 429, details: "method not found? slow down" })],
    ["a refused transaction", new RpcRequestError({ url, body: {}, error: { code: -32003, message: "nonce too low" } })],
    ["an empty transaction refused (the method exists)", new RpcRequestError({ url, body: {}, error: { code: -32602, message: "Empty transaction data" } })],
  ])("is false for %s", (_label, error) => {
    expect(isMethodUnsupported(error)).toBe(false);
  });
});

describe("rpcErrorCode", () => {
  it("reads the node's code through viem's wrappers", () => {
    expect(rpcErrorCode(new RpcRequestError({ url, body: {}, error: { code: 4, message: "wasn't processed in 2s" } }))).toBe(4);
    expect(rpcErrorCode(new MethodNotFoundRpcError(new BaseError("x")))).toBe(-32601);
    expect(rpcErrorCode(new TimeoutError({ url, body: {} }))).toBeUndefined();
  });
});
