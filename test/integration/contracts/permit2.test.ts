/**
 * Permit2 and x402's exact/upto Permit2 proxies (contracts/Permit2.sol, contracts/X402Permit2Proxy.sol)
 * at their canonical addresses on a real Anvil node, installed by the chain helper. Payments are
 * signed by the official @x402/evm 2.27 client code, unmodified, and settled with a plain viem
 * writeContract from the facilitator account through the SDK's own proxy ABIs, so a selector, type
 * hash or domain that differed from the public contracts' would fail here. Each test runs between
 * evm_snapshot / evm_revert.
 */
import {
  BaseError,
  ContractFunctionRevertedError,
  concat,
  createWalletClient,
  defineChain,
  domainSeparator,
  encodeAbiParameters,
  encodeFunctionData,
  erc20Abi,
  hashTypedData,
  http,
  keccak256,
  maxUint256,
  parseAbiParameters,
  parseEventLogs,
  parseSignature,
  serializeCompactSignature,
  signatureToCompactSignature,
  toHex,
  zeroAddress,
  type Abi,
  type Address,
  type Hex,
  type PrivateKeyAccount,
  type TransactionReceipt,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { PaymentRequirements } from "@x402/core/types";
import {
  PERMIT2_ADDRESS,
  permit2WitnessTypes,
  toClientEvmSigner,
  x402ExactPermit2ProxyABI,
  x402ExactPermit2ProxyAddress as sdkExactProxyAddress,
  x402UptoPermit2ProxyABI,
  x402UptoPermit2ProxyAddress as sdkUptoProxyAddress,
  type ClientEvmSigner,
  type ExactPermit2Payload,
  type UptoPermit2Payload,
} from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import {
  exactPermit2WitnessTypeString,
  permit2Address,
  uptoPermit2WitnessTypeString,
  x402ExactPermit2ProxyAddress,
  x402UptoPermit2ProxyAddress,
} from "../../../src/contracts/permit2.js";
import {
  permit2Artifact,
  smartWalletArtifact,
  testUsdcArtifact,
  x402ExactPermit2ProxyArtifact,
  x402UptoPermit2ProxyArtifact,
} from "../../../src/sandbox/artifacts.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";

const NETWORK = "eip155:84532";
const ONE_USDC = 1_000_000n;
const RECEIPT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_SECONDS = 300;

const payer = privateKeyToAccount(keys.payer);
const facilitator = privateKeyToAccount(keys.facilitator);
const stranger = privateKeyToAccount(keys.stranger);
const payTo = addressOf(keys.payTo);

/**
 * The SDK's proxy ABI (for the calls: its selectors must reach our code), plus the errors a settle
 * can revert with that it leaves out: Permit2's, which bubble up through the proxy, and for upto the
 * base proxy's InvalidAmount() (a zero amount), missing from 2.27's x402UptoPermit2ProxyABI.
 */
const errorsOf = (abi: Abi) => abi.filter((item) => item.type === "error");
const exactAbi = [...x402ExactPermit2ProxyABI, ...errorsOf(x402ExactPermit2ProxyArtifact.abi), ...errorsOf(permit2Artifact.abi)] as Abi;
const uptoAbi = [...x402UptoPermit2ProxyABI, ...errorsOf(x402UptoPermit2ProxyArtifact.abi), ...errorsOf(permit2Artifact.abi)] as Abi;

let chain: TestChain;
let snapshotId: Hex;
const viemChain = defineChain({
  id: 84532,
  name: "anvil-base-sepolia",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: ["http://127.0.0.1"] } },
});

function walletFor(account: PrivateKeyAccount) {
  return createWalletClient({ account, chain: viemChain, transport: http(chain.rpcUrl, { timeout: 10_000 }) });
}

async function send(account: PrivateKeyAccount, request: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] }): Promise<TransactionReceipt> {
  const hash = await walletFor(account).writeContract({ ...request, account, chain: viemChain } as never);
  const receipt = await chain.publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
  expect(receipt.status).toBe("success");
  return receipt;
}

