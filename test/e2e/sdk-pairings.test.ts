/**
 * More official x402 servers × clients against this facilitator, each used unmodified as its
 * README shows, beyond the express + fetch pairs of sdk-v2.test.ts / sdk-v1.test.ts:
 *
 *   v2 (2.27 servers): @x402/hono and @x402/express sellers; @x402/axios (2.11, the newest
 *                      published, on its own @x402/core 2.11) and @x402/fetch buyers
 *   v1:                x402-hono (1.1) and x402-express (1.2) sellers; x402-axios (0.7.2, the newest
 *                      published, on its own x402 0.7.3) and x402-fetch (1.2) buyers
 *   and the v2 @x402/axios client paying a v1 x402-hono seller with its v1 exact scheme.
 *
 * One Anvil (chain id 84532, TestUSDC at the Base Sepolia USDC address), one Postgres database and
 * one listening facilitator are shared by every pairing; each paid request must settle on chain.
 */
import express from "express";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWalletClient, http, publicActions, type Address, type Chain, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { HTTPFacilitatorClient, type RoutesConfig } from "@x402/core/server";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { ExactEvmSchemeV1 as ExactEvmClientSchemeV1 } from "@x402/evm/exact/v1/client";
import { paymentMiddleware as expressV2Middleware, x402ResourceServer as ExpressResourceServer } from "@x402/express";
import { paymentMiddleware as honoV2Middleware, x402ResourceServer as HonoResourceServer } from "@x402/hono";
import { wrapFetchWithPayment as wrapFetchV2, x402Client as FetchX402Client } from "@x402/fetch";
import { decodePaymentResponseHeader as decodeAxiosPaymentResponse, wrapAxiosWithPayment, x402Client as AxiosX402Client } from "@x402/axios";
import { paymentMiddleware as expressV1Middleware } from "x402-express";
import { paymentMiddleware as honoV1Middleware } from "x402-hono";
import { wrapFetchWithPayment as wrapFetchV1 } from "x402-fetch";
import { decodeXPaymentResponse as decodeAxiosXPaymentResponse, withPaymentInterceptor } from "x402-axios";
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
  settlementRowsOfPayer,
  transfersInTx,
  type Purchase,
  type RecordedRequest,
  type RunningServer,
} from "../helpers/sdk.js";

const v2Network = "eip155:84532" as const;
const v1Network = "base-sepolia";
const payer = addressOf(keys.payer);
const broke = addressOf(keys.stranger); // holds no USDC
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n; // $0.01

const fx = usePaymentFixture({ label: "sdk_pairs", payerBalanceAtomic: 10_000_000n, facilitator: { listen: true } });

type SellerName = "@x402/hono" | "@x402/express" | "x402-hono" | "x402-express";
const sellers = {} as Record<SellerName, RunningServer>;
/** What each seller's GET /weather answers once paid: names the seller, so a test knows who served it. */
const contentOf = (seller: SellerName) => ({ report: "sunny", seller });

/** The v2 route, as the @x402/express and @x402/hono READMEs show it, priced in the sandbox token. */
function v2Routes(): RoutesConfig {
  return {
    "GET /weather": {
      accepts: { scheme: "exact", price: { amount: amountAtomic.toString(), asset: fx.chain.token, extra: { name: "USDC", version: "2" } }, network: v2Network, payTo },
      description: "Weather report",
      mimeType: "application/json",
    },
  };
}

/** The v1 route: "$0.01" resolves to the SDK's built-in Base Sepolia USDC, the sandbox token's address, name and version. */
const v1Routes = { "GET /weather": { price: "$0.01", network: v1Network, config: { description: "Weather report", mimeType: "application/json" } } } as const;

