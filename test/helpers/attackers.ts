import { createWalletClient, getAddress, hashTypedData, http, type Address, type Hex } from "viem";
import { privateKeyToAccount, sign } from "viem/accounts";
import { loadArtifact } from "../../src/contracts/artifacts.js";
import { transferWithAuthorizationTypes } from "../../src/exact-evm/typed-data.js";
import { addressOf, keys, type TestChain } from "./chain.js";
import { nowSeconds, randomNonce, type SignedPayment } from "./payments.js";

/** Deploys a compiled contract (contracts/build/<name>.json) without constructor arguments. */
export async function deployContract(chain: TestChain, name: string, deployerKey: Hex = keys.facilitator3): Promise<Address> {
  const artifact = loadArtifact(name);
  const deployer = createWalletClient({ account: privateKeyToAccount(deployerKey), transport: http(chain.rpcUrl) });
  const hash = await deployer.deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, chain: null });
  return getAddress((await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 })).contractAddress!);
}

/**
 * The EOA of `key` points its code at `delegate` (an EIP-7702 set-code transaction it pays itself,
 * sent to a plain address: a call to itself would run the delegate). Waits until it is mined.
 */
export async function delegateEoa(chain: TestChain, key: Hex, delegate: Address): Promise<void> {
  const wallet = createWalletClient({ account: privateKeyToAccount(key), transport: http(chain.rpcUrl) });
  const authorization = await wallet.signAuthorization({ contractAddress: delegate, executor: "self", chainId: chain.chainId });
  const hash = await wallet.sendTransaction({ authorizationList: [authorization], to: addressOf(keys.minter), data: "0x", gas: 100_000n, chain: null });
  await chain.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
}

/**
 * A payment from a contract wallet: `signerKey` signs the EIP-712 digest itself (no message prefix),
 * which a SmartWallet owned by that key accepts through ERC-1271 — and any other wallet's code
 * judges as it likes.
 */
export async function walletPayment(
  chain: TestChain,
  options: { wallet: Address; payTo: Address; valueAtomic: bigint; signerKey?: Hex },
): Promise<SignedPayment & { digest: Hex }> {
  const message = { from: options.wallet, to: options.payTo, value: options.valueAtomic, validAfter: nowSeconds() - 600n, validBefore: nowSeconds() + 300n, nonce: randomNonce() };
  const digest = hashTypedData({
    domain: { name: "USDC", version: "2", chainId: chain.chainId, verifyingContract: chain.token },
    types: transferWithAuthorizationTypes,
    primaryType: "TransferWithAuthorization",
    message,
  });
  const signature = await sign({ hash: digest, privateKey: options.signerKey ?? keys.stranger, to: "hex" });
  return { digest, signature, authorization: { ...message, value: `${message.value}`, validAfter: `${message.validAfter}`, validBefore: `${message.validBefore}` } };
}
