/**
 * The pure checks of a Permit2 payment (src/permit2/checks.ts), over bodies built the way production
 * builds them: a v2 wire body → normalize() → resolvePayment() against the built-in Base Sepolia
 * config. Each code from one minimal wrong body; then bodies wrong in two ways, where the code
 * @x402/evm 2.27 gives first must win. 2.27's order is read from its TypeScript (the source maps of
 * node_modules/@x402/evm/dist/esm): upto/facilitator/permit2.ts verifyUptoPermit2, exact/facilitator/
 * permit2.ts verifyPermit2, and shared/permit2.ts validateEip2612PermitForPayment (which both call
 * after the signature). Where ours deliberately differs (comments in checks.ts), the test says so.
 */
import type { Address } from "viem";
import { describe, expect, it } from "vitest";
import { builtinNetworks } from "../../../src/config.js";
import { permit2Address, x402ExactPermit2ProxyAddress, x402UptoPermit2ProxyAddress } from "../../../src/contracts/permit2.js";
import { isRejection, resolvePayment, type ResolvedPayment } from "../../../src/exact-evm/resolve.js";
import { checkPermit2ForSettle, checkPermit2ForVerify, checkPermit2ValidityAtSigning, checkPermit2Window } from "../../../src/permit2/checks.js";
import { normalize } from "../../../src/protocol/normalize.js";
import { eip2612PermitOf } from "../../../src/permit2/chain-state.js";
import { permit2SettlementCall, submitsEip2612Permit } from "../../../src/permit2/settle-call.js";

type Scheme = "exact" | "upto";

const network = builtinNetworks.find((candidate) => candidate.chainId === 84532)!;
const token = network.assets[0]!.address;
const otherToken: Address = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
const owner: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const payTo: Address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const stranger: Address = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
/** One of "our" signer keys: upto's witness.facilitator must be one. */
const facilitator: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const nowSeconds = 1_900_000_000n;
const options = { signerAddresses: [facilitator], minAmountAtomic: 1n };
const served = () => true;

/** A v2 wire body, as a resource server forwards it: every part a plain JSON object a case may edit. */
interface Wire {
  requirements: Record<string, unknown>;
  accepted: Record<string, unknown>;
  authorization: Record<string, unknown> & { permitted: Record<string, string>; witness: Record<string, string> };
  extensions?: { eip2612GasSponsoring: { info: Record<string, string> } };
}
type Mutation = (wire: Wire) => void;

function wire(scheme: Scheme): Wire {
  const requirements = { scheme, network: "eip155:84532", amount: "500000", asset: token, payTo, maxTimeoutSeconds: 300, extra: { name: "USDC", version: "2", assetTransferMethod: "permit2" } };
  return {
    requirements,
    accepted: structuredClone(requirements),
    authorization: {
      from: owner,
      permitted: { token, amount: "500000" },
      spender: scheme === "upto" ? x402UptoPermit2ProxyAddress : x402ExactPermit2ProxyAddress,
      nonce: "7",
      deadline: `${nowSeconds + 300n}`,
      witness: scheme === "upto" ? { to: payTo, facilitator, validAfter: "0" } : { to: payTo, validAfter: "0" },
    },
  };
}

/** The eip2612GasSponsoring extension as the 2.27 client attaches it (exact/client/eip2612.ts): a permit of the permitted amount to Permit2. */
const withEip2612: Mutation = (w) => {
  w.extensions = {
    eip2612GasSponsoring: {
      info: { from: owner, asset: token, spender: permit2Address, amount: w.authorization.permitted.amount!, nonce: "0", deadline: `${nowSeconds + 300n}`, signature: `0x${"22".repeat(65)}`, version: "1" },
    },
  };
};

function resolved(scheme: Scheme, ...mutations: Mutation[]): ResolvedPayment {
  const w = wire(scheme);
  for (const mutate of mutations) mutate(w);
  const normalized = normalize(
    {
      paymentPayload: { x402Version: 2, accepted: w.accepted, payload: { signature: `0x${"11".repeat(65)}`, permit2Authorization: w.authorization }, ...(w.extensions ? { extensions: w.extensions } : {}) },
      paymentRequirements: w.requirements,
    },
    served,
  );
  if (!normalized.ok) throw new Error(`normalize refused the body: ${normalized.rejection.reason}`);
  const payment = resolvePayment(normalized.request, (chainId) => (chainId === network.chainId ? network : undefined));
  if (isRejection(payment)) throw new Error(`resolvePayment refused the body: ${payment.reason}`);
  return payment;
}

