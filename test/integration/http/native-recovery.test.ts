/**
 * Cold verify through libsecp256k1 (src/exact-evm/recover-fast.ts) against real Anvil and Postgres:
 * never-seen payments are verified and settled with the native recovery and no worker thread, and
 * signatures that are wrong in each way get the reason viem's recovery implies (viem computes the
 * expectation here, the facilitator never runs it).
 */
import { secp256k1 } from "@noble/curves/secp256k1";
import { hashTypedData, recoverAddress, type Hex } from "viem";
import { describe, expect, it } from "vitest";
import { fastRecoveryStatus } from "../../../src/exact-evm/recover-fast.js";
import { transferWithAuthorizationTypes } from "../../../src/exact-evm/typed-data.js";
import { addressOf, keys } from "../../helpers/chain.js";
import { usePaymentFixture } from "../../helpers/fixture.js";
import { postJson } from "../../helpers/http.js";
import { malleate, signPayment, v2Body, v2Requirements, type SignedPayment } from "../../helpers/payments.js";
import { settlementRows } from "../../helpers/sdk.js";

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const amountAtomic = 10_000n;
const n = secp256k1.CURVE.n;
const hex64 = (value: bigint) => value.toString(16).padStart(64, "0");

const fx = usePaymentFixture({ label: "native_recovery", payerBalanceAtomic: 10_000_000n });

const sign = () => signPayment({ payerKey: keys.payer, token: fx.chain.token, chainId: fx.chain.chainId, payTo, valueAtomic: amountAtomic });
const body = (payment: SignedPayment) => v2Body(payment, v2Requirements({ token: fx.chain.token, payTo, amountAtomic }));

/** The EIP-712 digest the payer signs (viem's own hashTypedData). */
function digestOf(payment: SignedPayment): Hex {
  const { from, to, value, validAfter, validBefore, nonce } = payment.authorization;
  return hashTypedData({
    domain: { name: "USDC", version: "2", chainId: fx.chain.chainId, verifyingContract: fx.chain.token },
    types: transferWithAuthorizationTypes,
    primaryType: "TransferWithAuthorization",
    message: { from, to, value: BigInt(value), validAfter: BigInt(validAfter), validBefore: BigInt(validBefore), nonce },
  });
}

/**
 * An (r, s) for `digest` whose recovery is the point at infinity: R = kG, s = digest / k, so that
 * s·R − digest·G = O. A low s (else it is refused as malleable before any recovery).
 */
function infinitySignature(digest: Hex): Hex {
  for (let k = 7n; ; k += 1n) {
    const point = secp256k1.ProjectivePoint.BASE.multiply(k).toAffine();
    const s = (BigInt(digest) * modInverse(k)) % n;
    if (point.x >= n || s === 0n || s > n / 2n) continue;
    return `0x${hex64(point.x)}${hex64(s)}${(27 + Number(point.y & 1n)).toString(16)}`;
  }
}
function modInverse(value: bigint): bigint {
  let [a, b, x, y] = [value % n, n, 1n, 0n];
  while (b !== 0n) {
    const q = a / b;
    [a, b, x, y] = [b, a - q * b, y, x - q * y];
  }
  return ((x % n) + n) % n;
}

