import { createWalletClient, custom, formatEther, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hasCode } from "../chain/code.js";
import { createChainRegistry, type ChainHandle } from "../chain/registry.js";
import { systemClock } from "../clock.js";
import { loadConfig } from "../config.js";
import { batchSettlerAddress, batchSettlerDeployment, deterministicDeployerAddress } from "../contracts/batch-settler.js";
import { ConfigError } from "../errors.js";
import { chainIdOfNetworkArg } from "../protocol/networks.js";
import { UsageError, wantsHelp } from "./cli-error.js";

type Write = (line: string) => void;

/** A deployment is one transaction of ~300k gas; its receipt is awaited this long at most. */
const deploymentReceiptTimeoutMs = 120_000;
const deploymentGasLimit = 1_000_000n;

/**
 * `batch-settler status|deploy [--network N]`: batched settlement needs BatchSettler at its
 * deterministic address on each chain. `deploy` sends the one CREATE2 transaction through the
 * deterministic-deployment proxy from the first signer key (anyone may; the contract is stateless
 * and ownerless); on a chain where it already exists it does nothing. It takes that key's next
 * nonce from the chain, outside the facilitator's Postgres nonce allocator: run it before the
 * facilitator serves with that key (or stop it meanwhile), or the two may pick the same nonce.
 */
export async function batchSettlerCommand(args: string[], env: NodeJS.ProcessEnv, write: Write): Promise<void> {
  const [action, ...rest] = args;
  if (wantsHelp(args)) {
    write("usage: x402-facilitator batch-settler status|deploy [--network NETWORK]   (needs the serve configuration)");
    write("deploy sends from the first signer key outside the facilitator's nonce allocator: run it while no facilitator serves with that key.");
    return;
  }
  if (action !== "status" && action !== "deploy") throw new UsageError("usage: batch-settler status|deploy [--network NETWORK]");
  const config = loadConfig(env);
  const chains = createChainRegistry(config.networks, config.limits, { clock: systemClock });
  const wanted = networkFilter(rest);
  const handles = chains.all().filter((handle) => wanted === undefined || handle.config.chainId === wanted);
  if (handles.length === 0) throw new ConfigError(`--network: eip155:${wanted} is not among the configured NETWORKS`);
  const signerKey = config.signerPrivateKeys[0]!;
  for (const handle of handles) {
    const deployed = await hasCode(handle.publicClient, batchSettlerAddress);
    if (deployed || action === "status") {
      write(`${handle.config.network}  BatchSettler ${batchSettlerAddress}  ${deployed ? "deployed" : "absent: batches are off here (run batch-settler deploy)"}`);
      continue;
    }
    await deploy(handle, signerKey, write);
    write(`${handle.config.network}  BatchSettler ${batchSettlerAddress}  deployed`);
  }
}

async function deploy(handle: ChainHandle, signerKey: Hex, write: Write): Promise<void> {
  const client = handle.publicClient;
  if (!(await hasCode(client, deterministicDeployerAddress))) {
    throw new ConfigError(`${handle.config.network} has no deterministic-deployment proxy at ${deterministicDeployerAddress}: BatchSettler cannot get its address there`);
  }
  const account = privateKeyToAccount(signerKey);
  const wallet = createWalletClient({ account, chain: handle.chain, transport: custom(client) });
  const balance = await client.getBalance({ address: account.address });
  write(`${handle.config.network}  deploying BatchSettler from ${account.address} (balance ${formatEther(balance)})`);
  const hash = await wallet.sendTransaction({ ...batchSettlerDeployment(), gas: deploymentGasLimit });
  const receipt = await client.waitForTransactionReceipt({ hash, timeout: deploymentReceiptTimeoutMs, pollingInterval: 500 });
  if (receipt.status !== "success" || !(await hasCode(client, batchSettlerAddress))) {
    throw new Error(`BatchSettler deployment ${hash} on ${handle.config.network} did not leave code at ${batchSettlerAddress}`);
  }
}

function networkFilter(args: string[]): number | undefined {
  const index = args.indexOf("--network");
  if (index === -1) return undefined;
  return chainIdOfNetworkArg(args[index + 1] ?? "", "--network");
}
