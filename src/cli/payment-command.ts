import { parseArgs } from "node:util";
import { createPublicClient, domainSeparator, getAddress, http, isHex, parseAbi, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { eip3009Abi } from "../exact-evm/abi.js";
import { defaultPaymentValidSeconds, randomAuthorizationNonce, signedPaymentBody, type PaymentToken } from "../exact-evm/payment-body.js";
import { caip2, chainIdOfNetworkArg, v1NetworkChainIds } from "../protocol/networks.js";
import { isTransportFailure } from "../chain/rpc-errors.js";
import { redactedFirstLine, redactUrl } from "../redact.js";
import { asUsage, UsageError, wantsHelp } from "./cli-error.js";

type Write = (line: string) => void;

export const paymentUsage = `x402-facilitator payment --rpc URL --token ADDR --key KEY --to ADDR --amount N
                         [--v1] [--network N] [--valid-seconds S]

  Prints a signed /verify and /settle request body (JSON) for any chain with an EIP-3009 token:
  reads the chain id from --rpc and the token's EIP-712 domain (name(), version(), else
  eip712Domain()) from --token, signs a TransferWithAuthorization with --key and prints
  {x402Version, paymentPayload, paymentRequirements}. Nothing is sent.

  --rpc URL            the chain's JSON-RPC endpoint (http or https)
  --token ADDR         the EIP-3009 token (USDC) contract
  --key KEY            the payer's 32-byte hex private key (it signs; it needs no ETH)
  --to ADDR            the payee (payTo)
  --amount N           in the token's atomic units (USDC has 6 decimals: 10000 = $0.01)
  --v1                 an x402 v1 body (default v2); the chain needs an x402 v1 name
  --network N          base, base-sepolia or eip155:<id>; must be the RPC's chain (default: it)
  --valid-seconds S    validBefore = now + S, also maxTimeoutSeconds (default ${defaultPaymentValidSeconds})

  e.g. x402-facilitator payment ... > body.json
       curl -s -X POST http://127.0.0.1:4020/verify -H 'content-type: application/json' -d @body.json

Exit codes: 0 printed, 2 a bad flag, an RPC that does not answer, no EIP-3009 token at --token,
a bad key (one line on stderr).`;

/** Each read of the RPC is bounded (the command is interactive). */
const rpcTimeoutMs = 10_000;
/** The v2 requirements schema's bound on maxTimeoutSeconds. */
const validSecondsMax = 86_400 * 365;
const domainSeparatorAbi = parseAbi(["function DOMAIN_SEPARATOR() view returns (bytes32)"]);

/** `payment`: a signed payment body for a facilitator's /verify and /settle, on any chain. */
export async function paymentCommand(args: string[], write: Write, warn: Write): Promise<void> {
  if (wantsHelp(args)) {
    write(paymentUsage);
    return;
  }
  const { values } = parseArgs({
    args,
    options: {
      rpc: { type: "string" },
      token: { type: "string" },
      key: { type: "string" },
      to: { type: "string" },
      amount: { type: "string" },
      v1: { type: "boolean", default: false },
      network: { type: "string" },
      "valid-seconds": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const missing = (["rpc", "token", "key", "to", "amount"] as const).filter((flag) => values[flag] === undefined);
  if (missing.length > 0) throw new UsageError(`payment needs ${missing.map((flag) => `--${flag}`).join(", ")} (see x402-facilitator payment --help)`);
  const rpc = rpcUrlOf(values.rpc!);
  const token = addressOf(values.token!, "--token");
  const payTo = addressOf(values.to!, "--to");
  const payerKey = privateKeyOf(values.key!);
  const amountAtomic = positiveInteger(values.amount!, "--amount", 78);
  const validSeconds = Number(positiveInteger(values["valid-seconds"] ?? `${defaultPaymentValidSeconds}`, "--valid-seconds", 9));
  if (validSeconds > validSecondsMax) throw new UsageError(`--valid-seconds: at most ${validSecondsMax} (a year)`);
  const wantedChainId = values.network === undefined ? undefined : asUsage(() => chainIdOfNetworkArg(values.network!, "--network"));

  const endpoint = redactUrl(rpc);
  const client = createPublicClient({ transport: http(rpc, { timeout: rpcTimeoutMs, retryCount: 0 }) }) as PublicClient;
  const chainId = await client.getChainId().catch((error: unknown) => {
    throw noAnswer(endpoint, error);
  });
  if (wantedChainId !== undefined && wantedChainId !== chainId) {
    throw new UsageError(`--network ${values.network} is chain ${wantedChainId}, but --rpc ${endpoint} serves chain ${chainId}`);
  }
  const network = values.v1 ? v1NameOf(chainId) : caip2(chainId);
  const domain = await readTokenDomain(client, token, chainId, endpoint);
  const payer = privateKeyToAccount(payerKey).address;
  const balance = await client
    .readContract({ address: token, abi: eip3009Abi, functionName: "balanceOf", args: [payer] })
    .catch(() => undefined);
  if (balance !== undefined && balance < amountAtomic) {
    warn(`warning: the payer ${payer} holds ${balance} of the token's atomic units, less than --amount ${amountAtomic}: /verify will say so`);
  }
  const body = await signedPaymentBody({ payerKey, chainId, token: domain, payTo, amountAtomic, x402Version: values.v1 ? 1 : 2, network, validSeconds });
  write(JSON.stringify(body, null, 2));
}

/**
 * The token's EIP-712 domain as the facilitator will check it: name() and version() (USDC), else
 * EIP-5267's eip712Domain(); when the token exposes DOMAIN_SEPARATOR it must be that domain's, or
 * every signature made with it would be refused.
 */
async function readTokenDomain(client: PublicClient, token: Address, chainId: number, endpoint: string): Promise<PaymentToken> {
  const where = `--token ${token}`;
  const code = await client.getCode({ address: token }).catch((error: unknown) => {
    throw noAnswer(endpoint, error);
  });
  if (code === undefined || code === "0x") throw new UsageError(`${where}: no contract at this address on chain ${chainId}`);
  // A revert means "the token has no such function"; an RPC that stopped answering is said as such.
  const read = <T>(call: () => Promise<T>) =>
    call().catch((error: unknown) => {
      if (isTransportFailure(error)) throw noAnswer(endpoint, error);
      return undefined;
    });
  const [name, version, separator, eip5267] = await Promise.all([
    read(() => client.readContract({ address: token, abi: eip3009Abi, functionName: "name" })),
    read(() => client.readContract({ address: token, abi: eip3009Abi, functionName: "version" })),
    read(() => client.readContract({ address: token, abi: domainSeparatorAbi, functionName: "DOMAIN_SEPARATOR" })),
    read(() => client.getEip712Domain({ address: token })),
  ]);
  const domain =
    name !== undefined && version !== undefined
      ? { address: token, name, version }
      : eip5267?.domain.name !== undefined && eip5267.domain.version !== undefined
        ? { address: token, name: eip5267.domain.name, version: eip5267.domain.version }
        : undefined;
  if (domain === undefined) {
    throw new UsageError(`${where}: its EIP-712 domain cannot be read (neither name() and version() nor eip712Domain() answer on chain ${chainId}): not an EIP-3009 token like USDC`);
  }
  const expected = domainSeparator({ domain: { name: domain.name, version: domain.version, chainId, verifyingContract: token } });
  if (separator !== undefined && separator.toLowerCase() !== expected.toLowerCase()) {
    throw new UsageError(`${where}: its DOMAIN_SEPARATOR is not that of name "${domain.name}" version "${domain.version}" on chain ${chainId}: a signature would be refused`);
  }
  // Every EIP-3009 token answers authorizationState; a plain ERC-20 does not.
  const state = await read(() => client.readContract({ address: token, abi: eip3009Abi, functionName: "authorizationState", args: [token, randomAuthorizationNonce()] }));
  if (state === undefined) throw new UsageError(`${where}: authorizationState() does not answer on chain ${chainId}: not an EIP-3009 token like USDC`);
  return domain;
}

/** viem says "HTTP request failed."; the system's reason (ECONNREFUSED, ENOTFOUND, "bad port") is a few causes down. */
function noAnswer(endpoint: string, error: unknown): UsageError {
  let root: unknown = error;
  for (let depth = 0; root instanceof Error && root.cause instanceof Error && depth < 8; depth += 1) root = root.cause;
  let reason: string | undefined;
  if (root !== error && root instanceof Error) {
    const codeOf = (value: unknown) => (value as { code?: unknown } | null)?.code;
    const code = codeOf(root) ?? (root instanceof AggregateError ? codeOf(root.errors[0]) : undefined);
    reason = typeof code === "string" ? code : redactedFirstLine(root, 80);
  }
  return new UsageError(`--rpc ${endpoint}: no answer: ${redactedFirstLine(error)}${reason ? ` (${reason})` : ""}`);
}

function v1NameOf(chainId: number): string {
  const name = Object.entries(v1NetworkChainIds).find(([, id]) => id === chainId)?.[0];
  if (name === undefined) throw new UsageError(`--v1: chain ${chainId} has no x402 v1 network name; x402 v2 (without --v1) names it ${caip2(chainId)}`);
  return name;
}

function rpcUrlOf(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError("--rpc: not a URL (expected http:// or https://)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--rpc: ${url.protocol}// is not supported, give an http:// or https:// URL`);
  return value;
}

function addressOf(value: string, flag: string): Address {
  try {
    return getAddress(value.trim());
  } catch {
    throw new UsageError(`${flag}: "${value.slice(0, 64)}" is not an address`);
  }
}

/** The key is never echoed, not even in part. */
function privateKeyOf(value: string): Hex {
  const trimmed = value.trim();
  const hex = (trimmed.startsWith("0x") ? trimmed : `0x${trimmed}`) as Hex;
  if (!isHex(hex) || hex.length !== 66) throw new UsageError("--key: not a private key (expected 32 bytes of hex)");
  try {
    privateKeyToAccount(hex);
  } catch {
    throw new UsageError("--key: not a valid secp256k1 private key (zero, or not below the curve order)");
  }
  return hex;
}

function positiveInteger(value: string, flag: string, digitsMax: number): bigint {
  if (!new RegExp(`^[1-9][0-9]{0,${digitsMax - 1}}$`).test(value)) throw new UsageError(`${flag} must be a positive integer${flag === "--amount" ? " (the token's atomic units)" : ""}`);
  const parsed = BigInt(value);
  if (flag === "--amount" && parsed >= 2n ** 256n) throw new UsageError("--amount does not fit in a uint256");
  return parsed;
}
