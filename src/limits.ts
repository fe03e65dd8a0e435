import { isAddress } from "viem";
import { ConfigError } from "./errors.js";

/**
 * Every limit, declared once: its environment variable, unit, default, accepted range and what it
 * bounds. The `Limits` type, `defaultLimits`, the environment parsing (`loadLimits`) and the README's
 * limits table (`scripts/config-table.ts`, checked by test/unit/config.test.ts) are derived from it.
 * A field is its variable in camelCase (MIN_SIGNER_BALANCE_WEI ↔ minSignerBalanceWei), checked by
 * the compiler below; the unit is last in both.
 */

/** Units whose values fit a JS number (all well below 2^53). */
type NumberUnit = "ms" | "bytes" | "count" | "percent";
/** Units of chain quantities: bigint, as viem takes them. */
type BigintUnit = "wei" | "gas" | "atomic";

export type LimitSpec =
  | { env: string; unit: NumberUnit; default: number; min: number; max: number; doc: string }
  | { env: string; unit: BigintUnit; default: bigint; min: bigint; max: bigint; doc: string }
  | { env: string; unit: "addresses"; default: readonly string[]; itemsMax: number; doc: string };

/** Wide enough for any amount or fee an operator means (the former 31-digit bound), small enough to catch a typo. */
export const bigintLimitMax = 10n ** 30n;
const hourMs = 3_600_000;

