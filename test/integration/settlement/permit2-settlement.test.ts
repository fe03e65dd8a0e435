/**
 * The chain's verdict on Permit2 settlements, with blocks mined by the test (Anvil --no-mining,
 * ordered by tip): a revert while the nonce stays unused is failed with the authorization unused
 * and settled again alone; an exact permit front-run by someone else's transaction that paid payTo
 * is a success with that transaction; an upto permit whose nonce the payer burnt is failed for good;
 * a settlement_pending is finished by the watcher and reconciled by the identical retry. Payloads
 * from the official @x402/evm 2.27 clients.
 */
import { createWalletClient, defineChain, erc20Abi, http, maxUint256, parseGwei, type Abi, type Address, type Hex, type PrivateKeyAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { permit2Address, x402ExactPermit2ProxyAddress } from "../../../src/contracts/permit2.js";
import { exactPermit2ProxyAbi } from "../../../src/permit2/abi.js";
import { permit2Artifact } from "../../../src/sandbox/artifacts.js";
import { addressOf, keys, nodeHolds, type TestChain } from "../../helpers/chain.js";
import { usePaymentFixture, type PaymentFixture } from "../../helpers/fixture.js";
import { settlementRows } from "../../helpers/sdk.js";
import { waitFor } from "../../helpers/wait.js";

const NETWORK = "eip155:84532";
const payTo = addressOf(keys.payTo);
const facilitator = addressOf(keys.facilitator);
const viemChain = defineChain({ id: 84532, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: ["http://127.0.0.1"] } } });
/** Far above the facilitator's tip: the test's own transaction goes first in the next block. */
const frontTip = parseGwei("50");

function requirements(chain: TestChain, scheme: "exact" | "upto", amountAtomic: bigint): PaymentRequirements {
  return {
    scheme,
    network: NETWORK,
    amount: amountAtomic.toString(),
    asset: chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress: facilitator } : {}) },
  };
}

async function body(chain: TestChain, account: PrivateKeyAccount, scheme: "exact" | "upto", amountAtomic: bigint) {
  const req = requirements(chain, scheme, amountAtomic);
  const client = scheme === "upto" ? new UptoEvmScheme(account) : new ExactEvmScheme(account);
  const result = await client.createPaymentPayload(2, req);
  return { x402Version: 2, paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/r" }, accepted: req, payload: result.payload }, paymentRequirements: req };
}

type Body = Awaited<ReturnType<typeof body>>;
const permitOf = (b: Body) => (b.paymentPayload.payload as { permit2Authorization: { nonce: string; deadline: string; from: Address; witness: { to: Address; validAfter: string }; permitted: { token: Address; amount: string } }; signature: Hex });
const nonceHex = (b: Body) => `0x${BigInt(permitOf(b).permit2Authorization.nonce).toString(16).padStart(64, "0")}`;

async function settle(f: PaymentFixture, b: unknown, amountAtomic?: bigint): Promise<Record<string, unknown>> {
  const payload = amountAtomic === undefined ? b : { ...(b as Body), paymentRequirements: { ...(b as Body).paymentRequirements, amount: amountAtomic.toString() } };
  const response = await f.facilitator.app.inject({ method: "POST", url: "/settle", payload: payload as Record<string, unknown> });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Record<string, unknown>;
}

/** Sends from `account` into the pool (not mined), with a tip above the facilitator's. */
async function sendFromTest(f: PaymentFixture, account: PrivateKeyAccount, request: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] }): Promise<Hex> {
  const wallet = createWalletClient({ account, chain: viemChain, transport: http(f.chain.rpcUrl) });
  const hash = await wallet.writeContract({ ...request, gas: 300_000n, maxPriorityFeePerGas: frontTip, maxFeePerGas: parseGwei("100") } as never);
  await waitFor("the test's transaction in the pool", () => nodeHolds(f.chain, hash), 10_000, 20);
  return hash;
}

async function minedApprove(f: PaymentFixture, account: PrivateKeyAccount, amountAtomic: bigint): Promise<void> {
  await sendFromTest(f, account, { address: f.chain.token, abi: erc20Abi as Abi, functionName: "approve", args: [permit2Address, amountAtomic] });
  await f.chain.testClient.mine({ blocks: 1 });
}

/** Waits until the facilitator's transaction for this payment is in the node's pool. */
async function facilitatorSent(f: PaymentFixture, b: Body): Promise<Hex> {
  return waitFor(
    "the facilitator's transaction in the pool",
    async () => {
      const hash = (await settlementRows(f.database.url, nonceHex(b)))[0]?.tx_hash as Hex | undefined;
      return hash && (await nodeHolds(f.chain, hash)) ? hash : undefined;
    },
    15_000,
    25,
  );
}

