/**
 * Interop of `upto` and `exact` over Permit2 with the official x402 v2 TypeScript SDKs, unmodified:
 * seller = express + @x402/express paymentMiddleware + HTTPFacilitatorClient pointed at this
 * facilitator, with @x402/evm's UptoEvmScheme and ExactEvmScheme server schemes; the metered route
 * charges less than its cap through the 2.27 server API (setSettlementOverrides). Buyer =
 * @x402/fetch wrapFetchWithPayment + an x402Client registered for upto and exact (with a viem
 * account made a ClientEvmSigner, so the client may add the EIP-2612 permit when a route declares it).
 * Real Anvil (Permit2 and x402's proxies at their canonical addresses), real Postgres, real HTTP.
 */
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWalletClient, defineChain, erc20Abi, http, maxUint256, parseAbi, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { SettleResponse } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { UptoEvmScheme as UptoEvmClientScheme } from "@x402/evm/upto/client";
import { UptoEvmScheme as UptoEvmServerScheme } from "@x402/evm/upto/server";
import { paymentMiddleware, setSettlementOverrides, x402ResourceServer } from "@x402/express";
import { declareEip2612GasSponsoringExtension } from "@x402/extensions";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../../src/contracts/permit2.js";
import { addressOf, keys } from "../helpers/chain.js";
import { usePaymentFixture } from "../helpers/fixture.js";
import { decodeBase64Json, listenLocal, recordingFetch, settlementRows, transfersInTx, type RunningServer } from "../helpers/sdk.js";

const network = "eip155:84532" as const;
const payTo = addressOf(keys.payTo);
const capAtomic = 500_000n; // $0.50: what the buyer signs for
const usedAtomic = 123_456n; // what the route charges after serving
const exactAtomic = 10_000n;
const content = { completion: "hello", usage: { tokens: 42 } };

const fx = usePaymentFixture({ label: "sdk_permit2", facilitator: { listen: true } });
let seller: RunningServer;

const viemChain = defineChain({ id: 84532, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: ["http://127.0.0.1"] } } });

/** A buyer key with USDC and ETH; `approve`: an allowance to Permit2 (else only an EIP-2612 permit can pay). */
async function fundedBuyer(approve: boolean): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await fx.chain.mint(account.address, 10_000_000n);
  await fx.chain.testClient.setBalance({ address: account.address, value: 10n ** 18n });
  if (approve) {
    const wallet = createWalletClient({ account, chain: viemChain, transport: http(fx.chain.rpcUrl) });
    const hash = await wallet.writeContract({ address: fx.chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, maxUint256] });
    await fx.chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
  }
  return account;
}

beforeAll(async () => {
  // The seller, as the @x402/express README shows; it reads /supported at start (upto's facilitatorAddress).
  const resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: fx.facilitator.baseUrl! }))
    .register(network, new UptoEvmServerScheme())
    .register(network, new ExactEvmServerScheme());
  const price = (amount: bigint, extra: Record<string, unknown> = {}) => ({ amount: amount.toString(), asset: fx.chain.token, extra: { name: "USDC", version: "2", ...extra } });
  const app = express();
  app.use(
    paymentMiddleware(
      {
        "GET /completion": { accepts: { scheme: "upto", price: price(capAtomic), network, payTo }, description: "Metered completion", mimeType: "application/json" },
        "GET /completion-gasless": {
          accepts: { scheme: "upto", price: price(capAtomic), network, payTo },
          description: "Metered completion, EIP-2612 permit accepted",
          mimeType: "application/json",
          extensions: { ...declareEip2612GasSponsoringExtension() },
        },
        "GET /report": { accepts: { scheme: "exact", price: price(exactAtomic, { assetTransferMethod: "permit2" }), network, payTo }, description: "Report", mimeType: "application/json" },
      },
      resourceServer,
    ),
  );
  const metered = (_req: express.Request, res: express.Response) => {
    // The actual charge, known once the work is done (2.27: before res.end()).
    setSettlementOverrides(res, { amount: usedAtomic.toString() });
    res.json(content);
  };
  app.get("/completion", metered);
  app.get("/completion-gasless", metered);
  app.get("/report", (_req, res) => {
    res.json(content);
  });
  seller = await listenLocal(app);
}, 60_000);

afterAll(async () => {
  await seller?.close();
});

function buyer(account: PrivateKeyAccount) {
  const signer = toClientEvmSigner(account, fx.chain.publicClient);
  const client = new x402Client()
    .register(network, new UptoEvmClientScheme(signer))
    .register(network, new ExactEvmClientScheme(signer))
    .setSpendControls({ allowedAssets: [{ network, asset: fx.chain.token }] });
  const recorder = recordingFetch();
  return { fetchWithPayment: wrapFetchWithPayment(recorder.fetch, client), requests: recorder.requests };
}

function paymentFailure(response: Response): string {
  const header = response.headers.get("PAYMENT-RESPONSE") ?? response.headers.get("PAYMENT-REQUIRED");
  return header ? JSON.stringify(decodeBase64Json(header)) : `HTTP ${response.status}, no x402 header`;
}

function sentPayload(requests: { headers: Headers }[]) {
  const header = requests.map((request) => request.headers.get("PAYMENT-SIGNATURE")).find((value) => value);
  return decodeBase64Json<{ accepted: { scheme: string; amount: string; extra: Record<string, unknown> }; payload: { permit2Authorization: { from: string; nonce: string; spender: string; permitted: { amount: string }; witness: Record<string, string> } }; extensions?: Record<string, unknown> }>(header);
}