export const limitSpecs = {
  bodyLimitBytes: { env: "BODY_LIMIT_BYTES", unit: "bytes", default: 64 * 1024, min: 1024, max: 10 * 1024 * 1024, doc: "Largest HTTP request body accepted." },
  requestTimeoutMs: { env: "REQUEST_TIMEOUT_MS", unit: "ms", default: 30_000, min: 1000, max: 600_000, doc: "Longest an HTTP request (and an idle connection) may take." },
  settleBudgetMs: {
    env: "SETTLE_BUDGET_MS", unit: "ms", default: 20_000, min: 100, max: 120_000,
    doc: "Longest `/settle` waits for a receipt before answering `settlement_pending`. Keep it well below the resource server's facilitator timeout (90 s in the official v2 client, `@x402/core` 2.27) and below `REQUEST_TIMEOUT_MS`, so a slow settlement is answered `settlement_pending` and retried instead of timing out.",
  },
  duplicateWaitMs: { env: "DUPLICATE_WAIT_MS", unit: "ms", default: 20_000, min: 0, max: 120_000, doc: "Longest a duplicate `/settle` waits for the first call's outcome." },
  rpcTimeoutMs: { env: "RPC_TIMEOUT_MS", unit: "ms", default: 5_000, min: 100, max: 60_000, doc: "Per RPC request, per URL (viem's http transport timeout)." },
  rpcRetryCount: { env: "RPC_RETRY_COUNT", unit: "count", default: 1, min: 0, max: 5, doc: "Retries of a failed RPC request, per URL." },
  // A batch answers when its slowest call does, so keep it small.
  rpcBatchSize: { env: "RPC_BATCH_SIZE", unit: "count", default: 64, min: 1, max: 1_000, doc: "Calls per JSON-RPC batch (concurrent reads share one HTTP request)." },
  gasPerSettlementMax: {
    env: "GAS_PER_SETTLEMENT_MAX", unit: "gas", default: 300_000n, min: 21_000n, max: 10_000_000n,
    doc: "Gas cap: a settlement estimated above it is refused (`gas_cap_exceeded`).",
  },
  gasPerDeployingSettlementMax: {
    env: "GAS_PER_DEPLOYING_SETTLEMENT_MAX", unit: "gas", default: 1_000_000n, min: 0n, max: 30_000_000n,
    doc: "Gas cap for a settlement that also deploys the payer's ERC-6492 smart wallet (in the same transaction as the payment); `0` refuses them.",
  },
  // Stored lowercase. A factory call is code the payer chooses: with any factory allowed, anyone could make us pay for arbitrary work.
  erc6492AllowedFactories: {
    env: "ERC6492_ALLOWED_FACTORIES", unit: "addresses", default: [], itemsMax: 256,
    doc: "Comma-separated ERC-6492 factory addresses whose wallet deployments the facilitator runs and pays for. Empty: every undeployed smart wallet is refused (`eip6492_factory_not_allowed`) — a factory call is code the payer chooses.",
  },
  // ≥ 1: a 0-value payment costs us gas and pays nobody.
  minAmountAtomic: {
    env: "MIN_AMOUNT_ATOMIC", unit: "atomic", default: 1n, min: 1n, max: bigintLimitMax,
    doc: "Smallest payment accepted, in the asset's atomic units; below it (and a 0-value payment always) → `amount_below_minimum` at verify and settle, before any chain work.",
  },
  // A payer's code can tell a simulation apart from the real call: one that passed simulation and failed on chain is cooled down.
  payerCodeCooldownMs: {
    env: "PAYER_CODE_COOLDOWN_MS", unit: "ms", default: hourMs, min: 0, max: 30 * 24 * hourMs,
    doc: "A payer whose settlement failed on chain although its simulation passed, while its address had code (smart wallet, EIP-7702 delegate), is refused (`payer_cooldown`) for this long, with code or without; `0` turns it off.",
  },
  // A key without code can move its funds away (or burn its nonces) between our simulation and our transaction: every one of its calls in flight then fails.
  payerOneAtATimeMs: {
    env: "PAYER_ONE_AT_A_TIME_MS", unit: "ms", default: hourMs, min: 0, max: 30 * 24 * hourMs,
    doc: "A payer one of whose settlement calls failed on chain by its own doing (its funds moved away after the simulation, its nonce burnt) has one settlement in flight at a time per token for this long: the others wait, unsent, for it to be final (429 `payer_busy` if still waiting at the budget's end); `0` turns it off.",
  },
  // A stat() per interval; the file is read again only when its mtime, size or inode changed.
  sanctionsDenylistReloadMs: {
    env: "SANCTIONS_DENYLIST_RELOAD_MS", unit: "ms", default: 10_000, min: 100, max: hourMs,
    doc: "How often `SANCTIONS_DENYLIST_FILE` is checked for a change (its mtime, size or inode); a changed file is reloaded, a bad one logged and the last good list kept.",
  },
  // 100 gwei: Base runs at a tiny fraction of that.
  maxFeePerGasWei: {
    env: "MAX_FEE_PER_GAS_WEI", unit: "wei", default: 100_000_000_000n, min: 1n, max: bigintLimitMax,
    doc: "Never pay more per gas; above it settlements are refused (503) instead of overpaid.",
  },
  minSignerBalanceWei: {
    env: "MIN_SIGNER_BALANCE_WEI", unit: "wei", default: 0n, min: 0n, max: bigintLimitMax,
    doc: "Refuse settlements (503) while a signer holds less native currency than this (on top of one settlement's cost); `0` turns it off.",
  },
  // Transactions, not settlements: each carries up to SETTLE_BATCH_MAX. 16 is what a reth node's
  // pool (Base's) accepts from one sender by default (max_account_slots); more would be refused.
  inFlightPerSignerMax: {
    env: "IN_FLIGHT_PER_SIGNER_MAX", unit: "count", default: 16, min: 1, max: 10_000,
    doc: "Transactions one key may have between send and verdict, per chain and instance (each carries up to `SETTLE_BATCH_MAX` settlements); settlements that arrive meanwhile gather into the next batch. Up to this × `SETTLE_BATCH_MAX` settlements may wait per key; more wait (bounded) for room.",
  },
  // One EIP-7702 delegation can make every in-flight settlement of its payer fail at once: this bounds the multiple.
  inFlightPerPayerMax: {
    env: "IN_FLIGHT_PER_PAYER_MAX", unit: "count", default: 32, min: 1, max: 10_000,
    doc: "Unfinished settlements one payer may have on a chain (all instances); more are refused with 429 `payer_busy` until some finish.",
  },
  // On by default: it saves gas and raises throughput per key (bench/results.json).
  settleBatchMax: {
    env: "SETTLE_BATCH_MAX", unit: "count", default: 32, min: 1, max: 256,
    doc: "Up to this many settlements waiting for the same key go out as one BatchSettler transaction (see *Batched settlement*); `1` turns batching off.",
  },
  // Below EIP-7825's 16.7M per-transaction cap and far below Base's block gas limit.
  batchGasMax: {
    env: "BATCH_GAS_MAX", unit: "gas", default: 10_000_000n, min: 100_000n, max: 30_000_000n,
    doc: "Gas limit of one batch transaction at most (below EIP-7825's 16.7M per-transaction cap); a longer queue goes out as several transactions.",
  },
  stuckAfterMs: {
    env: "STUCK_AFTER_MS", unit: "ms", default: 30_000, min: 100, max: hourMs,
    doc: "A broadcast tx with no receipt after this long is resent or, if underpriced, replaced at the same nonce with higher fees.",
  },
  feeBumpsMax: { env: "FEE_BUMPS_MAX", unit: "count", default: 3, min: 0, max: 20, doc: "Replacements of one stuck tx at most." },
  // Nodes require at least 10 %.
  feeBumpPercent: { env: "FEE_BUMP_PERCENT", unit: "percent", default: 25, min: 10, max: 500, doc: "Each replacement raises both fee caps by this much." },
  nonceGapHealAfterMs: {
    env: "NONCE_GAP_HEAL_AFTER_MS", unit: "ms", default: 5_000, min: 0, max: hourMs,
    doc: "A tx nonce handed back after a refused send and not reused within this is filled with a 0-value self-transfer.",
  },
  dbPoolMax: { env: "DB_POOL_MAX", unit: "count", default: 20, min: 1, max: 500, doc: "Postgres connections per instance at most." },
  dbStatementTimeoutMs: { env: "DB_STATEMENT_TIMEOUT_MS", unit: "ms", default: 5_000, min: 100, max: 600_000, doc: "Postgres per-statement timeout." },
  rateLimitPerMinute: {
    env: "RATE_LIMIT_PER_MINUTE", unit: "count", default: 6_000, min: 1, max: 10_000_000,
    doc: "Requests per client IP, on `/verify` and on `/settle` (behind a proxy, set `TRUST_PROXY` or every client shares the proxy's bucket).",
  },
  reconcileIntervalMs: {
    env: "RECONCILE_INTERVAL_MS", unit: "ms", default: 2_000, min: 50, max: hourMs,
    doc: "How often the watcher finishes settlements nobody waits on any more.",
  },
  // Bazaar discovery (README "Discovery (Bazaar)"): the catalogue is written by payers' payloads, so every dimension is bounded.
  bazaarEntriesMax: {
    env: "BAZAAR_ENTRIES_MAX", unit: "count", default: 100_000, min: 0, max: 10_000_000,
    doc: "Bazaar catalogue entries at most (all `payTo`s); when full, new resources are not catalogued (known ones still refresh). `0` turns the Bazaar off: not advertised in `/supported`, nothing catalogued.",
  },
  bazaarEntriesPerPayToMax: {
    env: "BAZAAR_ENTRIES_PER_PAY_TO_MAX", unit: "count", default: 100, min: 1, max: 100_000,
    doc: "Bazaar catalogue entries per `payTo` at most; a new one beyond it evicts that `payTo`'s least recently paid entry.",
  },
  bazaarEntryMaxBytes: {
    env: "BAZAAR_ENTRY_MAX_BYTES", unit: "bytes", default: 16 * 1024, min: 512, max: 1024 * 1024,
    doc: "Largest `bazaar` extension catalogued (its `info` and `schema` as JSON, UTF-8); a larger one is skipped (the payment is unaffected).",
  },
  bazaarEntryTtlMs: {
    env: "BAZAAR_ENTRY_TTL_MS", unit: "ms", default: 7 * 24 * hourMs, min: 60_000, max: 365 * 24 * hourMs,
    doc: "A Bazaar entry no payment refreshed for this long is no longer listed, and is deleted at the next catalogue write.",
  },
  discoveryRateLimitPerMinute: {
    env: "DISCOVERY_RATE_LIMIT_PER_MINUTE", unit: "count", default: 600, min: 1, max: 10_000_000,
    doc: "Requests per client IP on `/discovery/resources` and on `/discovery/search` (public, like `/supported`).",
  },
  // V8's --heap-growing-percent, set at start (src/heap-growth.ts): left to V8, a fast-allocating server grows to ~4× its live heap.
  heapGrowthPercent: {
    env: "HEAP_GROWTH_PERCENT", unit: "percent", default: 50, min: 0, max: 300,
    doc: "How far the server's JavaScript heap may grow past what was live at its last full garbage collection before the next one (V8's `--heap-growing-percent`); lower keeps memory (RSS) lower for a little more GC work. `0` leaves V8's own choice (up to 300 %).",
  },
  // An operator setting because it has to fit the orchestrator's own probe timeout, which the operator chooses.
  readinessTimeoutMs: {
    env: "READINESS_TIMEOUT_MS", unit: "ms", default: 2_000, min: 100, max: 60_000,
    doc: "Longest `/ready` waits for Postgres and for each network's RPC before reporting it down (keep it below the load balancer's or orchestrator's probe timeout).",
  },
} as const satisfies Record<string, LimitSpec>;