/** The revert's custom error name, or the Error(string) reason; throws if the call succeeds. */
async function revertOf(account: Address, request: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] }): Promise<string> {
  try {
    await chain.publicClient.simulateContract({ ...request, account } as never);
  } catch (error) {
    const reverted = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : undefined;
    if (reverted instanceof ContractFunctionRevertedError) {
      if (reverted.data?.errorName && reverted.data.errorName !== "Error") return reverted.data.errorName;
      if (reverted.reason) return reverted.reason;
    }
    throw error;
  }
  throw new Error(`${request.functionName} did not revert`);
}

async function approvePermit2(account: PrivateKeyAccount, amountAtomic: bigint = maxUint256): Promise<void> {
  await send(account, { address: chain.token, abi: erc20Abi, functionName: "approve", args: [permit2Address, amountAtomic] });
}

function exactRequirements(amountAtomic: bigint, overrides: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "exact",
    network: NETWORK,
    amount: amountAtomic.toString(),
    asset: chain.token,
    payTo,
    maxTimeoutSeconds: MAX_TIMEOUT_SECONDS,
    extra: { name: "USDC", version: "2", assetTransferMethod: "permit2" },
    ...overrides,
  };
}

function uptoRequirements(capAtomic: bigint, overrides: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "upto",
    network: NETWORK,
    amount: capAtomic.toString(),
    asset: chain.token,
    payTo,
    maxTimeoutSeconds: MAX_TIMEOUT_SECONDS,
    extra: { name: "USDC", version: "2", facilitatorAddress: facilitator.address },
    ...overrides,
  };
}

/** The official client's exact-permit2 payload (ExactEvmScheme with assetTransferMethod "permit2"). */
async function signExact(signer: ClientEvmSigner, requirements: PaymentRequirements, extensions?: Record<string, unknown>) {
  const result = await new ExactEvmScheme(signer).createPaymentPayload(2, requirements, extensions ? { extensions } : undefined);
  return { payload: result.payload as unknown as ExactPermit2Payload, extensions: result.extensions };
}

/** The official client's upto payload (UptoEvmScheme). */
async function signUpto(signer: ClientEvmSigner, requirements: PaymentRequirements, extensions?: Record<string, unknown>) {
  const result = await new UptoEvmScheme(signer).createPaymentPayload(2, requirements, extensions ? { extensions } : undefined);
  return { payload: result.payload as unknown as UptoPermit2Payload, extensions: result.extensions };
}

function permitOf(payload: ExactPermit2Payload | UptoPermit2Payload) {
  const auth = payload.permit2Authorization;
  return {
    permitted: { token: auth.permitted.token as Address, amount: BigInt(auth.permitted.amount) },
    nonce: BigInt(auth.nonce),
    deadline: BigInt(auth.deadline),
  };
}

/** settle(permit, owner, witness, signature), as the 2.27 facilitator's buildExactPermit2SettleArgs builds it. */
function exactSettle(payload: ExactPermit2Payload, witness: Partial<{ to: Address; validAfter: bigint }> = {}) {
  const auth = payload.permit2Authorization;
  return {
    address: x402ExactPermit2ProxyAddress,
    abi: exactAbi,
    functionName: "settle",
    args: [
      permitOf(payload),
      auth.from as Address,
      { to: auth.witness.to as Address, validAfter: BigInt(auth.witness.validAfter), ...witness },
      payload.signature,
    ],
  } as const;
}

/** settle(permit, amount, owner, witness, signature), as buildUptoPermit2SettleArgs builds it. */
function uptoSettle(payload: UptoPermit2Payload, amountAtomic: bigint) {
  const auth = payload.permit2Authorization;
  return {
    address: x402UptoPermit2ProxyAddress,
    abi: uptoAbi,
    functionName: "settle",
    args: [
      permitOf(payload),
      amountAtomic,
      auth.from as Address,
      { to: auth.witness.to as Address, facilitator: auth.witness.facilitator as Address, validAfter: BigInt(auth.witness.validAfter) },
      payload.signature,
    ],
  } as const;
}

/** The EIP-2612 struct settleWithPermit takes, split from the extension's 65-byte signature. */
function permit2612Of(extensions: Record<string, unknown> | undefined) {
  const info = (extensions?.eip2612GasSponsoring as { info: { amount: string; deadline: string; signature: Hex } } | undefined)?.info;
  if (!info) throw new Error("the client attached no eip2612GasSponsoring extension");
  const { r, s, yParity } = parseSignature(info.signature);
  return { value: BigInt(info.amount), deadline: BigInt(info.deadline), r, s, v: 27 + yParity };
}

