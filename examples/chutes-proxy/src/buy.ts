/**
 * A buyer, for trying the proxy: pays one chat completion with the official x402 v2 client.
 *   npx tsx examples/chutes-proxy/src/buy.ts "Say hello in five words"
 * PROXY_URL (default http://127.0.0.1:4021), MODEL, and BUYER_PRIVATE_KEY (default: the sandbox's demo
 * payer, read from ${DATA_DIR:-.data}/sandbox.json).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

function buyerKey(): Hex {
  if (process.env.BUYER_PRIVATE_KEY) return process.env.BUYER_PRIVATE_KEY as Hex;
  const file = path.join(process.env.DATA_DIR ?? ".data", "sandbox.json");
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { payer: { privateKey: Hex } }).payer.privateKey;
  } catch {
    throw new Error(`set BUYER_PRIVATE_KEY, or run the facilitator sandbox (npm start) so ${file} exists`);
  }
}

const proxyUrl = (process.env.PROXY_URL ?? "http://127.0.0.1:4021").replace(/\/+$/, "");
const client = new x402Client();
registerExactEvmScheme(client, { signer: privateKeyToAccount(buyerKey()) });
const fetchWithPayment = wrapFetchWithPayment(fetch, client);

const response = await fetchWithPayment(`${proxyUrl}/v1/chat/completions`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    model: process.env.MODEL ?? "deepseek-ai/DeepSeek-V3-0324",
    messages: [{ role: "user", content: process.argv[2] ?? "Say hello in five words." }],
    max_tokens: 64,
  }),
  signal: AbortSignal.timeout(120_000),
});
const receipt = response.headers.get("PAYMENT-RESPONSE");
console.log(`HTTP ${response.status}`);
if (receipt) console.log("receipt", decodePaymentResponseHeader(receipt));
console.log(await response.text());
