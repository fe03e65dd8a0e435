/**
 * Interop with the official x402 v1 SDKs (x402-express, x402-fetch 1.2), used unmodified as their
 * READMEs show. v1 only knows fixed network names: Anvil runs with chain id 84532 and is called
 * "base-sepolia"; the buyer's viem wallet client points at Anvil (it only signs locally anyway).
 */
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWalletClient, http, publicActions, type Address, type Chain, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { createPaymentHeader } from "x402/client";
import { PaymentRequirementsSchema, SettleResponseSchema, SupportedPaymentKindsResponseSchema, VerifyResponseSchema } from "x402/types";
import { paymentMiddleware } from "x402-express";
import { decodeXPaymentResponse, wrapFetchWithPayment } from "x402-fetch";
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

const network = "base-sepolia";
const payer = addressOf(keys.payer);
const broke = addressOf(keys.stranger); // holds no USDC
const payTo = addressOf(keys.payTo);
const content = { report: "sunny", temperatureC: 21 };
const premiumAmountAtomic = 25_000n;

// Chain id 84532 = "base-sepolia" for the v1 SDK.
const fx = usePaymentFixture({ label: "sdk_v1", payerBalanceAtomic: 10_000_000n, facilitator: { listen: true } });
let facilitatorUrl: string;
let seller: RunningServer;

beforeAll(async () => {
  facilitatorUrl = fx.facilitator.baseUrl!;

  const app = express();
  app.use(
    paymentMiddleware(
      payTo,
      {
        // "$0.01" resolves to the SDK's built-in Base Sepolia USDC: the sandbox token's address, name and version.
        "GET /weather": { price: "$0.01", network, config: { description: "Weather report", mimeType: "application/json" } },
        // A token given explicitly, the v1 way for a custom asset.
        "GET /premium": {
          price: { amount: premiumAmountAtomic.toString(), asset: { address: fx.chain.token, decimals: 6, eip712: { name: "USDC", version: "2" } } },
          network,
          config: { description: "Premium report" },
        },
      },
      { url: facilitatorUrl as `${string}://${string}` },
    ),
  );
  app.get("/weather", (_req, res) => {
    res.json(content);
  });
  app.get("/premium", (_req, res) => {
    res.json({ ...content, premium: true });
  });
  seller = await listenLocal(app);
}, 60_000);

afterAll(async () => {
  await seller?.close();
});

/**
 * The v1 `Signer`: a viem wallet client with public actions (as x402's own createSigner builds it),
 * on Anvil. The chain is widened to `Chain`: with Base Sepolia's OP-stack formatters in its type,
 * the client does not type-check as x402's `SignerWallet<Chain>`.
 */
function v1Signer(privateKey: Hex) {
  return createWalletClient({ account: privateKeyToAccount(privateKey), chain: baseSepolia as Chain, transport: http(fx.chain.rpcUrl) }).extend(publicActions);
}

function buyer(privateKey: Hex) {
  const wallet = v1Signer(privateKey);
  const recorder = recordingFetch();
  return { fetchWithPayment: wrapFetchWithPayment(recorder.fetch, wallet), requests: recorder.requests };
}

function sentXPayment(requests: { headers: Headers }[]): string {
  const header = requests.map((request) => request.headers.get("X-PAYMENT")).find((value) => value);
  if (!header) throw new Error("the SDK sent no X-PAYMENT header");
  return header;
}

function authorizationOf(xPayment: string) {
  const payload = decodeBase64Json<{ x402Version: number; scheme: string; network: string; payload: { authorization: { from: Address; nonce: Hex; value: string } } }>(xPayment);
  expect(payload).toMatchObject({ x402Version: 1, scheme: "exact", network });
  return payload.payload.authorization;
}

interface SettleAnswer {
  success: boolean;
  transaction: string;
  network: string;
  payer?: string;
  errorReason?: string;
}

async function buysAndSettles(path: string, amountAtomic: bigint, expectedBody: unknown) {
  const { fetchWithPayment, requests } = buyer(keys.payer);
  const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo)]);

  const response = await fetchWithPayment(`${seller.url}${path}`);

  expect(response.status, await response.clone().text()).toBe(200);
  expect(await response.json()).toEqual(expectedBody);
  const header = response.headers.get("X-PAYMENT-RESPONSE");
  const settled = decodeBase64Json<SettleAnswer>(header);
  expect(settled).toMatchObject({ success: true, network, payer });
  expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);
  expect(decodeXPaymentResponse(header!)).toEqual(settled);
  // The v1 SDK's own (strict) zod schema accepts the success answer.
  expect(SettleResponseSchema.safeParse(settled).success).toBe(true);
  expect(response.headers.get("PAYMENT-RESPONSE")).toBeNull(); // v1 header only

  expect(requests).toHaveLength(2);
  expect(requests[1]!.headers.get("PAYMENT-SIGNATURE")).toBeNull();
  const authorization = authorizationOf(sentXPayment(requests));
  expect(authorization).toMatchObject({ from: payer, value: amountAtomic.toString() });

  expect(await fx.chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
  expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);
  const transfers = await transfersInTx(fx.chain, settled.transaction as Hex, payer, payTo);
  expect(transfers.map((log) => log.args.value)).toEqual([amountAtomic]);
  expect(await authorizationsUsed(fx.chain, payer, authorization.nonce)).toBe(1);
  const rows = await settlementRows(fx.database.url, authorization.nonce);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ status: "confirmed", x402_version: 1, network, settled_tx_hash: settled.transaction, success_answered: true });
  return { settled, xPayment: sentXPayment(requests), nonce: authorization.nonce };
}

