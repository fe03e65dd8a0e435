import { waitFor } from "../../helpers/wait.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEventLogs, type Address, type Hex } from "viem";
import { eip3009Abi } from "../../../src/exact-evm/abi.js";
import { anvilDevPrivateKeys } from "../../../src/sandbox/anvil.js";
import type { CrashPoint } from "../../../src/settlement/crash-points.js";
import { addressOf, keys, startTestChain, type TestChain } from "../../helpers/chain.js";
import { createTestDatabase, withPgClient, type TestDatabase } from "../../helpers/database.js";
import { facilitatorEnv, startFacilitatorProcess, type ExitStatus, type FacilitatorProcess } from "../../helpers/facilitator-process.js";
import { signPayment, v2Body, v2Requirements, type SignedPayment } from "../../helpers/payments.js";

/**
 * A real facilitator process SIGKILLed at each crash point of a settlement (X402_TEST_CRASH_AT),
 * then a fresh process (no crash point) on the same database: its watcher must finish every row,
 * consistently with the chain, without ever sending a second transaction for an authorization.
 *
 * Rows claimed by a dead process keep their lease (settleBudgetMs + 10 s): with a 3 s budget the
 * watcher may take them 13 s after the claim. (The budget must cover a settle's prepare on a loaded
 * 2-core machine, or the doomed process answers 503 before it reaches its crash point.) So the four crashes happen at once, each in its own
 * process with its own signer key (its tx nonces stay its own), on one chain and one database,
 * and one recovering process (holding all four keys, like a redeploy) finishes them all.
 */
const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const settleBudgetMs = 3_000;
const leaseMs = settleBudgetMs + 10_000;

interface Scenario {
  point: CrashPoint;
  signerKey: Hex;
  /** The row's status as the dead process left it. */
  statusAfterCrash: "claimed" | "signed" | "submitted";
  /** Transactions the dead process got onto the chain (automine: broadcast = mined). */
  txsAfterCrash: number;
  /** Where the new process's watcher must take the row. */
  finalStatus: "confirmed" | "failed";
}

const scenarios: Scenario[] = [
  { point: "after-claim", signerKey: keys.facilitator, statusAfterCrash: "claimed", txsAfterCrash: 0, finalStatus: "failed" },
  { point: "after-sign", signerKey: keys.facilitator2, statusAfterCrash: "signed", txsAfterCrash: 0, finalStatus: "confirmed" },
  { point: "after-broadcast", signerKey: keys.facilitator3, statusAfterCrash: "signed", txsAfterCrash: 1, finalStatus: "confirmed" },
  { point: "before-receipt", signerKey: anvilDevPrivateKeys[6]!, statusAfterCrash: "submitted", txsAfterCrash: 1, finalStatus: "confirmed" },
];
const signerKeys = scenarios.map((s) => s.signerKey);

/** What happened to one crash point in beforeAll; asserted in its own test below. */
interface Crash {
  scenario: Scenario;
  signer: Address;
  payment: SignedPayment;
  body: ReturnType<typeof v2Body>;
  txsBefore: number;
  callError: string | undefined;
  callAnswer: unknown;
  exit: ExitStatus;
  rowLeft: Record<string, any>;
  txsAfterCrash: number;
  crashedAtMs: number;
  finalAtMs?: number;
  finalRow?: Record<string, any>;
}

let chain: TestChain;
let database: TestDatabase;
const children: FacilitatorProcess[] = [];
let recovering: FacilitatorProcess;
const crashes = new Map<CrashPoint, Crash>();
const timings: Record<string, number> = {};

