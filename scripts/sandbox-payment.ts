/**
 * Prints a /verify or /settle request body signed by the sandbox's demo payer, so the README's
 * curl examples work: npx tsx scripts/sandbox-payment.ts [amountAtomic] [v1|v2] > body.json
 * (On any other chain: x402-facilitator payment --rpc URL --token ADDR --key KEY --to ADDR --amount N.)
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { signedPaymentBody } from "../src/exact-evm/payment-body.js";
import type { SandboxInfo } from "../src/sandbox/sandbox.js";

const info = JSON.parse(readFileSync(path.resolve(process.env.DATA_DIR ?? ".data", "sandbox.json"), "utf8")) as SandboxInfo;
const version = process.argv[3] === "v1" ? 1 : 2;
const body = await signedPaymentBody({
  payerKey: info.payer.privateKey,
  chainId: info.chainId,
  token: info.asset,
  payTo: info.payTo,
  amountAtomic: BigInt(process.argv[2] ?? "10000"),
  x402Version: version,
  network: version === 2 ? info.network : info.v1Network,
  resource: "http://127.0.0.1/demo",
  description: "demo",
});
process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
