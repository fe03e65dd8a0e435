import { createPublicClient, decodeFunctionResult, domainSeparator, encodeFunctionData, formatEther, http, parseAbi, zeroAddress, type Address, type Hex, type PublicClient } from "viem";
import type { NetworkConfig } from "./config.js";
import { ConfigError } from "./errors.js";
import { redactedFirstLine } from "./redact.js";
import { systemClock, type Clock } from "./clock.js";
import { isTransportFailure } from "./chain/rpc-errors.js";
import { hasCode } from "./chain/code.js";
import { batchSettlerAddress } from "./contracts/batch-settler.js";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "./contracts/permit2.js";
import { eip3009Abi } from "./exact-evm/abi.js";
import { sanctionsOracleGasMax } from "./limits.js";
import { sanctionsOracleAbi } from "./screening/oracle.js";

/**
 * Start-up self-checks of what the operator configured (ARCHITECTURE.md pitfall 19): every RPC URL
 * serves the configured chain, every asset is a contract whose EIP-712 domain is the configured
 * one, and a sanctions oracle answers `isSanctioned(address)` (with SANCTIONS_ORACLE_FAILURE=closed a
 * wrong address would refuse every payment; with open, screen none). A wrong chain or a wrong domain would start "ready" and then refuse every honest payment
 * (or read receipts of another chain), so either stops the process with one line naming the
 * setting. An RPC URL that does not answer is only a warning (one of several may be down at start);
 * /ready lists it until it answers, with the right chain.
 */

/** One RPC URL as the operator configured it; `endpoint` is host:port only (paths and queries can hold API keys). */
export interface RpcUrlEntry {
  network: string;
  chainId: number;
  /** The setting it came from, e.g. `RPC_URLS_8453 #2`. */
  setting: string;
  endpoint: string;
  url: string;
}

/** How long one round of /ready's RPC URL rechecks is reused (see RpcUrlChecks.problems). */
const recheckIntervalMs = 5_000;

const domainSeparatorAbi = parseAbi(["function DOMAIN_SEPARATOR() view returns (bytes32)"]);

export function rpcUrlEntries(networks: readonly NetworkConfig[]): RpcUrlEntry[] {
  return networks.flatMap((network) =>
    network.rpcUrls.map((url, index) => ({
      network: network.network,
      chainId: network.chainId,
      setting: `${network.rpcUrlsFrom ?? `RPC_URLS_${network.chainId}`} #${index + 1}`,
      endpoint: endpointOf(url),
      url,
    })),
  );
}

function endpointOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(unparsable URL)";
  }
}

function clientOf(url: string, timeoutMs: number): PublicClient {
  return createPublicClient({ transport: http(url, { timeout: timeoutMs, retryCount: 0 }) });
}

/**
 * RPC URLs that did not answer yet: asked again on each `recheck()` (by /ready), dropped once they
 * answer the configured chain; one that then answers another chain is reported as wrong for good.
 */
export class RpcUrlChecks {
  private unverified: RpcUrlEntry[];
  private readonly wrongChain = new Map<RpcUrlEntry, string>();
  /** /ready is public: concurrent and back-to-back calls share one round of eth_chainId requests. */
  private shared: { promise: Promise<string[]>; startedAtMs: number } | undefined;

  constructor(
    entries: readonly RpcUrlEntry[],
    private readonly timeoutMs: number,
    private readonly clock: Pick<Clock, "monotonicMs"> = systemClock,
  ) {
    this.unverified = [...entries];
  }

  /**
   * Asks every unverified URL for its chain id. Throws ConfigError (at start, via `checkAtStart`) or
   * records the mismatch (later); returns the URLs still unreachable, each with why.
   */
  async recheck(timeoutMs = this.timeoutMs): Promise<Array<{ entry: RpcUrlEntry; problem: string }>> {
    const results = await Promise.all(
      this.unverified.map(async (entry) => {
        try {
          const answered = await clientOf(entry.url, timeoutMs).getChainId();
          return { entry, answered };
        } catch (error) {
          return { entry, problem: `unreachable: ${redactedFirstLine(error)}` };
        }
      }),
    );
    const stillUnreachable: Array<{ entry: RpcUrlEntry; problem: string }> = [];
    for (const result of results) {
      if ("problem" in result) {
        stillUnreachable.push({ entry: result.entry, problem: result.problem! });
      } else if (result.answered !== result.entry.chainId) {
        this.wrongChain.set(result.entry, wrongChainMessage(result.entry, result.answered));
      }
    }
    this.unverified = stillUnreachable.map((result) => result.entry);
    return stillUnreachable;
  }

  /** Settings whose URL answered another chain (each one line). */
  wrongChains(): string[] {
    return [...this.wrongChain.values()];
  }

