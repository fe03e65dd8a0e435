import type { Address, Hex, LocalAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export interface SignerPool {
  addresses(): Address[];
  /** The signer for the next settlement: the one with the fewest settlements in flight here. */
  acquire(): { account: LocalAccount; release(): void };
  /** The account for an address we persisted earlier (rebroadcast, fee bump). */
  byAddress(address: string): LocalAccount | undefined;
}

/**
 * Signing keys live only in this process; only addresses are logged or stored. Load is spread by
 * local in-flight count; tx-nonce safety across instances comes from Postgres, not from here.
 */
export function createSignerPool(privateKeys: readonly Hex[]): SignerPool {
  if (privateKeys.length === 0) throw new Error("at least one signer key is required");
  const accounts = privateKeys.map((key) => privateKeyToAccount(key));
  const inFlight = new Map<Address, number>(accounts.map((account) => [account.address, 0]));
  let rotation = 0;
  return {
    addresses: () => accounts.map((account) => account.address),
    acquire() {
      rotation = (rotation + 1) % accounts.length;
      let best = accounts[rotation]!;
      for (const account of accounts) if (inFlight.get(account.address)! < inFlight.get(best.address)!) best = account;
      inFlight.set(best.address, inFlight.get(best.address)! + 1);
      let released = false;
      return {
        account: best,
        release: () => {
          if (released) return;
          released = true;
          inFlight.set(best.address, inFlight.get(best.address)! - 1);
        },
      };
    },
    byAddress: (address) => accounts.find((account) => account.address.toLowerCase() === address.toLowerCase()),
  };
}
