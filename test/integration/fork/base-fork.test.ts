/**
 * The facilitator's verify/settle suite on an Anvil fork of Base / Base Sepolia, against the REAL
 * USDC contract (FiatToken v2.2 behind its proxy). Needs an RPC URL; without one the suite is
 * skipped and its name says which variable to set:
 *
 *   BASE_RPC_URL=https://…         npx vitest run test/integration/fork   # Base mainnet (8453)
 *   BASE_SEPOLIA_RPC_URL=https://… npx vitest run test/integration/fork   # Base Sepolia (84532)
 *
 * Optional: BASE_FORK_BLOCK_NUMBER / BASE_SEPOLIA_FORK_BLOCK_NUMBER pin the fork block (archive RPC).
 * Nothing is sent to the real network: every transaction lands on the local fork only.
 */
import { describe } from "vitest";
import { baseMainnetUsdc, baseSepoliaUsdcAsset, defineForkPaymentTests, startForkChain, type ForkTarget } from "../../helpers/fork.js";

interface ForkEnv {
  label: string;
  urlVariable: string;
  blockVariable: string;
  target: ForkTarget;
}

const forks: ForkEnv[] = [
  {
    label: "Base",
    urlVariable: "BASE_RPC_URL",
    blockVariable: "BASE_FORK_BLOCK_NUMBER",
    target: { chainId: 8453, v1Name: "base", usdc: baseMainnetUsdc, wrongName: "USDC" },
  },
  {
    label: "Base Sepolia",
    urlVariable: "BASE_SEPOLIA_RPC_URL",
    blockVariable: "BASE_SEPOLIA_FORK_BLOCK_NUMBER",
    target: { chainId: 84532, v1Name: "base-sepolia", usdc: baseSepoliaUsdcAsset, wrongName: "USD Coin" },
  },
];

for (const { label, urlVariable, blockVariable, target } of forks) {
  const upstreamRpcUrl = process.env[urlVariable]?.trim() || undefined;
  const blockText = process.env[blockVariable]?.trim();
  const forkBlockNumber = blockText ? BigInt(blockText) : undefined;
  // The name carries the reason when skipped; the URL itself is never shown (it may hold an API key).
  const name = upstreamRpcUrl
    ? `${label} fork (eip155:${target.chainId}, real USDC ${target.usdc.address}, from ${urlVariable})`
    : `${label} fork (set ${urlVariable} to run)`;

  describe.skipIf(!upstreamRpcUrl)(name, () => {
    defineForkPaymentTests(target, async () => ({
      chain: await startForkChain({ upstreamRpcUrl: upstreamRpcUrl!, chainId: target.chainId, usdc: target.usdc, forkBlockNumber }),
    }));
  });
}
