import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { Type, type Static } from "typebox";
import { Compile } from "typebox/compile";
import { getAddress, isAddress, isHex, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { ConfigError } from "./errors.js";
import { caip2, chainIdOfNetworkArg, type Caip2Network, v1NetworkChainIds } from "./protocol/networks.js";
import { redactedMessage, redactUrl } from "./redact.js";

export interface AssetConfig {
  address: Address;
  /** EIP-712 domain name, e.g. "USD Coin"; must match the token's on-chain `name()`. */
  name: string;
  /** EIP-712 domain version, e.g. "2". */
  version: string;
  decimals: number;
}

export interface NetworkConfig {
  network: Caip2Network;
  chainId: number;
  /** The x402 v1 name ("base"), or null when v1 clients cannot name this chain. */
  v1Name: string | null;
  /** Tried in order; more than one = failover. */
  rpcUrls: string[];
  assets: AssetConfig[];
}

export interface Limits {
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  /** Longest /settle waits for a receipt before answering settlement_pending (below clients' 30 s). */
  settleBudgetMs: number;
  /** Per RPC request (viem http transport timeout). */
  rpcTimeoutMs: number;
  rpcRetryCount: number;
  /** Calls per JSON-RPC batch: a batch answers when its slowest call does, so keep it small. */
  rpcBatchSize: number;
  gasPerSettlementMax: bigint;
  /** Cap for a settlement that also deploys the payer's ERC-6492 wallet; 0 refuses such settlements. */
  gasPerDeployingSettlementMax: bigint;
  /**
   * ERC-6492 factories (lowercase) whose deployments the facilitator runs and pays for; empty (the
   * default) refuses every counterfactual wallet with eip6492_factory_not_allowed. A factory call is
   * code the payer chooses: with any factory allowed, anyone could make us pay for arbitrary work.
   */
  erc6492AllowedFactories: readonly string[];
  /** Smallest payment accepted, in atomic units (≥ 1): a 0-value payment costs us gas and pays nobody. */
  minAmountAtomic: bigint;
  /**
   * A payer whose address has code and whose settlement failed on chain although its simulation
   * passed (its code can tell a simulation apart) is refused for this long; 0 turns it off.
   */
  payerCodeCooldownMs: number;
  /** Refuse settlements while a signer holds less native currency than this (on top of one settlement's cost). */
  minSignerBalanceWei: bigint;
  /** Never pay more than this per gas; above it settlements are refused (503) rather than overpaid. */
  maxFeePerGasWei: bigint;
  /** Settlements one signer may have between nonce and receipt, per instance; more wait for a slot. */
  inFlightPerSignerMax: number;
  /**
   * Settlements waiting for the same signer go out as one BatchSettler transaction of at
   * most this many (each call may fail alone); 1 = one transaction per settlement. On by default:
   * it saves gas and raises throughput per key (bench/results.json).
   */
  settleBatchMax: number;
  /** Gas limit of one batch transaction at most; a longer queue goes out as several transactions. */
  batchGasMax: bigint;
  /** A submitted tx with no receipt for this long is rebroadcast, then replaced with a higher fee. */
  stuckAfterMs: number;
  feeBumpsMax: number;
  /** Each replacement raises both fee caps by this much (nodes require at least 10 %). */
  feeBumpPercent: number;
  /** A nonce handed back and not reused for this long is filled with a 0-value self-transfer. */
  nonceGapHealAfterMs: number;
  dbPoolMax: number;
  dbStatementTimeoutMs: number;
  /** Requests per minute per IP on /verify and /settle. */
  rateLimitPerMinute: number;
  /** How often the background watcher looks for unfinished settlements. */
  reconcileIntervalMs: number;
  /** How long a duplicate /settle waits for the first call's outcome. */
  duplicateWaitMs: number;
}

/** What callers may do, whoever they are (per-key limits come on top). */
export interface Policy {
  /** "api-keys": /verify and /settle need `Authorization: Bearer <key>`. */
  auth: "off" | "api-keys";
  /** Lowercase payTo addresses accepted; empty = any. */
  allowedPayTo: string[];
  /** Largest payment accepted, in atomic units of the asset; undefined = no cap. */
  amountMaxAtomic: bigint | undefined;
  /** Which peers may tell us the caller's address (X-Forwarded-For); undefined = off. */
  trustProxy?: TrustProxy;
}

/**
 * Fastify's trustProxy, limited to the safe forms: false (the socket's peer is the caller) or the
 * proxies' addresses (IPs, CIDR ranges, or proxy-addr's loopback / linklocal / uniquelocal). Never
 * `true` (believes X-Forwarded-For from anyone) and never a hop count: Fastify 5.12 ignores one
 * (it cannot tell a proxy from a client that reached the port directly and sent the header itself).
 */
export type TrustProxy = false | string[];

export interface Config {
  databaseUrl: string;
  host: string;
  port: number;
  logLevel: string;
  signerPrivateKeys: Hex[];
  networks: NetworkConfig[];
  limits: Limits;
  /** Default: openPolicy (no auth, no allowlists). */
  policy?: Policy;
}

export const openPolicy: Policy = { auth: "off", allowedPayTo: [], amountMaxAtomic: undefined };

export const defaultLimits: Limits = {
  bodyLimitBytes: 64 * 1024,
  requestTimeoutMs: 30_000,
  settleBudgetMs: 20_000,
  rpcTimeoutMs: 5_000,
  rpcRetryCount: 1,
  rpcBatchSize: 64,
  gasPerSettlementMax: 300_000n,
  gasPerDeployingSettlementMax: 1_000_000n,
  erc6492AllowedFactories: [],
  minAmountAtomic: 1n,
  payerCodeCooldownMs: 3_600_000,
  minSignerBalanceWei: 0n,
  maxFeePerGasWei: 100_000_000_000n, // 100 gwei: Base runs at a tiny fraction of that
  inFlightPerSignerMax: 64,
  settleBatchMax: 32,
  batchGasMax: 10_000_000n, // below EIP-7825's 16.7M per-transaction cap and far below Base's block gas limit
  stuckAfterMs: 30_000,
  feeBumpsMax: 3,
  feeBumpPercent: 25,
  nonceGapHealAfterMs: 5_000,
  dbPoolMax: 20,
  dbStatementTimeoutMs: 5_000,
  rateLimitPerMinute: 6_000,
  reconcileIntervalMs: 2_000,
  duplicateWaitMs: 20_000,
};

/** USDC on the networks we know; the FACILITATOR_CONFIG file may add or override. */
export const builtinNetworks: readonly NetworkConfig[] = [
  {
    network: "eip155:8453",
    chainId: 8453,
    v1Name: "base",
    rpcUrls: ["https://mainnet.base.org"],
    assets: [{ address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", name: "USD Coin", version: "2", decimals: 6 }],
  },
  {
    network: "eip155:84532",
    chainId: 84532,
    v1Name: "base-sepolia",
    rpcUrls: ["https://sepolia.base.org"],
    assets: [{ address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", name: "USDC", version: "2", decimals: 6 }],
  },
];

const AssetFileSchema = Type.Object({
  address: Type.String(),
  name: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
  decimals: Type.Integer({ minimum: 0, maximum: 36 }),
});
const NetworkFileSchema = Type.Object({
  network: Type.String(),
  v1Name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  rpcUrls: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 16 })),
  assets: Type.Optional(Type.Array(AssetFileSchema, { maxItems: 64 })),
});
const ConfigFileSchema = Type.Object({ networks: Type.Array(NetworkFileSchema, { maxItems: 64 }) });
export type ConfigFile = Static<typeof ConfigFileSchema>;
const configFileValidator = Compile(ConfigFileSchema);

type Env = Readonly<Record<string, string | undefined>>;

/** Builds and validates the configuration; throws ConfigError naming the offending variable. */
export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = required(env, "DATABASE_URL");
  const signerPrivateKeys = parseSignerKeys(required(env, "SIGNER_PRIVATE_KEYS"));
  const file = env.FACILITATOR_CONFIG ? readConfigFile(env.FACILITATOR_CONFIG) : undefined;
  const networks = resolveNetworks(env, file);
  return {
    databaseUrl,
    host: env.HOST ?? "127.0.0.1",
    port: integer(env, "PORT", 4020, 0, 65535),
    logLevel: env.LOG_LEVEL ?? "info",
    signerPrivateKeys,
    networks,
    limits: loadLimits(env),
    policy: loadPolicy(env),
  };
}

export function loadPolicy(env: Env): Policy {
  const auth = env.AUTH ?? "off";
  if (auth !== "off" && auth !== "api-keys") throw new ConfigError(`AUTH must be "off" or "api-keys", got "${auth}"`);
  const allowedPayTo = env.ALLOWED_PAY_TO ? splitList(env.ALLOWED_PAY_TO) : [];
  for (const address of allowedPayTo) {
    if (!isAddress(address, { strict: false })) throw new ConfigError(`ALLOWED_PAY_TO: "${address}" is not an address`);
  }
  return {
    auth,
    allowedPayTo: allowedPayTo.map((address) => address.toLowerCase()),
    amountMaxAtomic: env.MAX_AMOUNT_ATOMIC ? bigintVar(env, "MAX_AMOUNT_ATOMIC", 0n) : undefined,
    trustProxy: parseTrustProxy(env.TRUST_PROXY?.trim() ?? ""),
  };
}

const trustProxyNames = new Set(["loopback", "linklocal", "uniquelocal"]);
const trustEveryone = "would believe X-Forwarded-For from every peer, so any client could choose its address (and its rate-limit bucket)";

function parseTrustProxy(raw: string): TrustProxy {
  if (raw === "" || raw === "off" || raw === "0") return false; // zero hops trusted = off
  if (/^(true|on|yes|all|\*)$/i.test(raw)) {
    throw new ConfigError(`TRUST_PROXY="${raw}" ${trustEveryone}: name the proxies' addresses, e.g. loopback (a proxy on this host) or 10.0.0.0/8`);
  }
  if (/^-?[0-9]+(\.[0-9]+)?$/.test(raw)) {
    throw new ConfigError(
      `TRUST_PROXY="${raw}": a hop count trusts whoever connects, including a client that reaches the port directly (Fastify 5.12 ignores hop counts for that reason); name the proxies' addresses instead, e.g. loopback or 10.0.0.0/8`,
    );
  }
  return splitList(raw).map((entry) => trustedProxy(entry, raw));
}

/** One entry of the TRUST_PROXY list: an IP, a CIDR range (not /0: that is every peer), or a proxy-addr name. */
function trustedProxy(entry: string, raw: string): string {
  if (trustProxyNames.has(entry) || isIP(entry) !== 0) return entry;
  const cidr = /^([^/]+)\/([0-9]{1,3})$/.exec(entry);
  const family = cidr ? isIP(cidr[1]!) : 0;
  const prefix = cidr ? Number(cidr[2]) : NaN;
  if (family === 0 || prefix > (family === 4 ? 32 : 128)) {
    throw new ConfigError(`TRUST_PROXY: "${entry}" is not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal`);
  }
  if (prefix === 0) throw new ConfigError(`TRUST_PROXY: "${entry}" (in "${raw}") ${trustEveryone}; name the proxies' range`);
  return entry;
}

export function loadLimits(env: Env): Limits {
  const d = defaultLimits;
  return {
    bodyLimitBytes: integer(env, "BODY_LIMIT_BYTES", d.bodyLimitBytes, 1024, 10 * 1024 * 1024),
    requestTimeoutMs: integer(env, "REQUEST_TIMEOUT_MS", d.requestTimeoutMs, 1000, 600_000),
    settleBudgetMs: integer(env, "SETTLE_BUDGET_MS", d.settleBudgetMs, 100, 120_000),
    rpcTimeoutMs: integer(env, "RPC_TIMEOUT_MS", d.rpcTimeoutMs, 100, 60_000),
    rpcRetryCount: integer(env, "RPC_RETRY_COUNT", d.rpcRetryCount, 0, 5),
    rpcBatchSize: integer(env, "RPC_BATCH_SIZE", d.rpcBatchSize, 1, 1_000),
    gasPerSettlementMax: BigInt(integer(env, "GAS_PER_SETTLEMENT_MAX", Number(d.gasPerSettlementMax), 21_000, 10_000_000)),
    gasPerDeployingSettlementMax: BigInt(integer(env, "GAS_PER_DEPLOYING_SETTLEMENT_MAX", Number(d.gasPerDeployingSettlementMax), 0, 30_000_000)),
    erc6492AllowedFactories: env.ERC6492_ALLOWED_FACTORIES ? addressList(env, "ERC6492_ALLOWED_FACTORIES") : d.erc6492AllowedFactories,
    minAmountAtomic: bigintVar(env, "MIN_AMOUNT_ATOMIC", d.minAmountAtomic),
    payerCodeCooldownMs: integer(env, "PAYER_CODE_COOLDOWN_MS", d.payerCodeCooldownMs, 0, 30 * 24 * 3_600_000),
    maxFeePerGasWei: bigintVar(env, "MAX_FEE_PER_GAS_WEI", d.maxFeePerGasWei),
    minSignerBalanceWei: env.MIN_SIGNER_BALANCE_WEI ? bigintVar(env, "MIN_SIGNER_BALANCE_WEI", 1n) : d.minSignerBalanceWei,
    inFlightPerSignerMax: integer(env, "IN_FLIGHT_PER_SIGNER_MAX", d.inFlightPerSignerMax, 1, 10_000),
    settleBatchMax: integer(env, "SETTLE_BATCH_MAX", d.settleBatchMax, 1, 256),
    batchGasMax: BigInt(integer(env, "BATCH_GAS_MAX", Number(d.batchGasMax), 100_000, 30_000_000)),
    stuckAfterMs: integer(env, "STUCK_AFTER_MS", d.stuckAfterMs, 100, 3_600_000),
    feeBumpsMax: integer(env, "FEE_BUMPS_MAX", d.feeBumpsMax, 0, 20),
    feeBumpPercent: integer(env, "FEE_BUMP_PERCENT", d.feeBumpPercent, 10, 500),
    nonceGapHealAfterMs: integer(env, "NONCE_GAP_HEAL_AFTER_MS", d.nonceGapHealAfterMs, 0, 3_600_000),
    dbPoolMax: integer(env, "DB_POOL_MAX", d.dbPoolMax, 1, 500),
    dbStatementTimeoutMs: integer(env, "DB_STATEMENT_TIMEOUT_MS", d.dbStatementTimeoutMs, 100, 600_000),
    rateLimitPerMinute: integer(env, "RATE_LIMIT_PER_MINUTE", d.rateLimitPerMinute, 1, 10_000_000),
    reconcileIntervalMs: integer(env, "RECONCILE_INTERVAL_MS", d.reconcileIntervalMs, 50, 3_600_000),
    duplicateWaitMs: integer(env, "DUPLICATE_WAIT_MS", d.duplicateWaitMs, 0, 120_000),
  };
}

function resolveNetworks(env: Env, file: ConfigFile | undefined): NetworkConfig[] {
  const known = new Map<number, NetworkConfig>(builtinNetworks.map((n) => [n.chainId, structuredClone(n)]));
  for (const entry of file?.networks ?? []) {
    const merged = mergeFileNetwork(known, entry);
    known.set(merged.chainId, merged);
  }
  // Networks served: NETWORKS if given, else every network the config file names.
  const wanted = env.NETWORKS
    ? splitList(env.NETWORKS).map((name) => networkChainId(name, "NETWORKS"))
    : (file?.networks ?? []).map((entry) => networkChainId(entry.network, "FACILITATOR_CONFIG"));
  if (wanted.length === 0) throw new ConfigError("NETWORKS is empty: name at least one network, e.g. NETWORKS=base");
  const served: NetworkConfig[] = [];
  for (const chainId of new Set(wanted)) {
    const network = known.get(chainId);
    if (!network) throw new ConfigError(`network eip155:${chainId} has no configuration: add it to FACILITATOR_CONFIG`);
    const rpcOverride = env[`RPC_URLS_${chainId}`];
    if (rpcOverride) network.rpcUrls = splitList(rpcOverride).map((url, index) => rpcUrl(url, `RPC_URLS_${chainId}`, index));
    if (network.assets.length === 0) throw new ConfigError(`network ${network.network} has no assets`);
    served.push(network);
  }
  return served;
}

function mergeFileNetwork(known: Map<number, NetworkConfig>, entry: ConfigFile["networks"][number]): NetworkConfig {
  const chainId = networkChainId(entry.network, "FACILITATOR_CONFIG");
  const base = known.get(chainId);
  const v1Name = entry.v1Name === undefined ? (base?.v1Name ?? null) : entry.v1Name;
  if (v1Name !== null && v1NetworkChainIds[v1Name] !== chainId) {
    throw new ConfigError(`FACILITATOR_CONFIG: v1Name "${v1Name}" is not the x402 v1 name of chain ${chainId}`);
  }
  const assets = entry.assets?.map((asset) => {
    if (!isAddress(asset.address, { strict: false })) {
      throw new ConfigError(`FACILITATOR_CONFIG: asset address "${asset.address}" is not an address`);
    }
    return { ...asset, address: getAddress(asset.address) };
  });
  return {
    network: caip2(chainId),
    chainId,
    v1Name,
    rpcUrls: entry.rpcUrls?.map((url, index) => rpcUrl(url, `FACILITATOR_CONFIG ${caip2(chainId)} rpcUrls`, index)) ?? base?.rpcUrls ?? [],
    assets: assets ?? base?.assets ?? [],
  };
}

function readConfigFile(path: string): ConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    // V8 quotes a piece of the text in a JSON error ("SECRET…" is not valid JSON): never print it.
    const reason = error instanceof SyntaxError ? "it is not valid JSON" : redactedMessage(error);
    throw new ConfigError(`FACILITATOR_CONFIG: cannot read ${path}: ${reason}`);
  }
  if (!configFileValidator.Check(parsed)) {
    const first = configFileValidator.Errors(parsed)[0];
    throw new ConfigError(`FACILITATOR_CONFIG: ${first?.instancePath || "/"} ${first?.message ?? "is invalid"}`);
  }
  return parsed;
}

