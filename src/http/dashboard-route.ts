import type { FastifyInstance, FastifyRequest } from "fastify";
import { formatEther, formatUnits } from "viem";
import type { Services } from "../services.js";
import type { HistoryRepository, HistoryRow } from "../store/history-repo.js";
import { renderDashboard, type DashboardSigner } from "./dashboard-html.js";
import { requireAdmin } from "./auth.js";
import { unfinishedStatuses } from "../store/settlement-states.js";
import { operatorReadTimeoutMs } from "../limits.js";
import { withTimeout } from "../util/with-timeout.js";

const recentLimit = 50;
const successWindowHours = 24;

/** No scripts, no external anything: the page may load nothing but its own inline styles. */
const securityHeaders = {
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** GET /dashboard: server-rendered operator page (admin key, or loopback with AUTH=off). */
export async function dashboardRoute(app: FastifyInstance, options: { services: Services; history: HistoryRepository }): Promise<void> {
  const { services, history } = options;
  const formatAmount = amountFormatter(services);

  app.get(
    "/dashboard",
    {
      config: { routeKind: "admin" },
      preValidation: async (request: FastifyRequest) => requireAdmin(services, request),
      schema: {
        summary: "Operator dashboard (HTML)",
        description: `Recent settlements (last ${recentLimit}), success rate over ${successWindowHours} h, unfinished rows by status and signer native balances.`,
        tags: ["operator"],
        security: [{ bearerAuth: [] }],
      },
    },
    async (_request, reply) => {
      const [page, counts, signers] = await Promise.all([history.list({}, recentLimit), history.statusCounts(successWindowHours), readSigners(services)]);
      const html = renderDashboard({
        generatedAt: new Date(),
        windowHours: successWindowHours,
        confirmed: counts.recent.confirmed ?? 0,
        failed: counts.recent.failed ?? 0,
        unfinished: unfinishedStatuses.map((status) => ({ status, count: counts.unfinished[status] ?? 0 })),
        signers,
        recentLimit,
        recent: page.rows.map((row) => ({
          createdAt: row.createdAt,
          status: row.status,
          network: row.network,
          payer: row.payer,
          payTo: row.payTo,
          amount: formatAmount(row),
          txHash: row.settledTxHash ?? row.txHash,
          errorReason: row.errorReason,
        })),
      });
      return reply.headers(securityHeaders).type("text/html; charset=utf-8").send(html);
    },
  );
}

/** Amounts in token units with the decimals of the configured asset; atomic units for anything unknown. */
function amountFormatter(services: Services): (row: HistoryRow) => string {
  const decimals = new Map<string, number>();
  for (const network of services.networks) {
    for (const asset of network.assets) decimals.set(`${network.chainId}:${asset.address.toLowerCase()}`, asset.decimals);
  }
  return (row) => {
    const known = decimals.get(`${row.chainId}:${row.asset.toLowerCase()}`);
    return known === undefined ? `${row.valueAtomic} (atomic)` : `${formatUnits(BigInt(row.valueAtomic), known)} USDC`;
  };
}

async function readSigners(services: Services): Promise<DashboardSigner[]> {
  const inFlight = services.deps.signers.inFlight();
  const minWei = services.deps.limits.minSignerBalanceWei;
  const reads = services.deps.chains.all().flatMap((handle) =>
    services.deps.signers.addresses().map(async (signer): Promise<DashboardSigner> => {
      const base = { network: handle.config.network, signer, inFlight: inFlight[signer] ?? 0 };
      try {
        const wei = await withTimeout(handle.publicClient.getBalance({ address: signer }), operatorReadTimeoutMs, () => {
          throw new TimeoutError();
        });
        return { ...base, balanceWei: wei, balance: `${formatEther(wei)} ETH`, low: wei <= minWei };
      } catch (error) {
        const reason = error instanceof TimeoutError ? `unavailable (no answer within ${operatorReadTimeoutMs} ms)` : "unavailable (RPC error)";
        return { ...base, balanceWei: undefined, balance: reason, low: false };
      }
    }),
  );
  return Promise.all(reads);
}

class TimeoutError extends Error {}
