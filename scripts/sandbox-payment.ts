/**
 * Prints a /verify or /settle request body signed by the sandbox's demo payer, so the README's
 * curl examples work: npx tsx scripts/sandbox-payment.ts [amountAtomic] [v1|v2] > body.json
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { privateKeyToAccount } from "viem/accounts";
import { transferWithAuthorizationTypes } from "../src/exact-evm/typed-data.js";
import type { SandboxInfo } from "../src/sandbox/sandbox.js";

const info = JSON.parse(readFileSync(path.resolve(process.env.DATA_DIR ?? ".data", "sandbox.json"), "utf8")) as SandboxInfo;
const amountAtomic = BigInt(process.argv[2] ?? "10000");
const version = process.argv[3] === "v1" ? 1 : 2;
const payer = privateKeyToAccount(info.payer.privateKey);
const now = BigInt(Math.floor(Date.now() / 1000));
const authorization = {
  from: payer.address,
  to: info.payTo,
  value: amountAtomic,
  validAfter: now - 600n,
  validBefore: now + 300n,
  nonce: `0x${randomBytes(32).toString("hex")}` as const,
};
const signature = await payer.signTypedData({
  domain: { name: info.asset.name, version: info.asset.version, chainId: info.chainId, verifyingContract: info.asset.address },
  types: transferWithAuthorizationTypes,
  primaryType: "TransferWithAuthorization",
  message: authorization,
});
const payload = {
  signature,
  authorization: { ...authorization, value: `${amountAtomic}`, validAfter: `${authorization.validAfter}`, validBefore: `${authorization.validBefore}` },
};
const extra = { name: info.asset.name, version: info.asset.version };
const body =
  version === 2
    ? (() => {
        const requirements = { scheme: "exact", network: info.network, amount: `${amountAtomic}`, asset: info.asset.address, payTo: info.payTo, maxTimeoutSeconds: 300, extra };
        return { x402Version: 2, paymentPayload: { x402Version: 2, accepted: requirements, payload }, paymentRequirements: requirements };
      })()
    : {
        x402Version: 1,
        paymentPayload: { x402Version: 1, scheme: "exact", network: info.v1Network, payload },
        paymentRequirements: {
          scheme: "exact", network: info.v1Network, maxAmountRequired: `${amountAtomic}`, resource: "http://127.0.0.1/demo",
          description: "demo", mimeType: "application/json", payTo: info.payTo, maxTimeoutSeconds: 60, asset: info.asset.address, extra,
        },
      };
process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
