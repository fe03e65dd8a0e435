/**
 * TestUSDC, SmartWallet(+Factory) and Multicall3 on a real Anvil node (chain id 84532), with the
 * token placed at the real Base Sepolia USDC address via anvil_setCode. Each test runs between
 * evm_snapshot / evm_revert, so tests do not see each other's state.
 */
import { randomBytes } from "node:crypto";
import {
  BaseError,
  ContractFunctionRevertedError,
  concat,
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  encodeAbiParameters,
  encodeFunctionData,
  http,
  keccak256,
  numberToHex,
  parseEventLogs,
  parseSignature,
  serializeErc6492Signature,
  toHex,
  zeroAddress,
  type Abi,
  type Address,
  type Hash,
  type Hex,
  type PrivateKeyAccount,
  type TransactionReceipt,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { anvilDevPrivateKeys, startAnvil, type AnvilInstance } from "../../../src/sandbox/anvil.js";
import {
  multicall3Artifact,
  smartWalletArtifact,
  smartWalletFactoryArtifact,
  testUsdcArtifact,
} from "../../../src/sandbox/artifacts.js";
import { installMulticall3, installTestUsdc, MULTICALL3_ADDRESS, mintTestUsdc } from "../../../src/sandbox/deploy.js";

const CHAIN_ID = 84532;
const USDC: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const TOKEN_NAME = "USDC";
const TOKEN_VERSION = "2";
const RECEIPT_TIMEOUT_MS = 10_000;
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const ONE_USDC = 1_000_000n;

const abi = testUsdcArtifact.abi;
const key = (index: number): Hex => anvilDevPrivateKeys[index]!;
const minter = privateKeyToAccount(key(0));
const payer = privateKeyToAccount(key(1));
const facilitator = privateKeyToAccount(key(2));
const payee = privateKeyToAccount(key(3));
const stranger = privateKeyToAccount(key(4));
const walletOwner = privateKeyToAccount(key(5));

const chain = defineChain({
  id: CHAIN_ID,
  name: "anvil-base-sepolia",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: ["http://127.0.0.1"] } },
});

