/**
 * Puts the test contracts on an Anvil node: TestUSDC at any address (e.g. the real USDC address of
 * the chain being imitated), and Multicall3, Permit2 and x402's Permit2 proxies at their canonical
 * addresses, all via anvil_setCode.
 */
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  http,
  parseEther,
  type Address,
  type Chain,
  type Hash,
  type Hex,
  type Transport,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { batchSettlerAddress, batchSettlerArtifact } from "../contracts/batch-settler.js";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../contracts/permit2.js";
import {
  multicall3Artifact,
  permit2Artifact,
  testUsdcArtifact,
  x402ExactPermit2ProxyArtifact,
  x402UptoPermit2ProxyArtifact,
} from "./artifacts.js";

export const MULTICALL3_ADDRESS: Address = "0xcA11bde05977b3631167028862bE2a173976CA11";

const RPC_TIMEOUT_MS = 10_000;
const RECEIPT_TIMEOUT_MS = 30_000;

/**
 * Sends the initialize transaction while impersonated. A dedicated address (not a dev account)
 * keeps the dev accounts' nonces untouched for the code under test.
 */
const INSTALLER_ADDRESS: Address = "0x5a4d000000000000000000000000000000005a4d";

interface AnvilClients {
  chain: Chain;
  transport: Transport;
  publicClient: ReturnType<typeof createPublicClient>;
  testClient: ReturnType<typeof createTestClient>;
}

async function anvilClients(rpcUrl: string): Promise<AnvilClients> {
  const transport = http(rpcUrl, { timeout: RPC_TIMEOUT_MS });
  const publicClient = createPublicClient({ transport });
  const chainId = await publicClient.getChainId();
  // A minimal chain object: local-account signing needs the id, and no canonical-chain settings
  // (e.g. multicall addresses of the chain being imitated) should leak in.
  const chain = defineChain({
    id: chainId,
    name: `anvil-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const testClient = createTestClient({ mode: "anvil", transport, chain });
  return { chain, transport, publicClient: createPublicClient({ transport, chain }), testClient };
}

/**
 * Waits for a receipt and throws if the transaction reverted. With automine off (--no-mining or
 * interval mining) it mines one block first rather than waiting for a block that may never come.
 */
async function confirm({ publicClient, testClient }: AnvilClients, hash: Hash, what: string): Promise<void> {
  if (!(await testClient.getAutomine())) await testClient.mine({ blocks: 1 });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
  if (receipt.status !== "success") throw new Error(`${what} reverted (tx ${hash})`);
}

export async function installTestUsdc(
  rpcUrl: string,
  opts: { address: Address; name: string; version: string; symbol?: string; decimals?: number; minter: Address },
): Promise<void> {
  const clients = await anvilClients(rpcUrl);
  const { testClient, chain, transport } = clients;
  await testClient.setCode({ address: opts.address, bytecode: testUsdcArtifact.deployedBytecode });

  await testClient.setBalance({ address: INSTALLER_ADDRESS, value: parseEther("1") });
  await testClient.impersonateAccount({ address: INSTALLER_ADDRESS });
  let hash: Hash;
  try {
    // Simulate first: Anvil mines a reverting eth_sendTransaction without telling why, while the
    // simulation throws with the revert string (e.g. "FiatToken: contract is already initialized").
    const { request } = await clients.publicClient.simulateContract({
      account: INSTALLER_ADDRESS,
      address: opts.address,
      abi: testUsdcArtifact.abi,
      functionName: "initialize",
      args: [opts.name, opts.symbol ?? "USDC", opts.version, opts.decimals ?? 6, opts.minter],
    });
    const installer = createWalletClient({ account: INSTALLER_ADDRESS, chain, transport });
    hash = await installer.writeContract(request);
  } finally {
    await testClient.stopImpersonatingAccount({ address: INSTALLER_ADDRESS });
  }
  await confirm(clients, hash, `TestUSDC.initialize at ${opts.address}`);
}

/** Multicall3 is stateless, so placing its runtime code is the whole installation. */
export async function installMulticall3(rpcUrl: string): Promise<void> {
  const { testClient } = await anvilClients(rpcUrl);
  await testClient.setCode({ address: MULTICALL3_ADDRESS, bytecode: multicall3Artifact.deployedBytecode });
}

/**
 * Permit2 at its canonical address. Its only state is the nonce bitmap, which starts empty, and its
 * domain separator is computed per call, so placing the runtime code is the whole installation.
 */
export async function installPermit2(rpcUrl: string): Promise<void> {
  const { testClient } = await anvilClients(rpcUrl);
  await testClient.setCode({ address: permit2Address, bytecode: permit2Artifact.deployedBytecode });
}

/**
 * x402's exact and upto Permit2 proxies at their canonical addresses. Stateless (the reentrancy
 * guard is transient storage) and PERMIT2 is a constant, so the runtime code is the whole
 * installation. They call Permit2, so install that too (installPermit2). `keepExisting` leaves an
 * address that already has code alone (a fork of a chain where the real proxy is deployed).
 */
export async function installX402Permit2Proxies(rpcUrl: string, options: { keepExisting?: boolean } = {}): Promise<void> {
  const { testClient, publicClient } = await anvilClients(rpcUrl);
  const proxies = [
    { address: x402ExactPermit2ProxyAddress, bytecode: x402ExactPermit2ProxyArtifact.deployedBytecode },
    { address: x402UptoPermit2ProxyAddress, bytecode: x402UptoPermit2ProxyArtifact.deployedBytecode },
  ];
  for (const proxy of proxies) {
    if (options.keepExisting && (await publicClient.getCode({ address: proxy.address }))) continue;
    await testClient.setCode(proxy);
  }
}

/**
 * BatchSettler at its deterministic address, the code a CREATE2 deployment through the proxy would
 * leave there (it has no constructor and no immutables, so the runtime code is the whole contract).
 */
export async function installBatchSettler(rpcUrl: string): Promise<void> {
  const { testClient } = await anvilClients(rpcUrl);
  await testClient.setCode({ address: batchSettlerAddress, bytecode: batchSettlerArtifact.deployedBytecode });
}

/** Mints as the token's minter and waits until the mint is mined; returns the transaction hash. */
export async function mintTestUsdc(
  rpcUrl: string,
  opts: { token: Address; minterPrivateKey: Hex; to: Address; amountAtomic: bigint },
): Promise<Hash> {
  const clients = await anvilClients(rpcUrl);
  const minter = createWalletClient({
    account: privateKeyToAccount(opts.minterPrivateKey),
    chain: clients.chain,
    transport: clients.transport,
  });
  const { request } = await clients.publicClient.simulateContract({
    account: minter.account,
    address: opts.token,
    abi: testUsdcArtifact.abi,
    functionName: "mint",
    args: [opts.to, opts.amountAtomic],
  });
  const hash = await minter.writeContract(request);
  await confirm(clients, hash, `TestUSDC.mint of ${opts.amountAtomic} to ${opts.to}`);
  return hash;
}
