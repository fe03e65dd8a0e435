/**
 * Anvil forks of a real chain (Base, Base Sepolia) for running the facilitator against the REAL
 * USDC contract, plus a facilitator configured with that USDC's EIP-712 domain and a shared suite
 * of verify/settle tests (`defineForkPaymentTests`) that test/integration/fork/*.test.ts run.
 *
 * Funding a payer on a fork, in order:
 *  1. storage: find the token's balance mapping by probing (the known FiatToken v2.2 slot 9 first,
 *     then Solidity-layout slots 0..20, then Vyper-layout ones), then write the balance there;
 *  2. holder: impersonate `fundFrom` (an address holding the token) and `transfer` from it.
 * A token whose balances live elsewhere (e.g. an ERC-7201 namespaced struct, like contracts/TestUSDC)
 * needs `fundFrom`; without it `fund` throws and says so.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  encodeAbiParameters,
  http,
  keccak256,
  numberToHex,
  parseAbi,
  parseEther,
  parseEventLogs,
  type Address,
  type Hex,
  type PublicClient,
  type TestClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import type { AssetConfig, Limits } from "../../src/config.js";
import { startAnvil, type AnvilInstance } from "../../src/sandbox/anvil.js";
import { startTestFacilitator, type TestFacilitator } from "./facilitator.js";
import { batchSettlerAddress } from "../../src/contracts/batch-settler.js";
import { installBatchSettler, installMulticall3, installPermit2, installX402Permit2Proxies, MULTICALL3_ADDRESS } from "../../src/sandbox/deploy.js";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../../src/contracts/permit2.js";
import type { PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { signPayment, v1Body, v2Body, v2Requirements, type SignPaymentOptions } from "./payments.js";
import { postJson } from "./http.js";

export const erc20Abi = parseAbi([
  "function balanceOf(address account) view returns (uint256)",
  "function transfer(address to, uint256 value) returns (bool)",
  "function name() view returns (string)",
  "function version() view returns (string)",
  "function decimals() view returns (uint8)",
  "event Transfer(address indexed from, address indexed to, uint256 value)",
]);

/** The real USDC deployments the fork tests run against. */
export const baseMainnetUsdc = { address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", name: "USD Coin", version: "2", decimals: 6 } as const satisfies AssetConfig;
export const baseSepoliaUsdcAsset = { address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", name: "USDC", version: "2", decimals: 6 } as const satisfies AssetConfig;

export interface ForkUsdc {
  address: Address;
  /** EIP-712 domain name ("USD Coin" on Base, "USDC" on Base Sepolia). */
  name: string;
  version: string;
  /** Default 6. */
  decimals?: number;
}

export interface StartForkChainOptions {
  /** The chain to fork. May carry an API key: it is never put into error messages. */
  upstreamRpcUrl: string;
  /** Expected chain id of the upstream; the fork serves the same id. */
  chainId: number;
  usdc: ForkUsdc;
  /** Default: the upstream's latest block. An older block needs an archive RPC. */
  forkBlockNumber?: bigint;
  /** Funding fallback: an address holding the token, impersonated to `transfer` to the payee. */
  fundFrom?: Address;
  /** Default 60 s: the fork fetches its first block and state from the upstream. */
  startTimeoutMs?: number;
}

/** How `fund` put the tokens there. */
export type FundingMethod = "storage" | "holder";

/** Where a token keeps `balanceOf(holder)`: the mapping's slot and how the key is hashed. */
export interface BalanceSlot {
  slot: bigint;
  /** solidity: keccak256(abi.encode(holder, slot)); vyper: keccak256(abi.encode(slot, holder)). */
  layout: "solidity" | "vyper";
  /** 255 when the top bit of the word is not balance (FiatToken v2.2 keeps the blacklist flag there). */
  balanceBits: 255 | 256;
}

/** Shaped like test/helpers/chain.ts TestChain, with `fund` instead of `mint`. */
export interface ForkChain {
  anvil: AnvilInstance;
  rpcUrl: string;
  chainId: number;
  token: Address;
  usdc: Required<ForkUsdc>;
  /** The upstream block the fork starts from. */
  forkBlockNumber: bigint;
  /** True when the fork's clock was moved to wall-clock time (an old fork block). */
  timeSynced: boolean;
  /** True when Multicall3 was missing upstream and was placed on the fork. */
  multicall3Installed: boolean;
  publicClient: PublicClient;
  testClient: TestClient;
  /** Adds `amountAtomic` to `to`'s token balance; see the file comment for the methods tried. */
  fund(to: Address, amountAtomic: bigint, options?: { via?: FundingMethod }): Promise<FundingMethod>;
  /** The balance slot found by probing (undefined before the first storage funding, or when none was found). */
  balanceSlot(): BalanceSlot | undefined;
  setEthBalance(address: Address, wei: bigint): Promise<void>;
  balanceOf(account: Address): Promise<bigint>;
  stop(): Promise<void>;
}

const RPC_TIMEOUT_MS = 30_000;
const UPSTREAM_CHECK_TIMEOUT_MS = 15_000;
const DEFAULT_FORK_START_TIMEOUT_MS = 60_000;
/** A fork whose latest block is older than this is moved to wall-clock time (payments are signed with it). */
const CLOCK_SKEW_TOLERANCE_SECONDS = 30n;
const TOP_BIT = 1n << 255n;
/** What the probe writes: recognisable, below 2^255, and not a plausible real balance. */
const PROBE_VALUE = 0x5eed_0f_f0e5_7e57_1234n;

/** FiatToken v2.2 (USDC): `balanceAndBlacklistStates` at slot 9, balance in the low 255 bits. */
export const fiatTokenV22BalanceSlot: BalanceSlot = { slot: 9n, layout: "solidity", balanceBits: 255 };

/** Candidates in probing order: the known USDC slot first, then plain Solidity and Vyper mappings 0..20. */
export function balanceSlotCandidates(): BalanceSlot[] {
  const candidates: BalanceSlot[] = [fiatTokenV22BalanceSlot];
  for (let slot = 0n; slot <= 20n; slot++) if (slot !== 9n) candidates.push({ slot, layout: "solidity", balanceBits: 256 });
  for (let slot = 0n; slot <= 20n; slot++) candidates.push({ slot, layout: "vyper", balanceBits: 256 });
  return candidates;
}

export function balanceStorageKey(holder: Address, candidate: Pick<BalanceSlot, "slot" | "layout">): Hex {
  return candidate.layout === "solidity"
    ? keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [holder, candidate.slot]))
    : keccak256(encodeAbiParameters([{ type: "uint256" }, { type: "address" }], [candidate.slot, holder]));
}

