import { decodeFunctionResult, encodeFunctionData, parseAbi, toHex, type Address, type Hex, type PublicClient } from "viem";
import { throwIfTransportFailure } from "../chain/rpc-errors.js";
import type { Clock } from "../clock.js";
import { eip3009Abi } from "./abi.js";
import { readChainState, type ChainState } from "./chain-state.js";
import { approximateStringBytes, LruCache, lruEntryOverheadBytes } from "../util/lru-cache.js";
import { decodeAggregate3, encodeAggregate3, multicall3Address } from "./multicall3.js";
import type { PaymentLimits } from "./payment-limits.js";
import type { ResolvedPayment } from "./resolve.js";
import { transferWithAuthorizationCall } from "./transfer-call.js";

/**
 * Verify's chain reads: balance, authorizationState and the transfer simulation in ONE eth_call
 * (Multicall3 aggregate3, with Multicall3.getBlockNumber() alongside), and a cache of those results
 * per block.
 *
 * Why the cache is exact up to a small, stated staleness:
 * - A read made at block N is a fact about block N. An entry is served only while the newest head
 *   observation says the head IS block N, and that observation is at most `headAgeMsMax` old. So a
 *   hit is the answer a fresh read would have given at most `headAgeMsMax` ago (a new block seen →
 *   every entry of older blocks is dead at once).
 * - Head and entries come from the same source, `block.number` inside an eth_call at "latest", so
 *   they agree on what "block N" means whatever the node's convention.
 * - A same-height reorg would keep the number and change the state: no entry is served more than
 *   `cachedReadAgeMsMax` after it was read, whatever the head says.
 * - Only byte-identical payments hit (the key is the digest, the signature and the simulating
 *   account); a miss reads at "latest", exactly as before.
 * - Postgres is never cached: the caller asks it on every verify, and when it says the
 *   authorization is claimed the caller reads the chain fresh (so the message is the same as
 *   without a cache). Verify's answer is advisory anyway: /settle re-simulates from chain state and
 *   claims in Postgres before it sends anything.
 * - Anything unusual (a sub-call failed, the simulation reverted, Multicall3 missing, a smart
 *   wallet payer) goes through the plain reads of chain-state.ts, so every rejection's reason and
 *   message are exactly what they were.
 * - The transfer is simulated with Multicall3 as msg.sender (the eth_call is still from the
 *   facilitator's address): EIP-3009 transferWithAuthorization does not look at msg.sender (only
 *   receiveWithAuthorization does), and /settle simulates again, from the signer itself.
 */

/** A cache entry is served only while a head observation at most this old names its block. */
export const headAgeMsMax = 500;
/** Past this age a hit also starts a head refresh in the background, so steady load never waits for one. */
export const headRefreshAheadMs = 250;
/** No entry is served longer than this after it was read, whatever the head says (same-height reorgs). */
export const cachedReadAgeMsMax = 2_000;
/** Entries per network at most; each is a small object, the key ~330 characters. */
export const cachedReadsMax = 10_000;
/** And bytes per network at most (keys, states, the map's slots, estimated). */
export const cachedReadsBytesMax = 4 * 1024 * 1024;
/** A CachedRead (three small objects, two bigints) on the heap, generously. */
const cachedReadBytes = 320;
/** Expired entries dropped per insert at most (each insert can only add one, so a few keep up). */
const staleDropsPerInsertMax = 4;
/** After Multicall3 turned out missing on a chain, plain reads are used for this long before trying again. */
export const multicallRetryAfterMs = 60_000;

const multicall3ReadAbi = parseAbi(["function getBlockNumber() view returns (uint256 blockNumber)"]);
const getBlockNumberCallData = encodeFunctionData({ abi: multicall3ReadAbi, functionName: "getBlockNumber" });
/** Gas for the head probe alone, and what the three reads beside the simulation may take (generously). */
const headProbeGas = 100_000n;
const multicallReadsGas = 100_000n;
const headProbeCallData = encodeAggregate3([{ target: multicall3Address, allowFailure: false, callData: getBlockNumberCallData }]);

export interface VerifyChainStateOptions {
  /** Ages of entries and head observations: monotonic, so a test's pinned wall clock does not freeze them. */
  clock: Pick<Clock, "monotonicMs">;
  simulationAccount: Address;
  limits: Pick<PaymentLimits, "gasPerSettlementMax" | "gasPerDeployingSettlementMax">;
}

export interface VerifyChainState {
  state: ChainState;
  /** True when served from the per-block cache (not read during this call). */
  cached: boolean;
}

interface CachedRead {
  blockNumber: bigint;
  readAtMs: number;
  state: ChainState;
}

interface MulticallRead {
  blockNumber: bigint;
  /** When the eth_call was sent: the state is at least this fresh. */
  sentAtMs: number;
  state: ChainState;
}

