/**
 * Finding the stranger's transaction that front-ran an exact Permit2 settlement (pitfall 10), on a
 * chain the test mines (Anvil --no-mining, ordered by tip), with real Postgres and payloads from the
 * official @x402/evm 2.27 client:
 * - the front-run is found even when the payer's own later same-value Transfer(owner → payTo) logs
 *   outnumber any fixed candidate list (the search reads the block where the nonce's bit got set);
 * - an RPC fault during the search is "not known yet", never a verdict: the row stays unfinished
 *   (the request and its identical retry answer settlement_pending), and once the RPC is back the
 *   watcher confirms it with the front-runner's hash;
 * - on a node that keeps no past state (a pruned full node), the recent logs are scanned instead;
 * - a permit sent through another contract (here Multicall3) is never credited: the row ends failed.
 */
import { encodeFunctionData, erc20Abi, maxUint256, type Abi, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { beforeAll, describe, expect, it } from "vitest";
import { x402ExactPermit2ProxyAddress } from "../../../src/contracts/permit2.js";
import { exactPermit2ProxyAbi } from "../../../src/permit2/abi.js";
import { multicall3Artifact } from "../../../src/sandbox/artifacts.js";
import { MULTICALL3_ADDRESS } from "../../../src/sandbox/deploy.js";
import { keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { body, exactSettleArgs, facilitatorSent, frontRun, frontTip, mineUntil, minedApprove, nonceHex, payTo, sendFromTest, settle } from "../../helpers/permit2-mined.js";
import { settlementRows } from "../../helpers/sdk.js";
import { waitFor } from "../../helpers/wait.js";

const payer = privateKeyToAccount(keys.payer);
/** More than the 16 candidate transactions the old search read, newest first. */
const laterSameValuePayments = 20;
/** Between the front-run and our settlement's block: neither a power of two nor next to one. */
const blocksBetween = 37;

describe("a Permit2 front-run hidden behind the payer's later same-value payments", () => {
  const f = usePaymentFixture({ label: "permit2_front_run_hidden", chain: { noMining: true }, payerBalanceAtomic: 100_000_000n });

  it("is found, and the row ends confirmed with the front-runner's hash", async () => {
    await minedApprove(f, payer, maxUint256);
    const valueAtomic = 30_000n;
    const b = await body(f.chain, payer, "exact", valueAtomic);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    const theirs = await frontRun(f, b);
    // The payer's own plain transfers of the same value to the same payTo, after the front-run and
    // before our settlement in the same block (tips: front-run > these > ours).
    const later: string[] = [];
    for (let i = 0; i < laterSameValuePayments; i++) {
      later.push(await sendFromTest(f, payer, { address: f.chain.token, abi: erc20Abi as Abi, functionName: "transfer", args: [payTo, valueAtomic] }, frontTip - 1n));
    }
    await f.chain.testClient.mine({ blocks: 1 });
    const [oursReceipt, theirsReceipt, lastReceipt] = await Promise.all(
      [ours, theirs, later.at(-1)!].map((hash) => f.chain.publicClient.getTransactionReceipt({ hash: hash as `0x${string}` })),
    );
    expect(oursReceipt!.status).toBe("reverted");
    expect(theirsReceipt!.status).toBe("success");
    // Same block, the front-run first, our settlement after every later payment.
    expect(new Set([oursReceipt!.blockNumber, theirsReceipt!.blockNumber, lastReceipt!.blockNumber]).size).toBe(1);
    expect(theirsReceipt!.transactionIndex).toBeLessThan(lastReceipt!.transactionIndex);
    expect(lastReceipt!.transactionIndex).toBeLessThan(oursReceipt!.transactionIndex);

    expect(await mineUntil(f, answer)).toMatchObject({ success: true, transaction: theirs });
    const [row] = await settlementRows(f.database.url, nonceHex(b));
    expect(row).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
  }, 60_000);
});

describe("a Permit2 front-run through another contract", () => {
  const f = usePaymentFixture({ label: "permit2_front_run_relayed", chain: { noMining: true }, payerBalanceAtomic: 100_000_000n });

  it("is not credited (the row ends failed for good), though payTo was paid: only a transaction to the exact proxy itself counts", async () => {
    await minedApprove(f, payer, maxUint256);
    const b = await body(f.chain, payer, "exact", 70_000n);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    const settleCall = encodeFunctionData({ abi: exactPermit2ProxyAbi, functionName: "settle", args: exactSettleArgs(b) });
    const relayed = await sendFromTest(f, privateKeyToAccount(keys.stranger), {
      address: MULTICALL3_ADDRESS,
      abi: multicall3Artifact.abi,
      functionName: "aggregate3",
      args: [[{ target: x402ExactPermit2ProxyAddress, allowFailure: false, callData: settleCall }]],
    });
    const payToBefore = await f.chain.balanceOf(payTo);
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: relayed })).status).toBe("success");
    expect(await f.chain.balanceOf(payTo)).toBe(payToBefore + 70_000n);
    expect((await f.chain.publicClient.getTransactionReceipt({ hash: ours })).status).toBe("reverted");

    expect(await mineUntil(f, answer)).toMatchObject({ success: false, errorReason: "invalid_exact_evm_transaction_failed" });
    expect((await settlementRows(f.database.url, nonceHex(b)))[0]).toMatchObject({ status: "failed", tx_hash: ours, settled_tx_hash: null, authorization_unused: false });
  }, 60_000);
});

