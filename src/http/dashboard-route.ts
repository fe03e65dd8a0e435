import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { FacilitatorError } from "../errors.js";
import { ReasonCode } from "../protocol/reason-codes.js";
import type { Services } from "../services.js";
import type { HistoryRepository, HistoryRow } from "../store/history-repo.js";
import { renderDashboard, type DashboardChain, type DashboardSigner, type Linked } from "./dashboard-html.js";
import { chainLabel, explorerFor, formatNativeBalance, formatTokenAmount, type Explorer } from "./dashboard-format.js";
import { dashboardRefreshScript } from "./dashboard-script.js";
import { clearSessionCookie, wantsHtml } from "./dashboard-session.js";
import { requireAdmin } from "./auth.js";
import { unfinishedStatuses } from "../store/settlement-states.js";
import { operatorReadTimeoutMs } from "../limits.js";
import { withTimeout } from "../util/with-timeout.js";

const recentLimit = 50;
const successWindowHours = 24;
/** Auto-refresh period without ?refresh= (seconds); ?refresh=0 turns it off. */
export const defaultRefreshSeconds = 10;
const maxRefreshSeconds = 3600;

/**
 * Nothing external: inline styles, our own script (/dashboard/refresh.js) and fetches of this
 * origin only; forms post to this origin only (login, logout); never framed.
 */
export const dashboardSecurityHeaders = {
  "content-security-policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/**
 * Admin key (Bearer) or dashboard session cookie, or loopback with AUTH=off (requireAdmin). A browser
 * without either (Accept: text/html, no Authorization header) is sent to the login form; API clients
 * get the usual 401.
 */
async function requireDashboardAdmin(services: Services, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  try {
    await requireAdmin(services, request);
    return undefined;
  } catch (error) {
    const browser = request.headers.authorization === undefined && wantsHtml(request);
    if (!(error instanceof FacilitatorError) || error.code !== ReasonCode.unauthorized || !browser) throw error;
    if (request.staleSession) clearSessionCookie(request, reply);
    return reply.headers({ "cache-control": "no-store" }).redirect("/dashboard/login", 303);
  }
}

/** GET /dashboard: server-rendered operator page; GET /dashboard/refresh.js: its auto-refresh. */
export async function dashboardRoute(app: FastifyInstance, options: { services: Services; history: HistoryRepository }): Promise<void> {
  const { services, history } = options;
  const formatAmount = amountFormatter(services);
  const explorers = new Map<number, Explorer>(services.networks.map((network) => [network.chainId, explorerFor(network)]));
  const explorerOf = (chainId: number) => explorers.get(chainId) ?? explorerFor(undefined);
  const address = (explorer: Explorer, value: string): Linked => ({ text: value, href: explorer.address(value) });

  app.get(
    "/dashboard",
    {
      config: { routeKind: "admin", sessionCookie: true },
      preValidation: async (request: FastifyRequest, reply: FastifyReply) => requireDashboardAdmin(services, request, reply),
      schema: {
        summary: "Operator dashboard (HTML)",
        description: `Recent settlements (last ${recentLimit}), success rate over ${successWindowHours} h, unfinished rows by status and signer native balances per chain. Auto-refreshes every \`refresh\` seconds (default ${defaultRefreshSeconds}; 0: off). A browser without credentials is redirected to /dashboard/login.`,
        tags: ["operator"],
        security: [{ bearerAuth: [] }, { dashboardSession: [] }],
        querystring: {
          type: "object",
          properties: { refresh: { type: "integer", minimum: 0, maximum: maxRefreshSeconds, description: `auto-refresh period in seconds; 0 turns it off (default ${defaultRefreshSeconds})` } },
        },
      },
    },
    async (request, reply) => {
      const refreshSeconds = (request.query as { refresh?: number }).refresh ?? defaultRefreshSeconds;
      const [page, counts, chains] = await Promise.all([history.list({}, recentLimit), history.statusCounts(successWindowHours), readSigners(services, explorerOf)]);
      const html = renderDashboard({
        generatedAt: new Date(),
        windowHours: successWindowHours,
        confirmed: counts.recent.confirmed ?? 0,
        failed: counts.recent.failed ?? 0,
        unfinished: unfinishedStatuses.map((status) => ({ status, count: counts.unfinished[status] ?? 0 })),
        chains,
        recentLimit,
        refresh: { seconds: refreshSeconds, defaultSeconds: defaultRefreshSeconds },
        ...(request.authenticatedBy === "session" && request.apiKey ? { session: { keyName: request.apiKey.name } } : {}),
        recent: page.rows.map((row) => {
          const explorer = explorerOf(row.chainId);
          const txHash = row.settledTxHash ?? row.txHash;
          return {
            createdAt: row.createdAt,
            status: row.status,
            chain: chainLabel(row.chainId),
            payer: address(explorer, row.payer),
            payTo: address(explorer, row.payTo),
            amount: formatAmount(row),
            tx: txHash ? { text: txHash, href: explorer.tx(txHash) } : null,
            errorReason: row.errorReason,
          };
        }),
      });
      return reply.headers(dashboardSecurityHeaders).type("text/html; charset=utf-8").send(html);
    },
  );

  app.get("/dashboard/refresh.js", { schema: { hide: true } }, async (_request, reply) =>
    reply.headers(dashboardSecurityHeaders).type("text/javascript; charset=utf-8").send(dashboardRefreshScript),
  );
}

/** Amounts in token units with the decimals and symbol of the configured asset; atomic units for anything unknown. */
function amountFormatter(services: Services): (row: HistoryRow) => string {
  const assets = new Map<string, { decimals: number; symbol: string }>();
  for (const network of services.networks) {
    for (const asset of network.assets) assets.set(`${network.chainId}:${asset.address.toLowerCase()}`, { decimals: asset.decimals, symbol: asset.symbol ?? asset.name });
  }
  return (row) => {
    const known = assets.get(`${row.chainId}:${row.asset.toLowerCase()}`);
    return known === undefined ? `${row.valueAtomic} (atomic)` : formatTokenAmount(BigInt(row.valueAtomic), known.decimals, known.symbol);
  };
}

/** Each served chain under its one label, with every signer's native balance there (each read bounded). */
async function readSigners(services: Services, explorerOf: (chainId: number) => Explorer): Promise<DashboardChain[]> {
  const inFlight = services.deps.signers.inFlight();
  const minWei = services.deps.limits.minSignerBalanceWei;
  const chains = services.deps.chains.all().map(async (handle): Promise<DashboardChain> => {
    const explorer = explorerOf(handle.config.chainId);
    const signers = services.deps.signers.addresses().map(async (signer): Promise<DashboardSigner> => {
      const base = { signer: { text: signer, href: explorer.address(signer) }, inFlight: inFlight[signer] ?? 0 };
      try {
        const wei = await withTimeout(handle.publicClient.getBalance({ address: signer }), operatorReadTimeoutMs, () => {
          throw new TimeoutError();
        });
        return { ...base, balanceWei: wei, balance: formatNativeBalance(wei), low: wei <= minWei };
      } catch (error) {
        const reason = error instanceof TimeoutError ? `unavailable (no answer within ${operatorReadTimeoutMs} ms)` : "unavailable (RPC error)";
        return { ...base, balanceWei: undefined, balance: reason, low: false };
      }
    });
    return { label: chainLabel(handle.config.chainId), signers: await Promise.all(signers) };
  });
  return Promise.all(chains);
}

class TimeoutError extends Error {}