async function nonceUsed(owner: Address, nonce: bigint): Promise<boolean> {
  const word = (await chain.publicClient.readContract({
    address: permit2Address,
    abi: permit2Artifact.abi,
    functionName: "nonceBitmap",
    args: [owner, nonce >> 8n],
  })) as bigint;
  return ((word >> (nonce & 0xffn)) & 1n) === 1n;
}

beforeAll(async () => {
  chain = await startTestChain();
  await chain.mint(payer.address, 100n * ONE_USDC);
});

afterAll(async () => {
  await chain?.stop();
});

beforeEach(async () => {
  snapshotId = await chain.testClient.snapshot();
});

afterEach(async () => {
  await chain.testClient.revert({ id: snapshotId });
});

describe("installation at the canonical addresses", () => {
  it("uses the addresses the 2.27 client signs for", () => {
    expect(permit2Address).toBe(PERMIT2_ADDRESS);
    expect(x402ExactPermit2ProxyAddress).toBe(sdkExactProxyAddress);
    expect(x402UptoPermit2ProxyAddress).toBe(sdkUptoProxyAddress);
  });

  it("has Permit2's DOMAIN_SEPARATOR: name Permit2, chain id, verifying contract, no version", async () => {
    const onChain = await chain.publicClient.readContract({ address: permit2Address, abi: permit2Artifact.abi, functionName: "DOMAIN_SEPARATOR" });
    expect(onChain).toBe(domainSeparator({ domain: { name: "Permit2", chainId: chain.chainId, verifyingContract: PERMIT2_ADDRESS } }));
  });

  it("proxies point at Permit2 and publish the witness type strings the 2.27 client's EIP-712 types encode", async () => {
    for (const [address, abi, typeString] of [
      [x402ExactPermit2ProxyAddress, x402ExactPermit2ProxyABI, exactPermit2WitnessTypeString],
      [x402UptoPermit2ProxyAddress, x402UptoPermit2ProxyABI, uptoPermit2WitnessTypeString],
    ] as const) {
      expect(await chain.publicClient.readContract({ address, abi, functionName: "PERMIT2" })).toBe(PERMIT2_ADDRESS);
      expect(await chain.publicClient.readContract({ address, abi, functionName: "WITNESS_TYPE_STRING" })).toBe(typeString);
    }
  });

  it("builds the digest the client signed: on-chain domain + stub ‖ WITNESS_TYPE_STRING equals viem's hash of the SDK's types", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    const auth = payload.permit2Authorization;
    const message = {
      permitted: { token: auth.permitted.token as Address, amount: BigInt(auth.permitted.amount) },
      spender: auth.spender as Address,
      nonce: BigInt(auth.nonce),
      deadline: BigInt(auth.deadline),
      witness: { to: auth.witness.to as Address, validAfter: BigInt(auth.witness.validAfter) },
    };
    const clientDigest = hashTypedData({
      domain: { name: "Permit2", chainId: chain.chainId, verifyingContract: PERMIT2_ADDRESS },
      types: permit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message,
    });

    // What Permit2 computes (PermitHash.hashWithWitness + EIP712._hashTypedData), with what the
    // chain publishes: the domain separator and the proxy's witness type string and type hash.
    const read = (address: Address, abi: Abi, functionName: string) => chain.publicClient.readContract({ address, abi, functionName });
    const stub = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,";
    const witnessTypeString = (await read(x402ExactPermit2ProxyAddress, exactAbi, "WITNESS_TYPE_STRING")) as string;
    const witnessTypehash = (await read(x402ExactPermit2ProxyAddress, exactAbi, "WITNESS_TYPEHASH")) as Hex;
    const tokenPermissionsTypehash = keccak256(toHex("TokenPermissions(address token,uint256 amount)"));
    const onChainDomain = (await read(permit2Address, permit2Artifact.abi, "DOMAIN_SEPARATOR")) as Hex;
    const witnessHash = keccak256(
      encodeAbiParameters(parseAbiParameters("bytes32, address, uint256"), [witnessTypehash, message.witness.to, message.witness.validAfter]),
    );
    const tokenPermissionsHash = keccak256(
      encodeAbiParameters(parseAbiParameters("bytes32, address, uint256"), [tokenPermissionsTypehash, message.permitted.token, message.permitted.amount]),
    );
    const structHash = keccak256(
      encodeAbiParameters(parseAbiParameters("bytes32, bytes32, address, uint256, uint256, bytes32"), [
        keccak256(toHex(stub + witnessTypeString)),
        tokenPermissionsHash,
        x402ExactPermit2ProxyAddress,
        message.nonce,
        message.deadline,
        witnessHash,
      ]),
    );
    expect(keccak256(concat(["0x1901", onChainDomain, structHash]))).toBe(clientDigest);
  });
});

