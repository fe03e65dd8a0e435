/**
 * Interop with the official x402 v2 TypeScript SDKs, used unmodified as their READMEs show:
 * seller = express + @x402/express paymentMiddleware + HTTPFacilitatorClient pointed at our
 * facilitator + the ExactEvmScheme server scheme; buyer = @x402/fetch wrapFetchWithPayment + an
 * x402Client with the ExactEvmScheme client scheme and a viem local account.
 * Real Anvil (chain id 84532, TestUSDC at the Base Sepolia USDC address), real Postgres, real HTTP.
 */
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { addressOf, keys } from "../helpers/chain.js";
import { usePaymentFixture } from "../helpers/fixture.js";
import {
  authorizationsUsed,
  decodeBase64Json,
  listenLocal,
  recordingFetch,
  settlementRows,
  settlementRowsOfPayer,
  transfersInTx,
  type RunningServer,
} from "../helpers/sdk.js";

const network = "eip155:84532" as const;
const payer = addressOf(keys.payer);
const broke = addressOf(keys.stranger); // holds no USDC
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n; // $0.01
const content = { report: "sunny", temperatureC: 21 };

const fx = usePaymentFixture({ label: "sdk_v2", payerBalanceAtomic: 10_000_000n, facilitator: { listen: true } });
let facilitatorUrl: string;
let seller: RunningServer;

beforeAll(async () => {
  facilitatorUrl = fx.facilitator.baseUrl!;

  // The seller, as the @x402/express README shows. The middleware fetches /supported as soon as it
  // is created (and exits the process if its network is missing), so the facilitator listens first.
  const resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: facilitatorUrl })).register(network, new ExactEvmServerScheme());
  const app = express();
  app.use(
    paymentMiddleware(
      {
        "GET /weather": {
          accepts: {
            scheme: "exact",
            price: { amount: amountAtomic.toString(), asset: fx.chain.token, extra: { name: "USDC", version: "2" } },
            network,
            payTo,
          },
          description: "Weather report",
          mimeType: "application/json",
        },
      },
      resourceServer,
    ),
  );
  app.get("/weather", (_req, res) => {
    res.json(content);
  });
  seller = await listenLocal(app);
}, 60_000);

afterAll(async () => {
  await seller?.close();
});

/** A buyer as the @x402/fetch README shows, plus an explicit allow-list entry for the sandbox token. */
function buyer(privateKey: Hex) {
  const client = new x402Client()
    .register(network, new ExactEvmClientScheme(privateKeyToAccount(privateKey)))
    .setSpendControls({ allowedAssets: [{ network, asset: fx.chain.token }] });
  const recorder = recordingFetch();
  return { client, fetchWithPayment: wrapFetchWithPayment(recorder.fetch, client), requests: recorder.requests };
}

/** The PAYMENT-SIGNATURE header the SDK sent (second request; the first one got the 402). */
function sentPaymentSignature(requests: { headers: Headers }[]): string {
  const header = requests.map((request) => request.headers.get("PAYMENT-SIGNATURE")).find((value) => value);
  if (!header) throw new Error("the SDK sent no PAYMENT-SIGNATURE header");
  return header;
}

/** Why a paid request was refused, for assertion messages: the decoded PAYMENT-REQUIRED / PAYMENT-RESPONSE. */
function paymentFailure(response: Response): string {
  const header = response.headers.get("PAYMENT-RESPONSE") ?? response.headers.get("PAYMENT-REQUIRED");
  return header ? JSON.stringify(decodeBase64Json(header)) : `HTTP ${response.status}, no x402 header`;
}

function authorizationOf(paymentSignature: string) {
  const payload = decodeBase64Json<{ x402Version: number; payload: { authorization: { from: Address; nonce: Hex; value: string } } }>(paymentSignature);
  return payload.payload.authorization;
}

