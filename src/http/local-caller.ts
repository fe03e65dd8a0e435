import type { FastifyRequest } from "fastify";

/**
 * Headers a proxy adds on the way in (or a client adds to pass for another). Any of them means the
 * socket's peer is not the caller, or not only the caller.
 */
const forwardingHeaders = ["forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host", "x-forwarded-proto", "via", "true-client-ip", "cf-connecting-ip", "x-client-ip"] as const;

/**
 * True only for a caller on this host talking to us directly: the TCP peer is loopback and nothing
 * says the request was forwarded. A reverse proxy on the same host connects from 127.0.0.1 for every
 * remote client, so the socket address alone would make the whole internet "local". request.ip is
 * not used: with TRUST_PROXY it is whatever the forwarded headers claim, 127.0.0.1 included.
 */
export function isLocalCaller(request: FastifyRequest): boolean {
  if (forwardingHeaders.some((name) => request.headers[name] !== undefined)) return false;
  const peer = request.socket.remoteAddress;
  if (peer === undefined || request.ip !== peer) return false; // TRUST_PROXY resolved a forwarded client
  return isLoopback(peer);
}

function isLoopback(ip: string): boolean {
  return ip === "::1" || ip.startsWith("127.") || ip.startsWith("::ffff:127.");
}
