import { parseAbi } from "viem";

/**
 * The parts of Uniswap Permit2 and of x402's two Permit2 proxies that the facilitator calls, reads
 * and decodes, as the public contracts declare them (the same selectors as @x402/evm 2.27's
 * x402ExactPermit2ProxyABI / x402UptoPermit2ProxyABI; test/unit/permit2/abi.test.ts compares them).
 */
const structs = [
  "struct TokenPermissions { address token; uint256 amount; }",
  "struct PermitTransferFrom { TokenPermissions permitted; uint256 nonce; uint256 deadline; }",
  "struct EIP2612Permit { uint256 value; uint256 deadline; bytes32 r; bytes32 s; uint8 v; }",
] as const;

const proxyCommon = [
  "function PERMIT2() view returns (address)",
  "event Settled()",
  "event SettledWithPermit()",
  "error InvalidAmount()",
  "error InvalidDestination()",
  "error InvalidOwner()",
  "error PaymentTooEarly()",
  "error Permit2612AmountMismatch()",
  "error ReentrancyGuardReentrantCall()",
] as const;

export const exactPermit2ProxyAbi = parseAbi([
  ...structs,
  "struct ExactWitness { address to; uint256 validAfter; }",
  "function settle(PermitTransferFrom permit, address owner, ExactWitness witness, bytes signature)",
  "function settleWithPermit(EIP2612Permit permit2612, PermitTransferFrom permit, address owner, ExactWitness witness, bytes signature)",
  ...proxyCommon,
]);

export const uptoPermit2ProxyAbi = parseAbi([
  ...structs,
  "struct UptoWitness { address to; address facilitator; uint256 validAfter; }",
  "function settle(PermitTransferFrom permit, uint256 amount, address owner, UptoWitness witness, bytes signature)",
  "function settleWithPermit(EIP2612Permit permit2612, PermitTransferFrom permit, uint256 amount, address owner, UptoWitness witness, bytes signature)",
  "error AmountExceedsPermitted()",
  "error UnauthorizedFacilitator()",
  ...proxyCommon,
]);

/** Permit2's SignatureTransfer: the nonce bitmap, and the errors that bubble up through the proxies. */
export const permit2Abi = parseAbi([
  "function nonceBitmap(address owner, uint256 wordPosition) view returns (uint256)",
  "error SignatureExpired(uint256 signatureDeadline)",
  "error InvalidNonce()",
  "error InvalidSignatureLength()",
  "error InvalidSignature()",
  "error InvalidSigner()",
  "error InvalidContractSignature()",
  "error InvalidAmount(uint256 maxAmount)",
]);

/** What the facilitator reads of the token for a Permit2 payment (and its Transfer for the verdict). */
export const permit2TokenAbi = parseAbi([
  "function balanceOf(address account) view returns (uint256)",
  "function allowance(address owner, address spender) view returns (uint256)",
  "function nonces(address owner) view returns (uint256)",
  "event Transfer(address indexed from, address indexed to, uint256 value)",
]);
