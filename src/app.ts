import { ProbesAtDebugLogController } from "./http/request-logging.js";
import { randomUUID } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { errorAnswer, type RouteKind } from "./http/error-answers.js";
import { discoveryRoutes } from "./http/discovery-routes.js";
import { infoRoutes } from "./http/info-routes.js";
import { authPlugin } from "./http/auth.js";
import { registerOpenApi } from "./http/openapi.js";
import { registerOperatorRoutes } from "./http/operator-routes.js";
import { paymentRoutes } from "./http/payment-routes.js";
import { ReasonCode, reasonAnswers } from "./protocol/reason-codes.js";
import type { Services } from "./services.js";

declare module "fastify" {
  interface FastifyContextConfig {
    routeKind?: RouteKind | "admin";
  }
  interface FastifyRequest {
    /** Known once the body parsed: error answers carry it too (every answer names the payer). */
    payment?: { payer: string; network: string };
  }
}

export interface BuildAppOptions {
  services: Services;
  logger?: FastifyServerOptions["loggerInstance"] | boolean;
}

/** Builds the HTTP app without listening: server-process.ts listens, tests inject or listen on 127.0.0.1:0. */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { services } = options;
  const limits = services.deps.limits;
  const app = Fastify({
    ...(typeof options.logger === "object" ? { loggerInstance: options.logger } : { logger: options.logger ?? false }),
    bodyLimit: limits.bodyLimitBytes,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.requestTimeoutMs,
    return503OnClosing: true,
    logController: new ProbesAtDebugLogController(),
    // Off unless TRUST_PROXY names the proxies: only then is X-Forwarded-For the caller's address.
    trustProxy: services.policy.trustProxy ?? false,
    genReqId: (request) => {
      const given = request.headers["x-request-id"];
      return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
  });

  app.setErrorHandler((error, request, reply) => {
    const kind = request.routeOptions.config?.routeKind;
    const answer = errorAnswer(error, kind === "verify" || kind === "settle" ? kind : "other", request.payment);
    if (answer.isFault) request.log.error({ err: error }, "request failed");
    else request.log.info({ code: answer.body.error, message: answer.body.message }, "request refused");
    return reply.code(answer.statusCode).send(answer.body);
  });
  // Answered here, not thrown: the message quotes the URL as sent, whole (wireMessage would cut it).
  app.setNotFoundHandler((request, reply) => reply.code(reasonAnswers[ReasonCode.notFound].status).send({ error: ReasonCode.notFound, message: `${request.method} ${request.url} does not exist` }));

  await registerOpenApi(app); // before any route: it collects their schemas as they are added
  await app.register(authPlugin, { services });
  await app.register(rateLimit, { global: false });
  await app.register(paymentRoutes, { services, rateLimitPerMinute: limits.rateLimitPerMinute });
  await app.register(infoRoutes, { services });
  await app.register(discoveryRoutes, { services, rateLimitPerMinute: limits.discoveryRateLimitPerMinute });
  // Operator routes (history, dashboard, OpenAPI) register below this line.
  await registerOperatorRoutes(app, services);
  return app;
}