const authorizationFields = [
  { name: "from", type: "address" },
  { name: "to", type: "address" },
  { name: "value", type: "uint256" },
  { name: "validAfter", type: "uint256" },
  { name: "validBefore", type: "uint256" },
  { name: "nonce", type: "bytes32" },
] as const;
const transferTypes = { TransferWithAuthorization: authorizationFields } as const;
const receiveTypes = { ReceiveWithAuthorization: authorizationFields } as const;
const cancelTypes = {
  CancelAuthorization: [
    { name: "authorizer", type: "address" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;
const domain = { name: TOKEN_NAME, version: TOKEN_VERSION, chainId: CHAIN_ID, verifyingContract: USDC } as const;

// A type alias, not an interface: viem's typed-data message wants an implicit index signature.
type Authorization = {
  from: Address;
  to: Address;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
};

let anvil: AnvilInstance;
let publicClient: ReturnType<typeof createPublicClient>;
let testClient: ReturnType<typeof createTestClient>;
let snapshotId: Hex;

function walletFor(account: PrivateKeyAccount) {
  return createWalletClient({ account, chain, transport: http(anvil.rpcUrl, { timeout: 10_000 }) });
}

function randomNonce(): Hex {
  return toHex(randomBytes(32));
}

async function latestTimestamp(): Promise<bigint> {
  return (await publicClient.getBlock()).timestamp;
}

async function authorization(overrides: Partial<Authorization> = {}): Promise<Authorization> {
  return {
    from: payer.address,
    to: payee.address,
    value: 5n * ONE_USDC,
    validAfter: 0n,
    validBefore: (await latestTimestamp()) + 3600n,
    nonce: randomNonce(),
    ...overrides,
  };
}

function signTransfer(signer: PrivateKeyAccount, message: Authorization): Promise<Hex> {
  return signer.signTypedData({ domain, types: transferTypes, primaryType: "TransferWithAuthorization", message });
}

function vrsArgs(auth: Authorization, signature: Hex): readonly unknown[] {
  const { v, r, s } = parseSignature(signature);
  return [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, Number(v), r, s];
}

function bytesArgs(auth: Authorization, signature: Hex): readonly unknown[] {
  return [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature];
}

/** Simulates (so a revert surfaces with its reason), sends, waits; returns the successful receipt. */
async function send(
  sender: PrivateKeyAccount,
  call: { address: Address; abi: Abi; functionName: string; args: readonly unknown[] },
): Promise<TransactionReceipt> {
  const { request } = await publicClient.simulateContract({ account: sender, ...call });
  const hash: Hash = await walletFor(sender).writeContract(request);
  const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
  expect(receipt.status).toBe("success");
  return receipt;
}

function token(functionName: string, args: readonly unknown[] = []) {
  return { address: USDC, abi, functionName, args };
}

/** The revert string of a failed simulateContract/send, e.g. "FiatTokenV2: invalid signature". */
async function revertReason(action: Promise<unknown>): Promise<string | undefined> {
  try {
    await action;
  } catch (error) {
    const reverted = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (reverted instanceof ContractFunctionRevertedError) return reverted.reason;
    throw error;
  }
  throw new Error("expected the call to revert, but it succeeded");
}

async function balanceOf(account: Address): Promise<bigint> {
  return (await publicClient.readContract({ ...token("balanceOf", [account]) })) as bigint;
}

function eventNames(receipt: TransactionReceipt): string[] {
  return parseEventLogs({ abi, logs: receipt.logs }).map((log) => log.eventName);
}

beforeAll(async () => {
  anvil = await startAnvil({ chainId: CHAIN_ID });
  const transport = http(anvil.rpcUrl, { timeout: 10_000 });
  publicClient = createPublicClient({ chain, transport });
  testClient = createTestClient({ mode: "anvil", chain, transport });

  await installTestUsdc(anvil.rpcUrl, {
    address: USDC,
    name: TOKEN_NAME,
    version: TOKEN_VERSION,
    symbol: "USDC",
    decimals: 6,
    minter: minter.address,
  });
  await installMulticall3(anvil.rpcUrl);
  await mintTestUsdc(anvil.rpcUrl, {
    token: USDC,
    minterPrivateKey: key(0),
    to: payer.address,
    amountAtomic: 1_000n * ONE_USDC,
  });
});

afterAll(async () => {
  await anvil?.stop();
});

beforeEach(async () => {
  snapshotId = await testClient.snapshot();
});

afterEach(async () => {
  await testClient.revert({ id: snapshotId });
});

describe("Anvil helpers", () => {
  it("anvilDevPrivateKeys are the node's funded dev accounts, in order", async () => {
    const accounts = await createWalletClient({ chain, transport: http(anvil.rpcUrl) }).getAddresses();
    const derived = anvilDevPrivateKeys.map((k) => privateKeyToAccount(k).address.toLowerCase());
    expect(accounts.map((a) => a.toLowerCase())).toEqual(derived);
  });
});

describe("TestUSDC metadata and ERC-20", () => {
  it("reports name, symbol, version, decimals, supply and USDC's EIP-712 domain", async () => {
    const read = (functionName: string) => publicClient.readContract(token(functionName));
    expect(await read("name")).toBe(TOKEN_NAME);
    expect(await read("symbol")).toBe("USDC");
    expect(await read("version")).toBe(TOKEN_VERSION);
    expect(await read("decimals")).toBe(6);
    expect(await read("totalSupply")).toBe(1_000n * ONE_USDC);
    expect(await balanceOf(payer.address)).toBe(1_000n * ONE_USDC);

    const expectedSeparator = keccak256(
      encodeAbiParameters(
        [{ type: "bytes32" }, { type: "bytes32" }, { type: "bytes32" }, { type: "uint256" }, { type: "address" }],
        [
          keccak256(toHex("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")),
          keccak256(toHex(TOKEN_NAME)),
          keccak256(toHex(TOKEN_VERSION)),
          BigInt(CHAIN_ID),
          USDC,
        ],
      ),
    );
    expect(await read("DOMAIN_SEPARATOR")).toBe(expectedSeparator);
    expect(await read("TRANSFER_WITH_AUTHORIZATION_TYPEHASH")).toBe(
      keccak256(toHex("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")),
    );
    expect(await read("RECEIVE_WITH_AUTHORIZATION_TYPEHASH")).toBe(
      keccak256(toHex("ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")),
    );
    expect(await read("CANCEL_AUTHORIZATION_TYPEHASH")).toBe(
      keccak256(toHex("CancelAuthorization(address authorizer,bytes32 nonce)")),
    );
  });

  it("can be initialized only once and minted only by the minter", async () => {
    expect(
      await revertReason(
        publicClient.simulateContract({
          account: stranger,
          ...token("initialize", ["X", "X", "1", 6, stranger.address]),
        }),
      ),
    ).toBe("FiatToken: contract is already initialized");
    expect(
      await revertReason(publicClient.simulateContract({ account: stranger, ...token("mint", [stranger.address, 1n]) })),
    ).toBe("FiatToken: caller is not a minter");
  });

  it("uses USDC's ERC-20 revert strings", async () => {
    const reason = (sender: PrivateKeyAccount, functionName: string, args: readonly unknown[]) =>
      revertReason(publicClient.simulateContract({ account: sender, ...token(functionName, args) }));
    expect(await reason(stranger, "transfer", [payee.address, 1n])).toBe("ERC20: transfer amount exceeds balance");
    expect(await reason(payer, "transfer", [zeroAddress, 1n])).toBe("ERC20: transfer to the zero address");
    expect(await reason(stranger, "transferFrom", [payer.address, stranger.address, 1n])).toBe(
      "ERC20: transfer amount exceeds allowance",
    );

    await send(payer, token("approve", [stranger.address, 3n]));
    await send(stranger, token("transferFrom", [payer.address, payee.address, 2n]));
    expect(await publicClient.readContract(token("allowance", [payer.address, stranger.address]))).toBe(1n);
    expect(await balanceOf(payee.address)).toBe(2n);
  });
});

describe("transferWithAuthorization (EOA signer)", () => {
  it("moves the funds and emits AuthorizationUsed then Transfer; a replay is rejected", async () => {
    const auth = await authorization();
    const signature = await signTransfer(payer, auth);

    const receipt = await send(facilitator, token("transferWithAuthorization", vrsArgs(auth, signature)));
    expect(eventNames(receipt)).toEqual(["AuthorizationUsed", "Transfer"]);
    const [used, transfer] = parseEventLogs({ abi, logs: receipt.logs });
    expect(used!.args).toEqual({ authorizer: payer.address, nonce: auth.nonce });
    expect(transfer!.args).toEqual({ from: payer.address, to: payee.address, value: auth.value });
    expect(receipt.gasUsed).toBeGreaterThan(50_000n);
    expect(receipt.gasUsed).toBeLessThan(120_000n);

    expect(await balanceOf(payee.address)).toBe(auth.value);
    expect(await balanceOf(payer.address)).toBe(1_000n * ONE_USDC - auth.value);
    expect(await publicClient.readContract(token("authorizationState", [payer.address, auth.nonce]))).toBe(true);

    expect(
      await revertReason(
        publicClient.simulateContract({
          account: facilitator,
          ...token("transferWithAuthorization", vrsArgs(auth, signature)),
        }),
      ),
    ).toBe("FiatTokenV2: authorization is used or canceled");
  });

  it("accepts the 65-byte signature through the bytes overload", async () => {
    const auth = await authorization();
    const signature = await signTransfer(payer, auth);
    const receipt = await send(facilitator, token("transferWithAuthorization", bytesArgs(auth, signature)));
    expect(eventNames(receipt)).toEqual(["AuthorizationUsed", "Transfer"]);
    expect(await balanceOf(payee.address)).toBe(auth.value);
  });

  it("rejects a high-s (malleated) signature with ECRecover's 's' string, in both overloads", async () => {
    const auth = await authorization();
    const { r, s, v } = parseSignature(await signTransfer(payer, auth));
    const highS = numberToHex(SECP256K1_N - BigInt(s), { size: 32 });
    const flippedV = v === 27n ? 28 : 27;
    const simulate = (args: readonly unknown[]) =>
      revertReason(publicClient.simulateContract({ account: facilitator, ...token("transferWithAuthorization", args) }));

    const base = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
    expect(await simulate([...base, flippedV, r, highS])).toBe("ECRecover: invalid signature 's' value");
    expect(await simulate([...base, concat([r, highS, numberToHex(flippedV, { size: 1 })])])).toBe(
      "ECRecover: invalid signature 's' value",
    );
  });

  it("rejects v = 0/1 in the bytes form (USDC does not normalise v)", async () => {
    const auth = await authorization();
    const { r, s, yParity } = parseSignature(await signTransfer(payer, auth));
    const rawV = concat([r, s, numberToHex(yParity, { size: 1 })]);
    expect(
      await revertReason(
        publicClient.simulateContract({ account: facilitator, ...token("transferWithAuthorization", bytesArgs(auth, rawV)) }),
      ),
    ).toBe("ECRecover: invalid signature 'v' value");
  });

  it("rejects a signature by someone other than `from`", async () => {
    const auth = await authorization();
    const signature = await signTransfer(stranger, auth);
    expect(
      await revertReason(
        publicClient.simulateContract({ account: facilitator, ...token("transferWithAuthorization", vrsArgs(auth, signature)) }),
      ),
    ).toBe("FiatTokenV2: invalid signature");
  });

  it("enforces validAfter < now < validBefore", async () => {
    const now = await latestTimestamp();
    const expired = await authorization({ validBefore: now });
    const notYetValid = await authorization({ validAfter: now + 3600n, validBefore: now + 7200n });
    const simulate = async (auth: Authorization) =>
      revertReason(
        publicClient.simulateContract({
          account: facilitator,
          ...token("transferWithAuthorization", vrsArgs(auth, await signTransfer(payer, auth))),
        }),
      );
    expect(await simulate(expired)).toBe("FiatTokenV2: authorization is expired");
    expect(await simulate(notYetValid)).toBe("FiatTokenV2: authorization is not yet valid");
  });
});

describe("receiveWithAuthorization and cancelAuthorization", () => {
  it("receiveWithAuthorization works only when sent by the payee", async () => {
    const auth = await authorization();
    const signature = await payer.signTypedData({
      domain,
      types: receiveTypes,
      primaryType: "ReceiveWithAuthorization",
      message: auth,
    });
    expect(
      await revertReason(
        publicClient.simulateContract({ account: facilitator, ...token("receiveWithAuthorization", vrsArgs(auth, signature)) }),
      ),
    ).toBe("FiatTokenV2: caller must be the payee");

    const receipt = await send(payee, token("receiveWithAuthorization", bytesArgs(auth, signature)));
    expect(eventNames(receipt)).toEqual(["AuthorizationUsed", "Transfer"]);
    expect(await balanceOf(payee.address)).toBe(auth.value);
  });

  it("cancelAuthorization burns the nonce so the transfer can no longer run", async () => {
    const auth = await authorization();
    const transferSignature = await signTransfer(payer, auth);
    const cancelSignature = await payer.signTypedData({
      domain,
      types: cancelTypes,
      primaryType: "CancelAuthorization",
      message: { authorizer: payer.address, nonce: auth.nonce },
    });
    const { v, r, s } = parseSignature(cancelSignature);

    const receipt = await send(facilitator, token("cancelAuthorization", [payer.address, auth.nonce, Number(v), r, s]));
    const [canceled] = parseEventLogs({ abi, logs: receipt.logs, eventName: "AuthorizationCanceled" });
    expect(canceled!.args).toEqual({ authorizer: payer.address, nonce: auth.nonce });
    expect(await publicClient.readContract(token("authorizationState", [payer.address, auth.nonce]))).toBe(true);

    const simulate = (functionName: string, args: readonly unknown[]) =>
      revertReason(publicClient.simulateContract({ account: facilitator, ...token(functionName, args) }));
    expect(await simulate("transferWithAuthorization", vrsArgs(auth, transferSignature))).toBe(
      "FiatTokenV2: authorization is used or canceled",
    );
    expect(await simulate("cancelAuthorization", [payer.address, auth.nonce, cancelSignature])).toBe(
      "FiatTokenV2: authorization is used or canceled",
    );
  });
});

describe("ERC-1271 smart wallet as `from`", () => {
  async function deployFactory(): Promise<Address> {
    const hash = await walletFor(facilitator).deployContract({
      abi: smartWalletFactoryArtifact.abi,
      bytecode: smartWalletFactoryArtifact.bytecode,
    });
    const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
    return receipt.contractAddress!;
  }

  function factoryCall(factory: Address, functionName: "deploy" | "predict", salt: Hex) {
    return { address: factory, abi: smartWalletFactoryArtifact.abi, functionName, args: [walletOwner.address, salt] };
  }

  it("pays through the bytes overload when the owner signed; rejects other signers", async () => {
    const factory = await deployFactory();
    const salt = randomNonce();
    const wallet = (await publicClient.readContract(factoryCall(factory, "predict", salt))) as Address;
    await send(facilitator, factoryCall(factory, "deploy", salt));
    expect(await publicClient.getCode({ address: wallet })).toMatch(/^0x[0-9a-f]{10,}$/);
    expect(await publicClient.readContract({ address: wallet, abi: smartWalletArtifact.abi, functionName: "owner" })).toBe(
      walletOwner.address,
    );
    await mintTestUsdc(anvil.rpcUrl, { token: USDC, minterPrivateKey: key(0), to: wallet, amountAtomic: 10n * ONE_USDC });

    const auth = await authorization({ from: wallet });
    const strangerSignature = await signTransfer(stranger, auth);
    expect(
      await revertReason(
        publicClient.simulateContract({
          account: facilitator,
          ...token("transferWithAuthorization", bytesArgs(auth, strangerSignature)),
        }),
      ),
    ).toBe("FiatTokenV2: invalid signature");

    const ownerSignature = await signTransfer(walletOwner, auth);
    const receipt = await send(facilitator, token("transferWithAuthorization", bytesArgs(auth, ownerSignature)));
    expect(eventNames(receipt)).toEqual(["AuthorizationUsed", "Transfer"]);
    expect(await balanceOf(wallet)).toBe(10n * ONE_USDC - auth.value);
    expect(await balanceOf(payee.address)).toBe(auth.value);
  });

  it("supports ERC-6492: viem verifies a counterfactual wallet's signature via the factory", async () => {
    const factory = await deployFactory();
    const salt = randomNonce();
    const wallet = (await publicClient.readContract(factoryCall(factory, "predict", salt))) as Address;
    expect(await publicClient.getCode({ address: wallet })).toBeUndefined();

    const auth = await authorization({ from: wallet });
    const signature = serializeErc6492Signature({
      address: factory,
      data: encodeFunctionData({ abi: smartWalletFactoryArtifact.abi, functionName: "deploy", args: [walletOwner.address, salt] }),
      signature: await signTransfer(walletOwner, auth),
    });
    const verify = (sig: Hex) =>
      publicClient.verifyTypedData({
        address: wallet,
        domain,
        types: transferTypes,
        primaryType: "TransferWithAuthorization",
        message: auth,
        signature: sig,
      });
    expect(await verify(signature)).toBe(true);
    const strangerWrapped = serializeErc6492Signature({
      address: factory,
      data: encodeFunctionData({ abi: smartWalletFactoryArtifact.abi, functionName: "deploy", args: [walletOwner.address, salt] }),
      signature: await signTransfer(stranger, auth),
    });
    expect(await verify(strangerWrapped)).toBe(false);
  });
});

describe("quirk: silent success on a used nonce", () => {
  it("is switchable only by the minter", async () => {
    expect(
      await revertReason(
        publicClient.simulateContract({ account: stranger, ...token("setQuirkSilentUsedNonce", [true]) }),
      ),
    ).toBe("FiatToken: caller is not a minter");
  });

  it("replays emit AuthorizationUsed, do not revert and move nothing", async () => {
    await send(minter, token("setQuirkSilentUsedNonce", [true]));
    expect(await publicClient.readContract(token("quirkSilentUsedNonce"))).toBe(true);

    const auth = await authorization();
    const signature = await signTransfer(payer, auth);
    await send(facilitator, token("transferWithAuthorization", vrsArgs(auth, signature)));
    const payerBefore = await balanceOf(payer.address);
    const payeeBefore = await balanceOf(payee.address);

    const replay = await send(facilitator, token("transferWithAuthorization", bytesArgs(auth, signature)));
    expect(eventNames(replay)).toEqual(["AuthorizationUsed"]);
    const [used] = parseEventLogs({ abi, logs: replay.logs, eventName: "AuthorizationUsed" });
    expect(used!.args).toEqual({ authorizer: payer.address, nonce: auth.nonce });
    expect(await balanceOf(payer.address)).toBe(payerBefore);
    expect(await balanceOf(payee.address)).toBe(payeeBefore);

    // The signature is still checked, so a forged "replay" cannot produce such a receipt.
    expect(
      await revertReason(
        publicClient.simulateContract({
          account: facilitator,
          ...token("transferWithAuthorization", vrsArgs(auth, await signTransfer(stranger, auth))),
        }),
      ),
    ).toBe("FiatTokenV2: invalid signature");
  });
});

describe("Multicall3 at the canonical address", () => {
  it("serves viem multicall (aggregate3) with per-call failures", async () => {
    const results = await publicClient.multicall({
      multicallAddress: MULTICALL3_ADDRESS,
      allowFailure: true,
      contracts: [
        { address: USDC, abi, functionName: "balanceOf", args: [payer.address] },
        { address: USDC, abi, functionName: "decimals" },
        // Multicall3 itself holds no USDC: this call reverts and must not fail the batch.
        { address: USDC, abi, functionName: "transfer", args: [payee.address, 1n] },
      ],
    });
    expect(results[0]).toEqual({ status: "success", result: 1_000n * ONE_USDC });
    expect(results[1]).toEqual({ status: "success", result: 6 });
    expect(results[2]!.status).toBe("failure");

    const multicall = (functionName: string, args: readonly unknown[] = []) =>
      publicClient.readContract({ address: MULTICALL3_ADDRESS, abi: multicall3Artifact.abi, functionName, args });
    expect(await multicall("getChainId")).toBe(BigInt(CHAIN_ID));
    expect(await multicall("getBlockNumber")).toBe(await publicClient.getBlockNumber({ cacheTime: 0 })); // viem caches the block number for 4 s by default
    expect(await multicall("getEthBalance", [payer.address])).toBe(await publicClient.getBalance({ address: payer.address }));
  });
});
