import { createPublicClient, createTestClient, http, type Address, type Hex, type PublicClient, type TestClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvilDevPrivateKeys, startAnvil, type AnvilInstance, type StartAnvilOptions } from "../../src/sandbox/anvil.js";
import { installBatchSettler, installMulticall3, installPermit2, installTestUsdc, installX402Permit2Proxies, mintTestUsdc } from "../../src/sandbox/deploy.js";

/** The real Base Sepolia USDC address: the test token lives there so SDK defaults line up. */
export const baseSepoliaUsdc: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

export const keys = {
  facilitator: anvilDevPrivateKeys[0]!,
  payer: anvilDevPrivateKeys[1]!,
  payTo: anvilDevPrivateKeys[2]!,
  stranger: anvilDevPrivateKeys[3]!,
  facilitator2: anvilDevPrivateKeys[4]!,
  facilitator3: anvilDevPrivateKeys[5]!,
  minter: anvilDevPrivateKeys[9]!,
} as const;

export const addressOf = (key: Hex): Address => privateKeyToAccount(key).address;

export interface TestChain {
  anvil: AnvilInstance;
  rpcUrl: string;
  chainId: number;
  token: Address;
  publicClient: PublicClient;
  testClient: TestClient;
  mint(to: Address, amountAtomic: bigint): Promise<void>;
  balanceOf(account: Address): Promise<bigint>;
  stop(): Promise<void>;
}

export interface TestChainOptions extends Partial<StartAnvilOptions> {
  /** Install Permit2 and x402's two Permit2 proxies at their canonical addresses (default true). */
  permit2?: boolean;
}

/** Anvil with TestUSDC ("USDC", version "2", 6 decimals) at the Base Sepolia USDC address. */
export async function startTestChain(options: TestChainOptions = {}): Promise<TestChain> {
  const { permit2 = true, ...anvilOptions } = options;
  const chainId = anvilOptions.chainId ?? 84532;
  const anvil = await startAnvil({ ...anvilOptions, chainId });
  const token = baseSepoliaUsdc;
  await installTestUsdc(anvil.rpcUrl, { address: token, name: "USDC", version: "2", minter: addressOf(keys.minter) });
  await installMulticall3(anvil.rpcUrl);
  if (permit2) {
    await installPermit2(anvil.rpcUrl);
    await installX402Permit2Proxies(anvil.rpcUrl);
  }
  await installBatchSettler(anvil.rpcUrl);
  // cacheTime 0: a test that reads the head to compare with what the facilitator saw must get the head
  // now, not viem's default 4 s cached block number (under load, earlier tests mine blocks within that).
  const publicClient = createPublicClient({ transport: http(anvil.rpcUrl, { timeout: 10_000 }), cacheTime: 0 }) as PublicClient;
  const testClient = createTestClient({ mode: "anvil", transport: http(anvil.rpcUrl, { timeout: 10_000 }) }) as unknown as TestClient;
  return {
    anvil,
    rpcUrl: anvil.rpcUrl,
    chainId,
    token,
    publicClient,
    testClient,
    mint: async (to, amountAtomic) => {
      await mintTestUsdc(anvil.rpcUrl, { token, minterPrivateKey: keys.minter, to, amountAtomic });
    },
    balanceOf: (account) =>
      publicClient.readContract({
        address: token,
        abi: [{ type: "function", name: "balanceOf", stateMutability: "view", inputs: [{ type: "address" }], outputs: [{ type: "uint256" }] }],
        functionName: "balanceOf",
        args: [account],
      }) as Promise<bigint>,
    stop: () => anvil.stop(),
  };
}

/**
 * The node holds this transaction (in its pool, or mined): what "our settlement is sent" means
 * whatever the send method. A sync send (eth_sendRawTransactionSync) keeps its rows `signed` until
 * the node answers with the receipt, so a row's status alone does not say the bytes are out.
 */
export async function nodeHolds(chain: Pick<TestChain, "publicClient">, hash: string | null | undefined): Promise<boolean> {
  if (!hash) return false;
  return chain.publicClient.getTransaction({ hash: hash as Hex }).then(
    () => true,
    () => false,
  );
}

/** How many of `hashes` the node holds (see nodeHolds). */
export async function heldByNode(chain: Pick<TestChain, "publicClient">, hashes: ReadonlyArray<string | null | undefined>): Promise<number> {
  const held = await Promise.all(hashes.map((hash) => nodeHolds(chain, hash)));
  return held.filter(Boolean).length;
}
