import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { EmbeddedPostgresError, startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../../src/sandbox/postgres.js";
import { createDatabase, dropDatabase, InvalidDatabaseNameError } from "../../../src/store/database-admin.js";
import { withPgClient } from "../../helpers/database.js";

const runsAsRoot = process.getuid?.() === 0;

let rootDir: string;
const started: EmbeddedPostgresHandle[] = [];

/** Every server this file starts is stopped in afterAll, whatever the test outcome. */
async function start(dataDir: string, options: { port?: number } = {}): Promise<EmbeddedPostgresHandle> {
  const handle = await startEmbeddedPostgres({ dataDir, ...options });
  started.push(handle);
  return handle;
}

function freshDir(name: string): string {
  return path.join(rootDir, `${name}-${randomBytes(3).toString("hex")}`);
}

function selectOne(url: string): Promise<number> {
  return withPgClient(url, async (c) => (await c.query<{ one: number }>("select 1 as one")).rows[0]!.one);
}

/** When we are root the server runs as `postgres`; otherwise as us. */
function serverUserIds(): { uid?: number; gid?: number } {
  if (!runsAsRoot) return {};
  const id = (flag: string) => Number.parseInt(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }), 10);
  return { uid: id("-u"), gid: id("-g") };
}

function pidFileOf(dataDir: string): Promise<string> {
  return readFile(path.join(dataDir, "postmaster.pid"), "utf8");
}

