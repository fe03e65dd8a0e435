/**
 * Verify's chain reads (src/exact-evm/verify-chain-state.ts): one Multicall3 eth_call per verify,
 * and a per-block cache that must never outlive its block by more than headAgeMsMax. Real Anvil,
 * real Postgres; the RPC goes through a pass-through proxy only to count the calls.
 *
 * The cache ages entries and head observations by the Clock's monotonic reading. The facilitator
 * here gets a Clock whose monotonic time stands still unless a test moves it with `advance()`, so
 * whether a verify is a hit, a hit that first confirms the head, or a miss depends on the steps
 * taken, never on how fast a loaded machine runs them. Timers, sockets and wall time stay real.
 */
import { createWalletClient, http, parseAbi, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { cachedReadAgeMsMax, headAgeMsMax, verifyReadsHeld } from "../../../src/exact-evm/verify-chain-state.js";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import { MULTICALL3_ADDRESS, installMulticall3 } from "../../../src/sandbox/deploy.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { steppedMonotonicClock } from "../../helpers/clock.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { startFaultyRpcProxy, type FaultyRpcProxy } from "../../helpers/faulty-rpc-proxy.js";
import { postJson } from "../../helpers/http.js";
import { randomNonce, signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";

const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
/** Anvil dev accounts hold ETH for gas; each test that drains a payer uses its own. */
const drainablePayerKey: Hex = anvilDevPrivateKeys[7]!;

let chain: TestChain;
let database: TestDatabase;
let proxy: FaultyRpcProxy;
let facilitator: TestFacilitator;
const time = steppedMonotonicClock();

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(addressOf(keys.payer), 1_000_000n);
  proxy = await startFaultyRpcProxy({ upstreamUrl: chain.rpcUrl });
  database = await createTestDatabase("verify_chain_cache");
  facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token, clock: time.clock });
});

afterAll(async () => {
  await facilitator?.close();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

beforeEach(() => proxy.resetCounts());

/** Moves the cache's clock (the facilitator's monotonic time) forward; nothing else. */
const advance = (ms: number) => time.advance(ms);

async function body(payerKey: Hex = keys.payer) {
  const payment = await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic, nonce: randomNonce() });
  return v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic }));
}

/** The payer sends its whole TestUSDC balance away, in a new block (automine). */
async function drain(payerKey: Hex) {
  const payer = privateKeyToAccount(payerKey);
  const wallet = createWalletClient({ account: payer, transport: http(chain.rpcUrl) });
  const hash = await wallet.writeContract({
    chain: null,
    address: chain.token,
    abi: parseAbi(["function transfer(address to, uint256 value) returns (bool)"]),
    functionName: "transfer",
    args: [addressOf(keys.stranger), await chain.balanceOf(payer.address)],
  });
  expect((await chain.publicClient.waitForTransactionReceipt({ hash })).status).toBe("success");
}

async function post(url: "/verify" | "/settle", payload: unknown) {
  const answer = await postJson(facilitator.app, url, payload);
  expect(answer.status).toBe(200);
  return answer.body;
}