const nonceHex = (nonce: string) => `0x${BigInt(nonce).toString(16).padStart(64, "0")}`;

describe("@x402/express upto seller + @x402/fetch buyer against this facilitator", () => {
  it("the buyer signs the cap, the seller charges what it used: payTo gets exactly that, PAYMENT-RESPONSE names it", async () => {
    const account = await fundedBuyer(true);
    const { fetchWithPayment, requests } = buyer(account);
    const [payerBefore, payToBefore] = await Promise.all([fx.chain.balanceOf(account.address), fx.chain.balanceOf(payTo)]);

    const response = await fetchWithPayment(`${seller.url}/completion`);

    expect(response.status, paymentFailure(response)).toBe(200);
    expect(await response.json()).toEqual(content);
    const paymentResponse = response.headers.get("PAYMENT-RESPONSE");
    const settled = decodePaymentResponseHeader(paymentResponse!) as SettleResponse;
    expect(settled).toMatchObject({ success: true, network, payer: account.address, amount: usedAtomic.toString() });
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);

    // What the official client signed: the cap, for the upto proxy, naming the key /supported advertises.
    const sent = sentPayload(requests);
    expect(sent.accepted).toMatchObject({ scheme: "upto", amount: capAtomic.toString(), extra: { facilitatorAddress: addressOf(keys.facilitator) } });
    expect(sent.payload.permit2Authorization).toMatchObject({ from: account.address, spender: x402UptoPermit2ProxyAddress, permitted: { amount: capAtomic.toString() } });
    expect(sent.payload.permit2Authorization.witness.facilitator).toBe(addressOf(keys.facilitator));

    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.from.toLowerCase()).toBe(addressOf(keys.facilitator).toLowerCase());
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + usedAtomic);
    expect(await fx.chain.balanceOf(account.address)).toBe(payerBefore - usedAtomic);
    expect((await transfersInTx(fx.chain, settled.transaction as Hex, account.address, payTo)).map((log) => log.args.value)).toEqual([usedAtomic]);

    const rows = await settlementRows(fx.database.url, nonceHex(sent.payload.permit2Authorization.nonce));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", scheme: "upto", transfer_method: "permit2", value_atomic: usedAtomic.toString(), permitted_atomic: capAtomic.toString(), success_answered: true });
  });

  it("a buyer without an allowance to Permit2 pays through the route's eip2612GasSponsoring: one transaction, the charge only", async () => {
    const account = await fundedBuyer(false);
    const { fetchWithPayment, requests } = buyer(account);
    const payToBefore = await fx.chain.balanceOf(payTo);

    const response = await fetchWithPayment(`${seller.url}/completion-gasless`);

    expect(response.status, paymentFailure(response)).toBe(200);
    const settled = decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!) as SettleResponse;
    expect(settled).toMatchObject({ success: true, amount: usedAtomic.toString() });
    expect(sentPayload(requests).extensions).toHaveProperty(["eip2612GasSponsoring", "info", "signature"]);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + usedAtomic);
    const nonces = await fx.chain.publicClient.readContract({ address: fx.chain.token, abi: parseAbi(["function nonces(address) view returns (uint256)"]), functionName: "nonces", args: [account.address] });
    expect(nonces).toBe(1n);
  });

  it("a buyer without an allowance on a route without the extension: no content, nothing paid (the seller answers 412)", async () => {
    const account = await fundedBuyer(false);
    const { fetchWithPayment } = buyer(account);
    const payToBefore = await fx.chain.balanceOf(payTo);
    const response = await fetchWithPayment(`${seller.url}/completion`);
    // 2.27's resource server turns permit2_allowance_required into 412; @x402/fetch hands it back.
    expect(response.status).toBe(412);
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore);
  });
});

describe("@x402/express exact-over-Permit2 seller + @x402/fetch buyer against this facilitator", () => {
  it("pays the price through the exact proxy: 200, PAYMENT-RESPONSE success, payTo credited once", async () => {
    const account = await fundedBuyer(true);
    const { fetchWithPayment, requests } = buyer(account);
    const payToBefore = await fx.chain.balanceOf(payTo);

    const response = await fetchWithPayment(`${seller.url}/report`);

    expect(response.status, paymentFailure(response)).toBe(200);
    const settled = decodePaymentResponseHeader(response.headers.get("PAYMENT-RESPONSE")!) as SettleResponse;
    expect(settled).toMatchObject({ success: true, network, payer: account.address });
    const sent = sentPayload(requests);
    expect(sent.accepted).toMatchObject({ scheme: "exact", amount: exactAtomic.toString(), extra: { assetTransferMethod: "permit2" } });
    expect(sent.payload.permit2Authorization.spender).toBe(x402ExactPermit2ProxyAddress);
    const receipt = await fx.chain.publicClient.getTransactionReceipt({ hash: settled.transaction as Hex });
    expect(receipt.to?.toLowerCase()).toBe(x402ExactPermit2ProxyAddress.toLowerCase());
    expect(await fx.chain.balanceOf(payTo)).toBe(payToBefore + exactAtomic);
    const rows = await settlementRows(fx.database.url, nonceHex(sent.payload.permit2Authorization.nonce));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", scheme: "exact", transfer_method: "permit2", nonce_contract: permit2Address.toLowerCase() });
  });
});
