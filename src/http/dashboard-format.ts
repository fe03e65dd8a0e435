import { formatUnits } from "viem";
import type { NetworkConfig } from "../config.js";
import { caip2, v1NetworkChainIds } from "../protocol/networks.js";

/**
 * What the dashboard shows for chains, amounts and explorer links: pure functions of the
 * configuration and the stored values.
 */

const v1NameOfChain = new Map<number, string>(Object.entries(v1NetworkChainIds).map(([name, chainId]) => [chainId, name]));

/**
 * One label per chain, whichever spelling the caller used ("base-sepolia" or "eip155:84532"):
 * "Base Sepolia (eip155:84532)" for a chain x402 v1 names, "eip155:31337" for any other.
 */
export function chainLabel(chainId: number): string {
  const v1Name = v1NameOfChain.get(chainId);
  if (v1Name === undefined) return caip2(chainId);
  const title = v1Name
    .split("-")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
  return `${title} (${caip2(chainId)})`;
}

const nativeDecimals = 18;
const nativeShownDecimals = 4;

/**
 * A native balance rounded down to 4 decimals, with its unit: "0.0421 ETH", "12 ETH"; "0 ETH" when
 * empty and "< 0.0001 ETH" when there is less than that but not nothing. Rounded down, never up: a
 * gas wallet never looks fuller than it is.
 */
export function formatNativeBalance(wei: bigint, symbol = "ETH"): string {
  if (wei === 0n) return `0 ${symbol}`;
  const step = 10n ** BigInt(nativeDecimals - nativeShownDecimals);
  const magnitude = wei < 0n ? -wei : wei;
  if (magnitude < step) return `${wei < 0n ? "> -" : "< "}0.${"0".repeat(nativeShownDecimals - 1)}1 ${symbol}`;
  const rounded = (magnitude / step) * step;
  return `${wei < 0n ? "-" : ""}${formatUnits(rounded, nativeDecimals)} ${symbol}`;
}

/** A token amount, exact, in the asset's decimals and with its symbol: "12.34 USDC", "0.012345 USDC". */
export function formatTokenAmount(atomic: bigint, decimals: number, symbol: string): string {
  return `${formatUnits(atomic, decimals)} ${symbol}`;
}

const txHashPattern = /^0x[0-9a-fA-F]{64}$/;
const addressPattern = /^0x[0-9a-fA-F]{40}$/;

export interface Explorer {
  tx(hash: string | null | undefined): string | undefined;
  address(address: string | null | undefined): string | undefined;
}

const noExplorer: Explorer = { tx: () => undefined, address: () => undefined };

/**
 * Links into the chain's block explorer, or none when the configuration names no explorer. The base
 * URL is an http(s) URL checked at start (config.ts explorerUrl); a path is appended only to a value
 * shaped like a hash or an address, so nothing from the database can steer the link elsewhere.
 */
export function explorerFor(network: Pick<NetworkConfig, "explorerUrl"> | undefined): Explorer {
  const base = network?.explorerUrl;
  if (base === undefined || !/^https?:\/\//i.test(base)) return noExplorer;
  return {
    tx: (hash) => (hash && txHashPattern.test(hash) ? `${base}/tx/${hash}` : undefined),
    address: (address) => (address && addressPattern.test(address) ? `${base}/address/${address}` : undefined),
  };
}
