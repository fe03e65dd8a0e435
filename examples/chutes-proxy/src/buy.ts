/**
 * A buyer, for trying the proxy: pays one chat completion with the official x402 v2 client,
 * registered for `upto` (charged the tokens used) and `exact` (the quote), as the proxy offers them.
 *   npx tsx examples/chutes-proxy/src/buy.ts "Say hello in five words"
 *   STREAM=1 npx tsx examples/chutes-proxy/src/buy.ts "…"        # stream: true
 * PROXY_URL (default http://127.0.0.1:4021), MODEL, BUYER_PRIVATE_KEY and RPC_URL (default: the
 * sandbox's demo payer and chain, read from ${DATA_DIR:-.data}/sandbox.json). With RPC_URL the upto
 * client reads the buyer's allowance to Permit2 and, when it is short, signs an EIP-2612 permit for
 * it (the proxy's 402 declares eip2612GasSponsoring); without one the buyer must approve Permit2 first.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, http, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

interface SandboxInfo {
  rpcUrl?: string;
  payer?: { privateKey?: Hex };
}

function sandboxInfo(): SandboxInfo | undefined {
  try {
    return JSON.parse(readFileSync(path.join(process.env.DATA_DIR ?? ".data", "sandbox.json"), "utf8")) as SandboxInfo;
  } catch {
    return undefined;
  }
}

const sandbox = sandboxInfo();
const key = (process.env.BUYER_PRIVATE_KEY as Hex | undefined) ?? sandbox?.payer?.privateKey;
if (!key) throw new Error(`set BUYER_PRIVATE_KEY, or run the facilitator sandbox (npm start) so ${path.join(process.env.DATA_DIR ?? ".data", "sandbox.json")} exists`);
const rpcUrl = process.env.RPC_URL ?? (process.env.BUYER_PRIVATE_KEY ? undefined : sandbox?.rpcUrl);

const account = privateKeyToAccount(key);
const signer = toClientEvmSigner(account, rpcUrl ? createPublicClient({ transport: http(rpcUrl) }) : undefined);
// The first of the proxy's accepts this client can pay: upto (listed first), else exact.
const client = new x402Client().register("eip155:*", new UptoEvmScheme(signer)).register("eip155:*", new ExactEvmScheme(signer));
const fetchWithPayment = wrapFetchWithPayment(fetch, client);

const proxyUrl = (process.env.PROXY_URL ?? "http://127.0.0.1:4021").replace(/\/+$/, "");
const stream = process.env.STREAM === "1";
const response = await fetchWithPayment(`${proxyUrl}/v1/chat/completions`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    model: process.env.MODEL ?? "deepseek-ai/DeepSeek-V3-0324",
    messages: [{ role: "user", content: process.argv[2] ?? "Say hello in five words." }],
    max_tokens: 64,
    stream,
  }),
  signal: AbortSignal.timeout(120_000),
});
const receipt = response.headers.get("PAYMENT-RESPONSE");
console.log(`HTTP ${response.status}`);
if (receipt) console.log("receipt", decodePaymentResponseHeader(receipt));
else if (stream && response.ok) console.log("(a streamed upto answer is settled after its last chunk: no receipt header; the proxy logs the charge)");
console.log(await response.text());