beforeAll(async () => {
  const facilitatorUrl = fx.facilitator.baseUrl!;
  // The v2 middlewares fetch /supported as soon as they are created, so the facilitator listens first.
  const facilitatorV2 = () => new HTTPFacilitatorClient({ url: facilitatorUrl });

  const honoV2 = new Hono();
  honoV2.use(honoV2Middleware(v2Routes(), new HonoResourceServer(facilitatorV2()).register(v2Network, new ExactEvmServerScheme())));
  honoV2.get("/weather", (c) => c.json(contentOf("@x402/hono")));

  const expressV2 = express();
  expressV2.use(expressV2Middleware(v2Routes(), new ExpressResourceServer(facilitatorV2()).register(v2Network, new ExactEvmServerScheme())));
  expressV2.get("/weather", (_req, res) => {
    res.json(contentOf("@x402/express"));
  });

  const honoV1 = new Hono();
  honoV1.use(honoV1Middleware(payTo, v1Routes, { url: facilitatorUrl as `${string}://${string}` }));
  honoV1.get("/weather", (c) => c.json(contentOf("x402-hono")));

  const expressV1 = express();
  expressV1.use(expressV1Middleware(payTo, v1Routes, { url: facilitatorUrl as `${string}://${string}` }));
  expressV1.get("/weather", (_req, res) => {
    res.json(contentOf("x402-express"));
  });

  [sellers["@x402/hono"], sellers["@x402/express"], sellers["x402-hono"], sellers["x402-express"]] = await Promise.all([
    listenHono(honoV2),
    listenLocal(expressV2),
    listenHono(honoV1),
    listenLocal(expressV1),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(sellers).map((seller) => seller.close()));
});

/**
 * The v1 `Signer`: a viem wallet client with public actions, on Anvil. The chain is widened to
 * `Chain` (Base Sepolia's OP-stack formatters keep it from type-checking as x402's SignerWallet).
 */
const v1Signer = (privateKey: Hex) =>
  createWalletClient({ account: privateKeyToAccount(privateKey), chain: baseSepolia as Chain, transport: http(fx.chain.rpcUrl) }).extend(publicActions);

type BuyerName = "@x402/axios" | "@x402/fetch" | "x402-axios" | "x402-fetch" | "@x402/axios v1 scheme";
type Buyer = (privateKey: Hex, url: string) => Promise<Purchase>;

const buyers: Record<BuyerName, Buyer> = {
  // As the @x402/axios README shows; its x402Client is @x402/core 2.11's, with the 2.27 EVM scheme registered.
  "@x402/axios": (privateKey, url) => {
    const recorder = recordingAxios();
    const client = new AxiosX402Client().register(v2Network, new ExactEvmClientScheme(privateKeyToAccount(privateKey)));
    return purchaseViaAxios(wrapAxiosWithPayment(recorder.axios, client), recorder.requests, url);
  },
  // As in sdk-v2.test.ts, with an explicit allow-list entry for the sandbox token.
  "@x402/fetch": (privateKey, url) => {
    const recorder = recordingFetch();
    const client = new FetchX402Client()
      .register(v2Network, new ExactEvmClientScheme(privateKeyToAccount(privateKey)))
      .setSpendControls({ allowedAssets: [{ network: v2Network, asset: fx.chain.token }] });
    return purchaseViaFetch(wrapFetchV2(recorder.fetch, client), recorder.requests, url);
  },
  "x402-axios": (privateKey, url) => {
    const recorder = recordingAxios();
    return purchaseViaAxios(withPaymentInterceptor(recorder.axios, v1Signer(privateKey)), recorder.requests, url);
  },
  "x402-fetch": (privateKey, url) => {
    const recorder = recordingFetch();
    return purchaseViaFetch(wrapFetchV1(recorder.fetch, v1Signer(privateKey)), recorder.requests, url);
  },
  // The v2 client speaking v1 to a v1 seller: registerV1 with the v1 exact scheme.
  "@x402/axios v1 scheme": (privateKey, url) => {
    const recorder = recordingAxios();
    const client = new AxiosX402Client().registerV1(v1Network, new ExactEvmClientSchemeV1(privateKeyToAccount(privateKey)));
    return purchaseViaAxios(wrapAxiosWithPayment(recorder.axios, client), recorder.requests, url);
  },
};

interface Pairing {
  seller: SellerName;
  buyer: BuyerName;
  version: 1 | 2;
}

/** Each pairing not already covered by sdk-v2.test.ts (express + fetch) and sdk-v1.test.ts (x402-express + x402-fetch). */
const pairings: Pairing[] = [
  { seller: "@x402/hono", buyer: "@x402/axios", version: 2 },
  { seller: "@x402/express", buyer: "@x402/axios", version: 2 },
  { seller: "@x402/hono", buyer: "@x402/fetch", version: 2 },
  { seller: "x402-hono", buyer: "x402-axios", version: 1 },
  { seller: "x402-express", buyer: "x402-axios", version: 1 },
  { seller: "x402-hono", buyer: "x402-fetch", version: 1 },
  { seller: "x402-hono", buyer: "@x402/axios v1 scheme", version: 1 },
];

/** The wire headers of each version: the payment the buyer sends, the settlement answer it gets back. */
const wire = {
  2: { payment: "PAYMENT-SIGNATURE", otherPayment: "X-PAYMENT", response: "PAYMENT-RESPONSE", otherResponse: "X-PAYMENT-RESPONSE", network: v2Network },
  1: { payment: "X-PAYMENT", otherPayment: "PAYMENT-SIGNATURE", response: "X-PAYMENT-RESPONSE", otherResponse: "PAYMENT-RESPONSE", network: v1Network },
} as const;

interface SettleAnswer {
  success: boolean;
  transaction: string;
  network: string;
  payer?: string;
  errorReason?: string;
}

/** The authorization the buyer signed, decoded from the payment header it sent (the 2nd request). */
function sentAuthorization(version: 1 | 2, requests: RecordedRequest[]) {
  expect(requests).toHaveLength(2);
  expect(requests[0]!.headers.get(wire[version].payment)).toBeNull(); // the first request is unpaid and gets the 402
  expect(requests[1]!.headers.get(wire[version].otherPayment)).toBeNull();
  const payload = decodeBase64Json<{ x402Version: number; payload: { authorization: { from: Address; to: Address; nonce: Hex; value: string } } }>(
    requests[1]!.headers.get(wire[version].payment),
  );
  expect(payload.x402Version).toBe(version);
  return payload.payload.authorization;
}

describe.each(pairings)("$seller seller + $buyer buyer (x402 v$version) against this facilitator", ({ seller, buyer, version }) => {
  it("pays: 200 with the seller's content, a success answer with the tx hash, the payee paid on chain, row confirmed", async () => {
    const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(payer), fx.chain.balanceOf(payTo)]);

    const purchase = await buyers[buyer](keys.payer, `${sellers[seller].url}/weather`);

    expect(purchase.status, `${purchase.body} ${purchase.headers.get("PAYMENT-REQUIRED") ?? ""}`).toBe(200);
    expect(JSON.parse(purchase.body)).toEqual(contentOf(seller));
    const header = purchase.headers.get(wire[version].response);
    const settled = decodeBase64Json<SettleAnswer>(header);
    expect(settled).toMatchObject({ success: true, network: wire[version].network, payer });
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(purchase.headers.get(wire[version].otherResponse)).toBeNull();
    // The axios packages' own decoders agree with ours.
    if (buyer === "x402-axios") expect(decodeAxiosXPaymentResponse(header!)).toEqual(settled);
    if (buyer.startsWith("@x402/axios")) expect(decodeAxiosPaymentResponse(header!)).toEqual(settled);

    const authorization = sentAuthorization(version, purchase.requests);
    expect(authorization).toMatchObject({ from: payer, to: payTo, value: amountAtomic.toString() });

    // On chain: the facilitator sent it, one transfer payer → payTo of the price, the authorization spent once.
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(addressOf(keys.facilitator).toLowerCase());
    expect((await transfersInTx(fx.chain, settled.transaction as Hex, payer, payTo)).map((log) => log.args.value)).toEqual([amountAtomic]);
    expect(await authorizationsUsed(fx.chain, payer, authorization.nonce)).toBe(1);
    expect(await fx.chain.balanceOf(payer)).toBe(payerBefore - amountAtomic);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + amountAtomic);

    const rows = await settlementRows(fx.database.url, authorization.nonce);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      status: "confirmed",
      x402_version: version,
      network: wire[version].network,
      payer: payer.toLowerCase(),
      settled_tx_hash: settled.transaction,
      success_answered: true,
    });
  });
});

