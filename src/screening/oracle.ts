import { decodeFunctionResult, encodeFunctionData, parseAbi, toHex, type Address, type Hex, type PublicClient } from "viem";
import { isTransportFailure, revertReason } from "../chain/rpc-errors.js";
import { sanctionsOracleCacheMax, sanctionsOracleGasMax } from "../limits.js";
import { LruCache } from "../util/lru-cache.js";

/**
 * An on-chain sanctions oracle: a contract answering `isSanctioned(address) → bool`, as the
 * Chainalysis sanctions oracle does, configured per network (`sanctionsOracle` in
 * FACILITATOR_CONFIG, or SANCTIONS_ORACLE_<chainId>).
 *
 * Per block: each lookup first asks the head block number (`eth_blockNumber`, one probe shared by
 * concurrent lookups), then answers from the cache when this address was already asked at that
 * block, else with one `eth_call` AT that block (not "latest": the answer is a fact about the block
 * it is cached for) with an explicit gas limit of `sanctionsOracleGasMax`. So an answer is reused
 * exactly while the head is the same block; a new block asks again. (A same-height reorg keeps the
 * number: its answer may be the other branch's, which for a sanctions list is immaterial.) Entries
 * of older blocks are never hit again and age out of the bounded LRU. Failures are never cached.
 */

export const sanctionsOracleAbi = parseAbi(["function isSanctioned(address addr) view returns (bool)"]);

/** The oracle gave no usable answer (the RPC did not answer, the call reverted or ran out of gas, no contract, not a bool). */
export class OracleUnavailableError extends Error {
  override name = "OracleUnavailableError";
}

export class SanctionsOracle {
  readonly #answers = new LruCache<string, boolean>(sanctionsOracleCacheMax);
  readonly #inFlight = new Map<string, Promise<boolean>>();
  #headProbe: Promise<bigint> | undefined;

  constructor(
    readonly address: Address,
    private readonly client: PublicClient,
    /** Each address looked up: from the cache (or a call already in flight for it), or a call of its own. */
    private readonly onLookup: (result: "cached" | "called") => void = () => undefined,
  ) {}

  /** Whether each address is sanctioned at the head block, in order. Throws OracleUnavailableError. */
  async flagged(addresses: readonly Address[]): Promise<boolean[]> {
    const head = await this.head();
    return Promise.all(addresses.map((address) => this.lookup(head, address)));
  }

  private head(): Promise<bigint> {
    this.#headProbe ??= (async () => {
      try {
        return BigInt((await this.client.request({ method: "eth_blockNumber" })) as Hex);
      } catch (error) {
        throw new OracleUnavailableError(`the head block could not be read: ${why(error)}`);
      } finally {
        this.#headProbe = undefined;
      }
    })();
    return this.#headProbe;
  }

  private lookup(block: bigint, address: Address): Promise<boolean> {
    const key = `${block}:${address.toLowerCase()}`;
    const cached = this.#answers.get(key);
    if (cached !== undefined) {
      this.onLookup("cached");
      return Promise.resolve(cached);
    }
    const inFlight = this.#inFlight.get(key);
    if (inFlight) {
      this.onLookup("cached");
      return inFlight;
    }
    this.onLookup("called");
    const call = this.call(block, address)
      .then((sanctioned) => {
        this.#answers.set(key, sanctioned);
        return sanctioned;
      })
      .finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, call);
    return call;
  }

  private async call(block: bigint, address: Address): Promise<boolean> {
    const data = encodeFunctionData({ abi: sanctionsOracleAbi, functionName: "isSanctioned", args: [address] });
    let raw: Hex;
    try {
      raw = (await this.client.request({ method: "eth_call", params: [{ to: this.address, data, gas: toHex(sanctionsOracleGasMax) }, toHex(block)] })) as Hex;
    } catch (error) {
      throw new OracleUnavailableError(`isSanctioned(${address}) at block ${block} failed: ${why(error)}`);
    }
    if (raw === "0x") throw new OracleUnavailableError(`isSanctioned(${address}) at block ${block} returned nothing: no contract at ${this.address}?`);
    try {
      return decodeFunctionResult({ abi: sanctionsOracleAbi, functionName: "isSanctioned", data: raw });
    } catch {
      throw new OracleUnavailableError(`isSanctioned(${address}) at block ${block} returned ${raw.length > 70 ? `${raw.slice(0, 70)}…` : raw}, not a bool`);
    }
  }
}

/** One short line, without RPC URLs (they may hold an API key). */
function why(error: unknown): string {
  if (isTransportFailure(error)) return "the RPC did not answer";
  return `reverted or failed: ${(revertReason(error) ?? "no reason").split("\n")[0]!.slice(0, 200)}`;
}