interface HeadObservation {
  blockNumber: bigint;
  /** When the request that observed it was sent: the head was this block at some moment after. */
  observedAtMs: number;
}

class VerifyReads {
  head: HeadObservation | undefined;
  headRefresh: Promise<void> | undefined;
  readonly entries = new LruCache<string, CachedRead>(cachedReadsMax, {
    maxBytes: cachedReadsBytesMax,
    sizeOf: (key) => approximateStringBytes(key) + cachedReadBytes + lruEntryOverheadBytes,
  });
  readonly inFlight = new Map<string, Promise<MulticallRead | undefined>>();
  /** Monotonic; undefined until Multicall3 turned out missing. */
  multicallUnavailableUntilMs: number | undefined;

  constructor(readonly client: PublicClient) {}

  /** The newest observation (by send time) wins, even if it names a lower block: that is a reorg or a lagging node, not to be ignored. */
  observe(blockNumber: bigint, observedAtMs: number): void {
    if (this.head === undefined || observedAtMs >= this.head.observedAtMs) this.head = { blockNumber, observedAtMs };
  }

  /** One head probe at a time per network; concurrent callers share it. Failures are the caller's to judge. */
  refreshHead(clock: Pick<Clock, "monotonicMs">): Promise<void> {
    this.headRefresh ??= (async () => {
      try {
        const sentAtMs = clock.monotonicMs();
        const raw = await ethCall(this.client, multicall3Address, headProbeCallData, undefined);
        const [result] = decodeAggregate3(raw);
        if (!result?.success) throw new Error("Multicall3.getBlockNumber() failed");
        this.observe(decodeFunctionResult({ abi: multicall3ReadAbi, functionName: "getBlockNumber", data: result.returnData }), sentAtMs);
      } finally {
        this.headRefresh = undefined;
      }
    })();
    return this.headRefresh;
  }
}

/** One cache per viem client, i.e. per network (clients are built once, in the chain registry). */
const readsByClient = new WeakMap<PublicClient, VerifyReads>();

function readsFor(client: PublicClient): VerifyReads {
  let reads = readsByClient.get(client);
  if (!reads) {
    reads = new VerifyReads(client);
    readsByClient.set(client, reads);
  }
  return reads;
}

/**
 * Verify's view of the chain for a payment whose signature is already checked: from the per-block
 * cache when allowed (see the top of this file), else one Multicall3 eth_call, else the plain reads.
 */
export async function readVerifyChainState(client: PublicClient, payment: ResolvedPayment, options: VerifyChainStateOptions): Promise<VerifyChainState> {
  const reads = readsFor(client);
  const { clock } = options;
  if (payment.payerKind !== "eoa" || (reads.multicallUnavailableUntilMs !== undefined && clock.monotonicMs() < reads.multicallUnavailableUntilMs)) {
    return { state: await readChainState(client, payment, { simulate: true, simulationAccount: options.simulationAccount, limits: options.limits }), cached: false };
  }
  const key = `${options.simulationAccount}${payment.asset.address}${payment.digest}${payment.request.signature}`;
  const hit = await cachedRead(reads, key, clock);
  if (hit) return { state: hit, cached: true };

  let read = reads.inFlight.get(key);
  if (!read) {
    read = readThroughMulticall(reads, payment, options.simulationAccount, options.limits.gasPerSettlementMax + multicallReadsGas, clock).finally(() => reads.inFlight.delete(key));
    reads.inFlight.set(key, read);
  }
  const fresh = await read;
  if (!fresh) return { state: await readChainState(client, payment, { simulate: true, simulationAccount: options.simulationAccount, limits: options.limits }), cached: false };
  // Cached only when it is of the block now taken as the head (not a lagging node's older block).
  if (reads.head?.blockNumber === fresh.blockNumber) {
    // Entries past cachedReadAgeMsMax are never served: drop them from the old end as new ones come
    // (a few per insert), so under cold load the cache holds ~2 s of reads, not 10,000 dead ones.
    const nowMs = clock.monotonicMs();
    reads.entries.dropOldestWhile((_, entry) => nowMs - entry.readAtMs > cachedReadAgeMsMax, staleDropsPerInsertMax);
    reads.entries.set(key, { blockNumber: fresh.blockNumber, readAtMs: fresh.sentAtMs, state: fresh.state });
  }
  return { state: fresh.state, cached: false };
}