async function waitUntilGone(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`pid ${pid} still alive after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  rootDir = await mkdtemp(path.join(os.tmpdir(), "x402-pg-test-"));
  await chmod(rootDir, 0o755); // as root the server runs as `postgres` and must enter it
});

afterAll(async () => {
  await Promise.all(started.map((handle) => handle.stop()));
  await rm(rootDir, { recursive: true, force: true });
});

describe("startEmbeddedPostgres", () => {
  it("initialises a fresh data dir and serves on 127.0.0.1 only", async () => {
    const dataDir = freshDir("fresh");
    const server = await start(dataDir);

    expect(server.dataDir).toBe(dataDir);
    expect(server.adminUrl).toMatch(new RegExp(`^postgres://postgres:[0-9a-f]+@127\\.0\\.0\\.1:${server.port}/postgres$`));
    expect(await selectOne(server.adminUrl)).toBe(1);
    const settings = await withPgClient(server.adminUrl, async (c) => {
      const { rows } = await c.query<{ listen: string; sockets: string; encoding: string }>(
        `select current_setting('listen_addresses') as listen, current_setting('unix_socket_directories') as sockets,
                current_setting('server_encoding') as encoding`,
      );
      return rows[0];
    });
    expect(settings).toEqual({ listen: "127.0.0.1", sockets: "", encoding: "UTF8" });
    // The generated password is kept in the cluster, readable by us only.
    expect((await stat(path.join(dataDir, "x402-admin-password"))).mode & 0o777).toBe(0o600);
  });

  it("stop() shuts the server down, is idempotent, and connections then fail", async () => {
    const server = await start(freshDir("stop"));
    const open = await withPgClient(server.adminUrl, async (c) => {
      await server.stop();
      return c.query("select 1").then(
        () => "still answering",
        () => "terminated",
      );
    });
    expect(open).toBe("terminated");
    await server.stop(); // second call: no error, no hang
    await expect(selectOne(server.adminUrl)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("reuses an existing cluster without re-initialising it: data survives a restart", async () => {
    const dataDir = freshDir("reuse");
    const first = await start(dataDir);
    const systemIdBefore = await withPgClient(first.adminUrl, async (c) => {
      await c.query("create table kept (note text)");
      await c.query("insert into kept values ('written before the restart')");
      return (await c.query<{ id: string }>("select system_identifier::text as id from pg_control_system()")).rows[0]!.id;
    });
    await first.stop();

    const second = await start(dataDir);
    const after = await withPgClient(second.adminUrl, async (c) => ({
      // initdb would have produced a new system identifier
      systemId: (await c.query<{ id: string }>("select system_identifier::text as id from pg_control_system()")).rows[0]!.id,
      notes: (await c.query<{ note: string }>("select note from kept")).rows.map((row) => row.note),
    }));
    expect(after).toEqual({ systemId: systemIdBefore, notes: ["written before the restart"] });
  });

  it("starts after a crash that left postmaster.pid behind", async () => {
    const dataDir = freshDir("crash");
    const server = await start(dataDir);
    await withPgClient(server.adminUrl, (c) => c.query("create table survived (id int)"));
    const pid = Number.parseInt((await pidFileOf(dataDir)).split("\n")[0]!, 10);

    process.kill(pid, "SIGKILL");
    await waitUntilGone(pid);
    await server.stop(); // the process is already gone: must return, not wait for an exit that happened
    expect(await pidFileOf(dataDir)).toContain(String(pid)); // the crash left its lock behind

    const restarted = await start(dataDir);
    expect(await withPgClient(restarted.adminUrl, async (c) => (await c.query("select * from survived")).rowCount)).toBe(0);
  });

  it("replaces a postmaster.pid whose pid now belongs to an unrelated process", async () => {
    const dataDir = freshDir("pid-reuse");
    await (await start(dataDir)).stop();
    // What a container restart looks like: the recorded pid exists again, but it is not postgres.
    // It must run as the server's user: postgres itself ignores a pid it gets EPERM for, but refuses
    // to start over a live one of its own user ("lock file postmaster.pid already exists").
    const unrelated = spawn("sleep", ["30"], { stdio: "ignore", ...serverUserIds() });
    try {
      await writeFile(path.join(dataDir, "postmaster.pid"), `${unrelated.pid}\n${dataDir}\n0\n5432\n\n127.0.0.1\n0 0\nready\n`);
      const server = await start(dataDir);
      expect(await selectOne(server.adminUrl)).toBe(1);
    } finally {
      unrelated.kill();
      await once(unrelated, "exit");
    }
  });

  it("refuses a data dir that a running server owns, naming its pid", async () => {
    const dataDir = freshDir("in-use");
    const owner = await start(dataDir);
    const ownerPid = (await pidFileOf(dataDir)).split("\n")[0]!;

    const attempt = startEmbeddedPostgres({ dataDir });
    await expect(attempt).rejects.toBeInstanceOf(EmbeddedPostgresError);
    await expect(attempt).rejects.toMatchObject({ code: "data_dir_in_use", message: expect.stringContaining(`pid ${ownerPid}`) });
    expect(await selectOne(owner.adminUrl)).toBe(1); // untouched
  });

  it("refuses a non-empty directory that is not a cluster", async () => {
    const dataDir = freshDir("not-a-cluster");
    await mkdir(dataDir, { recursive: true });
    await writeFile(path.join(dataDir, "notes.txt"), "someone's files");
    await expect(startEmbeddedPostgres({ dataDir })).rejects.toMatchObject({ code: "data_dir_not_cluster" });
  });

  it("creates missing parent dirs world-traversable", async () => {
    const parent = freshDir("parents");
    const server = await start(path.join(parent, "a", "b", "data"));
    expect(await selectOne(server.adminUrl)).toBe(1);
    for (const dir of [parent, path.join(parent, "a"), path.join(parent, "a", "b")]) {
      expect(((await stat(dir)).mode & 0o777).toString(8)).toBe("755");
    }
  });

  it.runIf(runsAsRoot)("as root, fails clearly when a parent dir is closed to the postgres user", async () => {
    const closed = freshDir("closed");
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    const attempt = startEmbeddedPostgres({ dataDir: path.join(closed, "data") });
    await expect(attempt).rejects.toMatchObject({
      code: "data_dir_not_traversable",
      message: expect.stringContaining("Set DATA_DIR"),
    });
  });

  it("reports a port already in use with the server's own words", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const attempt = startEmbeddedPostgres({ dataDir: freshDir("port-taken"), port });
      await expect(attempt).rejects.toMatchObject({
        code: "start_failed",
        message: expect.stringMatching(/port in use[\s\S]*could not bind/),
      });
    } finally {
      blocker.close();
    }
  });
});

