/**
 * The official v2 resource server's single retry after `settlement_pending`
 * (@x402/core 2.27 x402ResourceServer.settleWithPendingRetry: one more /settle with the identical
 * body, immediately, when the answer is success:false + settlement_pending + a transaction hash).
 *
 * Full HTTP path, for two pairs: @x402/express seller + @x402/fetch buyer, and @x402/hono seller +
 * @x402/axios buyer; seller → HTTPFacilitatorClient → this facilitator.
 * Anvil runs with automine OFF and the facilitator's receipt budget is short, so the first /settle
 * runs out of time and answers settlement_pending; the test mines a block only once the SDK's retry
 * has arrived. The facilitator is instrumented with Fastify hooks (observation only).
 */
import express from "express";
import { Hono } from "hono";
import type { FastifyReply, FastifyRequest } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { SettleResponse } from "@x402/core/types";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { paymentMiddleware as expressMiddleware, x402ResourceServer as ExpressResourceServer } from "@x402/express";
import { paymentMiddleware as honoMiddleware, x402ResourceServer as HonoResourceServer } from "@x402/hono";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { wrapAxiosWithPayment, x402Client as AxiosX402Client } from "@x402/axios";
import { addressOf, keys } from "../helpers/chain.js";
import { usePaymentFixture } from "../helpers/fixture.js";
import {
  authorizationsUsed,
  decodeBase64Json,
  listenHono,
  listenLocal,
  purchaseViaAxios,
  purchaseViaFetch,
  recordingAxios,
  recordingFetch,
  settlementRows,
  transfersInTx,
  type Purchase,
  type RecordedRequest,
  type RunningServer,
} from "../helpers/sdk.js";

const network = "eip155:84532" as const;
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const facilitatorSigner = addressOf(keys.facilitator);
const amountAtomic = 10_000n;
const settleBudgetMs = 1_500;
const content = { report: "sunny" };

const fx = usePaymentFixture({
  label: "sdk_pending",
  chain: { noMining: true },
  payerBalanceAtomic: 10_000_000n,
  facilitator: { limits: { settleBudgetMs, duplicateWaitMs: settleBudgetMs } },
});
type SellerName = "@x402/express" | "@x402/hono";
const sellers = {} as Record<SellerName, RunningServer>;

interface Exchange {
  route: string;
  body: string;
  answer?: Record<string, unknown>;
}
/** Every /verify and /settle the facilitator served in the current test, in arrival order. */
let exchanges: Exchange[] = [];
/** Mine a block this long after the SDK's retry (the 2nd /settle) arrives; undefined = never. */
let mineAfterRetryMs: number | undefined;

beforeAll(async () => {
  fx.facilitator.app.addHook("preHandler", async (request: FastifyRequest) => {
    const route = request.routeOptions.url ?? request.url;
    if (route !== "/verify" && route !== "/settle") return;
    exchanges.push({ route, body: JSON.stringify(request.body) });
    const settles = exchanges.filter((exchange) => exchange.route === "/settle").length;
    if (route === "/settle" && settles === 2 && mineAfterRetryMs !== undefined) {
      setTimeout(() => void fx.chain.testClient.mine({ blocks: 1 }), mineAfterRetryMs);
    }
  });
  fx.facilitator.app.addHook("onSend", async (request: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
    const route = request.routeOptions.url ?? request.url;
    const exchange = [...exchanges].reverse().find((candidate) => candidate.route === route && candidate.answer === undefined);
    if (exchange && typeof payload === "string") exchange.answer = JSON.parse(payload) as Record<string, unknown>;
    return payload;
  });
  const facilitatorUrl = await fx.facilitator.app.listen({ host: "127.0.0.1", port: 0 });

  const routes = {
    "GET /weather": {
      accepts: { scheme: "exact", price: { amount: amountAtomic.toString(), asset: fx.chain.token, extra: { name: "USDC", version: "2" } }, network, payTo },
      description: "Weather report",
    },
  } as const;
  const facilitatorClient = () => new HTTPFacilitatorClient({ url: facilitatorUrl });

  const expressApp = express();
  expressApp.use(expressMiddleware(routes, new ExpressResourceServer(facilitatorClient()).register(network, new ExactEvmServerScheme())));
  expressApp.get("/weather", (_req, res) => {
    res.json(content);
  });
  const honoApp = new Hono();
  honoApp.use(honoMiddleware(routes, new HonoResourceServer(facilitatorClient()).register(network, new ExactEvmServerScheme())));
  honoApp.get("/weather", (c) => c.json(content));
  [sellers["@x402/express"], sellers["@x402/hono"]] = await Promise.all([listenLocal(expressApp), listenHono(honoApp)]);
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(sellers).map((seller) => seller.close()));
});

beforeEach(async () => {
  await fx.chain.testClient.mine({ blocks: 1 }); // nothing left pending from a previous test
  exchanges = [];
  mineAfterRetryMs = undefined;
});

