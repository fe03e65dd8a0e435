import { describe, expect, it } from "vitest";
import { chainLabel, explorerFor, formatNativeBalance, formatTokenAmount } from "../../../src/http/dashboard-format.js";
import { renderDashboard, renderLogin, type DashboardModel } from "../../../src/http/dashboard-html.js";

describe("chainLabel", () => {
  it("gives a chain one label, whichever name the caller used", () => {
    expect(chainLabel(84532)).toBe("Base Sepolia (eip155:84532)");
    expect(chainLabel(8453)).toBe("Base (eip155:8453)");
    expect(chainLabel(80002)).toBe("Polygon Amoy (eip155:80002)");
    expect(chainLabel(31337)).toBe("eip155:31337");
  });
});

describe("formatNativeBalance", () => {
  it.each([
    [0n, "0 ETH"],
    [42_123_456_789_000_000n, "0.0421 ETH"],
    [42_199_999_999_999_999n, "0.0421 ETH"], // rounded down, never up
    [12n * 10n ** 18n, "12 ETH"],
    [1_500_000_000_000_000_000n, "1.5 ETH"],
    [10n ** 14n, "0.0001 ETH"],
    [10n ** 14n - 1n, "< 0.0001 ETH"],
    [1n, "< 0.0001 ETH"],
    [123_456_789n * 10n ** 18n + 99n * 10n ** 14n + 5n, "123456789.0099 ETH"],
  ])("%s wei → %s", (wei, text) => {
    expect(formatNativeBalance(wei)).toBe(text);
  });
});

describe("formatTokenAmount", () => {
  it("is exact in the asset's decimals, with its symbol", () => {
    expect(formatTokenAmount(12_340_000n, 6, "USDC")).toBe("12.34 USDC");
    expect(formatTokenAmount(12_345n, 6, "USDC")).toBe("0.012345 USDC");
    expect(formatTokenAmount(10n ** 18n, 18, "DAI")).toBe("1 DAI");
  });
});

describe("explorerFor", () => {
  const hash = `0x${"ab".repeat(32)}`;
  const address = `0x${"cd".repeat(20)}`;

  it("links hashes and addresses under the configured base URL", () => {
    const explorer = explorerFor({ explorerUrl: "https://sepolia.basescan.org" });
    expect(explorer.tx(hash)).toBe(`https://sepolia.basescan.org/tx/${hash}`);
    expect(explorer.address(address)).toBe(`https://sepolia.basescan.org/address/${address}`);
  });

  it("links nothing that is not shaped like a hash or an address, and nothing without an http(s) explorer", () => {
    const explorer = explorerFor({ explorerUrl: "https://basescan.org" });
    for (const value of ["", null, undefined, "0x12", `${hash}/../../evil`, `javascript:alert(1)//${hash}`, address]) expect(explorer.tx(value), String(value)).toBeUndefined();
    expect(explorer.address(`${address}?x=1`)).toBeUndefined();
    expect(explorerFor({}).tx(hash)).toBeUndefined();
    expect(explorerFor(undefined).address(address)).toBeUndefined();
    expect(explorerFor({ explorerUrl: "javascript:alert(1)" }).tx(hash)).toBeUndefined();
  });
});

describe("renderDashboard", () => {
  const model = (overrides: Partial<DashboardModel> = {}): DashboardModel => ({
    generatedAt: new Date("2030-01-01T00:00:00Z"),
    windowHours: 24,
    confirmed: 1,
    failed: 0,
    unfinished: [{ status: "claimed", count: 0 }],
    chains: [{ label: "Base Sepolia (eip155:84532)", signers: [{ signer: { text: "0xsigner", href: "https://x.example/address/0xsigner" }, balanceWei: 10n ** 18n, balance: "1 ETH", low: false, inFlight: 0 }] }],
    recent: [
      {
        createdAt: new Date("2030-01-01T00:00:00Z"),
        status: "confirmed",
        chain: "Base Sepolia (eip155:84532)",
        payer: { text: '<img src=x onerror="alert(1)">', href: 'javascript:alert("x")' },
        payTo: { text: "0xpayto", href: 'https://x.example/address/"><script>alert(1)</script>' },
        amount: "12.34 USDC",
        tx: { text: "0xhash" },
        errorReason: null,
      },
    ],
    recentLimit: 50,
    refresh: { seconds: 10, defaultSeconds: 10 },
    ...overrides,
  });

  it("escapes every value, writes only http(s) links, and runs no inline script", () => {
    const html = renderDashboard(model({ session: { keyName: "</span><script>alert(1)</script>" } }));
    expect(html).not.toContain("<img");
    expect(html).not.toContain("javascript:");
    expect(html).not.toMatch(/<script>/);
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(html).toContain('href="https://x.example/address/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(html).toContain("signed in as &lt;/span&gt;&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html.match(/<script/g)).toEqual(["<script"]); // only <script src="/dashboard/refresh.js">
  });

  it("shows each chain once over its signers", () => {
    const html = renderDashboard(model());
    expect(html.match(/data-testid="chain-label">Base Sepolia \(eip155:84532\)</g)).toHaveLength(1);
  });

  it("has no logout button without a session, and no script with refresh off", () => {
    const html = renderDashboard(model({ refresh: { seconds: 0, defaultSeconds: 10 } }));
    expect(html).not.toContain("/dashboard/logout");
    expect(html).not.toContain("<script");
    expect(html).toContain("auto-refresh off");
  });
});

describe("renderLogin", () => {
  it("escapes the error it shows", () => {
    const html = renderLogin({ error: "<b>bad</b>" });
    expect(html).toContain("&lt;b&gt;bad&lt;/b&gt;");
    expect(html).not.toContain("<b>bad");
  });
});