interface Clients {
  publicClient: PublicClient;
  testClient: TestClient;
}

const word = (value: bigint): Hex => numberToHex(value, { size: 32 });

async function readBalance({ publicClient }: Clients, token: Address, holder: Address): Promise<bigint> {
  return publicClient.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [holder] });
}

/**
 * Finds the storage word behind `balanceOf(holder)`: for each candidate, writes PROBE_VALUE into
 * its word, reads balanceOf, and puts the original word back (always, found or not). Undefined when
 * no candidate moves the balance.
 */
export async function findBalanceSlot(clients: Clients, token: Address, holder: Address): Promise<BalanceSlot | undefined> {
  for (const candidate of balanceSlotCandidates()) {
    const key = balanceStorageKey(holder, candidate);
    const original = BigInt((await clients.publicClient.getStorageAt({ address: token, slot: key })) ?? "0x0");
    const probe = candidate.balanceBits === 255 ? (original & TOP_BIT) | PROBE_VALUE : PROBE_VALUE;
    await clients.testClient.setStorageAt({ address: token, index: key, value: word(probe) });
    let seen: bigint | undefined;
    try {
      seen = await readBalance(clients, token, holder);
    } finally {
      await clients.testClient.setStorageAt({ address: token, index: key, value: word(original) });
    }
    if (seen === PROBE_VALUE) return candidate;
  }
  return undefined;
}