describe("verify's chain reads", () => {
  it("asks the chain once per new payment: balance, authorizationState and the simulation in one eth_call", async () => {
    // The process' first payment in this asset also reads the asset's code, once (asset-code.ts).
    expect(await post("/verify", await body())).toEqual({ isValid: true, payer: addressOf(keys.payer) });
    expect(proxy.counts().received).toEqual({ eth_getCode: 1, eth_call: 1 });
    proxy.resetCounts();
    expect(await post("/verify", await body())).toEqual({ isValid: true, payer: addressOf(keys.payer) });
    expect(proxy.counts().received).toEqual({ eth_call: 1 });
  });

  it("lets go of reads older than cachedReadAgeMsMax as new ones come (it holds seconds of reads, not dead ones)", async () => {
    const client = facilitator.services.deps.chains.get(chain.chainId)!.publicClient;
    const before = verifyReadsHeld(client).entries;
    for (let index = 0; index < 6; index += 1) expect(await post("/verify", await body())).toMatchObject({ isValid: true });
    expect(verifyReadsHeld(client).entries).toBe(before + 6);
    expect(verifyReadsHeld(client).bytes).toBeGreaterThan(0);
    advance(cachedReadAgeMsMax + 1);
    // Each new read drops up to 4 expired ones from the old end: two reads clear the 6 (and any older).
    expect(await post("/verify", await body())).toMatchObject({ isValid: true });
    expect(await post("/verify", await body())).toMatchObject({ isValid: true });
    expect(verifyReadsHeld(client).entries).toBe(2 + Math.max(0, before + 6 - 2 * 4));
  });

  it("answers a repeated verify from the cache while the head is known to be the same block", async () => {
    const payment = await body();
    expect(await post("/verify", payment)).toMatchObject({ isValid: true });
    expect(proxy.received("eth_call")).toBe(1);
    expect(await post("/verify", payment)).toMatchObject({ isValid: true });
    expect(proxy.total()).toBe(1); // served from the cache, nothing asked

    // Once the head observation is older than the bound, a hit first confirms the head (one cheap call).
    advance(headAgeMsMax + 1);
    expect(await post("/verify", payment)).toMatchObject({ isValid: true });
    expect(proxy.received("eth_call")).toBe(2);
    expect(await post("/verify", payment)).toMatchObject({ isValid: true });
    expect(proxy.received("eth_call")).toBe(2);
  });

  it("sees a transfer mined in a new block: the payer emptied its balance after a cached valid answer", async () => {
    const payer = privateKeyToAccount(drainablePayerKey);
    await chain.mint(payer.address, amountAtomic);
    const payment = await body(drainablePayerKey);
    expect(await post("/verify", payment)).toEqual({ isValid: true, payer: payer.address });
    expect(await post("/verify", payment)).toEqual({ isValid: true, payer: payer.address }); // cached

    await drain(drainablePayerKey);

    // Within headAgeMsMax a hit is still served (the stated staleness) ...
    expect(await post("/verify", payment)).toEqual({ isValid: true, payer: payer.address });
    // ... past it, never.
    advance(headAgeMsMax + 1);
    expect(await post("/verify", payment)).toEqual({
      isValid: false,
      invalidReason: "invalid_exact_evm_insufficient_balance",
      invalidMessage: `payer balance 0 is below the authorized value ${amountAtomic}`,
      payer: payer.address,
    });
  });

  it("drops every cached read of older blocks as soon as any read observes a new head", async () => {
    const payerKey = anvilDevPrivateKeys[6]!;
    const payer = privateKeyToAccount(payerKey);
    await chain.mint(payer.address, amountAtomic);
    const payment = await body(payerKey);
    expect(await post("/verify", payment)).toEqual({ isValid: true, payer: payer.address });
    await drain(payerKey);
    // Another payment's read sees the new block; no waiting for the head bound.
    expect(await post("/verify", await body())).toMatchObject({ isValid: true });
    expect(await post("/verify", payment)).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_insufficient_balance" });
  });

  it("reports a payment settled right after a cached valid answer as used on chain, as without a cache", async () => {
    const payment = await body();
    expect(await post("/verify", payment)).toMatchObject({ isValid: true });
    expect(await post("/settle", payment)).toMatchObject({ success: true });
    const nonce = (payment.paymentPayload.payload as { authorization: { nonce: string } }).authorization.nonce;
    expect(await post("/verify", payment)).toEqual({
      isValid: false,
      invalidReason: "invalid_exact_evm_nonce_already_used",
      invalidMessage: `nonce ${nonce} is already used on chain`,
      payer: addressOf(keys.payer),
    });
  });

  it("shares one read among concurrent verifies of the same new payment", async () => {
    const payment = await body();
    const answers = await Promise.all(Array.from({ length: 8 }, () => post("/verify", payment)));
    for (const answer of answers) expect(answer).toMatchObject({ isValid: true });
    expect(proxy.received("eth_call")).toBe(1);
  });

  // Last: it removes Multicall3, and the facilitator then keeps to plain reads for a while.
  it("falls back to the plain reads, with the same answers, on a chain without Multicall3", async () => {
    await chain.testClient.setCode({ address: MULTICALL3_ADDRESS, bytecode: "0x" });
    try {
      expect(await post("/verify", await body())).toEqual({ isValid: true, payer: addressOf(keys.payer) });
      expect(await post("/verify", await body(anvilDevPrivateKeys[8]!))).toMatchObject({
        isValid: false,
        invalidReason: "invalid_exact_evm_insufficient_balance",
        invalidMessage: `payer balance 0 is below the authorized value ${amountAtomic}`,
      });
      // The multicall that found no code, then three plain calls per verify.
      expect(proxy.received("eth_call")).toBe(1 + 3 + 3);
    } finally {
      await installMulticall3(chain.rpcUrl);
    }
  });
});
