/**
 * The fork machinery of test/helpers/fork.ts, proven without internet: a local Anvil "upstream"
 * stands in for Base (chain 8453, TestUSDC named "USD Coin" at the real Base USDC address, its
 * clock a day behind like an old fork block, no Multicall3), and startForkChain forks THAT.
 *
 * What only a real RPC exercises (base-fork.test.ts): the real FiatToken v2.2 bytecode, its slot-9
 * balance word found by probing on real state, and the upstream's own Multicall3. Probing itself is
 * tested here against a tiny balanceOf-only stub (hand-assembled runtime bytecode, no contract source).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, createTestClient, http, numberToHex, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { anvilDevPrivateKeys, startAnvil, type AnvilInstance } from "../../../src/sandbox/anvil.js";
import { installTestUsdc, mintTestUsdc } from "../../../src/sandbox/deploy.js";
import {
  balanceSlotCandidates,
  balanceStorageKey,
  baseMainnetUsdc,
  defineForkPaymentTests,
  erc20Abi,
  findBalanceSlot,
  fiatTokenV22BalanceSlot,
  startForkChain,
  writeBalance,
  type ForkChain,
} from "../../helpers/fork.js";

const minterKey = anvilDevPrivateKeys[9]!;
const randomAddress = (): Address => privateKeyToAccount(generatePrivateKey()).address;
/** Holds the upstream's TestUSDC; impersonated on forks to fund payers (TestUSDC's storage is ERC-7201 namespaced). */
const whale = randomAddress();
const whaleFunds = 1_000_000_000n;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const TOP_BIT = 1n << 255n;

/**
 * Runtime code answering any call with sload(keccak256(abi.encode(calldata[4:36], slot))), masked to
 * the low 255 bits when `masked` (as FiatToken v2.2's balanceOf does): a balanceOf with a plain
 * mapping at `slot`, for testing the probe. Not a contract of the project; nothing else uses it.
 */
function balanceOfStub(slot: number, masked: boolean): Hex {
  const slotByte = slot.toString(16).padStart(2, "0");
  // CALLDATALOAD(4) → mem[0]; slot → mem[32]; SHA3(0, 64); SLOAD; [AND ~(1 << 255)]; mem[0]; RETURN(0, 32)
  return `0x600435600052 60${slotByte}602052 6040600020 54 ${masked ? "600160ff1b1916" : ""} 600052 60206000f3`.replaceAll(" ", "") as Hex;
}

let upstream: AnvilInstance;
let upstreamClient: PublicClient;
const upstreamBalance = (account: Address) =>
  upstreamClient.readContract({ address: baseMainnetUsdc.address, abi: erc20Abi, functionName: "balanceOf", args: [account] });

beforeAll(async () => {
  // A day behind: a fork of it starts at an old block's time, as a pinned fork block of Base would.
  upstream = await startAnvil({ chainId: 8453, extraArgs: ["--timestamp", String(nowSeconds() - 86_400)] });
  upstreamClient = createPublicClient({ transport: http(upstream.rpcUrl) }) as PublicClient;
  await installTestUsdc(upstream.rpcUrl, { address: baseMainnetUsdc.address, name: "USD Coin", version: "2", minter: privateKeyToAccount(minterKey).address });
  await mintTestUsdc(upstream.rpcUrl, { token: baseMainnetUsdc.address, minterPrivateKey: minterKey, to: whale, amountAtomic: whaleFunds });
});

afterAll(async () => {
  await upstream?.stop();
});