/** Writes `balance` as holder's balance into the found slot, keeping a non-balance top bit as it was. */
export async function writeBalance(clients: Clients, token: Address, holder: Address, slot: BalanceSlot, balance: bigint): Promise<void> {
  const limit = slot.balanceBits === 255 ? TOP_BIT : 1n << 256n;
  if (balance < 0n || balance >= limit) throw new Error(`balance ${balance} does not fit ${slot.balanceBits} bits`);
  const key = balanceStorageKey(holder, slot);
  const original = BigInt((await clients.publicClient.getStorageAt({ address: token, slot: key })) ?? "0x0");
  const value = slot.balanceBits === 255 ? (original & TOP_BIT) | balance : balance;
  await clients.testClient.setStorageAt({ address: token, index: key, value: word(value) });
  const after = await readBalance(clients, token, holder);
  if (after !== balance) throw new Error(`wrote balance ${balance} to slot ${slot.slot} (${slot.layout}) of ${token} but balanceOf(${holder}) reads ${after}`);
}

/** Impersonates `holder` (given ETH for gas) and transfers `amountAtomic` of the token to `to`. */
export async function fundFromHolder(clients: Clients, chainId: number, rpcUrl: string, token: Address, holder: Address, to: Address, amountAtomic: bigint): Promise<void> {
  const available = await readBalance(clients, token, holder);
  if (available < amountAtomic) throw new Error(`fundFrom holder ${holder} has ${available} of ${token}, fewer than the ${amountAtomic} asked for`);
  await clients.testClient.setBalance({ address: holder, value: parseEther("1") });
  await clients.testClient.impersonateAccount({ address: holder });
  try {
    const chain = defineChain({ id: chainId, name: `fork-${chainId}`, nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } });
    const wallet = createWalletClient({ account: holder, chain, transport: http(rpcUrl, { timeout: RPC_TIMEOUT_MS }) });
    const { request } = await clients.publicClient.simulateContract({ account: holder, address: token, abi: erc20Abi, functionName: "transfer", args: [to, amountAtomic] });
    const hash = await wallet.writeContract(request);
    const receipt = await clients.publicClient.waitForTransactionReceipt({ hash, timeout: RPC_TIMEOUT_MS });
    if (receipt.status !== "success") throw new Error(`transfer from fundFrom holder ${holder} reverted (tx ${hash})`);
  } finally {
    await clients.testClient.stopImpersonatingAccount({ address: holder });
  }
}

async function rawRpc<T>(url: string, method: string, params: unknown[], timeoutMs = RPC_TIMEOUT_MS): Promise<T> {
  // fetch refuses URLs with credentials: send user:password@ as a Basic authorization header.
  const parsed = new URL(url);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (parsed.username || parsed.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString("base64")}`;
    parsed.username = "";
    parsed.password = "";
  }
  const response = await fetch(parsed, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`${method}: HTTP ${response.status}`);
  const body = (await response.json()) as { result?: T; error?: { message?: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message ?? "JSON-RPC error"}`);
  return body.result as T;
}

/** The error's message with every spelling of `url` replaced by its redacted form. */
function scrubbed(error: unknown, url: string): Error {
  let message = error instanceof Error ? error.message : String(error);
  const spellings = new Set([url, url.replace(/\/+$/, "")]);
  try {
    const parsed = new URL(url);
    spellings.add(parsed.toString());
    parsed.username = "";
    parsed.password = "";
    spellings.add(parsed.toString());
    spellings.add(parsed.toString().replace(/\/+$/, ""));
  } catch {
    // not a URL: the literal spelling is all there is
  }
  // Already-redacted mentions are set aside first, so their origin is not redacted a second time.
  const redacted = redactRpcUrl(url);
  const placeholder = "\u0000redacted-rpc-url\u0000";
  message = message.split(redacted).join(placeholder);
  for (const spelling of [...spellings].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)) {
    message = message.split(spelling).join(placeholder);
  }
  return new Error(message.split(placeholder).join(redacted));
}

