import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { Type, type Static } from "typebox";
import { Compile } from "typebox/compile";
import { getAddress, isAddress, isHex, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { ConfigError } from "./errors.js";
import { parseDatabaseUrl } from "./store/database-url.js";
import { addressList, bigintLimitMax, integerInRange, integerVar, loadLimits, splitList, type Limits } from "./limits.js";
import { builderCodePattern } from "./protocol/builder-code.js";
import { caip2, chainIdOfNetworkArg, type Caip2Network, v1NetworkChainIds } from "./protocol/networks.js";
import { redactedMessage, redactUrl } from "./redact.js";
import { loadScreeningConfig } from "./screening/config.js";
import type { ScreeningConfig } from "./screening/screening.js";

export { defaultLimits, limitSpecs, loadLimits, type Limits } from "./limits.js";

export interface AssetConfig {
  address: Address;
  /** EIP-712 domain name, e.g. "USD Coin"; must match the token's on-chain `name()`. */
  name: string;
  /** EIP-712 domain version, e.g. "2". */
  version: string;
  decimals: number;
  /** Shown with amounts on the dashboard ("12.34 USDC"); default: the EIP-712 name. */
  symbol?: string;
}

export interface NetworkConfig {
  network: Caip2Network;
  chainId: number;
  /** The x402 v1 name ("base"), or null when v1 clients cannot name this chain. */
  v1Name: string | null;
  /** Tried in order; more than one = failover. */
  rpcUrls: string[];
  assets: AssetConfig[];
  /**
   * Block explorer base URL (http or https, no query or fragment), e.g. "https://basescan.org": the
   * dashboard links `<explorerUrl>/tx/<hash>` and `<explorerUrl>/address/<address>`. None: no links.
   */
  explorerUrl?: string;
  /** The setting the RPC URLs came from, for start-up errors (default `RPC_URLS_<chainId>`). */
  rpcUrlsFrom?: string;
  /** The setting the assets came from, for start-up errors (default `FACILITATOR_CONFIG`). */
  assetsFrom?: string;
  /** An `isSanctioned(address) → bool` contract payers and payees are screened against (src/screening/). */
  sanctionsOracle?: Address;
  /** The setting the oracle came from: `SANCTIONS_ORACLE_<chainId>` or `FACILITATOR_CONFIG <network> sanctionsOracle`. */
  sanctionsOracleFrom?: string;
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
  /** SETTLE_BATCH_MAX was set (batching is on by default): a missing BatchSettler is then a warning, not a note. */
  settleBatchMaxSet?: boolean;
  /** Default: openPolicy (no auth, no allowlists). */
  policy?: Policy;
  /** ERC-8021 builder code appended to every settlement transaction's calldata (BUILDER_CODE); none by default. */
  builderCode?: string;
  /** Sanctions screening (denylist file, oracle failure mode); default: none, closed. */
  screening?: ScreeningConfig;
  /** SEND_MODE; default `auto`. */
  sendMode?: SendMode;
}

/**
 * How settlement transactions are handed to the node (SEND_MODE). `auto`: with
 * `eth_sendRawTransactionSync` (EIP-7966: the node answers with the receipt once the transaction is
 * included, a flashblock on Base) through every RPC URL that serves it, asked once per URL; plain
 * `eth_sendRawTransaction` and receipt polling through the others. `sync`: assume every URL serves
 * it (nothing asked first). `async`: never.
 */
export type SendMode = "auto" | "sync" | "async";
export const sendModes: readonly SendMode[] = ["auto", "sync", "async"];

export const openPolicy: Policy = { auth: "off", allowedPayTo: [], amountMaxAtomic: undefined };

/** USDC on the networks we know; the FACILITATOR_CONFIG file may add or override. */
export const builtinNetworks: readonly NetworkConfig[] = [
  {
    network: "eip155:8453",
    chainId: 8453,
    v1Name: "base",
    rpcUrls: ["https://mainnet.base.org"],
    assets: [{ address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", name: "USD Coin", version: "2", decimals: 6, symbol: "USDC" }],
    explorerUrl: "https://basescan.org",
    assetsFrom: "built-in",
  },
  {
    network: "eip155:84532",
    chainId: 84532,
    v1Name: "base-sepolia",
    rpcUrls: ["https://sepolia.base.org"],
    assets: [{ address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", name: "USDC", version: "2", decimals: 6, symbol: "USDC" }],
    explorerUrl: "https://sepolia.basescan.org",
    assetsFrom: "built-in",
  },
];

const AssetFileSchema = Type.Object({
  address: Type.String(),
  name: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
  decimals: Type.Integer({ minimum: 0, maximum: 36 }),
  symbol: Type.Optional(Type.String({ minLength: 1, maxLength: 16, pattern: "^[A-Za-z0-9.$_-]+$" })),
});
const NetworkFileSchema = Type.Object({
  network: Type.String(),
  v1Name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  rpcUrls: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 16 })),
  assets: Type.Optional(Type.Array(AssetFileSchema, { maxItems: 64 })),
  /** null removes a built-in explorer (a local chain that reuses a public chain id). */
  explorerUrl: Type.Optional(Type.Union([Type.String({ maxLength: 512 }), Type.Null()])),
  sanctionsOracle: Type.Optional(Type.String()),
});
const ConfigFileSchema = Type.Object({ networks: Type.Array(NetworkFileSchema, { maxItems: 64 }) });
export type ConfigFile = Static<typeof ConfigFileSchema>;
const configFileValidator = Compile(ConfigFileSchema);

type Env = Readonly<Record<string, string | undefined>>;

/** Builds and validates the configuration; throws ConfigError naming the offending variable. */
export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = parseDatabaseUrl(required(env, "DATABASE_URL"));
  const signerPrivateKeys = parseSignerKeys(required(env, "SIGNER_PRIVATE_KEYS"));
  const file = env.FACILITATOR_CONFIG ? readConfigFile(env.FACILITATOR_CONFIG) : undefined;
  const networks = resolveNetworks(env, file);
  return {
    databaseUrl,
    host: env.HOST ?? "127.0.0.1",
    port: integerVar(env, "PORT", 4020, 0, 65535),
    logLevel: env.LOG_LEVEL ?? "info",
    signerPrivateKeys,
    networks,
    limits: loadLimits(env),
    settleBatchMaxSet: env.SETTLE_BATCH_MAX !== undefined && env.SETTLE_BATCH_MAX.trim() !== "",
    policy: loadPolicy(env),
    builderCode: loadBuilderCode(env),
    screening: loadScreeningConfig(env),
    sendMode: loadSendMode(env),
  };
}

/** SEND_MODE: auto (default), sync or async (see SendMode). */
export function loadSendMode(env: Env): SendMode {
  const raw = env.SEND_MODE?.trim() ?? "";
  if (raw === "") return "auto";
  if (!(sendModes as readonly string[]).includes(raw)) throw new ConfigError(`SEND_MODE must be auto, sync or async, got "${raw.slice(0, 64)}"${raw.length > 64 ? "…" : ""}`);
  return raw as SendMode;
}

/**
 * BUILDER_CODE: the operator's ERC-8021 builder code, written as the `w` (wallet) attribution of
 * every settlement transaction (protocol/builder-code.ts). Unset or empty: none.
 */
export function loadBuilderCode(env: Env): string | undefined {
  const raw = env.BUILDER_CODE?.trim() ?? "";
  if (raw === "") return undefined;
  if (!builderCodePattern.test(raw)) {
    throw new ConfigError(`BUILDER_CODE must be 1-32 characters of a-z, 0-9 and _ (an ERC-8021 builder code), got "${raw.slice(0, 64)}"${raw.length > 64 ? "…" : ""}`);
  }
  return raw;
}

/** Payees one facilitator may be limited to: far more than any operator lists, and still a bound. */
const allowedPayToMax = 10_000;

export function loadPolicy(env: Env): Policy {
  const auth = env.AUTH ?? "off";
  if (auth !== "off" && auth !== "api-keys") throw new ConfigError(`AUTH must be "off" or "api-keys", got "${auth}"`);
  return {
    auth,
    allowedPayTo: env.ALLOWED_PAY_TO ? addressList("ALLOWED_PAY_TO", env.ALLOWED_PAY_TO, allowedPayToMax) : [],
    amountMaxAtomic: env.MAX_AMOUNT_ATOMIC?.trim() ? integerInRange("MAX_AMOUNT_ATOMIC", env.MAX_AMOUNT_ATOMIC, 1n, bigintLimitMax) : undefined,
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

function resolveNetworks(env: Env, file: ConfigFile | undefined): NetworkConfig[] {
  const known = new Map<number, NetworkConfig>(builtinNetworks.map((n) => [n.chainId, structuredClone(n)]));
  for (const entry of file?.networks ?? []) {
    const merged = mergeFileNetwork(known, entry);
    known.set(merged.chainId, merged);
  }
  // Networks served: NETWORKS if given, else every network the config file names, else Base (what
  // `docker compose up` with only a signer key means).
  const wanted = env.NETWORKS
    ? splitList(env.NETWORKS).map((name) => networkChainId(name, "NETWORKS"))
    : file
      ? file.networks.map((entry) => networkChainId(entry.network, "FACILITATOR_CONFIG"))
      : [8453];
  if (wanted.length === 0) throw new ConfigError("NETWORKS is empty: name at least one network, e.g. NETWORKS=base");
  const served: NetworkConfig[] = [];
  for (const chainId of new Set(wanted)) {
    const network = known.get(chainId);
    if (!network) throw new ConfigError(`network eip155:${chainId} has no configuration: add it to FACILITATOR_CONFIG`);
    const rpcOverride = env[`RPC_URLS_${chainId}`];
    if (rpcOverride) {
      network.rpcUrls = splitList(rpcOverride).map((url, index) => rpcUrl(url, `RPC_URLS_${chainId}`, index));
      network.rpcUrlsFrom = `RPC_URLS_${chainId}`;
    }
    const oracleOverride = env[`SANCTIONS_ORACLE_${chainId}`]?.trim();
    if (oracleOverride) {
      network.sanctionsOracle = oracleAddress(oracleOverride, `SANCTIONS_ORACLE_${chainId}`);
      network.sanctionsOracleFrom = `SANCTIONS_ORACLE_${chainId}`;
    }
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
  const explorer = entry.explorerUrl === undefined ? base?.explorerUrl : entry.explorerUrl === null ? undefined : explorerUrl(entry.explorerUrl, `FACILITATOR_CONFIG ${caip2(chainId)} explorerUrl`);
  return {
    network: caip2(chainId),
    chainId,
    v1Name,
    ...(explorer === undefined ? {} : { explorerUrl: explorer }),
    rpcUrls: entry.rpcUrls?.map((url, index) => rpcUrl(url, `FACILITATOR_CONFIG ${caip2(chainId)} rpcUrls`, index)) ?? base?.rpcUrls ?? [],
    assets: assets ?? base?.assets ?? [],
    rpcUrlsFrom: entry.rpcUrls ? `FACILITATOR_CONFIG ${caip2(chainId)} rpcUrls` : base?.rpcUrlsFrom,
    assetsFrom: assets ? "FACILITATOR_CONFIG" : base?.assetsFrom,
    ...(entry.sanctionsOracle !== undefined
      ? { sanctionsOracle: oracleAddress(entry.sanctionsOracle, `FACILITATOR_CONFIG ${caip2(chainId)} sanctionsOracle`), sanctionsOracleFrom: `FACILITATOR_CONFIG ${caip2(chainId)} sanctionsOracle` }
      : base?.sanctionsOracle
        ? { sanctionsOracle: base.sanctionsOracle, sanctionsOracleFrom: base.sanctionsOracleFrom }
        : {}),
  };
}

function oracleAddress(value: string, source: string): Address {
  if (!isAddress(value.trim(), { strict: false })) throw new ConfigError(`${source}: "${value}" is not an address`);
  return getAddress(value.trim());
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
    try {
      privateKeyToAccount(hex);
    } catch {
      throw new ConfigError(`SIGNER_PRIVATE_KEYS: key #${index + 1} is not a valid secp256k1 private key (zero, or not below the curve order)`);
    }
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

/**
 * A block explorer's base URL: http(s) only (it becomes a link in the dashboard: never javascript:
 * or data:), no credentials, query or fragment (the path is appended to); the trailing "/" dropped.
 */
export function explorerUrl(url: string, source: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${source}: "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new ConfigError(`${source}: "${url}" is not an http(s) URL`);
  if (parsed.username !== "" || parsed.password !== "") throw new ConfigError(`${source}: ${redactUrl(url)} must not carry credentials: it is shown to every dashboard viewer`);
  if (parsed.search !== "" || parsed.hash !== "" || url.includes("?") || url.includes("#")) {
    throw new ConfigError(`${source}: "${url}" must be a plain base URL (no query or fragment), e.g. https://basescan.org`);
  }
  return parsed.href.replace(/\/+$/, "");
}

/** DATABASE_URL, required and a postgres:// URL (for the commands that need only the database). */
export function databaseUrlFrom(env: Env): string {
  return parseDatabaseUrl(required(env, "DATABASE_URL"));
}

function required(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === "") throw new ConfigError(`${name} is required`);
  return value.trim();
}

/** True when nothing says where to run: `npm start` then runs the local sandbox. */
export function isSandboxEnv(env: Env = process.env): boolean {
  return !env.DATABASE_URL && !env.NETWORKS && !env.FACILITATOR_CONFIG && !env.SIGNER_PRIVATE_KEYS;
}
