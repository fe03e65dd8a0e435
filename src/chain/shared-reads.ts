import type { Address, PublicClient } from "viem";
import { permit2Address } from "../contracts/permit2.js";
import { permit2TokenAbi } from "../permit2/abi.js";
import { SingleFlight } from "../util/single-flight.js";

/**
 * The chain reads every settlement of a burst asks at the same moment — fees, and its signer's
 * pending nonce and balance; a payer's token balance and allowance to Permit2 — shared by concurrent callers (one RPC call for all of them, never
 * a cached answer: see SingleFlight). Per chain, one for the process.
 */
export class SharedChainReads {
  private readonly flights = new SingleFlight();

  constructor(private readonly client: PublicClient) {}

  /** EIP-1559 fees as viem estimates them (the next block's base fee with headroom, plus the node's tip). */
  fees(): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    return this.flights.run("fees", () => this.client.estimateFeesPerGas());
  }

  pendingNonce(address: Address): Promise<number> {
    return this.flights.run(`nonce:${address.toLowerCase()}`, () => this.client.getTransactionCount({ address, blockTag: "pending" }));
  }

  balanceWei(address: Address): Promise<bigint> {
    return this.flights.run(`balance:${address.toLowerCase()}`, () => this.client.getBalance({ address }));
  }

  /** `owner`'s balance of `token` (a payer's funds reservation reads it: TransferMethodDriver.readFunds). */
  tokenBalance(token: Address, owner: Address): Promise<bigint> {
    return this.flights.run(`token-balance:${token.toLowerCase()}:${owner.toLowerCase()}`, () =>
      this.client.readContract({ address: token, abi: permit2TokenAbi, functionName: "balanceOf", args: [owner] }),
    );
  }

  /** What `owner` allows Permit2 to take of `token`. */
  permit2Allowance(token: Address, owner: Address): Promise<bigint> {
    return this.flights.run(`permit2-allowance:${token.toLowerCase()}:${owner.toLowerCase()}`, () =>
      this.client.readContract({ address: token, abi: permit2TokenAbi, functionName: "allowance", args: [owner, permit2Address] }),
    );
  }
}
