import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

/**
 * What an operator deploys with: docker-compose.yml (+ docker-compose.fork.yml) and .env.example.
 * With a compose CLI on the machine (.ci/run installs Debian's docker-compose when it can), the
 * files are interpolated by compose itself; the YAML checks below run everywhere.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const read = (name: string) => readFileSync(path.join(repoRoot, name), "utf8");

interface ComposeService {
  image?: string;
  restart?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  env_file?: string[];
  volumes?: string[];
}
const composeServices = (name: string) => (parse(read(name)) as { services: Record<string, ComposeService> }).services;

/** Variable names in the first column of README's configuration tables ("### Configuration" up to the next "## "). */
function readmeVariables(): string[] {
  const readme = read("README.md");
  const start = readme.indexOf("### Configuration");
  const end = readme.indexOf("\n## ", start);
  const names = new Set<string>();
  for (const line of readme.slice(start, end).split("\n")) {
    const firstCell = /^\| ([^|]+) \|/.exec(line)?.[1] ?? "";
    for (const [, name] of firstCell.matchAll(/`([A-Z][A-Z0-9_]*(?:<chainId>)?)`/g)) names.add(name!.replace("<chainId>", "8453"));
  }
  return [...names];
}

function composeCli(): string[] | undefined {
  for (const command of [["docker-compose"], ["docker", "compose"]]) {
    const probe = spawnSync(command[0]!, [...command.slice(1), "version"], { encoding: "utf8" });
    if (probe.status === 0) return command;
  }
  return undefined;
}
const compose = composeCli();

/** `compose config` in a clean environment (only `env`), from the repository root. */
function composeConfig(files: string[], env: Record<string, string>) {
  const [command, ...prefix] = compose!;
  return spawnSync(command!, [...prefix, ...files.flatMap((file) => ["-f", path.join(repoRoot, file)]), "config"], {
    cwd: repoRoot,
    encoding: "utf8",
    // No HOME .env, no inherited BASE_RPC_URL: exactly what the operator sets.
    env: { PATH: process.env.PATH!, HOME: mkdtempSync(path.join(os.tmpdir(), "compose-home-")), ...env },
  });
}

const signerOnly = { SIGNER_PRIVATE_KEYS: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d" };

describe("docker-compose.yml", () => {
  it("requires only SIGNER_PRIVATE_KEYS: no other variable is interpolated with `:?` (compose interpolates before it filters profiles)", () => {
    const required = [...read("docker-compose.yml").matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((match) => match[1]);
    expect(required).toEqual(["SIGNER_PRIVATE_KEYS"]);
  });

  it("restarts the services, reads settings from an env file, mounts the config directory, pins every image", () => {
    const services = { ...composeServices("docker-compose.yml"), ...composeServices("docker-compose.fork.yml") };
    const base = composeServices("docker-compose.yml");
    expect(base.facilitator!.restart).toBe("unless-stopped");
    expect(base.postgres!.restart).toBe("unless-stopped");
    expect(base.facilitator!.env_file).toEqual(["${FACILITATOR_ENV_FILE:-.env.example}"]);
    expect(base.facilitator!.volumes).toContain("./config:/app/config:ro");
    for (const service of Object.values(services)) {
      if (service.image) expect(service.image).toMatch(/:(?!latest$)[\w.-]+$/);
    }
  });

  it("with the fork file, the facilitator talks to the fork only and waits for it to be healthy", () => {
    const fork = composeServices("docker-compose.fork.yml");
    expect(fork.facilitator!.environment).toMatchObject({ RPC_URLS_8453: "http://anvil:8545" });
    // Never the operator's real key on a fork that keeps Base's chain id (its transactions replay on Base).
    expect(fork.facilitator!.environment!.SIGNER_PRIVATE_KEYS).toBe("${FORK_SIGNER_PRIVATE_KEYS:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}");
    expect(fork.facilitator!.depends_on).toEqual({ anvil: { condition: "service_healthy" } });
  });

  it.skipIf(!compose)(`compose config${compose ? "" : " (skipped: no docker-compose / docker compose CLI here)"} passes with only SIGNER_PRIVATE_KEYS set, and the fork needs BASE_RPC_URL`, () => {
    const plain = composeConfig(["docker-compose.yml"], signerOnly);
    expect(plain.stderr).not.toMatch(/error|missing/i);
    expect(plain.status).toBe(0);
    expect(plain.stdout).not.toContain("anvil");

    const forkFiles = ["docker-compose.yml", "docker-compose.fork.yml"];
    const forkWithout = composeConfig(forkFiles, signerOnly);
    expect(forkWithout.status).not.toBe(0);
    expect(forkWithout.stderr).toContain("BASE_RPC_URL");

    const fork = composeConfig(forkFiles, { ...signerOnly, BASE_RPC_URL: "https://base.example" });
    expect(fork.status).toBe(0);
    const resolved = parse(fork.stdout) as { services: Record<string, ComposeService> };
    expect(resolved.services.facilitator!.environment!.RPC_URLS_8453).toBe("http://anvil:8545");
    expect(resolved.services.facilitator!.environment!.SIGNER_PRIVATE_KEYS).toBe("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
    expect(JSON.stringify(resolved.services.facilitator)).not.toContain("mainnet.base.org");
  });
});

describe(".env.example", () => {
  const envExample = read(".env.example");
  const listed = new Set([...envExample.matchAll(/^#? ?([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]));

  it("names every variable of README's configuration tables", () => {
    const variables = readmeVariables();
    expect(variables.length).toBeGreaterThan(30);
    expect(variables.filter((name) => !listed.has(name))).toEqual([]);
  });

  it("sets nothing: every line is a comment, so the file is safe as compose's default env file", () => {
    const active = envExample.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"));
    expect(active).toEqual([]);
  });

});
