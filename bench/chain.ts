/**
 * The benchmark's chain: an Anvil node (chain 84532) with TestUSDC at the Base Sepolia USDC address
 * and Multicall3, funded payers, and the pre-signed payments. Keys are deterministic
 * (keccak256 of a label), so every run uses the same addresses.
 */
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  keccak256,
  parseEther,
  slice,
  stringToHex,
  type Address,
  type Chain,
  type Hash,
  type Hex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { permit2Address } from "../src/contracts/permit2.js";
import { startAnvil, type AnvilInstance } from "../src/sandbox/anvil.js";
import { installBatchSettler, installMulticall3, installPermit2, installTestUsdc, installX402Permit2Proxies } from "../src/sandbox/deploy.js";
import { signPayment, v2Body, v2Requirements } from "../test/helpers/payments.js";

export const CHAIN_ID = 84532;
export const USDC_BASE_SEPOLIA: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const RPC_TIMEOUT_MS = 10_000;
const RECEIPT_TIMEOUT_MS = 60_000;
/** Receipts fetched per JSON-RPC batch. */
const RPC_BATCH_SIZE = 100;
/** signerGas reads every block of a burst; a burst of 500 on automine is ~500 blocks. */
const SIGNER_GAS_BLOCKS_MAX = 5_000;

/** A private key derived from a label: deterministic, and nobody else's. */
export const keyFor = (label: string): Hex => keccak256(stringToHex(`x402-facilitator/bench/${label}`));
/** An address nobody holds a key for, e.g. a payTo counted by balance. */
export const addressFor = (label: string): Address => getAddress(slice(keccak256(stringToHex(`x402-facilitator/bench/address/${label}`)), 12));
export const accountOf = (key: Hex): Address => privateKeyToAccount(key).address;

export const minterKey = keyFor("minter");

const erc20Abi = [
  { type: "function", name: "balanceOf", stateMutability: "view", inputs: [{ type: "address" }], outputs: [{ type: "uint256" }] },
  { type: "function", name: "approve", stateMutability: "nonpayable", inputs: [{ type: "address" }, { type: "uint256" }], outputs: [{ type: "bool" }] },
] as const;
/** TestUSDC's (FiatToken's) Transfer: `to` indexed, so a burst's payTo selects its own. */
const transferEvent = {
  type: "event",
  name: "Transfer",
  inputs: [
    { type: "address", name: "from", indexed: true },
    { type: "address", name: "to", indexed: true },
    { type: "uint256", name: "value", indexed: false },
  ],
} as const;
/** TestUSDC's mint (contracts/TestUSDC.sol), callable by its minter only. */
const mintAbi = [
  { type: "function", name: "mint", stateMutability: "nonpayable", inputs: [{ type: "address" }, { type: "uint256" }], outputs: [{ type: "bool" }] },
] as const;

export interface BenchChain {
  anvil: AnvilInstance;
  rpcUrl: string;
  viemChain: Chain;
  publicClient: ReturnType<typeof createPublicClient>;
  balanceOf(account: Address): Promise<bigint>;
  transactionCount(account: Address): Promise<number>;
  /** gasUsed of each (mined) transaction; receipts are fetched in JSON-RPC batches. */
  gasUsed(hashes: Hash[]): Promise<bigint[]>;
  blockNumber(): Promise<bigint>;
  /**
   * Every transaction `signer` got mined in blocks (fromBlock, toBlock], whatever it did (a batch, a
   * single settlement, a reverted one, a nonce-gap filler), and their total gasUsed: what settling cost.
   */
  signerGas(signer: Address, fromBlockExclusive: bigint, toBlockInclusive: bigint): Promise<{ transactions: number; gasUsed: bigint }>;
  /** The block of every USDC Transfer to `payTo` in blocks (fromBlock, toBlock]: when each payment landed. */
  transferBlocks(payTo: Address, fromBlockExclusive: bigint, toBlockInclusive: bigint): Promise<bigint[]>;
  stop(): Promise<void>;
}

