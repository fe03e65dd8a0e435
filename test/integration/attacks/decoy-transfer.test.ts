import { describe, expect, it } from "vitest";
import { createWalletClient, http, parseGwei, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { encodeAggregate3, multicall3Address } from "../../../src/exact-evm/multicall3.js";
import { transferWithAuthorizationCall } from "../../../src/exact-evm/transfer-call.js";
import { addressOf, keys, nodeHolds } from "../../helpers/chain.js";
import { withPgClient } from "../../helpers/database.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { authorizationOf, randomNonce, signPayment, v2Body, v2Requirements } from "../../helpers/payments.js";
import { waitFor } from "../../helpers/wait.js";
import { postJson } from "../../helpers/http.js";

/**
 * Pitfall 16, decoy credit. Payer P signs X and Y (P → Q, same value, nonces n1, n2), and A2
 * (P → P, nonce n1). While the facilitator's settlements of X and Y wait in the pool, P sends one
 * Multicall3 transaction [A2, Y] with a higher tip: it consumes n1 without paying Q, and pays Q once
 * (for Y). Q received the value once, so exactly one of X and Y may be a success.
 */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({ label: "decoy", chain: { noMining: true }, payerBalanceAtomic: 1_000_000n, facilitator: { limits: { settleBudgetMs: 20_000 } } });

const settle = async (body: unknown) => (await postJson<{ success: boolean; errorReason?: string; transaction: Hex }>(fx.facilitator.app, "/settle", body)).body;

/** The settlement's transaction is in the node's pool (its row `submitted`, or `signed` while a sync send waits). */
async function inPool(nonce: Hex): Promise<boolean> {
  const hash = await withPgClient(fx.database.url, async (client) => (await client.query("select tx_hash from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]?.tx_hash);
  return nodeHolds(fx.chain, hash);
}

async function statusOf(nonce: Hex): Promise<string | undefined> {
  return withPgClient(fx.database.url, async (client) => (await client.query("select status from settlements where nonce = $1", [nonce.toLowerCase()])).rows[0]?.status);
}

describe("a front-runner's decoy Transfer (one Transfer pays one settlement)", () => {
  it("credits only the settlement whose own AuthorizationUsed is paired with the Transfer; the other ends failed", async () => {
    const sign = (to: Hex, nonce: Hex) => signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo: to, valueAtomic: amountAtomic, nonce });
    const [n1, n2] = [randomNonce(), randomNonce()];
    const x = await sign(payTo, n1);
    const y = await sign(payTo, n2);
    const a2 = await sign(payer, n1); // same nonce as X, paying P itself
    const requirements = v2Requirements({ token: fx.chain.token, payTo, amountAtomic });
    const payToBefore = await fx.chain.balanceOf(payTo);

    const answers = Promise.all([settle(v2Body(x, requirements)), settle(v2Body(y, requirements))]);
    await waitFor("both settlements in the pool", async () => (await inPool(n1)) && (await inPool(n2)), 15_000);

    const attacker = createWalletClient({ account: privateKeyToAccount(keys.payer), transport: http(fx.chain.rpcUrl) });
    const data = encodeAggregate3(
      [a2, y].map((payment) => {
        const call = transferWithAuthorizationCall(fx.chain.token, authorizationOf(payment), payment.signature);
        return { target: call.to, allowFailure: false, callData: call.data };
      }),
    );
    const attack = await attacker.sendTransaction({ to: multicall3Address, data, gas: 500_000n, maxPriorityFeePerGas: parseGwei("50"), maxFeePerGas: parseGwei("200"), chain: null });
    await fx.chain.testClient.mine({ blocks: 1 });
    const [answerX, answerY] = await answers;

    expect((await fx.chain.publicClient.getTransactionReceipt({ hash: attack })).status).toBe("success");
    expect((await fx.chain.balanceOf(payTo)) - payToBefore).toBe(amountAtomic); // Q was paid once
    expect(answerY).toMatchObject({ success: true, transaction: attack }); // Y was paid, by the front-runner
    expect(answerX).toMatchObject({ success: false }); // X's nonce went to A2, which paid P, not Q
    expect(await statusOf(n1)).toBe("failed");
    expect(await statusOf(n2)).toBe("confirmed");
  });
});
