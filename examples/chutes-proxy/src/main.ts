/**
 * Entry point: reads the environment, starts the proxy, stops cleanly on Ctrl-C / SIGTERM.
 *   FACILITATOR_URL=http://127.0.0.1:4020 WALLET_ADDRESS=0x… CHUTES_API_KEY=… npx tsx examples/chutes-proxy/src/main.ts
 * (add FACILITATOR_API_KEY=x402_… for a facilitator with AUTH=api-keys)
 */
import { ConfigError, loadConfig, type ProxyConfig } from "./config.js";
import { createProxy } from "./server.js";

async function main(): Promise<void> {
  let config: ProxyConfig;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`chutes-proxy: ${error.message}\nSee examples/chutes-proxy/README.md.`);
      process.exit(1);
    }
    throw error;
  }

  const app = createProxy(config, { logger: { level: process.env.LOG_LEVEL ?? "info" } });
  const address = await app.listen({ host: config.host, port: config.port });
  app.log.info(
    {
      network: `${config.network.caip2} / ${config.network.v1Name}`,
      asset: config.asset.address,
      payTo: config.walletAddress,
      pricePer1kTokens: config.pricePer1kTokens,
      upto: config.upto ? "on (when the facilitator settles it)" : "off",
      facilitator: config.facilitatorUrl,
      facilitatorAuth: config.facilitatorApiKey === undefined ? "none" : "FACILITATOR_API_KEY (Bearer)",
      upstream: config.chutesBaseUrl,
    },
    `chutes-proxy listening on ${address}: POST ${address}/v1/chat/completions`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal}: stopping`);
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

main().catch((error: unknown) => {
  console.error("chutes-proxy failed to start:", error);
  process.exit(1);
});
