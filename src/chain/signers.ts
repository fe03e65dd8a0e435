import type { Address, Hex, LocalAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { systemClock, type Clock } from "../clock.js";
import { SignersBusyError } from "../errors.js";

export interface SignerLease {
  account: LocalAccount;
  release(): void;
}

export interface SignerPool {
  addresses(): Address[];
  /**
   * The signer for the next settlement: the least loaded one with a free slot. Waits for a slot
   * until `untilMs` at most, then throws a 503-class error (every signer is saturated).
   */
  acquire(untilMs: number): Promise<SignerLease>;
  /** The account for an address we persisted earlier (rebroadcast, fee bump, gap fill). */
  byAddress(address: string): LocalAccount | undefined;
  inFlight(): Record<Address, number>;
}

/**
 * Signing keys live only in this process; only addresses are logged or stored. Load is spread by
 * in-flight count, and each key has at most `inFlightPerSignerMax` settlements between nonce and
 * receipt here, so a burst queues in memory (bounded in time) instead of piling up in the mempool.
 * Tx-nonce safety across instances comes from Postgres, not from here.
 */
export function createSignerPool(privateKeys: readonly Hex[], inFlightPerSignerMax = 64, clock: Clock = systemClock): SignerPool {
  if (privateKeys.length === 0) throw new Error("at least one signer key is required");
  const accounts = privateKeys.map((key) => privateKeyToAccount(key));
  const load = new Map<Address, number>(accounts.map((account) => [account.address, 0]));
  const waiters: Array<() => void> = [];

  const leastLoaded = (): LocalAccount | undefined => {
    let best: LocalAccount | undefined;
    for (const account of accounts) {
      const count = load.get(account.address)!;
      if (count < inFlightPerSignerMax && (!best || count < load.get(best.address)!)) best = account;
    }
    return best;
  };

  const lease = (account: LocalAccount): SignerLease => {
    load.set(account.address, load.get(account.address)! + 1);
    let released = false;
    return {
      account,
      release: () => {
        if (released) return;
        released = true;
        load.set(account.address, load.get(account.address)! - 1);
        waiters.shift()?.();
      },
    };
  };

  return {
    addresses: () => accounts.map((account) => account.address),
    async acquire(untilMs) {
      for (;;) {
        const account = leastLoaded();
        if (account) return lease(account);
        // `untilMs` is on the engine's clock: compare on the same one.
        const waitMs = untilMs - clock.nowMs();
        if (waitMs <= 0) throw new SignersBusyError(`all ${accounts.length} signer(s) have ${inFlightPerSignerMax} settlements in flight; retry shortly`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            const index = waiters.indexOf(wake);
            if (index >= 0) waiters.splice(index, 1);
            resolve();
          }, waitMs);
          const wake = () => {
            clearTimeout(timer);
            resolve();
          };
          waiters.push(wake);
        });
      }
    },
    byAddress: (address) => accounts.find((account) => account.address.toLowerCase() === address.toLowerCase()),
    inFlight: () => Object.fromEntries(load) as Record<Address, number>,
  };
}