const verifyCode = (scheme: Scheme, ...mutations: Mutation[]) => checkPermit2ForVerify(resolved(scheme, ...mutations), nowSeconds, options)?.reason;

/** /settle of an upto payment: the requirements' amount is the charge (≤ the accepted cap, which the permit is for). */
const charge = (amount: string): Mutation => (w) => {
  w.requirements.amount = amount;
};
const settleCode = (scheme: Scheme, ...mutations: Mutation[]) => checkPermit2ForSettle(resolved(scheme, ...mutations), options)?.reason;

// One wrong field each. The names are 2.27's checks (verifyUptoPermit2 / verifyPermit2 /
// validateEip2612PermitForPayment), in 2.27's order; `upto` marks the upto-only one.
const acceptedScheme: Mutation = (w) => (w.accepted.scheme = w.requirements.scheme === "upto" ? "exact" : "upto");
const acceptedNetwork: Mutation = (w) => (w.accepted.network = "eip155:8453");
const wrongSpender: Mutation = (w) => (w.authorization.spender = w.requirements.scheme === "upto" ? x402ExactPermit2ProxyAddress : x402UptoPermit2ProxyAddress);
const wrongRecipient: Mutation = (w) => (w.authorization.witness.to = stranger);
const foreignFacilitator: Mutation = (w) => (w.authorization.witness.facilitator = stranger);
const deadlineTooClose: Mutation = (w) => (w.authorization.deadline = `${nowSeconds + 5n}`);
const notYetValid: Mutation = (w) => (w.authorization.witness.validAfter = `${nowSeconds + 1n}`);
const permittedAmount: Mutation = (w) => (w.authorization.permitted.amount = "400000");
const permittedToken: Mutation = (w) => (w.authorization.permitted.token = otherToken);
// The extension's fields (applied after withEip2612).
const eip2612Malformed: Mutation = (w) => (w.extensions!.eip2612GasSponsoring.info.amount = "-1");
const eip2612From: Mutation = (w) => (w.extensions!.eip2612GasSponsoring.info.from = stranger);
const eip2612Asset: Mutation = (w) => (w.extensions!.eip2612GasSponsoring.info.asset = otherToken);
const eip2612Spender: Mutation = (w) => (w.extensions!.eip2612GasSponsoring.info.spender = x402ExactPermit2ProxyAddress);
const eip2612Deadline: Mutation = (w) => (w.extensions!.eip2612GasSponsoring.info.deadline = `${nowSeconds + 5n}`);

interface Fault {
  name: string;
  mutate: Mutation;
  code: Record<Scheme, string | undefined>;
  /** Needs the eip2612GasSponsoring extension on the body. */
  eip2612?: boolean;
}

