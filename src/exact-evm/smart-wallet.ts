import { decodeAbiParameters, encodeDeployData, encodeFunctionData, parseAbi, type Address, type Hex, type PublicClient } from "viem";
import { throwIfTransportFailure } from "../chain/rpc-errors.js";
import { loadArtifact } from "../contracts/artifacts.js";

const erc1271Abi = parseAbi(["function isValidSignature(bytes32 hash, bytes signature) view returns (bytes4)"]);
const erc1271MagicValue = "0x1626ba7e";
const erc6492ProbeArtifact = loadArtifact("Erc6492Probe");
/** The probe's own work beside the two calls it bounds: creation, ABI decoding, the answer (generously). */
const probeOwnGas = 200_000n;

/**
 * ERC-1271: the deployed wallet at `wallet` accepts `signature` for `digest`. One eth_call with an
 * explicit gas limit: the wallet's code is the payer's, and without a limit the node would run it
 * up to its own cap (tens of millions of gas) on every request.
 */
export async function erc1271Accepts(client: PublicClient, wallet: Address, digest: Hex, signature: Hex, gasMax: bigint): Promise<boolean> {
  try {
    const { data } = await client.call({ to: wallet, data: encodeFunctionData({ abi: erc1271Abi, functionName: "isValidSignature", args: [digest, signature] }), gas: gasMax });
    return data !== undefined && data.length >= 10 && data.slice(0, 10).toLowerCase() === erc1271MagicValue;
  } catch (error) {
    throwIfTransportFailure(error, "asking a smart wallet whether it accepts the signature (ERC-1271)");
    return false;
  }
}

export type CounterfactualVerdict =
  | { kind: "valid"; deployGasUsed: bigint }
  | { kind: "deployment-reverted" | "no-code-after-deployment" | "signature-rejected"; deployGasUsed: bigint };

const probeStatuses = ["valid", "deployment-reverted", "no-code-after-deployment", "signature-rejected"] as const;

/**
 * ERC-6492: runs the factory call, then asks the new wallet (ERC-1271), in one deployless eth_call
 * (contracts/Erc6492Probe.sol) with explicit gas limits — the factory gets at most `gasMax`, so does
 * the signature check. Nothing is sent: this is what decides, before any broadcast, that the
 * deployment yields a wallet at `wallet` that accepts the signature.
 */
export async function probeCounterfactualWallet(
  client: PublicClient,
  deployment: { factory: Address; factoryData: Hex; wallet: Address; digest: Hex; innerSignature: Hex },
  gasMax: bigint,
): Promise<CounterfactualVerdict> {
  const data = encodeDeployData({
    abi: erc6492ProbeArtifact.abi,
    bytecode: erc6492ProbeArtifact.bytecode,
    args: [deployment.factory, deployment.factoryData, deployment.wallet, deployment.digest, deployment.innerSignature, gasMax, gasMax],
  });
  let returned: Hex | undefined;
  try {
    // Deployment gas + check gas + the probe's own work: the call as a whole is bounded too.
    ({ data: returned } = await client.call({ data, gas: 2n * gasMax + probeOwnGas }));
  } catch (error) {
    throwIfTransportFailure(error, "simulating a smart-wallet deployment (ERC-6492)");
    return { kind: "deployment-reverted", deployGasUsed: gasMax };
  }
  try {
    const [status, deployGasUsed] = decodeAbiParameters([{ type: "uint256" }, { type: "uint256" }], returned ?? "0x");
    return { kind: probeStatuses[Number(status)] ?? "deployment-reverted", deployGasUsed };
  } catch {
    return { kind: "deployment-reverted", deployGasUsed: gasMax };
  }
}