/** The cached state for `key` when its block is the head as observed at most headAgeMsMax ago. */
async function cachedRead(reads: VerifyReads, key: string, clock: Pick<Clock, "monotonicMs">): Promise<ChainState | undefined> {
  const entry = reads.entries.get(key);
  if (!entry) return undefined;
  if (clock.monotonicMs() - entry.readAtMs > cachedReadAgeMsMax) {
    reads.entries.delete(key);
    return undefined;
  }
  let headAgeMs = reads.head ? clock.monotonicMs() - reads.head.observedAtMs : Number.POSITIVE_INFINITY;
  if (headAgeMs > headAgeMsMax) {
    // Too old to trust: wait for a new observation. An RPC outage is a 503 right here (the miss path
    // would only wait out the same timeouts again); any other failure lets the miss path read for real.
    const refreshed = await reads.refreshHead(clock).then(
      () => true,
      (error: unknown) => {
        throwIfTransportFailure(error, "reading the head block");
        return false;
      },
    );
    if (!refreshed) return undefined;
    headAgeMs = clock.monotonicMs() - reads.head!.observedAtMs;
  } else if (headAgeMs > headRefreshAheadMs) {
    reads.refreshHead(clock).catch(() => undefined);
  }
  if (headAgeMs > headAgeMsMax || reads.head!.blockNumber !== entry.blockNumber) return undefined;
  return entry.state;
}

/**
 * getBlockNumber, balanceOf, authorizationState and transferWithAuthorization in one aggregate3
 * eth_call at "latest". Undefined when the plain reads must decide: a sub-call failed (including a
 * reverted simulation, whose exact revert text the plain simulation reports), or Multicall3 is not
 * there. A transport failure is a 503, as with the plain reads.
 */
async function readThroughMulticall(
  reads: VerifyReads,
  payment: ResolvedPayment,
  account: Address,
  gasMax: bigint,
  clock: Pick<Clock, "monotonicMs">,
): Promise<MulticallRead | undefined> {
  const { authorization, signature } = payment.request;
  const token = payment.asset.address;
  const transfer = transferWithAuthorizationCall(token, authorization, signature, "eoa");
  const data = encodeAggregate3([
    { target: multicall3Address, allowFailure: true, callData: getBlockNumberCallData },
    { target: token, allowFailure: true, callData: encodeFunctionData({ abi: eip3009Abi, functionName: "balanceOf", args: [authorization.from] }) },
    {
      target: token,
      allowFailure: true,
      callData: encodeFunctionData({ abi: eip3009Abi, functionName: "authorizationState", args: [authorization.from, authorization.nonce] }),
    },
    { target: transfer.to, allowFailure: true, callData: transfer.data },
  ]);
  const sentAtMs = clock.monotonicMs();
  let raw: Hex;
  try {
    raw = await ethCall(reads.client, multicall3Address, data, account, gasMax);
  } catch (error) {
    throwIfTransportFailure(error, "reading the payer's balance, authorizationState and simulating (Multicall3)");
    return undefined;
  }
  let results: ReturnType<typeof decodeAggregate3>;
  try {
    results = decodeAggregate3(raw);
  } catch {
    // "0x": no code at the canonical address on this chain.
    reads.multicallUnavailableUntilMs = clock.monotonicMs() + multicallRetryAfterMs;
    return undefined;
  }
  const [blockNumber, balance, used, simulation] = results;
  if (!blockNumber?.success || !balance?.success || !used?.success || !simulation?.success) return undefined;
  try {
    const state: ChainState = {
      balanceAtomic: decodeFunctionResult({ abi: eip3009Abi, functionName: "balanceOf", data: balance.returnData }),
      authorizationUsed: decodeFunctionResult({ abi: eip3009Abi, functionName: "authorizationState", data: used.returnData }),
      simulation: { ok: true },
    };
    const number = decodeFunctionResult({ abi: multicall3ReadAbi, functionName: "getBlockNumber", data: blockNumber.returnData });
    reads.observe(number, sentAtMs);
    return { blockNumber: number, sentAtMs, state };
  } catch {
    // A token answering balanceOf/authorizationState with something undecodable: the plain reads judge it.
    return undefined;
  }
}

/** eth_call straight through the transport (batching, failover, timeouts), without viem's call() wrapper work. */
async function ethCall(client: PublicClient, to: Address, data: Hex, from: Address | undefined, gasMax: bigint = headProbeGas): Promise<Hex> {
  // Always an explicit gas limit: the simulation runs the payer's code when its address has any.
  const request = { ...(from === undefined ? {} : { from }), to, data, gas: toHex(gasMax) };
  return (await client.request({ method: "eth_call", params: [request, "latest"] })) as Hex;
}

/** Tests and diagnostics: the cached reads this client's cache holds now (entries, estimated bytes). */
export function verifyReadsHeld(client: PublicClient): { entries: number; bytes: number } {
  const entries = readsByClient.get(client)?.entries;
  return { entries: entries?.size ?? 0, bytes: entries?.bytes ?? 0 };
}

/** Tests: drop every cached read and head observation of this client. */
export function forgetVerifyReads(client: PublicClient): void {
  readsByClient.delete(client);
}