describe.each([
  { seller: "@x402/hono", buyer: "@x402/axios", version: 2 },
  { seller: "x402-hono", buyer: "x402-axios", version: 1 },
] satisfies Pairing[])("$seller seller + $buyer buyer (x402 v$version): a payer without funds", ({ seller, buyer, version }) => {
  it("is refused at verify: 402, no content, no transaction, no settlement row", async () => {
    expect(await fx.chain.balanceOf(broke)).toBe(0n);
    const blockBefore = await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 });

    const purchase = await buyers[buyer](keys.stranger, `${sellers[seller].url}/weather`);

    expect(purchase.status).toBe(402);
    expect(purchase.body).not.toContain("sunny");
    expect(purchase.headers.get(wire[version].response)).toBeNull(); // nothing was settled
    const reason =
      version === 2
        ? decodeBase64Json<{ error?: string }>(purchase.headers.get("PAYMENT-REQUIRED")).error
        : (JSON.parse(purchase.body) as { error?: string }).error;
    expect(reason).toBe("invalid_exact_evm_insufficient_balance");
    expect(sentAuthorization(version, purchase.requests).from).toBe(broke); // it did sign and send a payment

    expect(await fx.chain.publicClient.getBlockNumber({ cacheTime: 0 })).toBe(blockBefore);
    expect(await settlementRowsOfPayer(fx.database.url, broke)).toHaveLength(0);
  });
});