describe("@x402/express seller + @x402/fetch buyer against this facilitator", () => {
  it("pays: 200 with the content, PAYMENT-RESPONSE success with the tx hash, balances moved, row confirmed", async () => {
    const { fetchWithPayment, requests } = buyer(keys.payer);
    const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo)]);

    const response = await fetchWithPayment(`${seller.url}/weather`);

    expect(response.status, paymentFailure(response)).toBe(200);
    expect(await response.json()).toEqual(content);
    const paymentResponse = response.headers.get("PAYMENT-RESPONSE");
    const settled = decodeBase64Json<SettleResponse>(paymentResponse);
    expect(settled).toMatchObject({ success: true, network, payer });
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(decodePaymentResponseHeader(paymentResponse!)).toEqual(settled); // the SDK's own decoder agrees

    // The wire: first request unpaid (402), second carries PAYMENT-SIGNATURE (v2), not X-PAYMENT.
    expect(requests).toHaveLength(2);
    expect(requests[0]!.headers.get("PAYMENT-SIGNATURE")).toBeNull();
    expect(requests[1]!.headers.get("X-PAYMENT")).toBeNull();
    const authorization = authorizationOf(sentPaymentSignature(requests));
    expect(authorization).toMatchObject({ from: payer, value: amountAtomic.toString() });

    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(addressOf(keys.facilitator).toLowerCase());
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
    const transfers = await transfersInTx(fx.chain, settled.transaction as Hex, payer, payTo);
    expect(transfers.map((log) => log.args.value)).toEqual([amountAtomic]);
    expect(await authorizationsUsed(fx.chain, payer, authorization.nonce)).toBe(1);

    const rows = await settlementRows(fx.database.url, authorization.nonce);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      status: "confirmed",
      x402_version: 2,
      network,
      payer: payer.toLowerCase(),
      tx_hash: settled.transaction,
      settled_tx_hash: settled.transaction,
      success_answered: true,
    });
  });

  it("refuses a payer without funds: 402, no content, no transaction, no settlement row", async () => {
    expect(await fx.chain.balanceOf(broke)).toBe(0n);
    const { fetchWithPayment, requests } = buyer(keys.stranger);
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    const response = await fetchWithPayment(`${seller.url}/weather`);

    expect(response.status).toBe(402);
    const body = await response.text();
    expect(body).not.toContain("sunny");
    expect(response.headers.get("PAYMENT-RESPONSE")).toBeNull(); // refused at verify: nothing was settled
    const paymentRequired = decodeBase64Json<PaymentRequired>(response.headers.get("PAYMENT-REQUIRED"));
    expect(paymentRequired.error).toBe("invalid_exact_evm_insufficient_balance");
    expect(requests).toHaveLength(2); // it did sign and send a payment
    expect(authorizationOf(sentPaymentSignature(requests)).from).toBe(broke);

    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
    expect(await settlementRowsOfPayer(fx.database.url, broke)).toHaveLength(0);
  });

  it("refuses a replayed PAYMENT-SIGNATURE: 402, no content, no second transfer", async () => {
    const { fetchWithPayment, requests } = buyer(keys.payer);
    const first = await fetchWithPayment(`${seller.url}/weather`);
    expect(first.status, paymentFailure(first)).toBe(200);
    const firstSettle = decodeBase64Json<SettleResponse>(first.headers.get("PAYMENT-RESPONSE"));
    const paymentSignature = sentPaymentSignature(requests);
    const { nonce } = authorizationOf(paymentSignature);
    const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo)]);
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    // The same header again, with plain fetch.
    const replay = await fetch(`${seller.url}/weather`, { headers: { "PAYMENT-SIGNATURE": paymentSignature } });

    expect(replay.status).toBe(402);
    expect(await replay.text()).not.toContain("sunny");
    expect(replay.headers.get("PAYMENT-RESPONSE")).toBeNull();
    const paymentRequired = decodeBase64Json<PaymentRequired>(replay.headers.get("PAYMENT-REQUIRED"));
    expect(paymentRequired.error).toBe("invalid_exact_evm_nonce_already_used");

    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore);
    expect(await authorizationsUsed(fx.chain, payer, nonce)).toBe(1);
    const rows = await settlementRows(fx.database.url, nonce);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", settled_tx_hash: firstSettle.transaction });
  });
});

describe("HTTPFacilitatorClient (the SDK's zod schemas) against this facilitator", () => {
  const requirements = (): PaymentRequirements => ({
    scheme: "exact",
    network,
    amount: amountAtomic.toString(),
    asset: fx.chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2" },
  });

  async function signedPayload(privateKey: Hex, accepted = requirements()): Promise<PaymentPayload> {
    const client = new x402Client().register(network, new ExactEvmClientScheme(privateKeyToAccount(privateKey)));
    return client.createPaymentPayload({ x402Version: 2, resource: { url: `${seller.url}/weather` }, accepts: [accepted] });
  }

  it("getSupported parses and lists the concrete v2 and v1 kinds and the signer", async () => {
    const supported = await new HTTPFacilitatorClient({ url: facilitatorUrl }).getSupported();
    expect(supported.kinds).toEqual(
      expect.arrayContaining([
        { x402Version: 2, scheme: "exact", network },
        { x402Version: 1, scheme: "exact", network: "base-sepolia" },
      ]),
    );
    expect(supported.extensions).toEqual(["payment-identifier", "eip2612GasSponsoring", "bazaar"]);
    expect(supported.signers).toEqual({ "eip155:*": [addressOf(keys.facilitator)] });
  });

  it("verify and settle answers parse, for success and for every failure shape the middleware may see", async () => {
    const client = new HTTPFacilitatorClient({ url: `${facilitatorUrl}/` }); // trailing slash is stripped by the SDK
    const payload = await signedPayload(keys.payer);

    expect(await client.verify(payload, requirements())).toEqual({ isValid: true, payer });

    const settled = await client.settle(payload, requirements());
    expect(settled).toMatchObject({ success: true, network, payer });
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);

    // Settled already: verify says so, settle answers duplicate_settlement with the original hash.
    expect(await client.verify(payload, requirements())).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_nonce_already_used", payer });
    expect(await client.settle(payload, requirements())).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: settled.transaction, network, payer });

    // A business refusal: HTTP 200, success:false, transaction "" (the SDK requires the field).
    const poor = await signedPayload(keys.stranger);
    expect(await client.verify(poor, requirements())).toMatchObject({ isValid: false, invalidReason: "invalid_exact_evm_insufficient_balance", payer: broke });
    const refused = await client.settle(poor, requirements());
    expect(refused).toMatchObject({ success: false, errorReason: "invalid_exact_evm_insufficient_balance", transaction: "", network, payer: broke });

    // Requirements that differ from the signed `accepted` (an amount the buyer did not agree to).
    const other = { ...requirements(), amount: "20000" };
    expect(await client.verify(payload, other)).toMatchObject({ isValid: false, invalidReason: "invalid_payment_requirements" });
    expect(await client.settle(payload, other)).toMatchObject({ success: false, errorReason: "invalid_payment_requirements", transaction: "", network });
  });
});