/** Mines a block whenever the facilitator has a transaction waiting, until `answer` settles. */
async function mineUntil<T>(f: PaymentFixture, answer: Promise<T>): Promise<T> {
  let done = false;
  void answer.finally(() => (done = true));
  while (!done) {
    const pending = (await f.chain.testClient.request({ method: "txpool_status" } as never)) as { pending: string };
    if (Number(pending.pending) > 0) await f.chain.testClient.mine({ blocks: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return answer;
}

describe("Permit2 verdicts on a chain the test mines", () => {
  const f = usePaymentFixture({ label: "permit2_verdicts", chain: { noMining: true }, payerBalanceAtomic: 100_000_000n });
  const payer = privateKeyToAccount(keys.payer);

  it("a revert with the nonce unused is failed with the authorization unused, tried again alone, and payable again later", async () => {
    await minedApprove(f, payer, maxUint256);
    const b = await body(f.chain, payer, "exact", 10_000n);
    const answer = settle(f, b);
    const first = await facilitatorSent(f, b);
    // The payer withdraws the allowance in the same block, ahead of our settlement: it reverts (TRANSFER_FROM_FAILED).
    await sendFromTest(f, payer, { address: f.chain.token, abi: erc20Abi as Abi, functionName: "approve", args: [permit2Address, 0n] });
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: first })).status).toBe("reverted");

    // The second attempt, alone, finds the allowance gone before sending anything.
    expect(await mineUntil(f, answer)).toMatchObject({ success: false, errorReason: "permit2_allowance_required", transaction: "" });
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "failed", attempt: 2, broadcast_at: null });

    // Reclaimable: once the payer approves again, the identical payment settles.
    await minedApprove(f, payer, maxUint256);
    const again = await mineUntil(f, settle(f, b));
    expect(again).toMatchObject({ success: true, amount: "10000" });
    expect(again.transaction).not.toBe(first);
  }, 60_000);

  it("an exact permit front-run by a stranger's transaction that paid payTo is answered success with that transaction", async () => {
    const b = await body(f.chain, payer, "exact", 20_000n);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    const auth = permitOf(b).permit2Authorization;
    const stranger = privateKeyToAccount(keys.stranger);
    const theirs = await sendFromTest(f, stranger, {
      address: x402ExactPermit2ProxyAddress,
      abi: exactPermit2ProxyAbi as Abi,
      functionName: "settle",
      args: [
        { permitted: { token: auth.permitted.token, amount: BigInt(auth.permitted.amount) }, nonce: BigInt(auth.nonce), deadline: BigInt(auth.deadline) },
        auth.from,
        { to: auth.witness.to, validAfter: BigInt(auth.witness.validAfter) },
        permitOf(b).signature,
      ],
    });
    const payToBefore = await f.chain.balanceOf(payTo);
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: ours })).status).toBe("reverted");

    expect(await mineUntil(f, answer)).toMatchObject({ success: true, transaction: theirs });
    expect(await f.chain.balanceOf(payTo)).toBe(payToBefore + 20_000n);
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
  }, 60_000);

  it("an upto permit whose nonce the payer burnt ahead of our settlement is failed for good", async () => {
    const b = await body(f.chain, payer, "upto", 50_000n);
    const answer = settle(f, b, 30_000n);
    await facilitatorSent(f, b);
    const nonce = BigInt(permitOf(b).permit2Authorization.nonce);
    await sendFromTest(f, payer, { address: permit2Address, abi: permit2Artifact.abi, functionName: "invalidateUnorderedNonces", args: [nonce >> 8n, 1n << (nonce & 0xffn)] });
    await f.chain.testClient.mine({ blocks: 1 });

    expect(await mineUntil(f, answer)).toMatchObject({ success: false, errorReason: "invalid_upto_evm_transaction_failed" });
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "failed", authorization_unused: false, attempt: 1 });
    // Final: the identical retry gets the same failure, nothing is sent.
    expect(await settle(f, b, 30_000n)).toMatchObject({ success: false, errorReason: "invalid_upto_evm_transaction_failed" });
  }, 60_000);
});

describe("a Permit2 settlement_pending, finished by the watcher", () => {
  const f = usePaymentFixture({
    label: "permit2_pending",
    chain: { noMining: true },
    payerBalanceAtomic: 100_000_000n,
    facilitator: { startWatcher: true, limits: { settleBudgetMs: 1_500, duplicateWaitMs: 1_500 } },
  });
  const payer = privateKeyToAccount(keys.payer);

  it("answers settlement_pending with the hash, confirms after the block, and the identical retry gets the one success", async () => {
    await minedApprove(f, payer, maxUint256);
    const b = await body(f.chain, payer, "upto", 80_000n);
    const pending = await settle(f, b, 70_000n);
    expect(pending).toMatchObject({ success: false, errorReason: "settlement_pending" });
    expect(pending.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    await f.chain.testClient.mine({ blocks: 1 });
    await waitFor("the watcher's verdict", async () => (await settlementRows(f.database.url, nonceHex(b)))[0]?.status === "confirmed", 15_000, 50);
    expect(await settle(f, b, 70_000n)).toMatchObject({ success: true, transaction: pending.transaction, amount: "70000" });
    expect(await settle(f, b, 70_000n)).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
  }, 60_000);
});