async function post(url: string, body: unknown) {
  const response = await fetch(`${url}/settle`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}


async function rowsFor(nonce: Hex) {
  return withPgClient(database.url, async (client) => (await client.query("select * from settlements where nonce = $1", [nonce.toLowerCase()])).rows);
}

/** Every AuthorizationUsed(payer, nonce) the token ever logged: more than one would be a double spend. */
async function authorizationUsedLogs(nonce: Hex) {
  return chain.publicClient.getContractEvents({ address: chain.token, abi: eip3009Abi, eventName: "AuthorizationUsed", args: { authorizer: payer, nonce }, fromBlock: 0n });
}

async function authorizationState(nonce: Hex): Promise<boolean> {
  return chain.publicClient.readContract({ address: chain.token, abi: eip3009Abi, functionName: "authorizationState", args: [payer, nonce] });
}

/** Whether the transaction logged the token's Transfer(payer → payTo, amount). */
async function paysPayTo(hash: Hex): Promise<boolean> {
  const receipt = await chain.publicClient.getTransactionReceipt({ hash });
  if (receipt.status !== "success") return false;
  return parseEventLogs({ abi: eip3009Abi, eventName: "Transfer", logs: receipt.logs }).some(
    (log) =>
      log.address.toLowerCase() === chain.token.toLowerCase() &&
      log.args.from.toLowerCase() === payer.toLowerCase() &&
      log.args.to.toLowerCase() === payTo.toLowerCase() &&
      log.args.value === amountAtomic,
  );
}

const txCount = (address: Address, blockTag: "latest" | "pending" = "latest") => chain.publicClient.getTransactionCount({ address, blockTag });
const isFinal = (row: Record<string, any> | undefined) => row !== undefined && (row.status === "confirmed" || row.status === "failed");

/** Starts a process armed at the crash point, settles one payment through it, and watches it die. */
async function crashOnce(scenario: Scenario, env: Record<string, string>): Promise<Crash> {
  const signer = addressOf(scenario.signerKey);
  const doomed = await startFacilitatorProcess({ env: { ...env, SIGNER_PRIVATE_KEYS: scenario.signerKey }, crashAt: scenario.point });
  children.push(doomed);
  const txsBefore = await txCount(signer);
  const payment = await signPayment({ payerKey: keys.payer, token: chain.token, chainId: chain.chainId, payTo, valueAtomic: amountAtomic });
  const body = v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic }));
  let callError: string | undefined;
  let callAnswer: unknown;
  try {
    callAnswer = await post(doomed.url, body);
  } catch (error) {
    callError = `${String(error)} ${String((error as Error).cause ?? "")}`;
  }
  const exit = await doomed.waitForExit(10_000);
  const crashedAtMs = Date.now();
  const [rowLeft] = await rowsFor(payment.authorization.nonce);
  // Automine: a broadcast transaction is mined at once; give the node a moment anyway.
  const txsAfterCrash = await waitFor("dead process's transactions on chain", async () => {
    const [latest, pending] = await Promise.all([txCount(signer), txCount(signer, "pending")]);
    return latest === pending ? latest - txsBefore : undefined;
  }, 5_000);
  return { scenario, signer, payment, body, txsBefore, callError, callAnswer, exit, rowLeft, txsAfterCrash, crashedAtMs };
}