/*
 * Fixed bounds shared across modules or tied to the limits above. Not operator settings: each
 * follows from a limit or from the protocol, as its comment says. A bound that only one module
 * uses (a driver's connect timeout, a cache's size) is a named constant in that module, with why.
 */

/**
 * A settle's claim (its row's lease) stays the request's own for SETTLE_BUDGET_MS plus this: the
 * request still writes its verdict after the budget ends, and until the lease is over neither a
 * duplicate request nor the watcher takes the row over.
 */
export const claimLeaseMarginMs = 10_000;
/**
 * A second request with the same Idempotency-Key waits for the first one's recorded answer for
 * SETTLE_BUDGET_MS plus this, then answers 409: 25 s with the defaults, inside REQUEST_TIMEOUT_MS (30 s) and
 * well inside the official v2 client's 90 s facilitator timeout.
 */
export const idempotencyWaitMarginMs = 5_000;
/*
 * Requests that wait for another one's answer — a duplicate `/settle` for the claimer's verdict (for
 * at most DUPLICATE_WAIT_MS), a retry with the same Idempotency-Key for the recorded answer — are
 * woken by the write itself (in this process) or by its NOTIFY (from another instance), never by
 * polling (store/notifications.ts). These bound what waiting costs.
 */
/**
 * A row or key with waiters is read again at least this often, once for all of its waiters in the
 * instance: the safety net for a lost notification or a LISTEN connection that is down.
 */