export async function startBenchChain(options: { blockTimeSeconds?: number }): Promise<BenchChain> {
  const anvil = await startAnvil({ chainId: CHAIN_ID, blockTimeSeconds: options.blockTimeSeconds, accounts: 1 });
  try {
    await installTestUsdc(anvil.rpcUrl, { address: USDC_BASE_SEPOLIA, name: "USDC", version: "2", minter: accountOf(minterKey) });
    await installMulticall3(anvil.rpcUrl);
    await installBatchSettler(anvil.rpcUrl);
    // Permit2 and x402's exact and upto proxies at their canonical addresses (the Permit2 rows).
    await installPermit2(anvil.rpcUrl);
    await installX402Permit2Proxies(anvil.rpcUrl);
  } catch (error) {
    await anvil.stop();
    throw error;
  }
  const chain = defineChain({
    id: CHAIN_ID,
    name: "bench-anvil",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [anvil.rpcUrl] } },
  });
  const publicClient = createPublicClient({
    chain,
    transport: http(anvil.rpcUrl, { timeout: RPC_TIMEOUT_MS, batch: { batchSize: RPC_BATCH_SIZE } }),
    pollingInterval: 250,
  });
  return {
    anvil,
    rpcUrl: anvil.rpcUrl,
    viemChain: chain,
    publicClient,
    balanceOf: (account) => publicClient.readContract({ address: USDC_BASE_SEPOLIA, abi: erc20Abi, functionName: "balanceOf", args: [account] }),
    transactionCount: (account) => publicClient.getTransactionCount({ address: account, blockTag: "latest" }),
    gasUsed: async (hashes) => {
      // Only hashes answered with success:true come here: the facilitator saw their receipt already.
      const receipts = await Promise.all(hashes.map((hash) => publicClient.getTransactionReceipt({ hash })));
      return receipts.map((receipt) => receipt.gasUsed);
    },
    blockNumber: () => publicClient.getBlockNumber({ cacheTime: 0 }),
    signerGas: async (signer, fromBlockExclusive, toBlockInclusive) => {
      if (toBlockInclusive - fromBlockExclusive > BigInt(SIGNER_GAS_BLOCKS_MAX)) {
        throw new Error(`signerGas over ${toBlockInclusive - fromBlockExclusive} blocks: more than ${SIGNER_GAS_BLOCKS_MAX}`);
      }
      const numbers: bigint[] = [];
      for (let number = fromBlockExclusive + 1n; number <= toBlockInclusive; number += 1n) numbers.push(number);
      const blocks = await Promise.all(numbers.map((blockNumber) => publicClient.getBlock({ blockNumber, includeTransactions: true })));
      const own = blocks.flatMap((block) => block.transactions.filter((tx) => tx.from.toLowerCase() === signer.toLowerCase()).map((tx) => tx.hash));
      const receipts = await Promise.all(own.map((hash) => publicClient.getTransactionReceipt({ hash })));
      return { transactions: receipts.length, gasUsed: receipts.reduce((sum, receipt) => sum + receipt.gasUsed, 0n) };
    },
    transferBlocks: async (payTo, fromBlockExclusive, toBlockInclusive) => {
      if (toBlockInclusive <= fromBlockExclusive) return [];
      const logs = await publicClient.getLogs({ address: USDC_BASE_SEPOLIA, event: transferEvent, args: { to: payTo }, fromBlock: fromBlockExclusive + 1n, toBlock: toBlockInclusive });
      return logs.map((log) => log.blockNumber);
    },
    stop: () => anvil.stop(),
  };
}

/** Gives each address `ether` ETH (for gas) via anvil_setBalance. */
export async function fundEth(rpcUrl: string, addresses: Address[], ether: string): Promise<void> {
  const testClient = createTestClient({ mode: "anvil", transport: http(rpcUrl, { timeout: RPC_TIMEOUT_MS }) });
  for (const address of addresses) await testClient.setBalance({ address, value: parseEther(ether) });
}

/**
 * Mints `amountAtomic` TestUSDC to every payer. The mints are sent at once with consecutive
 * nonces (one block or two even with --block-time), then awaited.
 */
export async function mintToAll(chain: BenchChain, payers: Address[], amountAtomic: bigint): Promise<void> {
  const minter = privateKeyToAccount(minterKey);
  await fundEth(chain.rpcUrl, [minter.address], "10");
  const wallet = createWalletClient({ account: minter, chain: chain.viemChain, transport: http(chain.rpcUrl, { timeout: RPC_TIMEOUT_MS }) });
  const firstNonce = await chain.publicClient.getTransactionCount({ address: minter.address, blockTag: "pending" });
  const fees = await chain.publicClient.estimateFeesPerGas();
  const hashes = await Promise.all(
    payers.map((to, i) =>
      wallet.writeContract({
        address: USDC_BASE_SEPOLIA,
        abi: mintAbi,
        functionName: "mint",
        args: [to, amountAtomic],
        nonce: firstNonce + i,
        gas: 150_000n,
        maxFeePerGas: fees.maxFeePerGas * 2n,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      }),
    ),
  );
  const receipts = await Promise.all(hashes.map((hash) => chain.publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })));
  const failed = receipts.filter((receipt) => receipt.status !== "success");
  if (failed.length > 0) throw new Error(`${failed.length} of ${payers.length} mints reverted`);
  for (const payer of payers.slice(0, 3)) {
    const balance = await chain.balanceOf(payer);
    if (balance < amountAtomic) throw new Error(`payer ${payer} holds ${balance} after minting ${amountAtomic}`);
  }
}

export interface PaymentSetInput {
  payerKeys: Hex[];
  payTo: Address;
  count: number;
  amountAtomic: bigint;
  /** Seconds from now the authorizations stay valid: longer than the whole run. */
  validForSeconds: bigint;
}