describe("cold verify with libsecp256k1", () => {
  it("verifies 64 never-seen payments at once and settles some, all recovered natively, no worker started", async () => {
    expect(fastRecoveryStatus()).toEqual({ native: true });
    const pool = fx.facilitator.services.recoverPool;
    expect(pool.native).toBe(true);
    const before = pool.stats();
    const payments = await Promise.all(Array.from({ length: 64 }, sign));
    const answers = await Promise.all(payments.map((payment) => postJson(fx.facilitator.app, "/verify", body(payment))));
    expect(answers.map((answer) => [answer.status, answer.body])).toEqual(payments.map(() => [200, { isValid: true, payer }]));
    const after = pool.stats();
    expect(after.recoveredNative - before.recoveredNative).toBe(64);
    expect(after).toMatchObject({ recoveredInline: 0, recoveredOnWorkers: 0, workersRunning: 0 });

    const balanceBefore = await fx.chain.balanceOf(payTo);
    // Settle three never verified (the settle path recovers them itself) and three verified above.
    const fresh = await Promise.all(Array.from({ length: 3 }, sign));
    const settled = await Promise.all([...fresh, ...payments.slice(0, 3)].map((payment) => postJson(fx.facilitator.app, "/settle", body(payment))));
    for (const answer of settled) expect(answer.body).toMatchObject({ success: true, payer, amount: amountAtomic.toString() });
    expect(await fx.chain.balanceOf(payTo)).toBe(balanceBefore + 6n * amountAtomic);
    expect(pool.stats()).toMatchObject({ recoveredInline: 0, recoveredOnWorkers: 0, workersRunning: 0 });
  });

  it("answers each kind of bad signature with the reason viem's recovery implies, at verify and at settle", async () => {
    const bad: { kind: string; make: (payment: SignedPayment, digest: Hex) => Hex | Promise<Hex>; reason: string }[] = [
      { kind: "signed by another key", make: async (payment) => (await signPayment({ ...signOptions(payment), signerKey: keys.stranger })).signature, reason: "invalid_exact_evm_signature" },
      { kind: "v parity flipped", make: (payment) => `${payment.signature.slice(0, 130)}${payment.signature.endsWith("1b") ? "1c" : "1b"}` as Hex, reason: "invalid_exact_evm_signature" },
      { kind: "high s (malleated twin)", make: (payment) => malleate(payment.signature), reason: "invalid_exact_evm_signature" },
      { kind: "v byte 29", make: (payment) => `${payment.signature.slice(0, 130)}1d` as Hex, reason: "invalid_exact_evm_failed_to_parse_signature" },
      { kind: "r = 0", make: (payment) => `0x${"00".repeat(32)}${payment.signature.slice(66)}` as Hex, reason: "invalid_exact_evm_failed_to_parse_signature" },
      { kind: "r = n", make: (payment) => `0x${hex64(n)}${payment.signature.slice(66)}` as Hex, reason: "invalid_exact_evm_failed_to_parse_signature" },
      { kind: "s = 0", make: (payment) => `${payment.signature.slice(0, 66)}${"00".repeat(32)}${payment.signature.slice(130)}` as Hex, reason: "invalid_exact_evm_failed_to_parse_signature" },
      // x = 5 is no point's x coordinate on secp256k1 (5³ + 7 = 132 is not a square mod p).
      { kind: "r off the curve", make: (payment) => `0x${hex64(5n)}${payment.signature.slice(66)}` as Hex, reason: "invalid_exact_evm_failed_to_parse_signature" },
      { kind: "recovers the point at infinity", make: (_payment, digest) => infinitySignature(digest), reason: "invalid_exact_evm_failed_to_parse_signature" },
    ];
    const pool = fx.facilitator.services.recoverPool;
    for (const { kind, make, reason } of bad) {
      const payment = await sign();
      const digest = digestOf(payment);
      const signature = await make(payment, digest);
      const tampered = { ...payment, signature };
      const before = pool.stats().recoveredNative;
      const verified = await postJson(fx.facilitator.app, "/verify", body(tampered));
      expect(verified.body, kind).toMatchObject({ isValid: false, invalidReason: reason, payer });
      const settled = await postJson(fx.facilitator.app, "/settle", body(tampered));
      expect(settled.body, kind).toMatchObject({ success: false, errorReason: reason, transaction: "" });
      expect(await settlementRows(fx.database.url, payment.authorization.nonce), kind).toEqual([]);
      // A high s, a v byte out of the set and an r or s out of [1, n-1] are refused by the parse before any
      // recovery (viem's parseSignature); the others went through the native recovery.
      const parsedAway = ["high s (malleated twin)", "v byte 29", "r = 0", "r = n", "s = 0"].includes(kind);
      expect(pool.stats().recoveredNative > before, kind).toBe(!parsedAway);
      // viem, the source of truth, agrees: no signer at all for the unparseable ones, someone else for the wrong signers.
      const truth = await recoverAddress({ hash: digest, signature }).then(
        (address) => ({ address }),
        () => ({ error: true }),
      );
      // (The high-s twin does recover the payer: it is refused for its malleability, as USDC refuses it.)
      if (reason === "invalid_exact_evm_failed_to_parse_signature") expect(truth, kind).toEqual({ error: true });
      else if (kind === "high s (malleated twin)") expect(truth, kind).toEqual({ address: payer });
      else expect(truth, kind).toMatchObject({ address: expect.not.stringMatching(new RegExp(`^${payer}$`, "i")) });
    }
  });
});

function signOptions(payment: SignedPayment) {
  const { to, value, validAfter, validBefore, nonce } = payment.authorization;
  return {
    payerKey: keys.payer,
    token: fx.chain.token,
    chainId: fx.chain.chainId,
    payTo: to,
    valueAtomic: BigInt(value),
    validAfterSeconds: BigInt(validAfter),
    validBeforeSeconds: BigInt(validBefore),
    nonce,
  };
}
