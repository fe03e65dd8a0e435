import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressOf, keys, startTestChain, type TestChain } from "../helpers/chain.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { startOperatorFacilitator, type OperatorFacilitator } from "../helpers/operator.js";
import { signPayment, v2Body, v2Requirements } from "../helpers/payments.js";

/**
 * The operator page as an operator sees it: the real app listening on 127.0.0.1 (AUTH=off, so a
 * loopback browser is admitted), real settlements on Anvil, rendered by headless Debian Chromium.
 * Then as an operator behind a proxy sees it: AUTH=api-keys, logged in through the form with an
 * admin key, the session kept in a cookie, explorer links, auto-refresh, logout.
 * The screenshots are kept when KEEP_SCREENSHOTS=1 (their paths are printed).
 */
const chromiumPath = "/usr/bin/chromium";
const hasChromium = existsSync(chromiumPath);
const describeWithChromium = hasChromium ? describe : describe.skip;
const title = hasChromium ? "GET /dashboard in headless Chromium" : `GET /dashboard in headless Chromium (skipped: ${chromiumPath} is not installed; CI installs Debian chromium when it can)`;

const payer = addressOf(keys.payer);
const payTo = addressOf(keys.payTo);
const signer = addressOf(keys.facilitator);

describeWithChromium(title, () => {
  let chain: TestChain;
  let database: TestDatabase;
  let facilitator: OperatorFacilitator;
  let browser: Browser | undefined;
  let screenshotDir: string;
  let txHash: string;
  let settle: (payerKey: typeof keys.payer, valueAtomic: bigint) => Promise<{ success: boolean; transaction: string }>;

  beforeAll(async () => {
    chain = await startTestChain();
    await chain.mint(payer, 10_000_000n);
    database = await createTestDatabase("dashboard");
    facilitator = await startOperatorFacilitator({ databaseUrl: database.url, rpcUrls: [chain.rpcUrl], token: chain.token, listen: true });
    settle = async (payerKey: typeof keys.payer, valueAtomic: bigint) => {
      const payment = await signPayment({ payerKey, token: chain.token, chainId: chain.chainId, payTo, valueAtomic });
      const response = await fetch(`${facilitator.baseUrl}/settle`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(v2Body(payment, v2Requirements({ token: chain.token, payTo, amountAtomic: valueAtomic }))),
      });
      return (await response.json()) as { success: boolean; transaction: string };
    };
    const paid = await settle(keys.payer, 12_345n); // 0.012345 USDC
    expect(paid.success).toBe(true);
    txHash = paid.transaction;
    expect((await settle(keys.stranger, 5_000n)).success).toBe(false); // unfunded payer: a failed row
    screenshotDir = await mkdtemp(path.join(os.tmpdir(), "x402-dashboard-"));
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await facilitator?.close();
    await database?.drop();
    await chain?.stop();
    if (screenshotDir && process.env.KEEP_SCREENSHOTS !== "1") await rm(screenshotDir, { recursive: true, force: true });
  });

  it("shows the settlement's tx hash, the success rate and the signer's balance, loading nothing external", async () => {
    const context = await browser!.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    const foreignRequests: string[] = [];
    const consoleErrors: string[] = [];
    page.on("request", (request) => {
      if (!request.url().startsWith(facilitator.baseUrl!)) foreignRequests.push(request.url());
    });
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    const response = await page.goto(`${facilitator.baseUrl}/dashboard`, { waitUntil: "load", timeout: 20_000 });
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'none'");
    expect(await page.title()).toContain("x402 facilitator");
    expect(await page.getByTestId("chain-label").allInnerTexts()).toEqual(["Base Sepolia (eip155:84532)"]);
    expect(await page.getByTestId("tx").first().evaluate((element) => element.tagName)).toBe("SPAN"); // no explorer configured: no link

    const text = await page.locator("body").innerText();
    expect(text).toContain(txHash);
    expect(text).toContain("0.012345 USDC");
    expect(text).toContain(payer.toLowerCase());
    expect(text).toContain("invalid_exact_evm_");
    const successRate = await page.getByTestId("success-rate").innerText();
    expect(successRate).toContain("50.0 %");
    expect(successRate).toMatch(/1 confirmed of 2 final/);
    const unfinished = await page.getByTestId("unfinished").innerText();
    expect(unfinished).toMatch(/0\s*claimed/);
    expect(unfinished).toMatch(/0\s*submitted/);
    const balanceRow = page.locator("tr", { hasText: signer });
    await expect.poll(() => balanceRow.count()).toBe(1);
    const balance = await balanceRow.getByTestId("signer-balance").innerText();
    expect(balance).toMatch(/^\d+(\.\d+)? ETH$/);
    expect(Number.parseFloat(balance)).toBeGreaterThan(0);
    expect(foreignRequests).toEqual([]);
    expect(consoleErrors).toEqual([]);

    const screenshot = path.join(screenshotDir, "dashboard.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    const png = await readFile(screenshot);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.readUInt32BE(16)).toBe(1440); // IHDR width
    expect(png.readUInt32BE(20)).toBeGreaterThan(300); // IHDR height
    expect((await stat(screenshot)).size).toBeGreaterThan(20_000);
    console.info(`dashboard screenshot: ${screenshot}`);
    await context.close();
  });

  it("logs in through the form behind AUTH=api-keys, shows units and explorer links, refreshes in place, logs out", async () => {
    const guarded = await startOperatorFacilitator({
      databaseUrl: database.url,
      rpcUrls: [chain.rpcUrl],
      token: chain.token,
      listen: true,
      explorerUrl: "https://sepolia.basescan.org",
      policy: { auth: "api-keys", allowedPayTo: [], amountMaxAtomic: undefined },
    });
    const context = await browser!.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
    try {
      const admin = await guarded.services.apiKeys.create({ name: "ops", role: "admin" });
      const page = await context.newPage();
      const consoleErrors: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") consoleErrors.push(message.text());
      });
      const pageErrors: string[] = [];
      page.on("pageerror", (error) => pageErrors.push(error.message));
      // No credentials: the dashboard sends the browser to the form.
      await page.goto(`${guarded.baseUrl}/dashboard?refresh=1`, { waitUntil: "load", timeout: 20_000 });
      expect(new URL(page.url()).pathname).toBe("/dashboard/login");

      // A wrong key: the form again, with the reason.
      await page.fill("#key", "x402_not-a-key");
      const refused = await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("button[type=submit]")]).then(([response]) => response);
      expect(refused?.status()).toBe(401);
      expect(await page.getByTestId("login-error").innerText()).toMatch(/unknown or revoked/);

      await page.fill("#key", admin.key);
      await Promise.all([page.waitForURL(`${guarded.baseUrl}/dashboard`, { waitUntil: "load" }), page.click("button[type=submit]")]);
      const cookies = await context.cookies(`${guarded.baseUrl}/dashboard`);
      expect(cookies).toEqual([expect.objectContaining({ name: "x402_dashboard", path: "/dashboard", httpOnly: true, sameSite: "Strict", secure: false })]);
      expect(cookies[0]!.value).not.toContain(admin.key);
      expect(await page.evaluate("document.cookie")).toBe(""); // HttpOnly: no script reads it

      const text = await page.locator("body").innerText();
      expect(text).toContain("signed in as ops");
      expect(text).toContain("0.012345 USDC");
      expect(await page.getByTestId("chain-label").allInnerTexts()).toEqual(["Base Sepolia (eip155:84532)"]);
      const balance = await page.getByTestId("signer-balance").first().innerText();
      expect(balance).toMatch(/^\d+(\.\d{1,4})? ETH$/);
      const txLink = page.locator(`a[data-testid="tx"]`, { hasText: txHash });
      expect(await txLink.getAttribute("href")).toBe(`https://sepolia.basescan.org/tx/${txHash}`);
      expect(await txLink.getAttribute("rel")).toBe("noopener noreferrer");
      expect(await page.locator(`a[href="https://sepolia.basescan.org/address/${payer.toLowerCase()}"]`).count()).toBeGreaterThan(0);
      expect(await page.getByTestId("refresh-toggle").innerText()).toMatch(/auto-refresh every 10 s/);

      // Auto-refresh in place, with the cookie: a new settlement appears without a navigation.
      await page.goto(`${guarded.baseUrl}/dashboard?refresh=1`, { waitUntil: "load" });
      await page.evaluate("window.stayedHere = true");
      const later = await settle(keys.payer, 23_400n);
      expect(later.success).toBe(true);
      await page.locator(`a[data-testid="tx"]`, { hasText: later.transaction }).waitFor({ timeout: 20_000 });
      expect(await page.evaluate("window.stayedHere")).toBe(true); // the same document: no reload
      expect(await page.locator("body").innerText()).toContain("0.0234 USDC");
      const screenshot = path.join(screenshotDir, "dashboard-logged-in.png");
      await page.screenshot({ path: screenshot, fullPage: true });
      console.info(`dashboard screenshot (logged in): ${screenshot}`);

      // The pause link turns the refresh off.
      await Promise.all([page.waitForURL(/refresh=0$/, { waitUntil: "load" }), page.getByTestId("refresh-toggle").click()]);
      expect(await page.getByTestId("refresh-toggle").innerText()).toMatch(/auto-refresh off/);

      // Logout: back to the form, and the dashboard is closed again.
      await Promise.all([page.waitForURL(`${guarded.baseUrl}/dashboard/login`, { waitUntil: "load" }), page.getByTestId("logout").click()]);
      expect(await context.cookies(`${guarded.baseUrl}/dashboard`)).toEqual([]);
      await page.goto(`${guarded.baseUrl}/dashboard`, { waitUntil: "load" });
      expect(new URL(page.url()).pathname).toBe("/dashboard/login");
      expect(consoleErrors.filter((message) => !/status of 401/.test(message))).toEqual([]);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
      await guarded.close();
    }
  });
});
