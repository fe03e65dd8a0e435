/**
 * The reference facilitator for the benchmark: the official x402 v2 SDK (`@x402/core`'s
 * x402Facilitator + `@x402/evm`'s exact and upto EVM schemes) behind Express, built the way the x402
 * facilitator example does it (examples/typescript/facilitator/basic): one viem wallet client
 * extended with public actions, wrapped by `toFacilitatorEvmSigner`; POST /verify, POST /settle,
 * GET /supported. Nothing is tuned: no nonce manager, no batching, no hooks (the example's hooks
 * only console.log, which would measure the terminal).
 *
 * Run as a child process by bench/run.ts: `node --import tsx bench/reference-facilitator.ts`.
 * Environment: RPC_URL, SIGNER_PRIVATE_KEY, PORT (required), HOST (default 127.0.0.1),
 * NONCE_MANAGER=1 (a variant, not in the example: the account gets viem's `nonceManager`, so
 * concurrent settlements from the one key take consecutive nonces instead of colliding).
 * Prints one JSON line {"event":"reference-ready","url":…} once listening. Exits on SIGTERM/SIGINT,
 * and when its stdin closes (the parent died): no orphans.
 */
import type { AddressInfo } from "node:net";
import { x402Facilitator } from "@x402/core/facilitator";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";
import { UptoEvmScheme } from "@x402/evm/upto/facilitator";
import express from "express";
import { createWalletClient, http, nonceManager, publicActions, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";

export const referenceReadyEvent = "reference-ready";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`reference-facilitator: ${name} is required`);
  return value;
}

const account = privateKeyToAccount(required("SIGNER_PRIVATE_KEY") as Hex, process.env.NONCE_MANAGER === "1" ? { nonceManager } : {});
const viemClient = createWalletClient({ account, chain: baseSepolia, transport: http(required("RPC_URL")) }).extend(publicActions);

type ReadArgs = { address: Hex; abi: readonly unknown[]; functionName: string; args?: readonly unknown[] };
type WriteArgs = { address: Hex; abi: readonly unknown[]; functionName: string; args: readonly unknown[]; gas?: bigint };

// As in the x402 example; the casts bridge the signer's loose types and viem's generic ones.
/**
 * The one addition to the example: send failures are counted by message (GET /bench/send-errors),
 * so the report can say why settlements failed — the SDK maps them all to
 * invalid_exact_evm_transaction_failed. It touches only the error path.
 */
const sendErrors: Record<string, number> = {};
async function countingSendErrors<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    const { shortMessage, details } = error as { shortMessage?: string; details?: string };
    const first = (text: string | undefined) => (text ?? "").split("\n")[0]!.trim();
    const message = (details ? `${first(shortMessage)} (${first(details)})` : first(shortMessage ?? String(error))).slice(0, 200);
    sendErrors[message] = (sendErrors[message] ?? 0) + 1;
    throw error;
  }
}

const evmSigner = toFacilitatorEvmSigner({
  address: account.address,
  getCode: (args: { address: Hex }) => viemClient.getCode(args),
  readContract: (args: ReadArgs) => viemClient.readContract({ ...args, args: args.args ?? [] } as never),
  verifyTypedData: (args: Parameters<typeof viemClient.verifyTypedData>[0]) => viemClient.verifyTypedData(args),
  writeContract: (args: WriteArgs) => countingSendErrors(() => viemClient.writeContract({ ...args, args: args.args ?? [] } as never)),
  sendTransaction: (args: { to: Hex; data: Hex }) => viemClient.sendTransaction(args),
  waitForTransactionReceipt: (args: { hash: Hex; timeout?: number }) => viemClient.waitForTransactionReceipt(args),
} as unknown as Parameters<typeof toFacilitatorEvmSigner>[0]);

const facilitator = new x402Facilitator();
registerExactEvmScheme(facilitator, { signer: evmSigner, networks: "eip155:84532" });
// upto (Permit2), as the x402 facilitator example registers it next to exact: the bench's upto row.
facilitator.register("eip155:84532", new UptoEvmScheme(evmSigner));

const app = express();
app.use(express.json({ limit: "64kb" }));

interface PaymentBody {
  paymentPayload?: PaymentPayload;
  paymentRequirements?: PaymentRequirements;
}

app.post("/verify", async (req, res) => {
  const { paymentPayload, paymentRequirements } = req.body as PaymentBody;
  if (!paymentPayload || !paymentRequirements) {
    res.status(400).json({ error: "Missing paymentPayload or paymentRequirements" });
    return;
  }
  try {
    res.json(await facilitator.verify(paymentPayload, paymentRequirements));
  } catch (error) {
    res.status(500).json({ error: error instanceof Error ? error.message : "Unknown error" });
  }
});

app.post("/settle", async (req, res) => {
  const { paymentPayload, paymentRequirements } = req.body as PaymentBody;
  if (!paymentPayload || !paymentRequirements) {
    res.status(400).json({ error: "Missing paymentPayload or paymentRequirements" });
    return;
  }
  try {
    res.json(await facilitator.settle(paymentPayload, paymentRequirements));
  } catch (error) {
    res.status(500).json({ error: error instanceof Error ? error.message : "Unknown error" });
  }
});

app.get("/supported", (_req, res) => {
  res.json(facilitator.getSupported());
});

app.get("/bench/send-errors", (_req, res) => {
  res.json(sendErrors);
});

const server = app.listen(Number(required("PORT")), process.env.HOST ?? "127.0.0.1", () => {
  const { address, port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: referenceReadyEvent, url: `http://${address}:${port}`, pid: process.pid })}\n`);
});

let closing = false;
function shutdown(): void {
  if (closing) return;
  closing = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 3_000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
// stdin is a pipe held by the parent: its end means the parent is gone.
process.stdin.on("end", shutdown);
process.stdin.on("error", shutdown);
process.stdin.resume();
