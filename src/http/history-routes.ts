import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type, type Static } from "typebox";
import { FacilitatorError } from "../errors.js";
import { addressPattern } from "../protocol/schemas.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Services } from "../services.js";
import type { HistoryRepository, HistoryRow } from "../store/history-repo.js";
import { settlementStatuses, type SettlementStatus } from "../store/settlement-states.js";
import { requireAdmin } from "./auth.js";
import { decodeCursor, encodeCursor } from "./history-cursor.js";

export const historyLimitDefault = 50;
export const historyLimitMax = 200;

const uuidPattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const Status = Type.Unsafe<SettlementStatus>({ type: "string", enum: [...settlementStatuses] });

/**
 * Unknown parameters are refused (additionalProperties: not {}), not silently dropped: a typo such
 * as `pay_to=` must not answer with every settlement unfiltered.
 */
export const HistoryQuerySchema = Type.Object(
  {
    payer: Type.Optional(Type.String({ pattern: addressPattern, description: "Payer address (any case)" })),
    payTo: Type.Optional(Type.String({ pattern: addressPattern, description: "Recipient address (any case)" })),
    status: Type.Optional(Status),
    since: Type.Optional(Type.String({ format: "date-time", maxLength: 64, description: "ISO 8601 date-time with a time zone: rows created at or after it" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: historyLimitMax, default: historyLimitDefault, description: `Page size, 1-${historyLimitMax}` })),
    cursor: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9_-]{1,256}$", description: "nextCursor of the previous page" })),
  },
  { additionalProperties: Type.Never() },
);
type HistoryQuery = Static<typeof HistoryQuerySchema>;

export const SettlementIdParamsSchema = Type.Object({ id: Type.String({ pattern: uuidPattern, description: "Settlement id (uuid)" }) });

export const SettlementItemSchema = Type.Object({
  id: Type.String(),
  status: Status,
  network: Type.String({ description: "The network as the caller named it (v1 name or CAIP-2)" }),
  chainId: Type.Integer(),
  asset: Type.String(),
  payer: Type.String(),
  payTo: Type.String(),
  valueAtomic: Type.String({ description: "Amount in the asset's atomic units (decimal string): what this settlement moves to payTo (upto: the charge)" }),
  scheme: Type.String({ description: '"exact" or "upto"' }),
  transferMethod: Type.String({ description: '"eip3009" (the token\'s transferWithAuthorization) or "permit2" (through x402\'s Permit2 proxy)' }),
  permittedAtomic: Type.String({ description: "What the payer signed for (upto: the cap), atomic units" }),
  txHash: Nullable(Type.String({ description: "Our latest transaction for this payment" })),
  settledTxHash: Nullable(Type.String({ description: "The transaction that paid (ours or a front-runner's), once confirmed" })),
  errorReason: Nullable(Type.String()),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
  gasUsed: Type.Union([Type.Integer(), Type.Null()]),
  gasCostWei: Nullable(Type.String()),
});
export type SettlementItem = Static<typeof SettlementItemSchema>;

export const SettlementPageSchema = Type.Object({
  items: Type.Array(SettlementItemSchema),
  nextCursor: Nullable(Type.String({ description: "Pass as cursor for the next page; null on the last page" })),
});

/** What each parameter must be, for 400 answers people can act on (ajv's own wording names patterns). */
const parameterHints: Record<string, string> = {
  payer: "an 0x address (40 hex digits)",
  payTo: "an 0x address (40 hex digits)",
  status: `one of ${settlementStatuses.join(", ")}`,
  since: "an ISO 8601 date-time with a time zone, e.g. 2025-01-31T00:00:00Z",
  limit: `an integer from 1 to ${historyLimitMax}`,
  cursor: "the nextCursor of a previous page, unchanged",
  id: "a settlement id (uuid)",
};