export const waitRecheckMs = 3_000;
/** Waiters of one row (or one Idempotency-Key) per instance; more are answered at once, as at the end of their wait. */
export const waitersPerKeyMax = 100;
/** Waiters of each kind per instance in all; more are answered at once, as at the end of their wait. */
export const waitersMax = 10_000;
/** The LISTEN connection reconnects after this, doubling per failed attempt up to listenReconnectMaxMs. */
export const listenReconnectInitialMs = 250;
export const listenReconnectMaxMs = 10_000;
/** Rows one watcher pass leases (the rest wait for the next pass, RECONCILE_INTERVAL_MS later). */
export const watcherBatchMax = 50;
/**
 * How long one watcher pass owns a leased row before another instance may take it: well beyond
 * what a pass does with a row (a few RPC calls, each bounded by RPC_TIMEOUT_MS and its retries).
 */
export const watcherLeaseMs = 30_000;
/** Signer balances (the signer_balance_wei gauge) are read on a scrape at most this often: each read is networks × signers RPC calls. */
export const signerBalanceCacheMs = 10_000;
/**
 * A `/metrics` scrape and the dashboard wait at most this for their reads (balances, counts), so a
 * slow RPC cannot hang them: what is late keeps its last value (metrics) or shows as unavailable
 * (dashboard). Well inside Prometheus' default 10 s scrape timeout.
 */
export const operatorReadTimeoutMs = 2_000;

/**
 * Gas of each `isSanctioned(address)` eth_call to a sanctions oracle: the Chainalysis oracle's is a
 * mapping read (a few thousand gas); a broken or hostile contract at the configured address runs
 * out here instead of at the node's own cap.
 */
