import { getAddress, isAddress, zeroAddress, type Address } from "viem";
import { findNetwork, NETWORKS, type AssetInfo, type NetworkInfo } from "./networks.js";
import { parseUsdPrice } from "./pricing.js";

export interface ProxyConfig {
  /** Base URL of the x402 facilitator (`/verify`, `/settle` are appended). */
  facilitatorUrl: string;
  /** Sent as `Authorization: Bearer …` on /verify, /settle and /supported (a facilitator with AUTH=api-keys); undefined: no header. */
  facilitatorApiKey: string | undefined;
  /** Where payments go (`payTo`). */
  walletAddress: Address;
  chutesApiKey: string;
  /** Upstream OpenAI-compatible base URL, without trailing slash (`/v1/...` is appended). */
  chutesBaseUrl: string;
  /** USD per 1,000 estimated tokens, as given (decimal string). */
  pricePer1kTokens: string;
  network: NetworkInfo;
  asset: AssetInfo;
  /**
   * Offer `upto` (charged for the tokens used, cap = the quote) before `exact` when the facilitator
   * settles it (UPTO=on, the default); UPTO=off offers `exact` only.
   */
  upto: boolean;
  /** Output tokens assumed (and forwarded as `max_tokens`) when the request sets no limit. */
  defaultMaxTokens: number;
  /** `maxTimeoutSeconds` of the requirements: how long a signed payment stays valid. */
  maxTimeoutSeconds: number;
  /** Bound on each upstream call, body included (a stream included). */
  upstreamTimeoutMs: number;
  /** Bound on each facilitator call (settle waits for the receipt: keep it above the facilitator's budget). */
  facilitatorTimeoutMs: number;
  host: string;
  port: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export const defaults = {
  chutesBaseUrl: "https://llm.chutes.ai",
  pricePer1kTokens: "0.001",
  network: "eip155:84532",
  defaultMaxTokens: 1024,
  maxTimeoutSeconds: 300,
  upstreamTimeoutMs: 120_000,
  facilitatorTimeoutMs: 30_000,
  host: "127.0.0.1",
  port: 4021,
} as const;

type Env = Record<string, string | undefined>;

/** Reads and validates the environment; every problem is reported at once, by variable name. */
export function loadConfig(env: Env): ProxyConfig {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const required = (name: string, hint: string): string => {
    const value = get(name);
    if (value === undefined) problems.push(`${name} is required (${hint})`);
    return value ?? "";
  };
  const url = (name: string, value: string): string => {
    try {
      const parsed = new URL(value);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http(s)");
      if (parsed.username || parsed.password) {
        // fetch refuses such a URL, and its error (quoting the credentials) would reach logs and answers.
        problems.push(`${name} must not hold credentials (user:password@): use FACILITATOR_API_KEY, or a proxy that adds them`);
        return "";
      }
    } catch {
      if (value !== "") problems.push(`${name} must be an http(s) URL, got "${value}"`);
    }
    return value.replace(/\/+$/, "");
  };
  const address = (name: string, value: string): Address => {
    if (value === "") return zeroAddress;
    if (!isAddress(value, { strict: false })) {
      problems.push(`${name} must be a 0x-prefixed 20-byte hex address, got "${value}"`);
      return zeroAddress;
    }
    if (getAddress(value) === zeroAddress) problems.push(`${name} must not be the zero address`);
    return getAddress(value);
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };

  const facilitatorUrl = url("FACILITATOR_URL", required("FACILITATOR_URL", "the x402 facilitator, e.g. http://127.0.0.1:4020"));
  const facilitatorApiKey = get("FACILITATOR_API_KEY");
  // It goes into an HTTP header: one token of visible ASCII (what `keys create` prints), no spaces.
  if (facilitatorApiKey !== undefined && !/^[\x21-\x7e]{1,512}$/.test(facilitatorApiKey)) {
    problems.push("FACILITATOR_API_KEY must be one token of visible ASCII characters (no spaces), as `keys create` prints it");
  }
  const walletAddress = address("WALLET_ADDRESS", required("WALLET_ADDRESS", "the address that receives payments"));
  const chutesApiKey = required("CHUTES_API_KEY", "your Chutes API key, sent upstream as a Bearer token");
  const chutesBaseUrl = url("CHUTES_BASE_URL", get("CHUTES_BASE_URL") ?? defaults.chutesBaseUrl);

  const pricePer1kTokens = get("PRICE_PER_1K_TOKENS") ?? defaults.pricePer1kTokens;
  try {
    parseUsdPrice(pricePer1kTokens);
  } catch (error) {
    problems.push(`PRICE_PER_1K_TOKENS (USD) is ${(error as Error).message}`);
  }

  const networkName = get("NETWORK") ?? defaults.network;
  const network = findNetwork(networkName);
  if (!network) {
    const known = NETWORKS.map((n) => `${n.caip2} / ${n.v1Name}`).join(", ");
    problems.push(`NETWORK "${networkName}" is not supported; use one of ${known}`);
  }
  const assetAddress = get("ASSET_ADDRESS");
  const asset: AssetInfo = {
    address: assetAddress === undefined ? (network?.usdc.address ?? zeroAddress) : address("ASSET_ADDRESS", assetAddress),
    name: get("ASSET_NAME") ?? network?.usdc.name ?? "",
    version: get("ASSET_VERSION") ?? network?.usdc.version ?? "",
  };

  const uptoSetting = (get("UPTO") ?? "on").toLowerCase();
  if (uptoSetting !== "on" && uptoSetting !== "off") problems.push(`UPTO must be "on" or "off", got "${get("UPTO")}"`);

  const config: ProxyConfig = {
    facilitatorUrl,
    facilitatorApiKey,
    walletAddress,
    chutesApiKey,
    chutesBaseUrl,
    pricePer1kTokens,
    network: network ?? NETWORKS[0]!,
    asset,
    upto: uptoSetting !== "off",
    defaultMaxTokens: integer("DEFAULT_MAX_TOKENS", defaults.defaultMaxTokens, 1, 10_000_000),
    maxTimeoutSeconds: defaults.maxTimeoutSeconds,
    upstreamTimeoutMs: integer("UPSTREAM_TIMEOUT_MS", defaults.upstreamTimeoutMs, 1, 3_600_000),
    facilitatorTimeoutMs: integer("FACILITATOR_TIMEOUT_MS", defaults.facilitatorTimeoutMs, 1, 600_000),
    host: get("HOST") ?? defaults.host,
    port: integer("PORT", defaults.port, 0, 65_535),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