/** `count` distinct signed payments (v2 request bodies, JSON), spread round-robin over the payers. */
export async function signPayments(input: PaymentSetInput): Promise<string[]> {
  const requirements = v2Requirements({ token: USDC_BASE_SEPOLIA, payTo: input.payTo, amountAtomic: input.amountAtomic, network: `eip155:${CHAIN_ID}` });
  const validBeforeSeconds = BigInt(Math.floor(Date.now() / 1000)) + input.validForSeconds;
  const bodies: string[] = [];
  for (let i = 0; i < input.count; i += 1) {
    const payment = await signPayment({
      payerKey: input.payerKeys[i % input.payerKeys.length]!,
      token: USDC_BASE_SEPOLIA,
      chainId: CHAIN_ID,
      payTo: input.payTo,
      valueAtomic: input.amountAtomic,
      validBeforeSeconds,
    });
    bodies.push(JSON.stringify(v2Body(payment, requirements)));
  }
  return bodies;
}

/**
 * Every payer approves Permit2 for all its USDC (what a Permit2 payer does once, before paying):
 * one approve each, sent at once (each payer's first transaction), then awaited. The payers get
 * ETH for it through anvil_setBalance.
 */
export async function approvePermit2ForAll(chain: BenchChain, payerKeys: Hex[]): Promise<void> {
  await fundEth(chain.rpcUrl, payerKeys.map(accountOf), "1");
  const fees = await chain.publicClient.estimateFeesPerGas();
  const hashes = await Promise.all(
    payerKeys.map(async (key) => {
      const account = privateKeyToAccount(key);
      const wallet = createWalletClient({ account, chain: chain.viemChain, transport: http(chain.rpcUrl, { timeout: RPC_TIMEOUT_MS }) });
      const nonce = await chain.publicClient.getTransactionCount({ address: account.address, blockTag: "pending" });
      return wallet.writeContract({
        address: USDC_BASE_SEPOLIA,
        abi: erc20Abi,
        functionName: "approve",
        args: [permit2Address, 2n ** 256n - 1n],
        nonce,
        gas: 100_000n,
        maxFeePerGas: fees.maxFeePerGas * 2n,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      });
    }),
  );
  const receipts = await Promise.all(hashes.map((hash) => chain.publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })));
  const failed = receipts.filter((receipt) => receipt.status !== "success");
  if (failed.length > 0) throw new Error(`${failed.length} of ${payerKeys.length} Permit2 approvals reverted`);
}

export interface Permit2PaymentSetInput {
  payerKeys: Hex[];
  payTo: Address;
  count: number;
  /** `exact`: over Permit2 (assetTransferMethod "permit2"), `amountAtomic` paid. `upto`: `amountAtomic` is the cap signed, `chargeAtomic` what /settle asks for. */
  scheme: "exact" | "upto";
  amountAtomic: bigint;
  chargeAtomic?: bigint;
  /** upto: the facilitator signer the witness names (extra.facilitatorAddress). */
  facilitatorAddress?: Address;
  /** Seconds the permits stay valid (maxTimeoutSeconds: the client's deadline is now + this). */
  validForSeconds: number;
}

/**
 * `count` distinct Permit2 payments, each signed by the official 2.27 client scheme
 * (@x402/evm's ExactEvmScheme or UptoEvmScheme) and put in the v2 body a resource server sends:
 * `accepted` = the requirements verbatim; for upto, paymentRequirements.amount replaced by the
 * charge, as the 2.27 resource server settles it.
 */
export async function signPermit2Payments(input: Permit2PaymentSetInput): Promise<string[]> {
  const requirements: PaymentRequirements = {
    scheme: input.scheme,
    network: `eip155:${CHAIN_ID}`,
    amount: input.amountAtomic.toString(),
    asset: USDC_BASE_SEPOLIA,
    payTo: input.payTo,
    maxTimeoutSeconds: input.validForSeconds,
    extra: {
      name: "USDC",
      version: "2",
      assetTransferMethod: "permit2",
      ...(input.scheme === "upto" ? { facilitatorAddress: input.facilitatorAddress } : {}),
    },
  };
  const schemes = input.payerKeys.map((key) => {
    const account = privateKeyToAccount(key);
    return input.scheme === "upto" ? new UptoEvmScheme(account) : new ExactEvmScheme(account);
  });
  const bodies: string[] = [];
  for (let i = 0; i < input.count; i += 1) {
    const result = await schemes[i % schemes.length]!.createPaymentPayload(2, requirements);
    const settled = input.scheme === "upto" ? { ...requirements, amount: (input.chargeAtomic ?? input.amountAtomic).toString() } : requirements;
    bodies.push(
      JSON.stringify({
        x402Version: 2,
        paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/bench" }, accepted: requirements, payload: result.payload },
        paymentRequirements: settled,
      }),
    );
  }
  return bodies;
}
