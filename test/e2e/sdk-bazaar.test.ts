/**
 * Bazaar discovery end to end with the official v2 SDKs, unmodified: a seller (@x402/express
 * paymentMiddleware) declares its routes discoverable with @x402/extensions' declareDiscoveryExtension
 * and bazaarResourceServerExtension (which fills in the method and, for a dynamic route, the
 * routeTemplate); a buyer (@x402/fetch) pays; then withBazaar(HTTPFacilitatorClient) finds the paid
 * routes in this facilitator's catalogue. Real Anvil, real Postgres, real HTTP.
 */
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { privateKeyToAccount } from "viem/accounts";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { bazaarResourceServerExtension, declareDiscoveryExtension, withBazaar } from "@x402/extensions/bazaar";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { addressOf, keys } from "../helpers/chain.js";
import { usePaymentFixture } from "../helpers/fixture.js";
import { listenLocal, type RunningServer } from "../helpers/sdk.js";

const network = "eip155:84532" as const;
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;

const fx = usePaymentFixture({ label: "sdk_bazaar", payerBalanceAtomic: 10_000_000n, facilitator: { listen: true } });
let seller: RunningServer;

beforeAll(async () => {
  const resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! }))
    .register(network, new ExactEvmServerScheme())
    .registerExtension(bazaarResourceServerExtension);
  const accepts = { scheme: "exact", price: { amount: amountAtomic.toString(), asset: fx.chain.token, extra: { name: "USDC", version: "2" } }, network, payTo };
  const app = express();
  app.use(
    paymentMiddleware(
      {
        "GET /weather": {
          accepts,
          description: "Weather report by city",
          mimeType: "application/json",
          extensions: declareDiscoveryExtension({
            input: { city: "Paris" },
            inputSchema: { properties: { city: { type: "string" } }, required: ["city"] },
            output: { example: { report: "sunny" } },
          }),
        },
        "GET /users/[userId]": {
          accepts,
          description: "A user's profile",
          mimeType: "application/json",
          extensions: declareDiscoveryExtension({ pathParamsSchema: { properties: { userId: { type: "string" } } } }),
        },
      },
      resourceServer,
    ),
  );
  app.get("/weather", (_req, res) => res.json({ report: "sunny" }));
  app.get("/users/:userId", (req, res) => res.json({ id: req.params.userId }));
  seller = await listenLocal(app);
}, 60_000);

afterAll(async () => {
  await seller?.close();
});

describe("@x402/extensions bazaar: declared by the seller, paid by the buyer, found through withBazaar", () => {
  it("catalogues the paid routes (the dynamic one under its routeTemplate) and the client helper lists and searches them", async () => {
    const client = new x402Client()
      .register(network, new ExactEvmClientScheme(privateKeyToAccount(keys.payer)))
      .setSpendControls({ allowedAssets: [{ network, asset: fx.chain.token }] });
    const fetchWithPayment = wrapFetchWithPayment(fetch, client);
    for (const path of ["/weather?city=Paris", "/users/123", "/users/456"]) {
      const response = await fetchWithPayment(`${seller.url}${path}`);
      expect(response.status, path).toBe(200);
    }
    await fx.facilitator.services.bazaar.idle();

    const bazaar = withBazaar(new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! })).extensions.bazaar;
    const listed = await bazaar.listResources({ type: "http", payTo, network });
    expect(listed.pagination).toEqual({ limit: 20, offset: 0, total: 2 });
    expect(listed.items.map((item) => item.resource)).toEqual([`${seller.url}/users/:userId`, `${seller.url}/weather`]);
    const weather = listed.items[1]!;
    expect(weather).toMatchObject({
      type: "http",
      x402Version: 2,
      description: "Weather report by city",
      mimeType: "application/json",
      accepts: [{ scheme: "exact", network, amount: amountAtomic.toString(), asset: fx.chain.token, payTo }],
    });
    expect(weather.extensions).toMatchObject({ bazaar: { info: { input: { type: "http", method: "GET", queryParams: { city: "Paris" } } } } });
    expect(listed.items[0]!.extensions).toMatchObject({ bazaar: { routeTemplate: "/users/:userId", info: { input: { method: "GET", pathParams: { userId: "456" } } } } });

    const found = await bazaar.search({ query: "weather" });
    expect(found.resources.map((item) => item.resource)).toEqual([`${seller.url}/weather`]);
  });
});
