/** The digest we check signatures against is the one the official 2.27 client signs. */
import { hashTypedData, recoverTypedDataAddress, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { PERMIT2_ADDRESS, permit2WitnessTypes, uptoPermit2WitnessTypes } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { normalize } from "../../../src/protocol/normalize.js";
import { permit2Digest } from "../../../src/permit2/typed-data.js";
import { keys } from "../../helpers/chain.js";

const payer = privateKeyToAccount(keys.payer);
const token: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const payTo: Address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const facilitator: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const served = () => true;

function requirements(scheme: "exact" | "upto") {
  return {
    scheme,
    network: "eip155:84532" as const,
    amount: "500000",
    asset: token,
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2", ...(scheme === "upto" ? { facilitatorAddress: facilitator } : {}) },
  };
}

describe("permit2Digest", () => {
  it.each(["exact", "upto"] as const)("%s: equals viem's hash of the SDK's types over the client's payload, and recovers to the payer", async (scheme) => {
    const req = requirements(scheme);
    const client = scheme === "upto" ? new UptoEvmScheme(payer) : new ExactEvmScheme(payer);
    const { payload } = await client.createPaymentPayload(2, req);
    const normalized = normalize({ paymentPayload: { x402Version: 2, accepted: req, payload }, paymentRequirements: req }, served);
    if (!normalized.ok) throw new Error(normalized.rejection.message);
    const { permit2 } = normalized.request;
    expect(normalized.request.transferMethod).toBe("permit2");
    const digest = permit2Digest(84532, permit2!, scheme);
    const auth = (payload as { permit2Authorization: { nonce: string; deadline: string; spender: Address } }).permit2Authorization;
    const message = {
      permitted: { token, amount: 500_000n },
      spender: auth.spender,
      nonce: BigInt(auth.nonce),
      deadline: BigInt(auth.deadline),
      witness: scheme === "upto" ? { to: payTo, facilitator, validAfter: 0n } : { to: payTo, validAfter: 0n },
    };
    const domain = { name: "Permit2", chainId: 84532, verifyingContract: PERMIT2_ADDRESS } as const;
    const sdkDigest =
      scheme === "upto"
        ? hashTypedData({ domain, types: uptoPermit2WitnessTypes, primaryType: "PermitWitnessTransferFrom", message: message as never })
        : hashTypedData({ domain, types: permit2WitnessTypes, primaryType: "PermitWitnessTransferFrom", message: message as never });
    expect(digest).toBe(sdkDigest);
    const signature = (payload as { signature: `0x${string}` }).signature;
    expect(await recoverTypedDataAddress({ domain, types: scheme === "upto" ? uptoPermit2WitnessTypes : permit2WitnessTypes, primaryType: "PermitWitnessTransferFrom", message: message as never, signature })).toBe(payer.address);
  });
});
