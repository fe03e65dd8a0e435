/**
 * A network where Permit2 and x402's proxies have no code (the test chain without them): /supported
 * lists no `upto` there, and a Permit2 payment — made by the official @x402/evm 2.27 clients — is
 * refused with 2.27's `permit2_proxy_not_deployed` at /verify and /settle, with nothing sent. An
 * EIP-3009 payment on the same network still settles.
 */
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { paymentBody } from "../../helpers/payments.js";
import { settlementRowsOfPayer } from "../../helpers/sdk.js";

const NETWORK = "eip155:84532";
const payer = privateKeyToAccount(keys.payer);
const payTo = addressOf(keys.payTo);
const facilitator = addressOf(keys.facilitator);

const fx = usePaymentFixture({ label: "permit2_absent", payerBalanceAtomic: 1_000_000n, chain: { permit2: false } });

function requirements(scheme: "exact" | "upto", amountAtomic: bigint): PaymentRequirements {
  return {
    scheme,
    network: NETWORK,
    amount: amountAtomic.toString(),
    asset: fx.chain.token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress: facilitator } : {}) },
  };
}

async function signed(scheme: ExactEvmScheme | UptoEvmScheme, accepted: PaymentRequirements) {
  const result = await scheme.createPaymentPayload(2, accepted);
  return { x402Version: 2, paymentPayload: { x402Version: 2, resource: { url: "http://127.0.0.1/resource" }, accepted, payload: result.payload }, paymentRequirements: accepted };
}

async function post(url: "/verify" | "/settle", body: unknown) {
  const response = await fx.facilitator.app.inject({ method: "POST", url, payload: body as Record<string, unknown> });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Record<string, unknown>;
}

describe("a network without Permit2 or the x402 proxies", () => {
  it("/supported lists exact only", async () => {
    const response = await fx.facilitator.app.inject({ method: "GET", url: "/supported" });
    expect((response.json() as { kinds: unknown[] }).kinds).toEqual([
      { x402Version: 2, scheme: "exact", network: NETWORK },
      { x402Version: 1, scheme: "exact", network: "base-sepolia" },
    ]);
  });

  it("refuses exact over Permit2 and upto with permit2_proxy_not_deployed at verify and settle; nothing claimed or sent", async () => {
    for (const body of [await signed(new ExactEvmScheme(payer), requirements("exact", 10_000n)), await signed(new UptoEvmScheme(payer), requirements("upto", 10_000n))]) {
      expect(await post("/verify", body)).toMatchObject({ isValid: false, invalidReason: "permit2_proxy_not_deployed" });
      expect(await post("/settle", body)).toMatchObject({ success: false, errorReason: "permit2_proxy_not_deployed", transaction: "" });
    }
    expect(await settlementRowsOfPayer(fx.database.url, payer.address)).toEqual([]);
  });

  it("still settles an EIP-3009 payment", async () => {
    expect(await post("/settle", await paymentBody(fx.chain, { payerKey: keys.payer, payTo, amountAtomic: 10_000n }))).toMatchObject({ success: true });
  });
});
