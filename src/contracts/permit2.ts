import type { Address } from "viem";

/**
 * Canonical addresses of Uniswap Permit2 and x402's two Permit2 proxies: the same on every EVM chain
 * (CREATE2), and the ones the @x402/evm 2.27 client signs for (PERMIT2_ADDRESS,
 * x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress in its constants.ts). The payer's
 * Permit2 signature names the proxy as `spender` and Permit2 as the EIP-712 verifyingContract, so
 * nothing else would settle. Tests and the sandbox place local stand-ins (contracts/Permit2.sol,
 * contracts/X402Permit2Proxy.sol) at these addresses.
 */
export const permit2Address: Address = "0x000000000022D473030F116dDEE9F6B43aC78BA3";
export const x402ExactPermit2ProxyAddress: Address = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001";
export const x402UptoPermit2ProxyAddress: Address = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002";

/**
 * The proxies' WITNESS_TYPE_STRING: what Permit2 appends to
 * "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
 * to get the type hash the payer signed.
 */
export const exactPermit2WitnessTypeString =
  "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";
export const uptoPermit2WitnessTypeString =
  "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