export const sanctionsOracleGasMax = 100_000n;
/** Oracle answers kept per network (each an address and a block number): far more than the addresses one block's payments name. */
export const sanctionsOracleCacheMax = 10_000;
/** SANCTIONS_DENYLIST_FILE is read whole: at most this (≈ 700,000 addresses, one a line). */
export const sanctionsDenylistBytesMax = 32 * 1024 * 1024;
/** Bazaar catalogue jobs (successful settlements carrying a `bazaar` extension) waiting at most; more are dropped (counted). */
export const bazaarQueueMax = 256;
/** One `info`-against-`schema` validation (on a worker thread: the schema is the payer's) takes at most this, else it is skipped. */
export const bazaarValidationTimeoutMs = 2_000;
/** Expired Bazaar entries deleted per catalogue write at most. */
export const bazaarPurgeBatchMax = 100;
/** Payment options (scheme, network, asset) kept per Bazaar entry at most; the most recently paid win. */
export const bazaarAcceptsPerEntryMax = 8;
/** Discovery pages: the default and largest `limit` (x402 v2 §8.1: 1–100, default 20). */
/** Discovery queries running at once per instance (they share the payment path's Postgres pool); more get 429. */
export const discoveryConcurrentMax = 4;
/** Deepest discovery page offset served: deeper pages cost a scan each and no client needs them. */
export const discoveryOffsetMax = 10_000;
export const discoveryPageDefault = 20;
export const discoveryPageMax = 100;
/** Longest `/discovery/search` query, in characters; words searched at most. */
export const discoveryQueryMaxChars = 256;
export const discoveryQueryWordsMax = 8;

type LimitName = keyof typeof limitSpecs;
type ValueOf<S> = S extends { unit: NumberUnit } ? number : S extends { unit: BigintUnit } ? bigint : readonly string[];

export type Limits = { [K in LimitName]: ValueOf<(typeof limitSpecs)[K]> };

/** "minSignerBalanceWei" → "MIN_SIGNER_BALANCE_WEI" (digits stay with the word before them). */
type EnvNameOf<S extends string> = S extends `${infer Head}${infer Rest}`
  ? `${Head extends Lowercase<Head> ? Uppercase<Head> : `_${Head}`}${EnvNameOf<Rest>}`
  : "";
/** Compile-time check that each field is its variable's name: a mismatch fails `tsc` here. */
const fieldsAreTheirVariables: { [K in LimitName]: { env: EnvNameOf<K> } } = limitSpecs;
void fieldsAreTheirVariables;

export const limitNames = Object.keys(limitSpecs) as LimitName[];

type Env = Readonly<Record<string, string | undefined>>;

/** A Limits built field by field from each field's spec. */
function eachLimit(valueOf: (spec: LimitSpec) => Limits[LimitName]): Limits {
  return Object.fromEntries(limitNames.map((name) => [name, valueOf(limitSpecs[name])])) as unknown as Limits;
}

export const defaultLimits: Limits = Object.freeze(eachLimit((spec) => spec.default));

/** The limits from the environment; an unset or empty variable takes its default. Throws ConfigError naming the variable. */
export function loadLimits(env: Env): Limits {
  return eachLimit((spec) => parseLimit(spec, env[spec.env]));
}

function parseLimit(spec: LimitSpec, raw: string | undefined): Limits[LimitName] {
  if (raw === undefined || raw.trim() === "") return spec.default;
  switch (spec.unit) {
    case "addresses":
      return addressList(spec.env, raw, spec.itemsMax);
    case "wei":
    case "gas":
    case "atomic":
      return integerInRange(spec.env, raw, spec.min, spec.max);
    default:
      return Number(integerInRange(spec.env, raw, BigInt(spec.min), BigInt(spec.max)));
  }
}

/** A decimal integer from min to max (compared as bigint: no precision lost on the way). */
export function integerInRange(name: string, raw: string, min: bigint, max: bigint): bigint {
  const text = raw.trim();
  const value = /^[0-9]{1,40}$/.test(text) ? BigInt(text) : undefined;
  if (value === undefined || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** An integer variable outside the limits table (PORT): unset or empty takes the fallback. */
export function integerVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  return Number(integerInRange(name, raw, BigInt(min), BigInt(max)));
}

/** A comma-separated list of addresses, lowercased; any entry that is not an address names the variable. */
export function addressList(name: string, raw: string, itemsMax: number): string[] {
  const entries = splitList(raw);
  if (entries.length > itemsMax) throw new ConfigError(`${name}: at most ${itemsMax} addresses`);
  for (const entry of entries) {
    if (!isAddress(entry, { strict: false })) throw new ConfigError(`${name}: "${entry}" is not an address`);
  }
  return entries.map((entry) => entry.toLowerCase());
}

export function splitList(value: string): string[] {
  return value.split(",").map((item) => item.trim()).filter((item) => item.length > 0);
}