  /**
   * /ready's view: every URL not (yet) known to serve its chain, each asked within `timeoutMs`. One
   * round at a time, reused for recheckIntervalMs, so a flood of /ready cannot multiply RPC calls.
   */
  problems(timeoutMs = this.timeoutMs): Promise<string[]> {
    if (this.unverified.length === 0) return Promise.resolve(this.wrongChains());
    const nowMs = this.clock.monotonicMs();
    if (this.shared && nowMs - this.shared.startedAtMs < recheckIntervalMs) return this.shared.promise;
    const promise = this.recheck(timeoutMs).then((unreachable) => [...this.wrongChains(), ...unreachable.map(({ entry, problem }) => `${entry.setting} (${entry.endpoint}) ${problem}`)]);
    this.shared = { promise, startedAtMs: nowMs };
    return promise;
  }
}

function wrongChainMessage(entry: RpcUrlEntry, answered: number): string {
  return `${entry.setting} (${entry.endpoint}) answers chain ${answered}, not ${entry.chainId} (${entry.network})`;
}

/**
 * At start: a URL on another chain stops the process; unreachable ones are returned (warnings).
 * Then every asset is checked through a URL that answered.
 */
export async function checkAtStart(
  networks: readonly NetworkConfig[],
  timeoutMs: number,
  signers: { addresses: readonly Address[]; minBalanceWei: bigint } = { addresses: [], minBalanceWei: 0n },
  batching: { settleBatchMax: number; requested: boolean } = { settleBatchMax: 1, requested: false },
): Promise<{ rpcUrls: RpcUrlChecks; warnings: string[]; notes: string[] }> {
  const entries = rpcUrlEntries(networks);
  const rpcUrls = new RpcUrlChecks(entries, timeoutMs);
  const unreachable = await rpcUrls.recheck();
  const wrong = rpcUrls.wrongChains();
  if (wrong.length > 0) throw new ConfigError(wrong.join("; "));
  const notes: string[] = [];
  const warnings = unreachable.map(({ entry, problem }) => `${entry.setting} (${entry.endpoint}) ${problem}`);
  for (const network of networks) {
    const reachable = entries.find((entry) => entry.network === network.network && !unreachable.some((u) => u.entry === entry));
    if (!reachable) {
      warnings.push(`${network.network}: no RPC URL answered, its assets were not checked`);
      continue;
    }
    const client = clientOf(reachable.url, timeoutMs);
    for (const asset of network.assets) {
      let problem: string | undefined;
      try {
        problem = await assetProblem(client, network, asset);
      } catch (error) {
        // The URL went away meanwhile, or answered garbage: not the operator's setting at fault.
        warnings.push(`${network.network} asset ${asset.address} not checked: ${isTransportFailure(error) ? "RPC unreachable" : redactedFirstLine(error)}`);
        continue;
      }
      if (problem) throw new ConfigError(problem);
    }
    if (network.sanctionsOracle) {
      const problem = await oracleProblem(client, network, network.sanctionsOracle).catch((error: unknown) => {
        warnings.push(`${network.network} sanctions oracle ${network.sanctionsOracle} not checked: ${isTransportFailure(error) ? "RPC unreachable" : redactedFirstLine(error)}`);
        return undefined;
      });
      if (problem) throw new ConfigError(problem);
    }
    warnings.push(...(await signerBalanceWarnings(client, network, signers)));
    if (batching.settleBatchMax > 1 && !(await hasCode(client, batchSettlerAddress).catch(() => true))) {
      // Batching is on by default; without BatchSettler each settlement is its own transaction. Only
      // an operator who asked for batching (SETTLE_BATCH_MAX set) is warned.
      (batching.requested ? warnings : notes).push(
        `${network.network}: BatchSettler is not deployed at ${batchSettlerAddress}${batching.requested ? " although SETTLE_BATCH_MAX is set" : ""}: settling one payment per transaction (x402-facilitator batch-settler deploy)`,
      );
    }
    const permit2Missing = await missingPermit2Contracts(client);
    if (permit2Missing.length > 0) {
      // Not the operator's setting: nothing to fix here, but say what is refused, and whether upto
      // is left out of /supported (it is when Permit2 or the upto proxy is missing, not the exact one).
      const missing = new Set(permit2Missing.map(([name]) => name));
      const refused = [missing.has("Permit2") || missing.has("the x402 exact Permit2 proxy") ? "exact over Permit2" : undefined, missing.has("Permit2") || missing.has("the x402 upto Permit2 proxy") ? "upto" : undefined].filter(Boolean);
      const uptoUnlisted = refused.includes("upto");
      notes.push(
        `${network.network}: no code at ${permit2Missing.map(([name, address]) => `${name} (${address})`).join(", ")}: ${refused.join(" and ")} payments are refused on this network (permit2_proxy_not_deployed)${uptoUnlisted ? " and upto is not in /supported" : ""}`,
      );
    }
  }
  return { rpcUrls, warnings, notes };
}