describe("exact over Permit2 (x402ExactPermit2Proxy.settle)", () => {
  beforeEach(async () => {
    await approvePermit2(payer);
  });

  it("moves the permitted amount from the payer to payTo and uses the nonce", async () => {
    const { payload } = await signExact(payer, exactRequirements(3n * ONE_USDC));
    expect(payload.permit2Authorization.spender).toBe(x402ExactPermit2ProxyAddress);
    const payerBefore = await chain.balanceOf(payer.address);
    const payToBefore = await chain.balanceOf(payTo);

    await send(facilitator, exactSettle(payload));

    expect(await chain.balanceOf(payTo)).toBe(payToBefore + 3n * ONE_USDC);
    expect(await chain.balanceOf(payer.address)).toBe(payerBefore - 3n * ONE_USDC);
    expect(await nonceUsed(payer.address, BigInt(payload.permit2Authorization.nonce))).toBe(true);
  });

  it("anyone may submit it: the destination is bound by the signature, not the caller", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    const payToBefore = await chain.balanceOf(payTo);
    await send(stranger, exactSettle(payload));
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + ONE_USDC);
  });

  it("refuses a replay: InvalidNonce", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    await send(facilitator, exactSettle(payload));
    expect(await revertOf(facilitator.address, exactSettle(payload))).toBe("InvalidNonce");
  });

  it("refuses after the deadline: SignatureExpired", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC, { maxTimeoutSeconds: 60 }));
    await chain.testClient.setNextBlockTimestamp({ timestamp: BigInt(payload.permit2Authorization.deadline) + 1n });
    await chain.testClient.mine({ blocks: 1 });
    expect(await revertOf(facilitator.address, exactSettle(payload))).toBe("SignatureExpired");
  });

  it("refuses another destination than the signed witness.to: InvalidSigner", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    expect(await revertOf(facilitator.address, exactSettle(payload, { to: stranger.address }))).toBe("InvalidSigner");
  });

  it("checks validAfter before the signature: PaymentTooEarly", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    const future = (await chain.publicClient.getBlock()).timestamp + 3600n;
    expect(await revertOf(facilitator.address, exactSettle(payload, { validAfter: future }))).toBe("PaymentTooEarly");
  });

  it("refuses a zero destination: InvalidDestination", async () => {
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    expect(await revertOf(facilitator.address, exactSettle(payload, { to: zeroAddress }))).toBe("InvalidDestination");
  });

  it("a payer without an allowance to Permit2 fails in the token call: TRANSFER_FROM_FAILED", async () => {
    await approvePermit2(payer, 0n);
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    expect(await revertOf(facilitator.address, exactSettle(payload))).toBe("TRANSFER_FROM_FAILED");
  });

  it("an ERC-1271 wallet owner: settles with its owner's signature, InvalidContractSignature with anyone else's", async () => {
    const deployHash = await walletFor(facilitator).deployContract({
      abi: smartWalletArtifact.abi,
      bytecode: smartWalletArtifact.bytecode,
      args: [payer.address],
    });
    const wallet = (await chain.publicClient.waitForTransactionReceipt({ hash: deployHash, timeout: RECEIPT_TIMEOUT_MS })).contractAddress!;
    await chain.mint(wallet, 5n * ONE_USDC);
    await send(payer, {
      address: wallet,
      abi: smartWalletArtifact.abi,
      functionName: "execute",
      args: [chain.token, 0n, encodeFunctionData({ abi: erc20Abi, functionName: "approve", args: [permit2Address, maxUint256] })],
    });
    const walletSigner = (signingKey: PrivateKeyAccount): ClientEvmSigner => ({
      address: wallet,
      signTypedData: (message) => signingKey.signTypedData(message as never),
    });

    const forged = await signExact(walletSigner(stranger), exactRequirements(ONE_USDC));
    expect(await revertOf(facilitator.address, exactSettle(forged.payload))).toBe("InvalidContractSignature");

    const { payload } = await signExact(walletSigner(payer), exactRequirements(ONE_USDC));
    const payToBefore = await chain.balanceOf(payTo);
    await send(facilitator, exactSettle(payload));
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + ONE_USDC);
  });
});

