/**
 * One payer's concurrent payments that together need more than it has (review 16, attack 1): each
 * alone simulates fine at `latest` (the others are still pending), so without a check each gets a
 * transaction of ours and all but the first revert — on Permit2 a whole transaction each (~68k
 * gas, never batched), repeatable every block, at no cost to the payer. On 2 s blocks, behind a
 * proxy that makes eth_estimateGas use `latest` (as reth and op-geth do; Anvil defaults to
 * pending, which hides it). Real Postgres, real Anvil, payloads from the official 2.27 client.
 *
 * Expected: one transaction, none reverted; the others refused with the code that names what is
 * short (nothing sent); a payer whose funds cover every payment gets them all settled.
 */
import { createWalletClient, defineChain, erc20Abi, http, maxUint256, type PrivateKeyAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permit2Address } from "../../../src/contracts/permit2.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/database.js";
import { latestEstimateProxy, ourTransactionsFor, paymentWithPermit, waitForBlocks } from "../../helpers/eip2612-permits.js";
import { waitFor } from "../../helpers/wait.js";
import { startTestFacilitator, type TestFacilitator } from "../../helpers/facilitator.js";
import { signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { body } from "../../helpers/permit2-mined.js";
import { settlementRowsOfPayer } from "../../helpers/sdk.js";

const payTo = addressOf(keys.payTo);
const signerAddresses = [addressOf(keys.facilitator)];
const concurrentPayments = 6;
const amountAtomic = 10_000n;
const viemChain = defineChain({ id: 84532, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: ["http://127.0.0.1"] } } });

let chain: TestChain;
let database: TestDatabase;
let facilitator: TestFacilitator;
/** IN_FLIGHT_PER_PAYER_MAX=2, its own key and database: bursts past the per-payer limit. */
let smallLimitDatabase: TestDatabase;
let smallLimit: TestFacilitator;
let proxy: { url: string; stop(): Promise<void> };

beforeAll(async () => {
  chain = await startTestChain({ blockTimeSeconds: 2 });
  proxy = await latestEstimateProxy(chain.rpcUrl);
  database = await createTestDatabase("shared_funds");
  facilitator = await startTestFacilitator({ databaseUrl: database.url, rpcUrls: [proxy.url], token: chain.token, signerKeys: [keys.facilitator], limits: { settleBudgetMs: 15_000 } });
  smallLimitDatabase = await createTestDatabase("shared_funds_small_limit");
  smallLimit = await startTestFacilitator({ databaseUrl: smallLimitDatabase.url, rpcUrls: [proxy.url], token: chain.token, signerKeys: [keys.facilitator2], limits: { settleBudgetMs: 15_000, inFlightPerPayerMax: 2 } });
}, 60_000);
afterAll(async () => {
  await facilitator?.close();
  await smallLimit?.close();
  await smallLimitDatabase?.drop();
  await proxy?.stop();
  await database?.drop();
  await chain?.stop();
});

/** A fresh payer holding `balanceAtomic`, with `allowanceAtomic` approved to Permit2 (none when undefined). */
async function payerWith(balanceAtomic: bigint, allowanceAtomic?: bigint): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await chain.mint(account.address, balanceAtomic);
  if (allowanceAtomic === undefined) return account;
  await chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  const wallet = createWalletClient({ account, chain: viemChain, transport: http(chain.rpcUrl) });
  const hash = await wallet.writeContract({ address: chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, allowanceAtomic] });
  await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 20_000 });
  return account;
}

const permit2Body = (account: PrivateKeyAccount, scheme: "exact" | "upto") => body(chain, account, scheme, amountAtomic);

async function settleOne(body: unknown, through: TestFacilitator = facilitator) {
  const response = await through.app.inject({ method: "POST", url: "/settle", payload: body as Record<string, unknown> });
  return { status: response.statusCode, json: response.json() as Record<string, unknown> };
}

async function settleAll(bodies: unknown[], through: TestFacilitator = facilitator) {
  return Promise.all(bodies.map((body) => settleOne(body, through)));
}

async function approvePermit2(account: PrivateKeyAccount, allowanceAtomic: bigint): Promise<void> {
  const wallet = createWalletClient({ account, chain: viemChain, transport: http(chain.rpcUrl) });
  const hash = await wallet.writeContract({ address: chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, allowanceAtomic] });
  await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 20_000 });
}