/** Which of Permit2 and x402's two proxies have no code (an RPC that fails counts as present: verify asks again). */
async function missingPermit2Contracts(client: PublicClient): Promise<(readonly [name: string, address: Address])[]> {
  const named = [
    ["Permit2", permit2Address],
    ["the x402 exact Permit2 proxy", x402ExactPermit2ProxyAddress],
    ["the x402 upto Permit2 proxy", x402UptoPermit2ProxyAddress],
  ] as const;
  const present = await Promise.all(named.map(([, address]) => hasCode(client, address).catch(() => true)));
  return named.filter((_entry, index) => !present[index]);
}

/** Why the asset cannot be the configured EIP-3009 token, or undefined when it is. */
async function assetProblem(client: PublicClient, network: NetworkConfig, asset: NetworkConfig["assets"][number]): Promise<string | undefined> {
  const where = `${network.assetsFrom ?? "FACILITATOR_CONFIG"} ${network.network} asset ${asset.address}`;
  const code = await client.getCode({ address: asset.address as Address });
  if (!code || code === "0x") return `${where}: no contract at this address on chain ${network.chainId}`;
  // A function the token lacks reverts (unreadable); an RPC that stops answering is not the token's
  // fault: it propagates, and the asset is reported unchecked instead of misconfigured.
  const unlessUnreachable = (error: unknown): undefined => {
    if (isTransportFailure(error)) throw error;
    return undefined;
  };
  const [onChainSeparator, name, version] = await Promise.all([
    client.readContract({ address: asset.address as Address, abi: domainSeparatorAbi, functionName: "DOMAIN_SEPARATOR" }).catch(unlessUnreachable),
    client.readContract({ address: asset.address as Address, abi: eip3009Abi, functionName: "name" }).catch(unlessUnreachable),
    client.readContract({ address: asset.address as Address, abi: eip3009Abi, functionName: "version" }).catch(unlessUnreachable),
  ]);
  const configured = `name "${asset.name}" version "${asset.version}"`;
  const onChain = `name ${name === undefined ? "(unreadable)" : `"${name}"`} version ${version === undefined ? "(unreadable)" : `"${version}"`}`;
  const expectedSeparator: Hex = domainSeparator({ domain: { name: asset.name, version: asset.version, chainId: network.chainId, verifyingContract: asset.address as Address } });
  const matches = onChainSeparator !== undefined ? onChainSeparator.toLowerCase() === expectedSeparator.toLowerCase() : name === asset.name && version === asset.version;
  if (matches) return undefined;
  return `${where}: configured EIP-712 domain ${configured}, the token's is ${onChain}${onChainSeparator !== undefined ? " (DOMAIN_SEPARATOR differs)" : ""}: every payment would be refused`;
}

/** Why `oracle` cannot be a sanctions oracle (no code, or isSanctioned(0x0…0) gives no bool), or undefined. Throws on a transport failure. */
async function oracleProblem(client: PublicClient, network: NetworkConfig, oracle: Address): Promise<string | undefined> {
  const where = `${network.sanctionsOracleFrom ?? `SANCTIONS_ORACLE_${network.chainId}`} ${oracle}`;
  const code = await client.getCode({ address: oracle });
  if (!code || code === "0x") return `${where}: no contract at this address on chain ${network.chainId}`;
  try {
    const { data } = await client.call({ to: oracle, data: encodeFunctionData({ abi: sanctionsOracleAbi, functionName: "isSanctioned", args: [zeroAddress] }), gas: sanctionsOracleGasMax });
    decodeFunctionResult({ abi: sanctionsOracleAbi, functionName: "isSanctioned", data: data ?? "0x" });
    return undefined;
  } catch (error) {
    if (isTransportFailure(error)) throw error;
    return `${where}: does not answer isSanctioned(address) with a bool on chain ${network.chainId} (${redactedFirstLine(error, 120)})`;
  }
}

/** A signer that cannot pay gas (empty, or below MIN_SIGNER_BALANCE_WEI) is refused at settle time: say so now. */
async function signerBalanceWarnings(client: PublicClient, network: NetworkConfig, signers: { addresses: readonly Address[]; minBalanceWei: bigint }): Promise<string[]> {
  const warnings = await Promise.all(
    signers.addresses.map(async (address) => {
      const balanceWei = await client.getBalance({ address }).catch(() => undefined);
      if (balanceWei === undefined) return undefined;
      if (balanceWei === 0n) return `signer ${address} holds no ETH on ${network.network}: it cannot pay gas for settlements until funded`;
      if (balanceWei < signers.minBalanceWei) {
        return `signer ${address} holds ${formatEther(balanceWei)} ETH on ${network.network}, below MIN_SIGNER_BALANCE_WEI (${formatEther(signers.minBalanceWei)} ETH): it settles nothing until funded`;
      }
      return undefined;
    }),
  );
  return warnings.filter((warning): warning is string => warning !== undefined);
}
