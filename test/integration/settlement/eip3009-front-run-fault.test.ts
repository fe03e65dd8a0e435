/**
 * An RPC fault while looking for the stranger who front-ran an EIP-3009 settlement (sent the same
 * authorization to the token first, pitfall 10) is "not known yet", never a verdict and never a 500:
 * the request and its identical retry answer settlement_pending, the row stays unfinished, and once
 * the RPC is back the watcher confirms it with the front-runner's hash. Anvil --no-mining (the test
 * mines), real Postgres, a faulty RPC proxy in front of the node.
 */
import { createWalletClient, http, parseGwei, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { transferWithAuthorizationCall } from "../../../src/exact-evm/transfer-call.js";
import { addressOf, keys, nodeHolds } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { authorizationOf, signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { settlementRows } from "../../helpers/sdk.js";
import { waitFor } from "../../helpers/wait.js";

const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

describe("an RPC fault while looking for an EIP-3009 front-runner", () => {
  const f = usePaymentFixture({
    label: "eip3009_front_run_fault",
    chain: { noMining: true },
    payerBalanceAtomic: 100_000_000n,
    faultyRpc: true,
    facilitator: { startWatcher: true, limits: { rpcTimeoutMs: 500, rpcRetryCount: 0, settleBudgetMs: 3_000, duplicateWaitMs: 1_500 } },
  });

  async function settle(body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await f.facilitator.app.inject({ method: "POST", url: "/settle", payload: body as Record<string, unknown> });
    return { status: response.statusCode, body: response.json() as Record<string, unknown> };
  }

  it("leaves the row unfinished (settlement_pending, never failed or 500), and the watcher confirms it with the front-runner once the RPC is back", async () => {
    const payment = await signPayment({ payerKey: keys.payer, token: f.chain.token, chainId: f.chain.chainId, payTo, valueAtomic: amountAtomic });
    const nonce = payment.authorization.nonce;
    const body = v2Body(payment, v2Requirements({ token: f.chain.token, payTo, amountAtomic }));
    const answer = settle(body);
    const ours = await waitFor(
      "our transaction in the pool",
      async () => {
        const hash = (await settlementRows(f.database.url, nonce))[0]?.tx_hash as Hex | undefined;
        return hash && (await nodeHolds(f.chain, hash)) ? hash : undefined;
      },
      15_000,
      25,
    );
    // A stranger sends the same authorization to the token with a higher tip: mined first, ours reverts.
    const stranger = createWalletClient({ account: privateKeyToAccount(keys.stranger), transport: http(f.chain.rpcUrl) });
    const theirs = await stranger.sendTransaction({
      ...transferWithAuthorizationCall(f.chain.token, authorizationOf(payment), payment.signature),
      gas: 200_000n,
      maxPriorityFeePerGas: parseGwei("50"),
      maxFeePerGas: parseGwei("200"),
      chain: null,
    });
    // What the search asks (the AuthorizationUsed logs) fails; receipts still come.
    f.rpc!.set({ mode: "status503", methods: ["eth_getLogs"] });
    await f.chain.testClient.mine({ blocks: 1 });

    expect(await answer).toEqual({ status: 200, body: expect.objectContaining({ success: false, errorReason: "settlement_pending", transaction: ours }) });
    expect(f.rpc!.faulted("eth_getLogs")).toBeGreaterThan(0);
    // The identical retry reconciles the row during the fault: still not known, not failed, not a 500.
    const faultedBefore = f.rpc!.faulted("eth_getLogs");
    expect(await settle(body)).toEqual({ status: 200, body: expect.objectContaining({ success: false, errorReason: "settlement_pending", transaction: ours }) });
    expect(f.rpc!.faulted("eth_getLogs")).toBeGreaterThan(faultedBefore);
    const faultedByRetry = f.rpc!.faulted("eth_getLogs");
    await waitFor("a watcher pass through the fault", async () => f.rpc!.faulted("eth_getLogs") > faultedByRetry, 15_000);
    expect((await settlementRows(f.database.url, nonce))[0]).toMatchObject({ status: "submitted", tx_hash: ours, settled_tx_hash: null });

    f.rpc!.set("pass");
    await waitFor("the watcher's verdict", async () => (await settlementRows(f.database.url, nonce))[0]?.status === "confirmed", 15_000);
    expect((await settlementRows(f.database.url, nonce))[0]).toMatchObject({ status: "confirmed", tx_hash: ours, settled_tx_hash: theirs });
    expect(await f.chain.balanceOf(payTo)).toBe(amountAtomic);
    // The one success answer was never given: the identical retry takes it.
    expect(await settle(body)).toEqual({ status: 200, body: expect.objectContaining({ success: true, transaction: theirs }) });
  }, 60_000);
});