describe("createDatabase / dropDatabase (on the suite's server)", () => {
  const adminUrl = () => inject("pgAdminUrl");
  const uniqueName = () => `x402_t_pgtest_${randomBytes(5).toString("hex")}`;
  const databaseExists = (name: string) =>
    withPgClient(adminUrl(), async (c) => (await c.query("select 1 from pg_database where datname = $1", [name])).rowCount === 1);

  it("creates a database and returns the admin URL pointing at it", async () => {
    const name = uniqueName();
    const url = await createDatabase(adminUrl(), name);
    try {
      const admin = new URL(adminUrl());
      const created = new URL(url);
      expect({ ...pick(created), pathname: created.pathname }).toEqual({ ...pick(admin), pathname: `/${name}` });
      expect(await withPgClient(url, async (c) => (await c.query("select current_database() as db")).rows[0].db)).toBe(name);
    } finally {
      await dropDatabase(adminUrl(), name);
    }
  });

  it("fails on an existing name unless dropIfExists, which recreates it empty", async () => {
    const name = uniqueName();
    const url = await createDatabase(adminUrl(), name);
    try {
      await withPgClient(url, (c) => c.query("create table leftover (id int)"));
      await expect(createDatabase(adminUrl(), name)).rejects.toThrow(/already exists/);
      const holder = await withPgClientOpen(url); // an open connection must not block the re-create
      try {
        await createDatabase(adminUrl(), name, { dropIfExists: true });
      } finally {
        await holder.end().catch(() => undefined);
      }
      expect(await withPgClient(url, async (c) => (await c.query("select to_regclass('leftover') as t")).rows[0].t)).toBeNull();
    } finally {
      await dropDatabase(adminUrl(), name);
    }
  });

  it("drops a database with open connections, and dropping again is a no-op", async () => {
    const name = uniqueName();
    const url = await createDatabase(adminUrl(), name);
    const holder = await withPgClientOpen(url);
    try {
      await dropDatabase(adminUrl(), name);
      expect(await databaseExists(name)).toBe(false);
      await expect(holder.query("select 1")).rejects.toThrow();
      await dropDatabase(adminUrl(), name);
    } finally {
      await holder.end().catch(() => undefined);
    }
  });

  it("accepts a 63-character name, the identifier limit", async () => {
    const name = `x402_t_${"a".repeat(56)}`;
    expect(name).toHaveLength(63);
    await createDatabase(adminUrl(), name, { dropIfExists: true });
    expect(await databaseExists(name)).toBe(true);
    await dropDatabase(adminUrl(), name);
    expect(await databaseExists(name)).toBe(false);
  });

  // Validation happens before any connection: the URL below points nowhere.
  const unreachable = "postgres://nobody@127.0.0.1:1/postgres";
  it.each(["", "Upper", "1starts_with_digit", "has-dash", "has space", 'x"; drop database postgres; --', "é", "a".repeat(64)])(
    "rejects the invalid name %j",
    async (name) => {
      await expect(createDatabase(unreachable, name)).rejects.toBeInstanceOf(InvalidDatabaseNameError);
      await expect(dropDatabase(unreachable, name)).rejects.toBeInstanceOf(InvalidDatabaseNameError);
    },
  );

  it.each(["postgres", "template0", "template1"])("refuses to drop the system database %s", async (name) => {
    await expect(dropDatabase(unreachable, name)).rejects.toBeInstanceOf(InvalidDatabaseNameError);
    await expect(createDatabase(unreachable, name, { dropIfExists: true })).rejects.toBeInstanceOf(InvalidDatabaseNameError);
  });
});

function pick(url: URL) {
  return { protocol: url.protocol, username: url.username, password: url.password, host: url.host, search: url.search };
}

/** A connection left open on purpose, to prove that drops terminate it. */
async function withPgClientOpen(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {}); // it is expected to be terminated
  await client.connect();
  return client;
}