describe("an RPC fault while looking for a Permit2 front-runner", () => {
  const f = usePaymentFixture({
    label: "permit2_front_run_fault",
    chain: { noMining: true },
    payerBalanceAtomic: 100_000_000n,
    faultyRpc: true,
    facilitator: { startWatcher: true, limits: { rpcTimeoutMs: 500, rpcRetryCount: 0, settleBudgetMs: 3_000, duplicateWaitMs: 1_500 } },
  });

  it("leaves the row unfinished (settlement_pending, never failed), and the watcher confirms it with the front-runner once the RPC is back", async () => {
    await minedApprove(f, payer, maxUint256);
    const b = await body(f.chain, payer, "exact", 40_000n);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    const theirs = await frontRun(f, b);
    // What the search asks (state at past blocks, logs, the candidates) fails; receipts still come.
    const searchMethods = ["eth_call", "eth_getLogs", "eth_getTransactionByHash"];
    f.rpc!.set({ mode: "status503", methods: searchMethods });
    await f.chain.testClient.mine({ blocks: 1 });

    expect(await answer).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: ours });
    expect(searchMethods.some((method) => f.rpc!.faulted(method) > 0)).toBe(true);
    // The identical retry reconciles during the fault: still not known, still not failed.
    const faultedBefore = searchMethods.reduce((sum, method) => sum + f.rpc!.faulted(method), 0);
    expect(await settle(f, b)).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: ours });
    expect(searchMethods.reduce((sum, method) => sum + f.rpc!.faulted(method), 0)).toBeGreaterThan(faultedBefore);
    // The watcher meets the fault too (its passes run every 200 ms) and leaves the row as it is.
    const faultedByRetry = searchMethods.reduce((sum, method) => sum + f.rpc!.faulted(method), 0);
    await waitFor("a watcher pass through the fault", async () => searchMethods.reduce((sum, method) => sum + f.rpc!.faulted(method), 0) > faultedByRetry, 15_000);
    expect((await settlementRows(f.database.url, nonceHex(b)))[0]).toMatchObject({ status: "submitted", tx_hash: ours, settled_tx_hash: null });

    f.rpc!.set("pass");
    await waitFor("the watcher's verdict", async () => (await settlementRows(f.database.url, nonceHex(b)))[0]?.status === "confirmed", 15_000);
    expect((await settlementRows(f.database.url, nonceHex(b)))[0]).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
    // The one success answer was never given: the identical retry takes it.
    expect(await settle(f, b)).toMatchObject({ success: true, transaction: theirs });
  }, 60_000);
});

/**
 * The same proxy, with a settle budget that outlasts each test's choreography (the drop, the
 * front-run, 37 blocks mined, the search): with a short one, a sync send still unanswered at the
 * budget is followed by a plain send of the same bytes, which put ours back in the pool (and mined)
 * before the test sends it, and a settle whose search outlasted the budget answered pending.
 */
