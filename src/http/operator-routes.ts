import type { FastifyInstance } from "fastify";
import type { Services } from "../services.js";

/** Operator-facing routes: settlement history, dashboard, OpenAPI. Each needs requireAdmin (auth.ts). */
export async function registerOperatorRoutes(_app: FastifyInstance, _services: Services): Promise<void> {}