async function settledOnce(account: PrivateKeyAccount, bodies: unknown[], refusal: string) {
  await waitForBlocks(chain, 1n);
  const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
  const payToBefore = await chain.balanceOf(payTo);
  const answers = await settleAll(bodies);
  await waitForBlocks(chain, 2n);
  const successes = answers.filter((answer) => answer.json.success === true);
  expect(successes, JSON.stringify(answers.map((answer) => answer.json.errorReason ?? "success"))).toHaveLength(1);
  for (const answer of answers.filter((candidate) => candidate.json.success !== true)) {
    expect(answer, JSON.stringify(answer.json)).toMatchObject({ status: 200, json: { success: false, errorReason: refusal, transaction: "" } });
  }
  expect(await ourTransactionsFor(chain, signerAddresses, account.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
  expect(await chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
}

describe("one payer's concurrent payments that together need more than it has", () => {
  it("exact over Permit2 sharing one allowance: one transaction, none reverted, the others permit2_allowance_required", async () => {
    const owner = await payerWith(100n * amountAtomic, amountAtomic);
    const bodies = await Promise.all(Array.from({ length: concurrentPayments }, () => permit2Body(owner, "exact")));
    await settledOnce(owner, bodies, "permit2_allowance_required");
  }, 90_000);

  it("upto sharing one balance: one transaction, none reverted, the others permit2_insufficient_balance", async () => {
    const owner = await payerWith(amountAtomic, maxUint256);
    const bodies = await Promise.all(Array.from({ length: concurrentPayments }, () => permit2Body(owner, "upto")));
    await settledOnce(owner, bodies, "permit2_insufficient_balance");
  }, 90_000);

  it("exact over EIP-3009 sharing one balance: one paid, no failing call of ours, the others invalid_exact_evm_insufficient_balance", async () => {
    const key = generatePrivateKey();
    const owner = privateKeyToAccount(key);
    await chain.mint(owner.address, amountAtomic);
    const bodies = await Promise.all(
      Array.from({ length: concurrentPayments }, async () =>
        v2Body(await signPayment({ payerKey: key, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic }), v2Requirements({ token: chain.token, payTo, amountAtomic })),
      ),
    );
    await waitForBlocks(chain, 1n);
    const payToBefore = await chain.balanceOf(payTo);
    const answers = await settleAll(bodies);
    await waitForBlocks(chain, 2n);
    expect(answers.filter((answer) => answer.json.success === true)).toHaveLength(1);
    for (const answer of answers.filter((candidate) => candidate.json.success !== true)) {
      expect(answer).toMatchObject({ status: 200, json: { success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "" } });
    }
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    // No call of ours failed on chain (alone or inside a batch): every refused row has no transaction.
    const rows = await settlementRowsOfPayer(database.url, owner.address);
    expect(rows.filter((row) => row.status === "failed").map((row) => row.tx_hash)).toEqual(Array.from({ length: concurrentPayments - 1 }, () => null));
  }, 90_000);

  it("a payer whose funds cover every payment gets them all settled (no over-refusal)", async () => {
    const owner = await payerWith(BigInt(concurrentPayments) * amountAtomic, BigInt(concurrentPayments) * amountAtomic);
    const bodies = await Promise.all(Array.from({ length: concurrentPayments }, (_, index) => permit2Body(owner, index % 2 === 0 ? "exact" : "upto")));
    const answers = await settleAll(bodies);
    expect(answers.map((answer) => answer.json.success)).toEqual(Array.from({ length: concurrentPayments }, () => true));
  }, 90_000);
});


/** The re-review's ways around a claim-ordered check (review 16, re-review findings 1–3). */
describe("reservations of one payer's funds, whatever the order, the limit or the permit", () => {
  it("a re-claimed payment does not jump ahead of a newer one already sent: its funds are counted against it", async () => {
    const owner = await payerWith(100n * amountAtomic, 0n);
    const a = await permit2Body(owner, "exact");
    // A fails after its claim (no allowance yet): a failed, reclaimable row with an early created_at.
    expect((await settleOne(a)).json).toMatchObject({ success: false, errorReason: "permit2_allowance_required" });
    await approvePermit2(owner, amountAtomic); // for exactly one payment
    await waitForBlocks(chain, 1n);
    const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
    const b = await permit2Body(owner, "exact");
    const answerB = settleOne(b);
    await waitFor("B reserved", async () => (await settlementRowsOfPayer(database.url, owner.address)).some((row) => row.funds_reserved === true), 10_000, 10);
    const answerA = settleOne(a); // re-claims A while B is in flight
    const answers = await Promise.all([answerB, answerA]);
    await waitForBlocks(chain, 2n);
    expect(answers.filter((answer) => answer.json.success === true)).toHaveLength(1);
    expect(await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).toEqual({ sent: 1, reverted: 0 });
  }, 90_000);

  it("a burst past IN_FLIGHT_PER_PAYER_MAX: every reserved payment is counted, none reverts", async () => {
    const owner = await payerWith(100n * amountAtomic, 3n * amountAtomic); // room for 3 of 8
    const bodies = await Promise.all(Array.from({ length: 8 }, () => permit2Body(owner, "exact")));
    await waitForBlocks(chain, 1n);
    const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
    const answers = await settleAll(bodies, smallLimit);
    await waitForBlocks(chain, 2n);
    const successes = answers.filter((answer) => answer.json.success === true).length;
    expect(successes).toBeGreaterThanOrEqual(1);
    expect(successes).toBeLessThanOrEqual(3);
    const ours = await ourTransactionsFor(chain, [addressOf(keys.facilitator2)], owner.address, fromBlock);
    expect(ours.reverted).toBe(0);
    expect(ours.sent).toBeLessThanOrEqual(3);
  }, 90_000);

  it("a payment carrying an EIP-2612 permit, next to a plain one over an approval for one: none reverts", async () => {
    const owner = await payerWith(100n * amountAtomic, 0n);
    await chain.testClient.setBalance({ address: owner.address, value: 10n ** 18n });
    // B's payload gets a permit (no allowance when signed); then the owner approves one payment's worth.
    const withPermit = await paymentWithPermit({ chain, payTo, uptoFacilitator: signerAddresses[0]! }, owner, "exact", amountAtomic);
    await approvePermit2(owner, amountAtomic);
    const plain = await permit2Body(owner, "exact");
    await waitForBlocks(chain, 1n);
    const fromBlock = await chain.publicClient.getBlockNumber({ cacheTime: 0 });
    const answers = await Promise.all([settleOne(plain), settleOne(withPermit)]);
    await waitForBlocks(chain, 2n);
    expect(answers.filter((answer) => answer.json.success === true).length).toBeGreaterThanOrEqual(1);
    expect((await ourTransactionsFor(chain, signerAddresses, owner.address, fromBlock)).reverted).toBe(0);
  }, 90_000);
});
