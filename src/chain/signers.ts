import type { Address, Hex, LocalAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { systemClock, type Clock } from "../clock.js";
import type { Limits } from "../config.js";
import { SignerNotHeldError, SignersBusyError } from "../errors.js";

/** A settlement's hold on a signer from before it is prepared until its transaction is sent. */
export interface SignerLease {
  account: LocalAccount;
  /** Idempotent. Called once the settlement's transaction is sent (or nothing will be sent). */
  release(): void;
}

/** One transaction between send and verdict: it holds a slot of its signer on its chain. */
export interface TransactionSlot {
  /**
   * The slot for a transaction carrying `settlements`: one share per settlement, each idempotent;
   * the slot frees when every share is released (each settlement has its verdict or gave up
   * waiting for it). `settlements` 0 frees it at once.
   */
  shares(settlements: number): Array<() => void>;
}

/** IN_FLIGHT_PER_SIGNER_MAX (transactions between send and verdict, per key and chain) and SETTLE_BATCH_MAX. */
export type SignerPoolLimits = Pick<Limits, "inFlightPerSignerMax" | "settleBatchMax">;

export interface SignerPool {
  addresses(): Address[];
  /**
   * The signer for the next settlement: the least loaded one with room. Waits for room until
   * `untilMs` at most, then throws a 503-class error (every signer is saturated).
   */
  acquire(untilMs: number): Promise<SignerLease>;
  /**
   * The lease of one particular signer (an upto permit names the key that must send it): waits for
   * room on that key until `untilMs`, then throws like acquire(). Throws SignerNotHeldError (503)
   * at once for an address that is not one of ours.
   */
  acquireFor(address: Address, untilMs: number): Promise<SignerLease>;
  /**
   * A slot for the signer's next transaction on `chainId`; waits (FIFO) for one until `untilMs`,
   * then answers undefined.
   */
  acquireTransaction(chainId: number, address: Address, untilMs: number): Promise<TransactionSlot | undefined>;
  /** Resolves once the signer has a free transaction slot on `chainId`, or at `untilMs`; takes nothing. */
  transactionSlotFree(chainId: number, address: Address, untilMs: number): Promise<void>;
  /** The account for an address we persisted earlier (rebroadcast, fee bump, gap fill). */
  byAddress(address: string): LocalAccount | undefined;
  /** Settlements per signer from its lease until their transaction's verdict (all chains). */
  inFlight(): Record<Address, number>;
  /** Transactions per signer between send and verdict (all chains). */
  transactionsInFlight(): Record<Address, number>;
}

/**
 * Signing keys live only in this process; only addresses are logged or stored. Tx-nonce safety
 * across instances comes from Postgres, not from here.
 *
 * What is bounded, per key and instance: transactions between send and verdict
 * (`inFlightPerSignerMax` per chain — the gas at risk, and what a node's per-sender pool holds),
 * not settlements: a burst larger than that goes out in fuller batches, not in more blocks. The
 * settlements being prepared or queued for a key are bounded by what its in-flight transactions
 * could carry (`inFlightPerSignerMax × settleBatchMax`); past that a request
 * waits (bounded in time) for room. Load is spread by settlements held, including those carried
 * by transactions in flight.
 */
export function createSignerPool(privateKeys: readonly Hex[], limits: SignerPoolLimits, clock: Clock = systemClock): SignerPool {
  if (privateKeys.length === 0) throw new Error("at least one signer key is required");
  const accounts = privateKeys.map((key) => privateKeyToAccount(key));
  const settlementsQueuedMax = limits.inFlightPerSignerMax * limits.settleBatchMax;
  /** Settlements leased and not yet sent, per signer. */
  const leased = new Map<Address, number>(accounts.map((account) => [account.address, 0]));
  /** Settlements carried by transactions in flight, per signer. */
  const carried = new Map<Address, number>(accounts.map((account) => [account.address, 0]));
  /** Transactions in flight per `${chainId}:${address}`. */
  const transactions = new Map<string, number>();
  const leaseWaiters: Array<() => void> = [];
  /** acquireFor() waiters, per signer: woken by that signer's releases only. */
  const addressWaiters = new Map<Address, Array<() => void>>();
  const slotWaiters = new Map<string, Array<() => void>>();

  const leastLoaded = (): LocalAccount | undefined => {
    let best: LocalAccount | undefined;
    let bestLoad = Infinity;
    for (const account of accounts) {
      if (leased.get(account.address)! >= settlementsQueuedMax) continue;
      const load = leased.get(account.address)! + carried.get(account.address)!;
      if (load < bestLoad) [best, bestLoad] = [account, load];
    }
    return best;
  };

  const lease = (account: LocalAccount): SignerLease => {
    leased.set(account.address, leased.get(account.address)! + 1);
    let released = false;
    return {
      account,
      release: () => {
        if (released) return;
        released = true;
        leased.set(account.address, leased.get(account.address)! - 1);
        // The room freed is this signer's: its own waiters re-check (one takes it), and so does the
        // next waiter for any signer; whoever finds it taken waits again.
        const own = addressWaiters.get(account.address);
        if (own) {
          addressWaiters.delete(account.address);
          for (const wake of own) wake();
        }
        leaseWaiters.shift()?.();
      },
    };
  };

  const slotKey = (chainId: number, address: Address) => `${chainId}:${address.toLowerCase()}`;
  const slotFree = (key: string) => (transactions.get(key) ?? 0) < limits.inFlightPerSignerMax;
  const wakeSlotWaiters = (key: string) => {
    // Every waiter re-checks: a "free" waiter takes nothing, so waking one only could strand the next.
    const waiting = slotWaiters.get(key);
    if (!waiting) return;
    slotWaiters.delete(key);
    for (const wake of waiting) wake();
  };

  /** Waits until woken (through `register`) or `untilMs`, whichever comes first. */
  const waitUntil = (register: (wake: () => void) => void, unregister: (wake: () => void) => void, untilMs: number) =>
    new Promise<void>((resolve) => {
      // `untilMs` is on the engine's clock: compare on the same one.
      const timer = setTimeout(() => {
        unregister(wake);
        resolve();
      }, Math.max(0, untilMs - clock.nowMs()));
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      register(wake);
    });
  const waitForSlot = (key: string, untilMs: number) =>
    waitUntil(
      (wake) => slotWaiters.set(key, [...(slotWaiters.get(key) ?? []), wake]),
      (wake) => slotWaiters.set(key, (slotWaiters.get(key) ?? []).filter((entry) => entry !== wake)),
      untilMs,
    );

  const takeSlot = (key: string, account: Address): TransactionSlot => {
    transactions.set(key, (transactions.get(key) ?? 0) + 1);
    return {
      shares(settlements) {
        carried.set(account, carried.get(account)! + settlements);
        let open = settlements;
        const free = () => {
          transactions.set(key, transactions.get(key)! - 1);
          wakeSlotWaiters(key);
        };
        if (open === 0) free();
        return Array.from({ length: settlements }, () => {
          let released = false;
          return () => {
            if (released) return;
            released = true;
            carried.set(account, carried.get(account)! - 1);
            open -= 1;
            if (open === 0) free();
          };
        });
      },
    };
  };

  return {
    addresses: () => accounts.map((account) => account.address),
    async acquire(untilMs) {
      for (;;) {
        const account = leastLoaded();
        if (account) return lease(account);
        if (untilMs <= clock.nowMs()) {
          throw new SignersBusyError(`all ${accounts.length} signer(s) have ${settlementsQueuedMax} settlements waiting to be sent; retry shortly`);
        }
        await waitUntil(
          (wake) => leaseWaiters.push(wake),
          (wake) => {
            const index = leaseWaiters.indexOf(wake);
            if (index >= 0) leaseWaiters.splice(index, 1);
          },
          untilMs,
        );
      }
    },
    async acquireFor(address, untilMs) {
      const account = accounts.find((entry) => entry.address.toLowerCase() === address.toLowerCase());
      if (!account) throw new SignerNotHeldError(address);
      for (;;) {
        if (leased.get(account.address)! < settlementsQueuedMax) return lease(account);
        if (untilMs <= clock.nowMs()) {
          throw new SignersBusyError(`signer ${account.address} has ${settlementsQueuedMax} settlements waiting to be sent; retry shortly`);
        }
        await waitUntil(
          (wake) => addressWaiters.set(account.address, [...(addressWaiters.get(account.address) ?? []), wake]),
          (wake) => addressWaiters.set(account.address, (addressWaiters.get(account.address) ?? []).filter((entry) => entry !== wake)),
          untilMs,
        );
      }
    },
    async acquireTransaction(chainId, address, untilMs) {
      const key = slotKey(chainId, address);
      for (;;) {
        if (slotFree(key)) return takeSlot(key, address);
        if (untilMs <= clock.nowMs()) return undefined;
        await waitForSlot(key, untilMs);
      }
    },
    async transactionSlotFree(chainId, address, untilMs) {
      const key = slotKey(chainId, address);
      while (!slotFree(key) && untilMs > clock.nowMs()) await waitForSlot(key, untilMs);
    },
    byAddress: (address) => accounts.find((account) => account.address.toLowerCase() === address.toLowerCase()),
    inFlight: () => Object.fromEntries(accounts.map((account) => [account.address, leased.get(account.address)! + carried.get(account.address)!])) as Record<Address, number>,
    transactionsInFlight: () => {
      const counts: Record<string, number> = Object.fromEntries(accounts.map((account) => [account.address, 0]));
      for (const [key, count] of transactions) {
        const account = accounts.find((entry) => key.endsWith(`:${entry.address.toLowerCase()}`))!;
        counts[account.address] = (counts[account.address] ?? 0) + count;
      }
      return counts as Record<Address, number>;
    },
  };
}