/** 2.27's check order, first to last (undefined: not a check of that scheme). */
const faultsIn227Order: Fault[] = [
  { name: "accepted.scheme is not the required scheme", mutate: acceptedScheme, code: { exact: "unsupported_payload_type", upto: "invalid_upto_evm_scheme" } },
  { name: "accepted.network is not the required network", mutate: acceptedNetwork, code: { exact: "invalid_exact_evm_network_mismatch", upto: "invalid_upto_evm_network_mismatch" } },
  { name: "the spender is not the scheme's proxy", mutate: wrongSpender, code: { exact: "invalid_permit2_spender", upto: "invalid_permit2_spender" } },
  { name: "witness.to is not payTo", mutate: wrongRecipient, code: { exact: "invalid_permit2_recipient_mismatch", upto: "invalid_permit2_recipient_mismatch" } },
  { name: "witness.facilitator is not one of our signers", mutate: foreignFacilitator, code: { exact: undefined, upto: "upto_facilitator_mismatch" } },
  { name: "the deadline is less than 6 s away", mutate: deadlineTooClose, code: { exact: "permit2_deadline_expired", upto: "permit2_deadline_expired" } },
  { name: "witness.validAfter is in the future", mutate: notYetValid, code: { exact: "permit2_not_yet_valid", upto: "permit2_not_yet_valid" } },
  { name: "permitted.amount is not the required amount", mutate: permittedAmount, code: { exact: "permit2_amount_mismatch", upto: "permit2_amount_mismatch" } },
  { name: "permitted.token is not the asset", mutate: permittedToken, code: { exact: "permit2_token_mismatch", upto: "permit2_token_mismatch" } },
  { name: "the EIP-2612 extension has a field of the wrong form", mutate: eip2612Malformed, eip2612: true, code: { exact: "invalid_eip2612_extension_format", upto: "invalid_eip2612_extension_format" } },
  { name: "the EIP-2612 permit is not from the payer", mutate: eip2612From, eip2612: true, code: { exact: "eip2612_from_mismatch", upto: "eip2612_from_mismatch" } },
  { name: "the EIP-2612 permit is for another token", mutate: eip2612Asset, eip2612: true, code: { exact: "eip2612_asset_mismatch", upto: "eip2612_asset_mismatch" } },
  { name: "the EIP-2612 permit's spender is not Permit2", mutate: eip2612Spender, eip2612: true, code: { exact: "eip2612_spender_not_permit2", upto: "eip2612_spender_not_permit2" } },
  { name: "the EIP-2612 permit's deadline is less than 6 s away", mutate: eip2612Deadline, eip2612: true, code: { exact: "eip2612_deadline_expired", upto: "eip2612_deadline_expired" } },
];

const schemes: Scheme[] = ["exact", "upto"];

describe("checkPermit2ForVerify: one wrong field, one code", () => {
  it.each(schemes)("%s: a well-formed body passes, with and without the EIP-2612 extension", (scheme) => {
    expect(verifyCode(scheme)).toBeUndefined();
    expect(verifyCode(scheme, withEip2612)).toBeUndefined();
  });

  const cases = schemes.flatMap((scheme) =>
    faultsIn227Order.filter((fault) => fault.code[scheme] !== undefined).map((fault) => ({ scheme, name: fault.name, fault })),
  );
  it.each(cases)("$scheme: $name → its code", ({ scheme, fault }) => {
    const code = fault.code[scheme];
    expect(verifyCode(scheme, ...(fault.eip2612 ? [withEip2612] : []), fault.mutate)).toBe(code);
  });

  it.each(schemes)("%s: the window's edges are 2.27's: a deadline exactly 6 s away and a validAfter of now pass", (scheme) => {
    const atEdges: Mutation = (w) => {
      w.authorization.deadline = `${nowSeconds + 6n}`;
      w.authorization.witness.validAfter = `${nowSeconds}`;
      withEip2612(w);
      w.extensions!.eip2612GasSponsoring.info.deadline = `${nowSeconds + 6n}`;
    };
    expect(verifyCode(scheme, atEdges)).toBeUndefined();
  });

  // Ours, not 2.27's (2.27's verifyPermit2 / verifyUptoPermit2 compare only accepted's scheme and network).
  it.each(schemes)("%s (ours): accepted.asset, .payTo, .amount or .extra differing from the requirements → invalid_payment_requirements", (scheme) => {
    const mutations: Mutation[] = [
      (w) => (w.accepted.asset = otherToken),
      (w) => (w.accepted.payTo = stranger),
      (w) => (w.accepted.amount = "600000"),
      (w) => ((w.accepted.extra as Record<string, string>).version = "1"),
    ];
    for (const mutate of mutations) expect(verifyCode(scheme, mutate)).toBe("invalid_payment_requirements");
  });

  it.each(schemes)("%s (ours): a permit below this facilitator's minimum → amount_below_minimum", (scheme) => {
    expect(checkPermit2ForVerify(resolved(scheme), nowSeconds, { ...options, minAmountAtomic: 500_001n })?.reason).toBe("amount_below_minimum");
    expect(checkPermit2ForVerify(resolved(scheme), nowSeconds, { ...options, minAmountAtomic: 500_000n })).toBeUndefined();
  });

  // 2.27 lets the proxy find this (simulation → diagnosePermit2SimulationFailure); ours says it before any chain call.
  it.each(schemes)("%s (ours, before the chain): an EIP-2612 permit for another value than the permitted amount → permit2_2612_amount_mismatch", (scheme) => {
    expect(verifyCode(scheme, withEip2612, (w) => (w.extensions!.eip2612GasSponsoring.info.amount = "500001"))).toBe("permit2_2612_amount_mismatch");
  });

  // 2.27 takes any hex (validateEip2612GasSponsoringInfo) and fails at splitEip2612Signature inside its simulation; ours: checkEip2612Terms.
  it.each(schemes)("%s (ours, before the chain): an EIP-2612 signature that is not 65 bytes → invalid_eip2612_extension_format", (scheme) => {
    expect(verifyCode(scheme, withEip2612, (w) => (w.extensions!.eip2612GasSponsoring.info.signature = `0x${"22".repeat(64)}`))).toBe("invalid_eip2612_extension_format");
  });

  it("upto: the witness facilitator matches our signer whatever its case", () => {
    expect(verifyCode("upto", (w) => (w.authorization.witness.facilitator = facilitator.toLowerCase()))).toBeUndefined();
  });
});