describe("fork machinery (a local Anvil standing in for Base)", () => {
  let fork: ForkChain;

  beforeAll(async () => {
    fork = await startForkChain({ upstreamRpcUrl: upstream.rpcUrl, chainId: 8453, usdc: baseMainnetUsdc, fundFrom: whale });
  });

  afterAll(async () => {
    await fork?.stop();
  });

  it("serves the upstream's chain id and token, moves an old fork block's clock to now, and adds the missing Multicall3", async () => {
    expect(fork.rpcUrl).not.toBe(upstream.rpcUrl);
    expect(await fork.publicClient.getChainId()).toBe(8453);
    expect(await fork.publicClient.readContract({ address: fork.token, abi: erc20Abi, functionName: "name" })).toBe("USD Coin");
    expect(await fork.balanceOf(whale)).toBe(whaleFunds); // state read through from the upstream
    expect(fork.timeSynced).toBe(true);
    const latest = await fork.publicClient.getBlock({ blockTag: "latest" });
    expect(Math.abs(Number(latest.timestamp) - nowSeconds())).toBeLessThan(30);
    expect(fork.multicall3Installed).toBe(true);
  });

  it("funds through the fundFrom holder when probing finds no balance slot, on the fork only", async () => {
    const payer = randomAddress();
    expect(await fork.fund(payer, 5_000_000n)).toBe("holder");
    expect(fork.balanceSlot()).toBeUndefined();
    expect(await fork.balanceOf(payer)).toBe(5_000_000n);
    expect(await fork.balanceOf(whale)).toBe(whaleFunds - 5_000_000n);
    // The upstream never sees the fork's transactions.
    expect(await upstreamBalance(payer)).toBe(0n);
    expect(await upstreamBalance(whale)).toBe(whaleFunds);
    // Every word the probe wrote was put back.
    for (const candidate of balanceSlotCandidates()) {
      expect(await fork.publicClient.getStorageAt({ address: fork.token, slot: balanceStorageKey(payer, candidate) })).toBe(`0x${"0".repeat(64)}`);
    }
  });

  it("refuses to fund by storage when no slot is found, and says why without a fundFrom holder", async () => {
    await expect(fork.fund(randomAddress(), 1n, { via: "storage" })).rejects.toThrow(/no balance slot/);
    const bare = await startForkChain({ upstreamRpcUrl: upstream.rpcUrl, chainId: 8453, usdc: baseMainnetUsdc });
    try {
      await expect(bare.fund(randomAddress(), 1n)).rejects.toThrow(/found no balance word.*no fundFrom holder/);
    } finally {
      await bare.stop();
    }
  });

  it("refuses an upstream that is another chain (e.g. a Sepolia URL in BASE_RPC_URL)", async () => {
    await expect(startForkChain({ upstreamRpcUrl: upstream.rpcUrl, chainId: 84532, usdc: baseMainnetUsdc })).rejects.toThrow(/is chain 8453, expected 84532/);
  });

  it("finds a FiatToken-v2.2-like balance word (slot 9, low 255 bits) by probing and keeps the top bit when writing", async () => {
    const stub = randomAddress();
    await fork.testClient.setCode({ address: stub, bytecode: balanceOfStub(9, true) });
    const holder = randomAddress();
    const key = balanceStorageKey(holder, fiatTokenV22BalanceSlot);
    await fork.testClient.setStorageAt({ address: stub, index: key, value: numberToHex(TOP_BIT | 7n, { size: 32 }) });
    const clients = { publicClient: fork.publicClient, testClient: fork.testClient };
    const found = await findBalanceSlot(clients, stub, holder);
    expect(found).toEqual(fiatTokenV22BalanceSlot);
    expect(BigInt((await fork.publicClient.getStorageAt({ address: stub, slot: key }))!)).toBe(TOP_BIT | 7n); // restored
    await writeBalance(clients, stub, holder, found!, 1_234n);
    expect(BigInt((await fork.publicClient.getStorageAt({ address: stub, slot: key }))!)).toBe(TOP_BIT | 1_234n);
  });

  it("finds a plain Solidity mapping at another slot by probing", async () => {
    const stub = randomAddress();
    await fork.testClient.setCode({ address: stub, bytecode: balanceOfStub(3, false) });
    const found = await findBalanceSlot({ publicClient: fork.publicClient, testClient: fork.testClient }, stub, randomAddress());
    expect(found).toEqual({ slot: 3n, layout: "solidity", balanceBits: 256 });
  });

  it("funds by storage through fund() when the forked token's balance slot is found (stub placed upstream)", async () => {
    const stub = randomAddress();
    const upstreamTest = createTestClient({ mode: "anvil", transport: http(upstream.rpcUrl) });
    await upstreamTest.setCode({ address: stub, bytecode: balanceOfStub(9, true) });
    const stubFork = await startForkChain({ upstreamRpcUrl: upstream.rpcUrl, chainId: 8453, usdc: { address: stub, name: "stub", version: "1" } });
    try {
      const payer = randomAddress();
      expect(await stubFork.fund(payer, 1_000n)).toBe("storage");
      expect(await stubFork.fund(payer, 500n)).toBe("storage");
      expect(stubFork.balanceSlot()).toEqual(fiatTokenV22BalanceSlot);
      expect(await stubFork.balanceOf(payer)).toBe(1_500n);
      expect(await upstreamClient.readContract({ address: stub, abi: erc20Abi, functionName: "balanceOf", args: [payer] })).toBe(0n);
    } finally {
      await stubFork.stop();
    }
  });
});

describe('facilitator on a fork of the local stand-in (TestUSDC "USD Coin" at the Base USDC address)', () => {
  defineForkPaymentTests({ chainId: 8453, v1Name: "base", usdc: baseMainnetUsdc, wrongName: "USDC" }, async () => ({
    chain: await startForkChain({ upstreamRpcUrl: upstream.rpcUrl, chainId: 8453, usdc: baseMainnetUsdc, fundFrom: whale }),
  }));
});
