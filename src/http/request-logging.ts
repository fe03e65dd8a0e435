import { LogController, type FastifyReply, type FastifyRequest } from "fastify";

/**
 * Probes that load balancers, orchestrators and Prometheus call every few seconds: their request
 * lines are logged at debug, so `info` logs show payments and operators, not health checks.
 */
const probePaths = new Set(["/health", "/ready", "/metrics"]);

const isProbe = (request: FastifyRequest) => {
  const query = request.url.indexOf("?");
  return probePaths.has(query < 0 ? request.url : request.url.slice(0, query));
};

/** Fastify's request lines, at debug for probes and unchanged (info; error on failure) for everything else. */
export class ProbesAtDebugLogController extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if (isProbe(request)) request.log.debug({ req: request }, "incoming request");
    else super.incomingRequest(request, reply);
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (isProbe(request) && !error) reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, "request completed");
    else super.requestCompleted(error, request, reply);
  }
}
