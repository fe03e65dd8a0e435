import {
  BaseError,
  ContractFunctionRevertedError,
  HttpRequestError,
  RpcRequestError,
  TimeoutError,
  WebSocketRequestError,
  decodeErrorResult,
  parseAbi,
  type Hex,
} from "viem";
import { DependencyUnavailableError } from "../errors.js";
import { redactUrls } from "../redact.js";

/** JSON-RPC codes that mean "the node is overloaded or limiting us", not "your call is wrong". */
const overloadRpcCodes = new Set([-32005, -32603, 429]);

/**
 * True when the error means the RPC could not be asked (network, timeout, 5xx, rate limit):
 * the answer is unknown, so the caller gets a 503, never a business verdict.
 */
export function isTransportFailure(error: unknown): boolean {
  if (!(error instanceof BaseError)) return false;
  return Boolean(
    error.walk((cause) => {
      if (cause instanceof TimeoutError || cause instanceof WebSocketRequestError) return true;
      if (cause instanceof HttpRequestError) return true;
      if (cause instanceof RpcRequestError && overloadRpcCodes.has(cause.code)) return true;
      return false;
    }),
  );
}

/**
 * The revert reason of a failed eth_call / estimate, as the contract said it, when it said one.
 * Redacted: when there is no reason, the text is the node's or viem's, which can quote the RPC URL
 * (and its API key), and callers put it in answers, rows and logs.
 */
export function revertReason(error: unknown): string | undefined {
  const reason = rawRevertReason(error);
  return reason === undefined ? undefined : redactUrls(reason);
}

function rawRevertReason(error: unknown): string | undefined {
  if (!(error instanceof BaseError)) return error instanceof Error ? error.message : undefined;
  const reverted = error.walk((cause) => cause instanceof ContractFunctionRevertedError);
  if (reverted instanceof ContractFunctionRevertedError) {
    return reverted.reason ?? reverted.data?.errorName ?? reverted.shortMessage;
  }
  const withData = error.walk((cause) => typeof (cause as { data?: unknown }).data === "string") as { data?: Hex } | undefined;
  // A custom error we have no ABI for falls through to the node's text.
  const known = withData?.data && withData.data.length > 2 ? decodeKnownError(withData.data) : undefined;
  if (known !== undefined) return known;
  const details = (error.walk((cause) => cause instanceof BaseError && typeof cause.details === "string") as BaseError | undefined)?.details;
  return (details ?? error.shortMessage).replace(/^execution reverted:?\s*/i, "");
}

/** The reason in revert data returned by a call (Error(string), Panic, or the selector of a custom error). */
export function decodeRevertData(data: Hex): string {
  if (data === "0x") return "reverted without a reason";
  return decodeKnownError(data) ?? `custom error ${data.slice(0, 10)}`;
}

/** Error(string) as its message, Panic(uint256) as `Panic(code)`; undefined for any other error. */
function decodeKnownError(data: Hex): string | undefined {
  try {
    const decoded = decodeErrorResult({ abi: solidityErrorAbi, data });
    return decoded.errorName === "Error" ? String(decoded.args[0]) : `${decoded.errorName}(${decoded.args.join(", ")})`;
  } catch {
    return undefined;
  }
}

const solidityErrorAbi = parseAbi(["error Error(string message)", "error Panic(uint256 code)"]);

/**
 * Throws DependencyUnavailableError (503) when `error` is a transport failure: the RPC could not be
 * asked, so nothing may be concluded from it. Returns otherwise, leaving the caller to judge the
 * error (a revert is a business verdict; anything else the caller rethrows itself).
 */
export function throwIfTransportFailure(error: unknown, what: string): void {
  if (isTransportFailure(error)) {
    throw new DependencyUnavailableError("rpc", `RPC unavailable while ${what}`, { cause: error });
  }
}

/**
 * A `.catch` handler for a read whose every failure is fatal to the caller: a transport failure
 * becomes DependencyUnavailableError (503, throwIfTransportFailure), anything else is rethrown as is.
 */
export function rethrowAsUnavailable(what: string): (error: unknown) => never {
  return (error: unknown): never => {
    throwIfTransportFailure(error, what);
    throw error;
  };
}

/** The read's answer, or undefined when the RPC could not be asked (a verdict then waits). */
export async function unknownOnTransportFailure<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isTransportFailure(error)) return undefined;
    throw error;
  }
}

/** How RPCs word "this method is not served here" (-32601 is JSON-RPC's; providers vary the text). */
const methodUnsupportedPattern = /method (\S+ )?(not found|not supported|not available|not allowed|is not available|does not exist|disabled)|unsupported method|unknown method|not whitelisted|-32601/i;

/**
 * True when the RPC answered that it does not serve the method asked (JSON-RPC -32601 "method not
 * found", EIP-1474's -32004 "method not supported", or an HTTP 4xx/501 saying so): asking again
 * gets the same answer. A timeout or a lost connection is never this.
 */
export function isMethodUnsupported(error: unknown): boolean {
  if (!(error instanceof BaseError)) return false;
  if (error.walk((cause) => cause instanceof TimeoutError)) return false;
  return Boolean(
    error.walk((cause) => {
      const code = (cause as { code?: unknown }).code;
      if (code === -32601 || code === -32004) return true;
      if (cause instanceof HttpRequestError && cause.status !== undefined && (cause.status === 501 || (cause.status >= 400 && cause.status < 500 && cause.status !== 429))) {
        return methodUnsupportedPattern.test(`${cause.details} ${cause.shortMessage}`);
      }
      return cause instanceof RpcRequestError && methodUnsupportedPattern.test(`${cause.details} ${cause.shortMessage}`);
    }),
  );
}

/** The JSON-RPC error code the node answered with, if it answered one. */
export function rpcErrorCode(error: unknown): number | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const found = error.walk((cause) => cause instanceof RpcRequestError || typeof (cause as { code?: unknown }).code === "number") as { code?: unknown } | null;
  return typeof found?.code === "number" ? found.code : undefined;
}