describe("x402-express seller + x402-fetch buyer against this facilitator", () => {
  it('pays a "$0.01" route: 200, X-PAYMENT-RESPONSE success with the tx hash, balances moved, row confirmed', async () => {
    await buysAndSettles("/weather", 10_000n, content);
  });

  it("pays a route priced in an explicitly given token", async () => {
    await buysAndSettles("/premium", premiumAmountAtomic, { ...content, premium: true });
  });

  it("refuses a replayed X-PAYMENT: 402, no content, no second transfer", async () => {
    const { settled, xPayment, nonce } = await buysAndSettles("/weather", 10_000n, content);
    const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo)]);
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    const replay = await fetch(`${seller.url}/weather`, { headers: { "X-PAYMENT": xPayment } });

    expect(replay.status).toBe(402);
    const body = (await replay.json()) as { x402Version: number; error: string; accepts: unknown[] };
    expect(body).toMatchObject({ x402Version: 1, error: "invalid_exact_evm_nonce_already_used" });
    expect(JSON.stringify(body)).not.toContain("sunny");
    expect(replay.headers.get("X-PAYMENT-RESPONSE")).toBeNull();

    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore);
    expect(await authorizationsUsed(fx.chain, payer, nonce)).toBe(1);
    const rows = await settlementRows(fx.database.url, nonce);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", settled_tx_hash: settled.transaction });
  });

  it("refuses a payer without funds: 402, no content, no transaction", async () => {
    const { fetchWithPayment, requests } = buyer(keys.stranger);
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    const response = await fetchWithPayment(`${seller.url}/weather`);

    expect(response.status).toBe(402);
    const body = (await response.json()) as { error: string; payer?: string };
    expect(body).toMatchObject({ error: "invalid_exact_evm_insufficient_balance", payer: broke });
    expect(authorizationOf(sentXPayment(requests)).from).toBe(broke);
    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
    expect(await settlementRowsOfPayer(fx.database.url, broke)).toHaveLength(0);
  });
});

describe("this facilitator's answers under the v1 SDK's zod schemas", () => {
  it("/supported: the v1 kinds parse under the v1 schema (the v2 kinds are outside its network enum)", async () => {
    const supported = (await (await fetch(`${facilitatorUrl}/supported`)).json()) as { kinds: { x402Version: number }[] };
    const v1Kinds = supported.kinds.filter((kind) => kind.x402Version === 1);
    expect(v1Kinds).toEqual([{ x402Version: 1, scheme: "exact", network }]);
    expect(SupportedPaymentKindsResponseSchema.safeParse({ kinds: v1Kinds }).success).toBe(true);
  });

  it("verify and settle of a payment signed by the v1 client parse under the strict v1 schemas", async () => {
    // The requirements exactly as x402-express advertises them in its 402 body.
    const unpaid = await fetch(`${seller.url}/weather`);
    expect(unpaid.status).toBe(402);
    const { accepts } = (await unpaid.json()) as { accepts: unknown[] };
    const requirements = PaymentRequirementsSchema.parse(accepts[0]);
    const wallet = v1Signer(keys.payer);
    const paymentPayload = decodeBase64Json(await createPaymentHeader(wallet, 1, requirements));
    const post = async (route: string) => {
      const response = await fetch(`${facilitatorUrl}${route}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ x402Version: 1, paymentPayload, paymentRequirements: requirements }),
      });
      const text = await response.text();
      expect(response.status, `${route} answered ${text}`).toBe(200);
      return JSON.parse(text) as Record<string, unknown>;
    };

    const verified = await post("/verify");
    expect(verified).toEqual({ isValid: true, payer });
    expect(VerifyResponseSchema.safeParse(verified).success).toBe(true);
    const settled = await post("/settle");
    expect(settled).toMatchObject({ success: true, network, payer });
    expect(SettleResponseSchema.safeParse(settled).success).toBe(true);
  });
});
