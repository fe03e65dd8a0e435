import type { PublicClient } from "viem";
import type { ChainRegistry } from "../chain/registry.js";
import type { SignerPool } from "../chain/signers.js";
import type { Limits } from "../config.js";
import type { Database } from "../store/db.js";
import type { Logger } from "./engine.js";
import { returnReleasedNonce, takeStaleReleasedNonces } from "../store/tx-nonces.js";
import { broadcastRawTransaction } from "./prepare-sign-send.js";

/** Holes filled per signer and pass: bounded, the next pass takes the rest. */
const gapsPerPassMax = 16;
/** A 0-value self-transfer costs exactly this. */
const selfTransferGas = 21_000n;

/**
 * Fills tx-nonce holes that no settlement reused in time with a 0-value self-transfer, so the
 * signer's later transactions are not stuck behind them. Returns how many holes were filled.
 */
export async function healNonceGaps(deps: {
  db: Database;
  chains: ChainRegistry;
  signers: SignerPool;
  limits: Pick<Limits, "nonceGapHealAfterMs" | "maxFeePerGasWei">;
  log: Pick<Logger, "warn">;
}): Promise<number> {
  let filled = 0;
  for (const handle of deps.chains.all()) {
    for (const address of deps.signers.addresses()) {
      const holes = await takeStaleReleasedNonces(deps.db, {
        chainId: handle.config.chainId,
        signer: address,
        olderThanMs: deps.limits.nonceGapHealAfterMs,
        limit: gapsPerPassMax,
      });
      for (const txNonce of holes) {
        const ok = await fillHole(handle.publicClient, handle.config.chainId, deps, address, txNonce).catch((error: unknown) => {
          // Not filled (an RPC down, a node refusing it): handed back below, the next pass tries again.
          deps.log.warn({ chainId: handle.config.chainId, signer: address, txNonce, err: error }, "could not fill a tx-nonce gap");
          return false;
        });
        if (ok) filled += 1;
        else await returnReleasedNonce(deps.db, { chainId: handle.config.chainId, signer: address, txNonce });
      }
    }
  }
  return filled;
}

async function fillHole(
  client: PublicClient,
  chainId: number,
  deps: { signers: SignerPool; limits: Pick<Limits, "maxFeePerGasWei"> },
  address: `0x${string}`,
  txNonce: number,
): Promise<boolean> {
  const account = deps.signers.byAddress(address)!;
  // Filled by someone else meanwhile (the key is used outside this facilitator): nothing to do.
  if ((await client.getTransactionCount({ address, blockTag: "latest" })) > txNonce) return true;
  const fees = await client.estimateFeesPerGas();
  if (fees.maxFeePerGas > deps.limits.maxFeePerGasWei) return false;
  const rawTx = await account.signTransaction({
    type: "eip1559",
    chainId,
    to: address,
    value: 0n,
    nonce: txNonce,
    gas: selfTransferGas,
    maxFeePerGas: fees.maxFeePerGas,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
  });
  const result = await broadcastRawTransaction(client, rawTx);
  return result.kind === "accepted";
}