type BuyerName = "@x402/fetch" | "@x402/axios";
const buyers: Record<BuyerName, (url: string) => Promise<Purchase>> = {
  "@x402/fetch": (url) => {
    const client = new x402Client()
      .register(network, new ExactEvmClientScheme(privateKeyToAccount(keys.payer)))
      .setSpendControls({ allowedAssets: [{ network, asset: fx.chain.token }] });
    const recorder = recordingFetch();
    return purchaseViaFetch(wrapFetchWithPayment(recorder.fetch, client), recorder.requests, url);
  },
  "@x402/axios": (url) => {
    const client = new AxiosX402Client().register(network, new ExactEvmClientScheme(privateKeyToAccount(keys.payer)));
    const recorder = recordingAxios();
    return purchaseViaAxios(wrapAxiosWithPayment(recorder.axios, client), recorder.requests, url);
  },
};

function nonceSent(requests: RecordedRequest[]): Hex {
  const header = requests.map((request) => request.headers.get("PAYMENT-SIGNATURE")).find((value) => value);
  return decodeBase64Json<{ payload: { authorization: { from: Address; nonce: Hex } } }>(header).payload.authorization.nonce;
}

const signerNonce = () => fx.chain.publicClient.getTransactionCount({ address: facilitatorSigner, blockTag: "pending" });

const pairs: { seller: SellerName; buyer: BuyerName }[] = [
  { seller: "@x402/express", buyer: "@x402/fetch" },
  { seller: "@x402/hono", buyer: "@x402/axios" },
];

describe.each(pairs)("@x402/core settleWithPendingRetry against this facilitator (automine off): $seller seller + $buyer buyer", ({ seller, buyer }) => {
  it("retries once with the identical body and ends with success and the ORIGINAL tx hash; one transfer on chain", async () => {
    mineAfterRetryMs = 300;
    const [payerBefore, payToBefore, signerNonceBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo), signerNonce()]);

    const { status, body, headers, requests } = await buyers[buyer](`${sellers[seller].url}/weather`);

    const paymentResponse = headers.get("PAYMENT-RESPONSE");
    expect(status, paymentResponse ? JSON.stringify(decodeBase64Json(paymentResponse)) : "no PAYMENT-RESPONSE").toBe(200);
    expect(JSON.parse(body)).toEqual(content);

    // What the facilitator saw: one verify, then settle → settlement_pending, then the identical retry → success.
    expect(exchanges.map((exchange) => exchange.route)).toEqual(["/verify", "/settle", "/settle"]);
    const [, first, retry] = exchanges as [Exchange, Exchange, Exchange];
    expect(retry.body).toBe(first.body);
    expect(first.answer).toMatchObject({ success: false, errorReason: "settlement_pending", network, payer });
    const originalTx = first.answer!.transaction as Hex;
    expect(originalTx).toMatch(/^0x[0-9a-f]{64}$/);
    expect(retry.answer).toMatchObject({ success: true, transaction: originalTx, network, payer });

    // What the buyer got: success with the original hash.
    const settled = decodeBase64Json<SettleResponse>(paymentResponse);
    expect(settled).toMatchObject({ success: true, transaction: originalTx, network, payer });

    // Exactly one transaction sent by the facilitator, one authorization used, one transfer.
    expect(await signerNonce()).toBe(signerNonceBefore + 1);
    const nonce = nonceSent(requests);
    expect(await authorizationsUsed(fx.chain, payer, nonce)).toBe(1);
    expect((await transfersInTx(fx.chain, originalTx, payer, payTo)).map((log) => log.args.value)).toEqual([amountAtomic]);
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    const rows = await settlementRows(fx.database.url, nonce);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", tx_hash: originalTx, settled_tx_hash: originalTx, pending_answered: true, success_answered: true });
  });

  it("gives up after its one retry when no block comes: the buyer gets 402 with settlement_pending, and is charged once the block comes", async () => {
    const [payerBefore, signerNonceBefore] = await Promise.all([fx.chain.balanceOf(payer), signerNonce()]);

    const { status, body, headers, requests } = await buyers[buyer](`${sellers[seller].url}/weather`);

    expect(status).toBe(402);
    expect(body).not.toContain("sunny");
    const settled = decodeBase64Json<SettleResponse>(headers.get("PAYMENT-RESPONSE"));
    expect(exchanges.map((exchange) => exchange.route)).toEqual(["/verify", "/settle", "/settle"]); // exactly one retry, never a loop
    const originalTx = exchanges[1]!.answer!.transaction as Hex;
    expect(exchanges[2]!.answer).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: originalTx });
    expect(settled).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: originalTx, network });
    expect(await signerNonce()).toBe(signerNonceBefore + 1); // the retry sent nothing new

    // The transaction was broadcast: once mined, the watcher confirms it and the payer has paid.
    await fx.chain.testClient.mine({ blocks: 1 });
    expect(await fx.facilitator.services.watcher.runOnce()).toBe(1);
    const nonce = nonceSent(requests);
    expect(await settlementRows(fx.database.url, nonce)).toMatchObject([{ status: "confirmed", settled_tx_hash: originalTx }]);
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await authorizationsUsed(fx.chain, payer, nonce)).toBe(1);
  });
});