describe("finding a Permit2 front-runner through an RPC proxy", () => {
  const f = usePaymentFixture({
    label: "permit2_front_run_search",
    chain: { noMining: true },
    payerBalanceAtomic: 100_000_000n,
    faultyRpc: true,
    facilitator: { startWatcher: true, limits: { rpcRetryCount: 0, settleBudgetMs: 20_000 } },
  });
  beforeAll(() => minedApprove(f, payer, maxUint256));

  it("finds a front-run mined many blocks before our settlement by reading only the block where the nonce's bit got set", async () => {
    const b = await body(f.chain, payer, "exact", 60_000n);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    // Ours leaves the pool; the front-run is mined, then blocks pass, then ours comes back.
    const rawTx = (await settlementRows(f.database.url, nonceHex(b)))[0]!.raw_tx as Hex;
    await f.chain.testClient.dropTransaction({ hash: ours });
    const theirs = await frontRun(f, b);
    await f.chain.testClient.mine({ blocks: 1 });
    const frontRunBlock = (await f.chain.publicClient.getTransactionReceipt({ hash: theirs })).blockNumber;
    await f.chain.testClient.mine({ blocks: blocksBetween });
    f.rpc!.resetCounts();
    await f.chain.publicClient.request({ method: "eth_sendRawTransaction", params: [rawTx] });
    await f.chain.testClient.mine({ blocks: 1 });
    const oursReceipt = await f.chain.publicClient.getTransactionReceipt({ hash: ours });
    expect(oursReceipt.status).toBe("reverted");
    // Exactly there: within the budget nothing but the test sends our bytes again.
    expect(oursReceipt.blockNumber).toBe(frontRunBlock + BigInt(blocksBetween) + 1n);

    // Answered success, or settlement_pending if the wait above outlasted the budget: the watcher finishes it.
    expect([true, "settlement_pending"]).toContain(((await mineUntil(f, answer)) as { success: boolean; errorReason?: string }).errorReason ?? true);
    await waitFor("the verdict", async () => (await settlementRows(f.database.url, nonceHex(b)))[0]?.status === "confirmed", 15_000);
    expect((await settlementRows(f.database.url, nonceHex(b)))[0]).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
    // Every log read was of that one block.
    const ranges = f.rpc!.lastParams("eth_getLogs").map(([filter]) => filter as { fromBlock: string; toBlock: string });
    expect(ranges.length).toBeGreaterThan(0);
    for (const range of ranges) expect([BigInt(range.fromBlock), BigInt(range.toBlock)]).toEqual([frontRunBlock, frontRunBlock]);
    // Found in O(log n) reads of the bit at past blocks (galloping back, then bisecting), not one per block.
    const blocksAsked = new Set(f.rpc!.lastParams("eth_call").map(([, block]) => block).filter((block) => typeof block === "string" && /^0x[0-9a-f]+$/i.test(block)));
    expect(blocksAsked.size).toBeGreaterThan(1);
    expect(blocksAsked.size).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(blocksBetween + 2)));
  }, 60_000);

  it("on a node that keeps no past state, finds the front-run in the recent Transfer logs instead", async () => {
    const b = await body(f.chain, payer, "exact", 50_000n);
    const answer = settle(f, b);
    const ours = await facilitatorSent(f, b);
    const theirs = await frontRun(f, b);
    f.rpc!.resetCounts();
    f.rpc!.set("pastStateMissing");
    await f.chain.testClient.mine({ blocks: 1 });

    expect(await mineUntil(f, answer)).toMatchObject({ success: true, transaction: theirs });
    expect((await settlementRows(f.database.url, nonceHex(b)))[0]).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
    // The bit's block was asked (and refused), then logs over a range of blocks were read.
    expect(f.rpc!.faulted("eth_call")).toBeGreaterThan(0);
    const ranges = f.rpc!.lastParams("eth_getLogs").map(([filter]) => filter as { fromBlock: string; toBlock: string });
    expect(ranges.some((range) => BigInt(range.fromBlock) < BigInt(range.toBlock))).toBe(true);
    f.rpc!.set("pass");
  }, 60_000);
});