describe("exact over Permit2 with EIP-2612 (settleWithPermit)", () => {
  it("a payer with no allowance: the client's eip2612GasSponsoring permit approves Permit2 in the same transaction", async () => {
    const fresh = privateKeyToAccount(generatePrivateKey());
    await chain.mint(fresh.address, 10n * ONE_USDC);
    const signer = toClientEvmSigner(fresh, chain.publicClient);
    const { payload, extensions } = await signExact(signer, exactRequirements(2n * ONE_USDC), { eip2612GasSponsoring: {} });
    const permit2612 = permit2612Of(extensions);
    const settle = exactSettle(payload);
    const payToBefore = await chain.balanceOf(payTo);

    // The payer's permit must name exactly the permitted amount.
    expect(
      await revertOf(facilitator.address, { ...settle, functionName: "settleWithPermit", args: [{ ...permit2612, value: permit2612.value + 1n }, ...settle.args] }),
    ).toBe("Permit2612AmountMismatch");

    await send(facilitator, { ...settle, functionName: "settleWithPermit", args: [permit2612, ...settle.args] });

    expect(await chain.balanceOf(payTo)).toBe(payToBefore + 2n * ONE_USDC);
    expect(await chain.publicClient.readContract({ address: chain.token, abi: testUsdcArtifact.abi, functionName: "nonces", args: [fresh.address] })).toBe(1n);
    // TestUSDC spends allowances like USDC: the permit's approval is used up by Permit2's transferFrom.
    expect(await chain.publicClient.readContract({ address: chain.token, abi: erc20Abi, functionName: "allowance", args: [fresh.address, permit2Address] })).toBe(0n);
  });

  it("a failing permit does not revert the settlement when the allowance already exists", async () => {
    await approvePermit2(payer);
    const { payload } = await signExact(payer, exactRequirements(ONE_USDC));
    const settle = exactSettle(payload);
    const junkPermit = { value: ONE_USDC, deadline: maxUint256, r: toHex(1n, { size: 32 }), s: toHex(1n, { size: 32 }), v: 27 };
    const payToBefore = await chain.balanceOf(payTo);
    const receipt = await send(facilitator, { ...settle, functionName: "settleWithPermit", args: [junkPermit, ...settle.args] });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + ONE_USDC);
    const events = parseEventLogs({ abi: x402ExactPermit2ProxyArtifact.abi, logs: receipt.logs });
    expect(events.map((event) => event.eventName)).toEqual(["EIP2612PermitFailedWithReason", "SettledWithPermit"]);
  });
});

