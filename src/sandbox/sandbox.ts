import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { builtinNetworks, loadBuilderCode, loadLimits, type Config } from "../config.js";
import { integerVar } from "../limits.js";
import { startServer, type RunningServer } from "../server-process.js";
import { anvilDevPrivateKeys, startAnvil, type AnvilInstance } from "./anvil.js";
import { installBatchSettler, installMulticall3, installPermit2, installTestUsdc, installX402Permit2Proxies, mintTestUsdc } from "./deploy.js";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "./postgres.js";
import { createDatabase } from "../store/database-admin.js";

/** The sandbox plays Base Sepolia, so v1 SDKs ("base-sepolia") and v2 SDKs (eip155:84532) both work. */
const sandboxNetwork = builtinNetworks.find((network) => network.chainId === 84532)!;
const sandboxUsdc = sandboxNetwork.assets[0]!;
const sandboxDatabase = "x402_sandbox";
/** What the demo payer starts with: 1,000 USDC. */
const payerStartingBalanceAtomic = 1_000_000_000n;

export interface SandboxInfo {
  facilitatorUrl: string;
  rpcUrl: string;
  chainId: number;
  network: string;
  v1Network: string;
  asset: { address: Address; name: string; version: string; decimals: number };
  payer: { address: Address; privateKey: Hex };
  payTo: Address;
  facilitatorSigner: Address;
}

export interface RunningSandbox {
  info: SandboxInfo;
  server: RunningServer;
  close(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Zero-config local mode: embedded Postgres, Anvil on 127.0.0.1 with a USDC-like token at the real
 * Base Sepolia USDC address, a funded demo payer, and the facilitator in front of them.
 * The chain starts fresh each time, so the database does too (a stale tx-nonce counter or old
 * settlements would not match the new chain).
 */
export async function startSandbox(env: Env, log: Logger): Promise<RunningSandbox> {
  const dataDir = path.resolve(env.DATA_DIR ?? ".data");
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const started: Array<{ stop(): Promise<void> }> = [];
  const stopAll = async () => {
    for (const service of started.reverse()) await service.stop().catch(() => undefined);
  };
  try {
    const postgres: EmbeddedPostgresHandle = await startEmbeddedPostgres({ dataDir: path.join(dataDir, "postgres") });
    started.push(postgres);
    const databaseUrl = await createDatabase(postgres.adminUrl, sandboxDatabase, { dropIfExists: true });
    const anvil = await startSandboxAnvil(env);
    started.push(anvil);
    const [signerKey, payerKey, payToKey, , , , , , , minterKey] = anvilDevPrivateKeys as Hex[];
    const payer = privateKeyToAccount(payerKey!);
    const payTo = privateKeyToAccount(payToKey!).address;
    await installTestUsdc(anvil.rpcUrl, { ...sandboxUsdc, symbol: "USDC", minter: privateKeyToAccount(minterKey!).address });
    await installMulticall3(anvil.rpcUrl);
    await installPermit2(anvil.rpcUrl);
    await installX402Permit2Proxies(anvil.rpcUrl);
    await installBatchSettler(anvil.rpcUrl);
    await mintTestUsdc(anvil.rpcUrl, { token: sandboxUsdc.address, minterPrivateKey: minterKey!, to: payer.address, amountAtomic: payerStartingBalanceAtomic });

    const config: Config = {
      databaseUrl,
      host: env.HOST ?? "127.0.0.1",
      port: integerVar(env, "PORT", 4020, 0, 65535),
      logLevel: env.LOG_LEVEL ?? "info",
      signerPrivateKeys: [signerKey!],
      // A local chain under Base Sepolia's id: the public explorer knows none of its transactions.
      networks: [{ ...sandboxNetwork, rpcUrls: [anvil.rpcUrl], explorerUrl: undefined }],
      limits: loadLimits(env),
      builderCode: loadBuilderCode(env),
    };
    const server = await startServer(config, log);
    started.push({ stop: () => server.close() });
    const info: SandboxInfo = {
      facilitatorUrl: server.url,
      rpcUrl: anvil.rpcUrl,
      chainId: sandboxNetwork.chainId,
      network: sandboxNetwork.network,
      v1Network: sandboxNetwork.v1Name!,
      asset: { address: sandboxUsdc.address, name: sandboxUsdc.name, version: sandboxUsdc.version, decimals: sandboxUsdc.decimals },
      payer: { address: payer.address, privateKey: payerKey! },
      payTo,
      facilitatorSigner: privateKeyToAccount(signerKey!).address,
    };
    // Written whole, then renamed: scripts poll for this file and must never read half of it.
    const infoFile = path.join(dataDir, "sandbox.json");
    await writeFile(`${infoFile}.tmp`, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o644 });
    await rename(`${infoFile}.tmp`, infoFile);
    return { info, server, close: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Anvil on SANDBOX_RPC_PORT (default 8545) so wallets find it; 0, or that one taken: any free port. */
async function startSandboxAnvil(env: Env): Promise<AnvilInstance> {
  const port = integerVar(env, "SANDBOX_RPC_PORT", 8545, 0, 65535);
  try {
    return await startAnvil({ chainId: sandboxNetwork.chainId, port });
  } catch {
    return startAnvil({ chainId: sandboxNetwork.chainId });
  }
}

export function sandboxBanner(info: SandboxInfo, dataDir: string): string {
  return [
    "",
    "  x402 facilitator — sandbox (local chain, test USDC; nothing here is real money)",
    "",
    `  facilitator   ${info.facilitatorUrl}          (FACILITATOR_URL)`,
    `  chain         ${info.rpcUrl}   ${info.network} / "${info.v1Network}"`,
    `  test USDC     ${info.asset.address}  name "${info.asset.name}", version "${info.asset.version}", ${info.asset.decimals} decimals`,
    `  demo payer    ${info.payer.address}  (1,000 USDC)`,
    `                private key ${info.payer.privateKey}`,
    `  demo payTo    ${info.payTo}`,
    `  details       ${path.join(dataDir, "sandbox.json")}`,
    "",
    "  Try: curl -s " + `${info.facilitatorUrl}/supported`,
    "  Ctrl-C stops the facilitator, the chain and Postgres.",
    "",
  ].join("\n");
}
