import { describe, expect, it } from "vitest";
import { addressOf, heldByNode, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { paymentBody } from "../../helpers/payments.js";
import { waitFor } from "../../helpers/wait.js";
import { withPgClient } from "../../helpers/database.js";

/**
 * Found by the second security review: one EIP-7702 delegation, set after its settlements were
 * simulated, makes every in-flight settlement of that payer fail on chain at once — K failing calls
 * for two transactions of the attacker. IN_FLIGHT_PER_PAYER_MAX bounds K.
 */
const payTo = addressOf(keys.payTo);
const amountAtomic = 1_000n;

const f = usePaymentFixture({ label: "payer_busy", chain: { noMining: true }, payerBalanceAtomic: 1_000_000n, facilitator: { limits: { inFlightPerPayerMax: 2 } } });

/** Settlements whose transaction is in the node's pool (their rows are `submitted`, or `signed` while a sync send waits). */
const inPool = async () =>
  heldByNode(f.chain, await withPgClient(f.database.url, async (c) => (await c.query("select tx_hash from settlements where status in ('signed', 'submitted')")).rows.map((row) => row.tx_hash as string)));

const payment = async () =>
  paymentBody(f.chain, { payerKey: keys.payer, payTo, amountAtomic });

describe("a payer's unfinished settlements", () => {
  it("are at most IN_FLIGHT_PER_PAYER_MAX: the next one is refused with 429 payer_busy until some are final", async () => {
    const inFlight = [postJson(f.facilitator.app, "/settle", await payment()), postJson(f.facilitator.app, "/settle", await payment())];
    await waitFor("two settlements in the pool", async () => (await inPool()) === 2, 10_000);
    const third = await payment();
    const refused = await postJson(f.facilitator.app, "/settle", third);
    expect(refused).toMatchObject({ status: 429, body: { success: false, errorReason: "payer_busy", transaction: "" } });

    await f.chain.testClient.mine({ blocks: 1 });
    for (const answer of await Promise.all(inFlight)) expect(answer.body).toMatchObject({ success: true });
    const retry = postJson(f.facilitator.app, "/settle", third); // nothing was claimed: the same payment goes through now
    await waitFor("the retry in the pool", async () => (await inPool()) === 1, 10_000);
    await f.chain.testClient.mine({ blocks: 1 });
    expect((await retry).body).toMatchObject({ success: true });
  });
});