function parseSignerKeys(value: string): Hex[] {
  const keys = splitList(value);
  if (keys.length === 0 || keys.length > 64) throw new ConfigError("SIGNER_PRIVATE_KEYS: give 1 to 64 keys, comma-separated");
  return keys.map((key, index) => {
    const hex = (key.startsWith("0x") ? key : `0x${key}`) as Hex;
    if (!isHex(hex) || hex.length !== 66) throw new ConfigError(`SIGNER_PRIVATE_KEYS: key #${index + 1} is not 32 bytes of hex`);
    privateKeyToAccount(hex); // throws on an out-of-range scalar
    return hex;
  });
}

const networkChainId = chainIdOfNetworkArg;

/**
 * An RPC URL often holds an API key (in its path, query or userinfo), and a configuration error is
 * printed and logged: name a bad URL by its place in the list and scheme://host only.
 */
function rpcUrl(url: string, source: string, index: number): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${source}: URL #${index + 1} is not an http(s) URL: it does not parse (its text is not shown: it may hold an API key)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    const shown = parsed.host === "" ? `scheme ${parsed.protocol}` : redactUrl(url);
    throw new ConfigError(`${source}: URL #${index + 1} (${shown}) is not an http(s) URL`);
  }
  return url;
}

function required(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === "") throw new ConfigError(`${name} is required`);
  return value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function bigintVar(env: Env, name: string, fallback: bigint): bigint {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^[1-9][0-9]{0,30}$/.test(raw)) throw new ConfigError(`${name} must be a positive integer, got "${raw}"`);
  return BigInt(raw);
}

/** A comma-separated list of addresses, lowercased; any entry that is not an address names the variable. */
function addressList(env: Env, name: string): string[] {
  const entries = splitList(env[name] ?? "");
  if (entries.length > 256) throw new ConfigError(`${name}: at most 256 addresses`);
  for (const entry of entries) {
    if (!isAddress(entry, { strict: false })) throw new ConfigError(`${name}: "${entry}" is not an address`);
  }
  return entries.map((entry) => entry.toLowerCase());
}

function splitList(value: string): string[] {
  return value.split(",").map((item) => item.trim()).filter((item) => item.length > 0);
}

/** True when nothing says where to run: `npm start` then runs the local sandbox. */
export function isSandboxEnv(env: Env = process.env): boolean {
  return !env.DATABASE_URL && !env.NETWORKS && !env.FACILITATOR_CONFIG && !env.SIGNER_PRIVATE_KEYS;
}