/** Every pair (first, second) of faults of `list` that both apply to `scheme`, first before second in 2.27's order. */
function pairs(scheme: Scheme, list: Fault[]) {
  const applicable = list.filter((fault) => fault.code[scheme] !== undefined);
  return applicable.flatMap((first, i) => applicable.slice(i + 1).map((second) => ({ scheme, first, second, name: `${first.name} + ${second.name}` })));
}

/**
 * The EIP-2612 deadline is the one check ours moves: checkPermit2Window checks it with the permit's
 * window ("its deadline is checked with the window", checkEip2612Terms' comment), where 2.27 checks
 * it last of validateEip2612PermitForPayment. Pairs with it are below.
 */
const withoutEip2612Deadline = faultsIn227Order.filter((fault) => fault.mutate !== eip2612Deadline);

describe("checkPermit2ForVerify: a body wrong in two ways gets the code 2.27 gives first", () => {
  const cases = schemes.flatMap((scheme) => pairs(scheme, withoutEip2612Deadline));
  it.each(cases)("$scheme: $name → the first's code", ({ scheme, first, second }) => {
    const eip2612 = first.eip2612 || second.eip2612 ? [withEip2612] : [];
    expect(verifyCode(scheme, ...eip2612, first.mutate, second.mutate)).toBe(first.code[scheme]);
  });

  it.each(schemes)("%s (ours): accepted differing from the requirements beyond scheme and network comes after them, before the parties", (scheme) => {
    const acceptedAsset: Mutation = (w) => (w.accepted.asset = otherToken);
    expect(verifyCode(scheme, acceptedNetwork, acceptedAsset)).toBe(faultsIn227Order[1]!.code[scheme]);
    expect(verifyCode(scheme, acceptedAsset, wrongSpender)).toBe("invalid_payment_requirements");
  });

  it.each(schemes)("%s (ours): the minimum comes after the token, before the EIP-2612 extension", (scheme) => {
    const belowMinimum = { ...options, minAmountAtomic: 10_000_000n };
    expect(checkPermit2ForVerify(resolved(scheme, permittedToken), nowSeconds, belowMinimum)?.reason).toBe("permit2_token_mismatch");
    expect(checkPermit2ForVerify(resolved(scheme, withEip2612, eip2612From), nowSeconds, belowMinimum)?.reason).toBe("amount_below_minimum");
  });
});