describe("upto over Permit2 (x402UptoPermit2Proxy.settle)", () => {
  beforeEach(async () => {
    await approvePermit2(payer);
  });

  it("the client binds the facilitator named in requirements.extra and the upto proxy as spender", async () => {
    const { payload } = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    expect(payload.permit2Authorization.spender).toBe(x402UptoPermit2ProxyAddress);
    expect(payload.permit2Authorization.witness.facilitator).toBe(facilitator.address);
  });

  it("settles less than the cap: only that amount moves, and the nonce is spent", async () => {
    const { payload } = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    const payerBefore = await chain.balanceOf(payer.address);
    const payToBefore = await chain.balanceOf(payTo);

    await send(facilitator, uptoSettle(payload, 1_234_567n));

    expect(await chain.balanceOf(payTo)).toBe(payToBefore + 1_234_567n);
    expect(await chain.balanceOf(payer.address)).toBe(payerBefore - 1_234_567n);
    // The rest of the cap cannot be taken later.
    expect(await revertOf(facilitator.address, uptoSettle(payload, 1n))).toBe("InvalidNonce");
  });

  it("settles exactly the cap", async () => {
    const { payload } = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    const payToBefore = await chain.balanceOf(payTo);
    await send(facilitator, uptoSettle(payload, 5n * ONE_USDC));
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + 5n * ONE_USDC);
  });

  it("refuses more than the cap: AmountExceedsPermitted", async () => {
    const { payload } = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    expect(await revertOf(facilitator.address, uptoSettle(payload, 5n * ONE_USDC + 1n))).toBe("AmountExceedsPermitted");
  });

  it("refuses a zero amount on chain: InvalidAmount (the spec settles 0 without a transaction)", async () => {
    const { payload } = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    expect(await revertOf(facilitator.address, uptoSettle(payload, 0n))).toBe("InvalidAmount");
  });

  it("refuses any caller but the witness's facilitator: UnauthorizedFacilitator", async () => {
    const { payload } = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    expect(await revertOf(stranger.address, uptoSettle(payload, ONE_USDC))).toBe("UnauthorizedFacilitator");
  });

  it("refuses a replay, a late settle and another destination", async () => {
    const first = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    await send(facilitator, uptoSettle(first.payload, ONE_USDC));
    expect(await revertOf(facilitator.address, uptoSettle(first.payload, ONE_USDC))).toBe("InvalidNonce");

    const redirected = await signUpto(payer, uptoRequirements(5n * ONE_USDC));
    const args = uptoSettle(redirected.payload, ONE_USDC);
    const witness = args.args[3];
    expect(await revertOf(facilitator.address, { ...args, args: [args.args[0], args.args[1], args.args[2], { ...witness, to: stranger.address }, args.args[4]] })).toBe(
      "InvalidSigner",
    );

    const late = await signUpto(payer, uptoRequirements(5n * ONE_USDC, { maxTimeoutSeconds: 60 }));
    await chain.testClient.setNextBlockTimestamp({ timestamp: BigInt(late.payload.permit2Authorization.deadline) + 1n });
    await chain.testClient.mine({ blocks: 1 });
    expect(await revertOf(facilitator.address, uptoSettle(late.payload, ONE_USDC))).toBe("SignatureExpired");
  });

  it("settleWithPermit: the client's EIP-2612 permit for the cap, a metered amount settled", async () => {
    const fresh = privateKeyToAccount(generatePrivateKey());
    await chain.mint(fresh.address, 10n * ONE_USDC);
    const { payload, extensions } = await signUpto(toClientEvmSigner(fresh, chain.publicClient), uptoRequirements(4n * ONE_USDC), { eip2612GasSponsoring: {} });
    const settle = uptoSettle(payload, 1_500_000n);
    const payToBefore = await chain.balanceOf(payTo);
    await send(facilitator, { ...settle, functionName: "settleWithPermit", args: [permit2612Of(extensions), ...settle.args] });
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + 1_500_000n);
    expect(await chain.balanceOf(fresh.address)).toBe(10n * ONE_USDC - 1_500_000n);
  });
});

