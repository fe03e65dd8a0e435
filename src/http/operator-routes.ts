import type { FastifyInstance } from "fastify";
import type { Services } from "../services.js";
import { dashboardLoginRoutes } from "./dashboard-login-routes.js";
import { dashboardRoute } from "./dashboard-route.js";
import { historyRoutes } from "./history-routes.js";
import { registerOpenApiRoutes } from "./openapi.js";

/**
 * Operator-facing routes: settlement history, dashboard (and its login), OpenAPI. History and
 * dashboard need requireAdmin (auth.ts): the history a Bearer admin key only, the dashboard also a
 * session cookie from POST /dashboard/login; the API description (/openapi.json, /docs) is public, like /supported.
 * The OpenAPI collector itself is registered first in buildApp (registerOpenApi), before any route.
 */
export async function registerOperatorRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const history = services.history;
  await app.register(historyRoutes, { services, history });
  await app.register(dashboardRoute, { services, history });
  await app.register(dashboardLoginRoutes, { services });
  await registerOpenApiRoutes(app);
}