/** The URL's origin without credentials, path or query (API keys often live there). */
export function redactRpcUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.hostname}${parsed.port ? `:${parsed.port}` : ""}/…`;
  } catch {
    return "(unparseable URL)";
  }
}

/** Starts an Anvil fork of `upstreamRpcUrl` and checks that the configured USDC is there. */
export async function startForkChain(options: StartForkChainOptions): Promise<ForkChain> {
  const where = redactRpcUrl(options.upstreamRpcUrl);
  let upstreamChainId: number;
  try {
    upstreamChainId = Number(BigInt(await rawRpc<string>(options.upstreamRpcUrl, "eth_chainId", [], UPSTREAM_CHECK_TIMEOUT_MS)));
  } catch (error) {
    throw new Error(`upstream RPC ${where} did not answer eth_chainId: ${scrubbed(error, options.upstreamRpcUrl).message}`);
  }
  // Anvil would happily serve any chain under the id we give it: a Sepolia URL in BASE_RPC_URL must fail here.
  if (upstreamChainId !== options.chainId) throw new Error(`upstream RPC ${where} is chain ${upstreamChainId}, expected ${options.chainId}`);

  // Anvil prints the fork URL in its banner, and a failed start quotes Anvil's output.
  const anvil = await startAnvil({
    chainId: options.chainId,
    forkUrl: options.upstreamRpcUrl,
    forkBlockNumber: options.forkBlockNumber,
    startTimeoutMs: options.startTimeoutMs ?? DEFAULT_FORK_START_TIMEOUT_MS,
  }).catch((error: unknown) => {
    throw scrubbed(error, options.upstreamRpcUrl);
  });
  try {
    const transport = http(anvil.rpcUrl, { timeout: RPC_TIMEOUT_MS });
    const publicClient = createPublicClient({ transport, cacheTime: 0 }) as PublicClient; // the head now, not a 4 s cached one
    const testClient = createTestClient({ mode: "anvil", transport }) as unknown as TestClient;
    const clients: Clients = { publicClient, testClient };
    const usdc: Required<ForkUsdc> = { decimals: 6, ...options.usdc };
    const token = usdc.address;

    if (!(await publicClient.getCode({ address: token }))) throw new Error(`no contract at the USDC address ${token} on the fork of ${where} (chain ${options.chainId})`);
    const forkBlockNumber = await publicClient.getBlockNumber();

    // Base and Base Sepolia have Multicall3; an upstream without it (a local node) gets one on the fork.
    let multicall3Installed = false;
    if (!(await publicClient.getCode({ address: MULTICALL3_ADDRESS }))) {
      await installMulticall3(anvil.rpcUrl);
      multicall3Installed = true;
    }
    // Batches go through BatchSettler; a chain where nobody deployed it yet gets it on the fork.
    if (!(await publicClient.getCode({ address: batchSettlerAddress }))) await installBatchSettler(anvil.rpcUrl);
    // Base and Base Sepolia have Permit2 and x402's Permit2 proxies: the fork then exercises the real
    // ones (defineForkPaymentTests' Permit2 cases). A chain without them (a local node upstream)
    // gets the local stand-ins.
    if (!(await publicClient.getCode({ address: permit2Address }))) await installPermit2(anvil.rpcUrl);
    await installX402Permit2Proxies(anvil.rpcUrl, { keepExisting: true });

    // A fork keeps the fork block's time; payments are signed with wall-clock windows.
    let timeSynced = false;
    const latest = await publicClient.getBlock({ blockTag: "latest" });
    const now = BigInt(Math.floor(Date.now() / 1000));
    if (latest.timestamp + CLOCK_SKEW_TOLERANCE_SECONDS < now) {
      await rawRpc(anvil.rpcUrl, "evm_setTime", [Number(now)]);
      await testClient.mine({ blocks: 1 });
      timeSynced = true;
    }

    let foundSlot: BalanceSlot | undefined;
    let probed = false;
    const fundByStorage = async (to: Address, amountAtomic: bigint): Promise<boolean> => {
      if (!probed) {
        foundSlot = await findBalanceSlot(clients, token, to);
        probed = true;
      }
      if (!foundSlot) return false;
      await writeBalance(clients, token, to, foundSlot, (await readBalance(clients, token, to)) + amountAtomic);
      return true;
    };
    const fundByHolder = async (to: Address, amountAtomic: bigint): Promise<void> => {
      if (!options.fundFrom) throw new Error("no fundFrom holder configured");
      await fundFromHolder(clients, options.chainId, anvil.rpcUrl, token, options.fundFrom, to, amountAtomic);
    };

    return {
      anvil,
      rpcUrl: anvil.rpcUrl,
      chainId: options.chainId,
      token,
      usdc,
      forkBlockNumber,
      timeSynced,
      multicall3Installed,
      publicClient,
      testClient,
      fund: async (to, amountAtomic, fundOptions = {}) => {
        if (fundOptions.via === "holder") return fundByHolder(to, amountAtomic).then(() => "holder" as const);
        if (await fundByStorage(to, amountAtomic)) return "storage";
        if (fundOptions.via === "storage") throw new Error(`no balance slot of ${token} found by probing ${balanceSlotCandidates().length} candidates`);
        if (!options.fundFrom) {
          throw new Error(
            `cannot fund ${to}: probing ${balanceSlotCandidates().length} candidate mapping slots of ${token} found no balance word ` +
              `(namespaced or unusual storage?) and no fundFrom holder is configured to transfer from`,
          );
        }
        await fundByHolder(to, amountAtomic);
        return "holder";
      },
      balanceSlot: () => foundSlot,
      setEthBalance: (address, wei) => testClient.setBalance({ address, value: wei }),
      balanceOf: (account) => readBalance(clients, token, account),
      stop: () => anvil.stop(),
    };
  } catch (error) {
    await anvil.stop();
    throw scrubbed(error, options.upstreamRpcUrl);
  }
}

// ---------------------------------------------------------------- facilitator

export interface ForkFacilitatorOptions {
  databaseUrl: string;
  rpcUrls: string[];
  chainId: number;
  /** The v1 network name ("base", "base-sepolia"), or null. */
  v1Name: string | null;
  asset: AssetConfig;
  signerKeys: Hex[];
  limits?: Partial<Limits>;
}

export type ForkFacilitator = TestFacilitator;

/** The test facilitator with the asset's real EIP-712 domain instead of TestUSDC's "USDC". */
export async function startForkFacilitator(options: ForkFacilitatorOptions): Promise<ForkFacilitator> {
  return startTestFacilitator({
    databaseUrl: options.databaseUrl,
    rpcUrls: options.rpcUrls,
    token: options.asset.address,
    asset: options.asset,
    chainId: options.chainId,
    v1Name: options.v1Name,
    signerKeys: options.signerKeys,
    // A fork answers from the upstream on first touch of an account or slot: more room than a local node.
    limits: { rpcTimeoutMs: 15_000, settleBudgetMs: 20_000, ...options.limits },
  });
}

// ---------------------------------------------------------------- the shared suite

export interface ForkTarget {
  chainId: number;
  v1Name: string | null;
  usdc: AssetConfig;
  /** An EIP-712 name this token does NOT have (the other Base network's USDC name). */
  wrongName: string;
}

export interface ForkSuiteChain {
  chain: ForkChain;
  /** Stops what `start` started besides the fork itself (e.g. a local upstream). */
  cleanup?: () => Promise<void>;
}

/**
 * Registers verify/settle tests (inside the caller's `describe`) against a fork started by `start`.
 * Every role uses a fresh random key: Anvil's well-known dev accounts have history, and on real
 * networks often EIP-7702 code, which would make USDC check signatures through ERC-1271.
 */
export function defineForkPaymentTests(target: ForkTarget, start: () => Promise<ForkSuiteChain>, hookTimeoutMs = 180_000): void {
  const payerKey = generatePrivateKey();
  const facilitatorKey = generatePrivateKey();
  const payer = privateKeyToAccount(payerKey).address;
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const facilitatorAddress = privateKeyToAccount(facilitatorKey).address;
  const network = `eip155:${target.chainId}`;
  const amountAtomic = 10_000n; // $0.01
  const payerFunds = 1_000_000n; // $1

  let started: ForkSuiteChain | undefined;
  let chain: ForkChain;
  let database: TestDatabase | undefined;
  let facilitator: ForkFacilitator | undefined;

  beforeAll(async () => {
    started = await start();
    chain = started.chain;
    await chain.setEthBalance(facilitatorAddress, parseEther("10"));
    await chain.fund(payer, payerFunds);
    database = await createTestDatabase(`fork_${target.chainId}`);
    facilitator = await startForkFacilitator({
      databaseUrl: database.url,
      rpcUrls: [chain.rpcUrl],
      chainId: target.chainId,
      v1Name: target.v1Name,
      asset: target.usdc,
      signerKeys: [facilitatorKey],
    });
  }, hookTimeoutMs);

  afterAll(async () => {
    await facilitator?.close();
    await database?.drop();
    await started?.chain.stop();
    await started?.cleanup?.();
  }, hookTimeoutMs);

  const sign = (overrides: Partial<SignPaymentOptions> = {}) =>
    signPayment({
      payerKey,
      token: target.usdc.address,
      chainId: target.chainId,
      payTo,
      valueAtomic: amountAtomic,
      domainName: target.usdc.name,
      domainVersion: target.usdc.version,
      ...overrides,
    });
  const requirements = (overrides: { name?: string } = {}) =>
    v2Requirements({ token: target.usdc.address, payTo, amountAtomic, network, name: overrides.name ?? target.usdc.name, version: target.usdc.version });
  const post = async (url: "/verify" | "/settle", body: unknown) => {
    const answer = await postJson(facilitator!.app, url, body);
    expect(answer.status).toBe(200);
    return answer.body;
  };
  const transfersOf = async (hash: Hex, from: Address) => {
    const receipt = await chain.publicClient.getTransactionReceipt({ hash });
    return {
      receipt,
      transfers: parseEventLogs({ abi: erc20Abi, eventName: "Transfer", logs: receipt.logs }).filter(
        (log) => log.address.toLowerCase() === target.usdc.address.toLowerCase() && log.args.from === from,
      ),
    };
  };

  it("finds the token at the USDC address with the configured EIP-712 name, version and decimals", async () => {
    const read = (functionName: "name" | "version" | "decimals") => chain.publicClient.readContract({ address: target.usdc.address, abi: erc20Abi, functionName });
    expect(await read("name")).toBe(target.usdc.name);
    expect(await read("version")).toBe(target.usdc.version);
    expect(await read("decimals")).toBe(target.usdc.decimals);
    expect(await chain.balanceOf(payer)).toBe(payerFunds);
  });

  it("verifies a valid payment", async () => {
    expect(await post("/verify", v2Body(await sign(), requirements()))).toEqual({ isValid: true, payer });
  });

  it("settles a payment: success, a Transfer on the USDC contract, balances moved", async () => {
    const [payerBefore, payToBefore] = await Promise.all([chain.balanceOf(payer), chain.balanceOf(payTo)]);
    const answer = await post("/settle", v2Body(await sign(), requirements()));
    expect(answer).toMatchObject({ success: true, payer, network });
    expect(answer.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    const { receipt, transfers } = await transfersOf(answer.transaction, payer);
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(facilitatorAddress.toLowerCase());
    expect(transfers.map((log) => log.args)).toEqual([{ from: payer, to: payTo, value: amountAtomic }]);
    expect(await chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
  });

  it("answers a replayed settle with duplicate_settlement and the original transaction, moving nothing", async () => {
    const body = v2Body(await sign(), requirements());
    const first = await post("/settle", body);
    expect(first).toMatchObject({ success: true });
    const balanceAfterFirst = await chain.balanceOf(payer);
    const replay = await post("/settle", body);
    expect(replay).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: first.transaction, network });
    expect(await chain.balanceOf(payer)).toBe(balanceAfterFirst);
  });

  it.skipIf(target.v1Name === null)("settles a v1 payment and answers with the v1 network name", async () => {
    const answer = await post(
      "/settle",
      v1Body(await sign(), { token: target.usdc.address, payTo, amountAtomic, network: target.v1Name!, name: target.usdc.name, version: target.usdc.version }),
    );
    expect(answer).toMatchObject({ success: true, payer, network: target.v1Name });
  });

  it("refuses a wrong EIP-712 name in extra (token_name_mismatch) and a signature over a wrong name (invalid signature)", async () => {
    const wrongExtra = await post("/verify", v2Body(await sign({ domainName: target.wrongName }), requirements({ name: target.wrongName })));
    expect(wrongExtra).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_token_name_mismatch", payer });
    const wrongDomain = await post("/verify", v2Body(await sign({ domainName: target.wrongName }), requirements()));
    expect(wrongDomain).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_signature" });
    const settled = await post("/settle", v2Body(await sign({ domainName: target.wrongName }), requirements()));
    expect(settled).toMatchObject({ success: false, errorReason: "invalid_exact_evm_signature", transaction: "" });
  });

  it("refuses a payer with too little USDC (insufficient_balance) on verify and settle, sending nothing", async () => {
    const poorKey = generatePrivateKey();
    const poor = privateKeyToAccount(poorKey).address;
    await chain.fund(poor, amountAtomic - 1n);
    const body = v2Body(await sign({ payerKey: poorKey }), requirements());
    expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_insufficient_balance", payer: poor });
    const signerNonceBefore = await chain.publicClient.getTransactionCount({ address: facilitatorAddress });
    expect(await post("/settle", body)).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "" });
    expect(await chain.publicClient.getTransactionCount({ address: facilitatorAddress })).toBe(signerNonceBefore);
    expect(await chain.balanceOf(poor)).toBe(amountAtomic - 1n);
  });

  // Permit2 (issue 16): payloads from the official 2.27 clients, settled through Permit2 and x402's
  // proxies at their canonical addresses — the real contracts on a Base fork, the stand-ins otherwise.
  const permit2Requirements = (scheme: "exact" | "upto", amount: bigint): PaymentRequirements => ({
    scheme,
    network: network as PaymentRequirements["network"],
    amount: amount.toString(),
    asset: target.usdc.address,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: target.usdc.name, version: target.usdc.version, assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress } : {}) },
  });
  const permit2Body = async (scheme: "exact" | "upto", capAtomic: bigint, chargeAtomic = capAtomic) => {
    const account = privateKeyToAccount(payerKey);
    const accepted = permit2Requirements(scheme, capAtomic);
    const result = await (scheme === "upto" ? new UptoEvmScheme(account) : new ExactEvmScheme(account)).createPaymentPayload(2, accepted);
    return {
      x402Version: 2,
      paymentPayload: { x402Version: 2, resource: { url: "https://seller.example/r" }, accepted, payload: result.payload },
      paymentRequirements: { ...accepted, amount: chargeAtomic.toString() },
    };
  };
  let permit2Approved = false;
  const approvePermit2 = async () => {
    if (permit2Approved) return;
    await chain.setEthBalance(payer, parseEther("1"));
    const wallet = createWalletClient({ account: privateKeyToAccount(payerKey), transport: http(chain.rpcUrl) });
    const hash = await wallet.writeContract({
      address: target.usdc.address,
      abi: parseAbi(["function approve(address spender, uint256 value) returns (bool)"]),
      functionName: "approve",
      args: [permit2Address, 2n ** 256n - 1n],
      chain: null,
    });
    expect((await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 30_000 })).status).toBe("success");
    permit2Approved = true;
  };

  it("settles exact over Permit2 through the exact proxy: one Transfer of the amount to payTo", async () => {
    await approvePermit2();
    const body = await permit2Body("exact", amountAtomic);
    expect(await post("/verify", body)).toEqual({ isValid: true, payer });
    const payToBefore = await chain.balanceOf(payTo);
    const answer = await post("/settle", body);
    expect(answer).toMatchObject({ success: true, payer, network });
    const { receipt, transfers } = await transfersOf(answer.transaction, payer);
    expect(receipt.status).toBe("success");
    expect(receipt.to?.toLowerCase()).toBe(x402ExactPermit2ProxyAddress.toLowerCase());
    expect(transfers.map((log) => log.args)).toEqual([{ from: payer, to: payTo, value: amountAtomic }]);
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    expect(await post("/settle", body)).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: answer.transaction });
  });

  it("settles upto through the upto proxy for the charge, below the cap signed, from the key the witness names", async () => {
    await approvePermit2();
    const capAtomic = amountAtomic;
    const chargeAtomic = amountAtomic / 4n;
    const body = await permit2Body("upto", capAtomic, chargeAtomic);
    const payToBefore = await chain.balanceOf(payTo);
    const answer = await post("/settle", body);
    expect(answer).toMatchObject({ success: true, payer, network, amount: chargeAtomic.toString() });
    const { receipt, transfers } = await transfersOf(answer.transaction, payer);
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(facilitatorAddress.toLowerCase());
    expect(receipt.to?.toLowerCase()).toBe(x402UptoPermit2ProxyAddress.toLowerCase());
    expect(transfers.map((log) => log.args)).toEqual([{ from: payer, to: payTo, value: chargeAtomic }]);
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + chargeAtomic);
    // Above the cap: refused, nothing sent.
    const over = await permit2Body("upto", capAtomic, capAtomic + 1n);
    expect(await post("/settle", over)).toMatchObject({ success: false, errorReason: "invalid_upto_evm_payload_settlement_exceeds_amount", transaction: "" });
  });
}