describe("Permit2 called directly", () => {
  const permitTransferFromTypes = {
    PermitTransferFrom: [
      { name: "permitted", type: "TokenPermissions" },
      { name: "spender", type: "address" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
    TokenPermissions: [
      { name: "token", type: "address" },
      { name: "amount", type: "uint256" },
    ],
  } as const;

  async function signPlainPermit(nonce: bigint, amountAtomic: bigint) {
    const deadline = (await chain.publicClient.getBlock()).timestamp + 600n;
    const permit = { permitted: { token: chain.token, amount: amountAtomic }, nonce, deadline };
    const signature = await payer.signTypedData({
      domain: { name: "Permit2", chainId: chain.chainId, verifyingContract: permit2Address },
      types: permitTransferFromTypes,
      primaryType: "PermitTransferFrom",
      message: { ...permit, spender: facilitator.address },
    });
    return { permit, signature };
  }

  const transfer = (permit: unknown, requestedAmount: bigint, signature: Hex) =>
    ({
      address: permit2Address,
      abi: permit2Artifact.abi,
      functionName: "permitTransferFrom",
      args: [permit, { to: payTo, requestedAmount }, payer.address, signature],
    }) as const;

  beforeEach(async () => {
    await approvePermit2(payer);
  });

  it("permitTransferFrom: the spender is msg.sender, a requested amount up to the permitted one, InvalidAmount(max) above", async () => {
    const { permit, signature } = await signPlainPermit(7n, 2n * ONE_USDC);
    expect(await revertOf(stranger.address, transfer(permit, ONE_USDC, signature))).toBe("InvalidSigner");
    expect(await revertOf(facilitator.address, transfer(permit, 2n * ONE_USDC + 1n, signature))).toBe("InvalidAmount");
    const payToBefore = await chain.balanceOf(payTo);
    await send(facilitator, transfer(permit, ONE_USDC, signature));
    expect(await chain.balanceOf(payTo)).toBe(payToBefore + ONE_USDC);
  });

  it("accepts an EIP-2098 compact (64-byte) signature, refuses other lengths: InvalidSignatureLength", async () => {
    const { permit, signature } = await signPlainPermit(8n, ONE_USDC);
    expect(await revertOf(facilitator.address, transfer(permit, ONE_USDC, `${signature}00`))).toBe("InvalidSignatureLength");
    await send(facilitator, transfer(permit, ONE_USDC, serializeCompactSignature(signatureToCompactSignature(parseSignature(signature)))));
  });

  it("invalidateUnorderedNonces: the owner burns nonces, a permit using one reverts InvalidNonce", async () => {
    const nonce = (3n << 8n) | 5n; // word 3, bit 5
    const { permit, signature } = await signPlainPermit(nonce, ONE_USDC);
    await send(payer, { address: permit2Address, abi: permit2Artifact.abi, functionName: "invalidateUnorderedNonces", args: [3n, 1n << 5n] });
    expect(await nonceUsed(payer.address, nonce)).toBe(true);
    expect(await revertOf(facilitator.address, transfer(permit, ONE_USDC, signature))).toBe("InvalidNonce");
  });
});

describe("TestUSDC EIP-2612 permit (USDC v2.2 behaviour)", () => {
  const permitTypes = {
    Permit: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  } as const;

  async function signPermit(signer: PrivateKeyAccount, nonce: bigint, deadline: bigint): Promise<Hex> {
    return signer.signTypedData({
      domain: { name: "USDC", version: "2", chainId: chain.chainId, verifyingContract: chain.token },
      types: permitTypes,
      primaryType: "Permit",
      message: { owner: payer.address, spender: permit2Address, value: ONE_USDC, nonce, deadline },
    });
  }

  const permitCall = (deadline: bigint, signature: Hex) =>
    ({
      address: chain.token,
      abi: testUsdcArtifact.abi,
      functionName: "permit",
      args: [payer.address, permit2Address, ONE_USDC, deadline, signature],
    }) as const;

  it("approves with the owner's signature and increments nonces; refuses an expired or foreign signature", async () => {
    const deadline = (await chain.publicClient.getBlock()).timestamp + 600n;
    expect(await revertOf(facilitator.address, permitCall(deadline, await signPermit(stranger, 0n, deadline)))).toBe("EIP2612: invalid signature");
    expect(await revertOf(facilitator.address, permitCall(1n, await signPermit(payer, 0n, 1n)))).toBe("FiatTokenV2: permit is expired");

    await send(facilitator, permitCall(deadline, await signPermit(payer, 0n, deadline)));
    expect(await chain.publicClient.readContract({ address: chain.token, abi: erc20Abi, functionName: "allowance", args: [payer.address, permit2Address] })).toBe(ONE_USDC);
    expect(await chain.publicClient.readContract({ address: chain.token, abi: testUsdcArtifact.abi, functionName: "nonces", args: [payer.address] })).toBe(1n);
    // The used nonce is gone: the same signature no longer matches.
    expect(await revertOf(facilitator.address, permitCall(deadline, await signPermit(payer, 0n, deadline)))).toBe("EIP2612: invalid signature");
  });

  it("PERMIT_TYPEHASH is the EIP-2612 type hash", async () => {
    expect(await chain.publicClient.readContract({ address: chain.token, abi: testUsdcArtifact.abi, functionName: "PERMIT_TYPEHASH" })).toBe(
      keccak256(toHex("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)")),
    );
  });
});