/** Route-level schemaErrorFormatter: the answer stays 400 invalid_payload (error-answers.ts), with this message. */
export function describeValidationError(errors: ReadonlyArray<{ keyword: string; instancePath: string; message?: string }>, dataVar: string): Error {
  const first = errors[0];
  const field = first?.instancePath.split("/")[1] ?? "";
  if (first?.keyword === "not" && !(field in parameterHints)) {
    return new Error(`unknown ${dataVar === "params" ? "path parameter" : "query parameter"} "${field}"; allowed: ${Object.keys(parameterHints).filter((name) => name !== "id").join(", ")}`);
  }
  const hint = parameterHints[field];
  return new Error(hint ? `${field} must be ${hint}` : `${dataVar}${first?.instancePath ?? ""} ${first?.message ?? "is invalid"}`);
}

export const OperatorErrorSchema = Type.Object({ error: Type.String({ description: "Reason code" }), message: Type.String() });
const errorResponses = { "4xx": OperatorErrorSchema, "5xx": OperatorErrorSchema };

export function toItem(row: HistoryRow): SettlementItem {
  return {
    id: row.id,
    status: row.status,
    network: row.network,
    chainId: row.chainId,
    asset: row.asset,
    payer: row.payer,
    payTo: row.payTo,
    valueAtomic: row.valueAtomic,
    scheme: row.scheme,
    transferMethod: row.transferMethod,
    permittedAtomic: row.permittedAtomic,
    txHash: row.txHash,
    settledTxHash: row.settledTxHash,
    errorReason: row.errorReason,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    gasUsed: row.gasUsed,
    gasCostWei: row.gasCostWei,
  };
}

/** Settlement history for operators: admin key, or loopback with AUTH=off (auth.ts requireAdmin). */
export async function historyRoutes(app: FastifyInstance, options: { services: Services; history: HistoryRepository }): Promise<void> {
  const { services, history } = options;
  // Checked before the query is validated, so an anonymous caller learns nothing but 401.
  const admin = async (request: FastifyRequest) => requireAdmin(services, request);

  app.get(
    "/settlements",
    {
      config: { routeKind: "admin" },
      preValidation: admin,
      schemaErrorFormatter: describeValidationError,
      schema: {
        summary: "Settlement history, newest first",
        description: `Keyset pages ordered by (createdAt, id) descending. Follow nextCursor until it is null. limit defaults to ${historyLimitDefault}, at most ${historyLimitMax}.`,
        tags: ["operator"],
        security: [{ bearerAuth: [] }],
        querystring: HistoryQuerySchema,
        response: { 200: SettlementPageSchema, ...errorResponses },
      },
    },
    async (request) => {
      const query = request.query as HistoryQuery;
      const since = query.since === undefined ? undefined : new Date(query.since);
      if (since !== undefined && Number.isNaN(since.getTime())) {
        throw new FacilitatorError(ReasonCode.invalidPayload, "since must be an ISO 8601 date-time");
      }
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const page = await history.list({ payer: query.payer, payTo: query.payTo, status: query.status, since }, query.limit ?? historyLimitDefault, after);
      return { items: page.rows.map(toItem), nextCursor: page.next ? encodeCursor(page.next) : null };
    },
  );

  app.get(
    "/settlements/:id",
    {
      config: { routeKind: "admin" },
      preValidation: admin,
      schemaErrorFormatter: describeValidationError,
      schema: {
        summary: "One settlement",
        tags: ["operator"],
        security: [{ bearerAuth: [] }],
        params: SettlementIdParamsSchema,
        response: { 200: SettlementItemSchema, ...errorResponses },
      },
    },
    async (request: FastifyRequest) => {
      const { id } = request.params as Static<typeof SettlementIdParamsSchema>;
      const row = await history.findById(id.toLowerCase());
      if (!row) throw new FacilitatorError(ReasonCode.notFound, `no settlement with id ${id}`);
      return toItem(row);
    },
  );
}