describe("checkPermit2ForVerify: the EIP-2612 deadline, deliberately unlike 2.27, is checked with the permit's window", () => {
  it.each(schemes)("%s: after the permit's own deadline and validAfter, as 2.27 orders those", (scheme) => {
    expect(verifyCode(scheme, withEip2612, deadlineTooClose, eip2612Deadline)).toBe("permit2_deadline_expired");
    expect(verifyCode(scheme, withEip2612, notYetValid, eip2612Deadline)).toBe("permit2_not_yet_valid");
    expect(verifyCode(scheme, withEip2612, wrongRecipient, eip2612Deadline)).toBe("invalid_permit2_recipient_mismatch");
  });

  // 2.27 (verifyPermit2 / verifyUptoPermit2 → validateEip2612PermitForPayment) would answer the other fault's code.
  it.each(
    schemes.flatMap((scheme) =>
      [
        { other: permittedAmount, theirs: "permit2_amount_mismatch" },
        { other: permittedToken, theirs: "permit2_token_mismatch" },
        { other: eip2612From, theirs: "eip2612_from_mismatch" },
        { other: eip2612Asset, theirs: "eip2612_asset_mismatch" },
        { other: eip2612Spender, theirs: "eip2612_spender_not_permit2" },
      ].map((c) => ({ scheme, ...c })),
    ),
  )("$scheme: ours eip2612_deadline_expired before what 2.27 answers first ($theirs)", ({ scheme, other }) => {
    expect(verifyCode(scheme, withEip2612, eip2612Deadline, other)).toBe("eip2612_deadline_expired");
  });

  it.each(schemes)("%s: a malformed extension is invalid_eip2612_extension_format whatever its deadline (as 2.27: format first)", (scheme) => {
    expect(verifyCode(scheme, withEip2612, eip2612Deadline, eip2612Malformed)).toBe("invalid_eip2612_extension_format");
  });
});

describe("checkPermit2ForSettle", () => {
  it.each(schemes)("%s: no window at /settle (checked after the claim lookup): an expired, not-yet-valid permit passes the pure part", (scheme) => {
    expect(settleCode(scheme, (w) => (w.authorization.deadline = "1000"), notYetValid, withEip2612, eip2612Deadline)).toBeUndefined();
  });

  it.each(
    schemes.flatMap((scheme) =>
      faultsIn227Order.filter((fault) => fault.code[scheme] !== undefined && fault.mutate !== deadlineTooClose && fault.mutate !== notYetValid && fault.mutate !== eip2612Deadline).map((fault) => ({ scheme, name: fault.name, fault })),
    ),
  )("$scheme: $name → the same code as /verify", ({ scheme, fault }) => {
    expect(settleCode(scheme, ...(fault.eip2612 ? [withEip2612] : []), fault.mutate)).toBe(fault.code[scheme]);
  });

  it("upto: a charge below the cap passes (the permit and accepted stay at the cap); 0 passes below any minimum", () => {
    expect(settleCode("upto", charge("1"))).toBeUndefined();
    expect(checkPermit2ForSettle(resolved("upto", charge("0")), { ...options, minAmountAtomic: 1000n })).toBeUndefined();
  });

  it("upto: a charge above the accepted cap → invalid_upto_evm_payload_settlement_exceeds_amount", () => {
    expect(settleCode("upto", charge("500001"))).toBe("invalid_upto_evm_payload_settlement_exceeds_amount");
  });

  it("upto (ours): a non-zero charge below the minimum → amount_below_minimum", () => {
    expect(checkPermit2ForSettle(resolved("upto", charge("999")), { ...options, minAmountAtomic: 1000n })?.reason).toBe("amount_below_minimum");
  });

  it("exact: the requirements' amount is the permit's, as at /verify", () => {
    expect(settleCode("exact", (w) => (w.requirements.amount = w.accepted.amount = "400000"))).toBe("permit2_amount_mismatch");
  });

  // 2.27's settleUptoPermit2 re-verifies with requirements.amount := permitted.amount, so it never
  // compares the permit with accepted.amount, and checks the charge against permitted.amount last
  // (after the parties, the window, the signature and a simulation). Ours: the charge against the
  // accepted cap in the binding, first; the permit must be for that cap. No comment in checks.ts
  // says these differ from 2.27 (see the report).
  it("upto (ours, unlike 2.27's settleUptoPermit2): a charge above the cap wins over a wrong spender", () => {
    expect(settleCode("upto", charge("500001"), wrongSpender)).toBe("invalid_upto_evm_payload_settlement_exceeds_amount");
  });

  it("upto (ours, unlike 2.27's settleUptoPermit2): a permit for less than the accepted cap → permit2_amount_mismatch, even for a charge within the permit", () => {
    expect(settleCode("upto", charge("300000"), permittedAmount)).toBe("permit2_amount_mismatch");
  });
});