beforeAll(async () => {
  const startedMs = Date.now();
  chain = await startTestChain();
  await chain.mint(payer, 1_000_000n);
  database = await createTestDatabase("crash_recovery");
  const env = facilitatorEnv({
    databaseUrl: database.url,
    rpcUrl: chain.rpcUrl,
    token: chain.token,
    signerKeys,
    limits: { SETTLE_BUDGET_MS: settleBudgetMs, DUPLICATE_WAIT_MS: settleBudgetMs, RECONCILE_INTERVAL_MS: 200, RPC_TIMEOUT_MS: 3_000 },
  });
  timings.setupMs = Date.now() - startedMs;

  // 1. Four processes, each dies at its crash point in the middle of a settlement.
  for (const crash of await Promise.all(scenarios.map((scenario) => crashOnce(scenario, env)))) crashes.set(crash.scenario.point, crash);
  timings.crashedMs = Date.now() - startedMs;

  // 2. A fresh process on the same database, with no crash point: its watcher finishes the rows.
  recovering = await startFacilitatorProcess({ env });
  children.push(recovering);
  timings.recoveringUpMs = Date.now() - startedMs;
  await waitFor(
    "every crashed row final",
    async () => {
      let all = true;
      for (const crash of crashes.values()) {
        if (crash.finalRow) continue;
        const [row] = await rowsFor(crash.payment.authorization.nonce);
        if (isFinal(row)) {
          crash.finalRow = row;
          crash.finalAtMs = Date.now();
        } else all = false;
      }
      return all;
    },
    leaseMs + 20_000,
    200,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}; recovering process output:\n${recovering.output()}`);
  });
  timings.allFinalMs = Date.now() - startedMs;
}, 90_000); // ~30 s normally (child starts + the 11 s lease); the bound leaves room for a busy machine

afterAll(async () => {
  for (const child of children) await child.kill("SIGKILL").catch(() => undefined);
  await database?.drop();
  await chain?.stop();
  console.log(
    `[crash-recovery] 4 crash points, 5 processes, 4 signers, 1 chain, 1 database: setup ${timings.setupMs} ms, all crashed at ${timings.crashedMs} ms, ` +
      `recovering process up at ${timings.recoveringUpMs} ms, all rows final at ${timings.allFinalMs} ms (claim lease ${leaseMs} ms); ` +
      [...crashes.values()].map((c) => `${c.scenario.point}: ${c.rowLeft?.status} → ${c.finalRow?.status} ${c.finalAtMs! - c.crashedAtMs} ms after SIGKILL`).join("; "),
  );
});

describe("settlement crash recovery (a real process SIGKILLed at each crash point)", () => {
  it.for(scenarios)("crash $point: the row is finished consistently with the chain, and a retry never pays twice", async (scenario) => {
    const crash = crashes.get(scenario.point)!;
    const nonce = crash.payment.authorization.nonce;

    // The process died by SIGKILL at the crash point and the caller got no answer (socket hang up).
    expect(crash.callAnswer, "the dying process must not answer").toBeUndefined();
    expect(crash.callError).toMatch(/fetch failed|socket|closed|ECONNRESET/i);
    expect(crash.exit).toEqual({ code: null, signal: "SIGKILL" });
    // It left exactly the crash point's state behind.
    expect(crash.rowLeft).toMatchObject({ status: scenario.statusAfterCrash, pending_answered: false, success_answered: false });
    if (scenario.statusAfterCrash === "claimed") expect(crash.rowLeft.tx_hash).toBeNull();
    else expect(crash.rowLeft).toMatchObject({ tx_hash: expect.stringMatching(/^0x[0-9a-f]{64}$/), signer: crash.signer.toLowerCase() });
    expect(crash.txsAfterCrash).toBe(scenario.txsAfterCrash);

    // The new process's watcher made it final, consistently with the chain.
    const final = crash.finalRow!;
    expect(final.status, recovering.output()).toBe(scenario.finalStatus);
    const usedLogs = await authorizationUsedLogs(nonce);
    if (final.status === "confirmed") {
      // confirmed ⇔ a Transfer(payer → payTo, value) for this authorization, in the recorded tx.
      expect(usedLogs).toHaveLength(1);
      expect(usedLogs[0]!.transactionHash).toBe(final.tx_hash);
      expect(final.tx_hash).toBe(crash.rowLeft.tx_hash); // the transaction signed before the crash, not a new one
      expect(final.settled_tx_hash).toBe(final.tx_hash);
      expect(await paysPayTo(final.settled_tx_hash)).toBe(true);
      expect(await authorizationState(nonce)).toBe(true);
      const tx = await chain.publicClient.getTransaction({ hash: final.tx_hash });
      expect(tx.from.toLowerCase()).toBe(crash.signer.toLowerCase());
      expect(tx.nonce).toBe(Number(final.tx_nonce));
    } else {
      // failed ⇔ the authorization was never used on chain.
      expect(usedLogs).toHaveLength(0);
      expect(await authorizationState(nonce)).toBe(false);
      expect(final).toMatchObject({ tx_hash: null, broadcast_at: null });
    }

    // The caller retries the identical payment on the recovered service.
    const retry = await post(recovering.url, crash.body);
    if (final.status === "failed") {
      // Nothing reached the chain: the authorization is free, and it settles now, once.
      expect(retry.body, recovering.output()).toMatchObject({ success: true, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
      expect(await paysPayTo(retry.body.transaction)).toBe(true);
    } else if (final.success_answered) {
      expect(retry.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: final.tx_hash });
    } else {
      // Nobody was told "success" yet: the one success, or duplicate_settlement — always with the hash.
      expect(retry.body.transaction).toBe(final.tx_hash);
      expect(retry.body.success === true || retry.body.errorReason === "duplicate_settlement", JSON.stringify(retry.body)).toBe(true);
    }
    const again = await post(recovering.url, crash.body);
    expect(again.body).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: retry.body.transaction });

    // One authorization, one transaction: one row, one AuthorizationUsed log, in that row's tx.
    const rows = await rowsFor(nonce);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "confirmed", settled_tx_hash: rows[0].tx_hash });
    const logs = await authorizationUsedLogs(nonce);
    expect(logs).toHaveLength(1);
    expect(logs[0]!.transactionHash).toBe(rows[0].tx_hash);
    console.log(`[crash-recovery] ${scenario.point}: identical retry after recovery answered ${retry.body.success ? "success" : retry.body.errorReason}`);
  });

  it("sent exactly one transaction per authorization: each signer's chain nonce equals its broadcast rows, nothing left pending", async () => {
    const rows = await withPgClient(database.url, async (client) => (await client.query("select * from settlements")).rows);
    expect(rows).toHaveLength(scenarios.length);
    expect(rows.filter((row) => !isFinal(row))).toEqual([]);
    expect(rows.every((row) => row.status === "confirmed")).toBe(true);
    for (const key of signerKeys) {
      const address = addressOf(key);
      const ours = rows.filter((row) => row.signer === address.toLowerCase());
      expect(await txCount(address), address).toBe(ours.length);
      expect(await txCount(address, "pending"), address).toBe(ours.length);
      expect(new Set(ours.map((row) => Number(row.tx_nonce)))).toEqual(new Set(ours.map((_, i) => i)));
    }
    const transfers = await chain.publicClient.getContractEvents({ address: chain.token, abi: eip3009Abi, eventName: "AuthorizationUsed", args: { authorizer: payer }, fromBlock: 0n });
    expect(transfers).toHaveLength(scenarios.length);
    expect(await chain.balanceOf(payTo)).toBe(BigInt(scenarios.length) * amountAtomic);
  });
});