describe("checkPermit2Window (2.27: deadline, then validAfter; the EIP-2612 deadline last)", () => {
  const window = (...mutations: Mutation[]) => checkPermit2Window(resolved("upto", ...mutations).request, nowSeconds)?.reason;

  it("passes at the edges: deadline now + 6 s, validAfter now", () => {
    expect(window((w) => (w.authorization.deadline = `${nowSeconds + 6n}`), (w) => (w.authorization.witness.validAfter = `${nowSeconds}`))).toBeUndefined();
  });

  it.each([
    ["the deadline now + 5 s", [deadlineTooClose], "permit2_deadline_expired"],
    ["validAfter now + 1 s", [notYetValid], "permit2_not_yet_valid"],
    ["the EIP-2612 deadline now + 5 s", [withEip2612, eip2612Deadline], "eip2612_deadline_expired"],
    ["the deadline too close and validAfter in the future", [notYetValid, deadlineTooClose], "permit2_deadline_expired"],
    ["validAfter in the future and the EIP-2612 deadline too close", [withEip2612, eip2612Deadline, notYetValid], "permit2_not_yet_valid"],
  ] as const)("%s → %s", (_name, mutations, code) => {
    expect(window(...mutations)).toBe(code);
  });

  it("a malformed extension has no deadline to judge (its format is checkPermit2ForVerify's)", () => {
    expect(window(withEip2612, eip2612Deadline, eip2612Malformed)).toBeUndefined();
  });
});

describe("checkPermit2ValidityAtSigning (right before signing: 3 s left, signingValidityMarginSeconds)", () => {
  const atSigning = (...mutations: Mutation[]) => checkPermit2ValidityAtSigning(resolved("exact", ...mutations).request, nowSeconds)?.reason;

  it.each([
    ["the deadline now + 3 s", [(w: Wire) => (w.authorization.deadline = `${nowSeconds + 3n}`)], undefined],
    ["the deadline now + 2 s", [(w: Wire) => (w.authorization.deadline = `${nowSeconds + 2n}`)], "permit2_deadline_expired"],
    ["the EIP-2612 deadline now + 3 s", [withEip2612, (w: Wire) => (w.extensions!.eip2612GasSponsoring.info.deadline = `${nowSeconds + 3n}`)], undefined],
    ["the EIP-2612 deadline now + 2 s", [withEip2612, (w: Wire) => (w.extensions!.eip2612GasSponsoring.info.deadline = `${nowSeconds + 2n}`)], "eip2612_deadline_expired"],
    [
      "both deadlines now + 2 s",
      [withEip2612, (w: Wire) => (w.authorization.deadline = w.extensions!.eip2612GasSponsoring.info.deadline = `${nowSeconds + 2n}`)],
      "permit2_deadline_expired",
    ],
  ] as const)("%s → %s", (_name, mutations, code) => {
    expect(atSigning(...mutations)).toBe(code);
  });

  it("ignores the EIP-2612 deadline when the transaction does not submit the permit (a plain settle over an approval)", () => {
    const request = resolved("exact", withEip2612, (w: Wire) => (w.extensions!.eip2612GasSponsoring.info.deadline = `${nowSeconds + 2n}`)).request;
    expect(checkPermit2ValidityAtSigning(request, nowSeconds, { submitsEip2612Permit: false })).toBeUndefined();
    expect(checkPermit2ValidityAtSigning(request, nowSeconds, { submitsEip2612Permit: true })?.reason).toBe("eip2612_deadline_expired");
  });
});

describe("submitsEip2612Permit (which proxy call prepare chose)", () => {
  it("is true for either proxy's settleWithPermit, false for settle", () => {
    const payment = resolved("exact", withEip2612);
    const eip2612 = eip2612PermitOf(payment)!;
    expect(submitsEip2612Permit(permit2SettlementCall(payment, eip2612).data)).toBe(true);
    expect(submitsEip2612Permit(permit2SettlementCall(payment).data)).toBe(false);
    const upto = resolved("upto", withEip2612);
    expect(submitsEip2612Permit(permit2SettlementCall(upto, eip2612PermitOf(upto)!).data)).toBe(true);
    expect(submitsEip2612Permit(permit2SettlementCall(upto).data)).toBe(false);
  });
});
