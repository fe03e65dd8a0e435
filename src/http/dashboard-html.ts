/**
 * The operator page as one self-contained HTML string: inline CSS, no scripts, no external assets.
 * Every value that comes from the database, the chain or the configuration goes through esc().
 */

export interface DashboardSettlement {
  createdAt: Date;
  status: string;
  network: string;
  payer: string;
  payTo: string;
  /** Already formatted, e.g. "0.01 USDC" (or "10000 (atomic)" for an asset not in the configuration). */
  amount: string;
  txHash: string | null;
  errorReason: string | null;
}

export interface DashboardSigner {
  network: string;
  signer: string;
  /** undefined when the balance could not be read within the bound. */
  balanceWei: bigint | undefined;
  /** Formatted native balance, e.g. "9999.99 ETH", or why it is missing. */
  balance: string;
  low: boolean;
  inFlight: number;
}

export interface DashboardModel {
  generatedAt: Date;
  windowHours: number;
  confirmed: number;
  failed: number;
  unfinished: Array<{ status: string; count: number }>;
  signers: DashboardSigner[];
  recent: DashboardSettlement[];
  recentLimit: number;
}

const htmlEscapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function esc(value: unknown): string {
  return String(value ?? "").replace(/[&<>"']/g, (char) => htmlEscapes[char]!);
}

function time(date: Date): string {
  return date.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

/** "93.3 %" of final rows, or "–" when nothing reached a final status in the window. */
export function successRateText(confirmed: number, failed: number): string {
  const final = confirmed + failed;
  if (final === 0) return "–";
  return `${((confirmed / final) * 100).toFixed(1)} %`;
}

const css = `
:root { color-scheme: light; --fg: #1c2330; --muted: #5d6878; --line: #e3e7ee; --bg: #f6f8fb; --card: #fff;
  --ok: #137a3f; --ok-bg: #e3f5ea; --bad: #b42318; --bad-bg: #fde8e6; --wait: #8a5a00; --wait-bg: #fff3d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; justify-content: space-between; gap: 16px; padding: 18px 28px; background: #111827; color: #f3f4f6; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
header span { color: #9ca3af; font-size: 12px; }
main { padding: 20px 28px 40px; max-width: 1500px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 16px; margin-bottom: 20px; }
.card, section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; }
section { margin-bottom: 20px; overflow-x: auto; }
h2 { margin: 0 0 10px; font-size: 13px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.big { font-size: 32px; font-weight: 650; line-height: 1.1; }
.sub { color: var(--muted); font-size: 12px; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px 6px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; font-weight: 600; color: var(--muted); white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; padding-right: 16px; }
.nowrap { white-space: nowrap; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.confirmed { color: var(--ok); background: var(--ok-bg); }
.failed { color: var(--bad); background: var(--bad-bg); }
.claimed, .signed, .submitted { color: var(--wait); background: var(--wait-bg); }
.low { color: var(--bad); font-weight: 600; }
.reason { color: var(--bad); font-size: 12px; }
.empty { color: var(--muted); font-style: italic; }
.counts { display: flex; gap: 18px; }
.counts div { min-width: 64px; }
`;

export function renderDashboard(model: DashboardModel): string {
  const final = model.confirmed + model.failed;
  const unfinishedTotal = model.unfinished.reduce((sum, entry) => sum + entry.count, 0);
  const signerRows = model.signers
    .map(
      (signer) => `<tr>
  <td class="nowrap">${esc(signer.network)}</td>
  <td class="mono">${esc(signer.signer)}</td>
  <td class="num${signer.low || signer.balanceWei === undefined ? " low" : ""}" data-testid="signer-balance">${esc(signer.balance)}${signer.low ? " (low)" : ""}</td>
  <td class="num">${esc(signer.inFlight)}</td>
</tr>`,
    )
    .join("\n");
  const settlementRows = model.recent
    .map(
      (row) => `<tr>
  <td class="nowrap">${esc(time(row.createdAt))}</td>
  <td><span class="pill ${esc(row.status)}">${esc(row.status)}</span>${row.errorReason ? `<div class="reason">${esc(row.errorReason)}</div>` : ""}</td>
  <td class="nowrap">${esc(row.network)}</td>
  <td class="mono">${esc(row.payer)}</td>
  <td class="mono">${esc(row.payTo)}</td>
  <td class="num">${esc(row.amount)}</td>
  <td class="mono">${row.txHash ? esc(row.txHash) : '<span class="empty">none</span>'}</td>
</tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>x402 facilitator – operator</title>
<style>${css}</style>
</head>
<body>
<header><h1>x402 facilitator · operator</h1><span>generated ${esc(time(model.generatedAt))} · reload for fresh figures</span></header>
<main>
<div class="cards">
  <div class="card" data-testid="success-rate">
    <h2>Success rate, last ${esc(model.windowHours)} h</h2>
    <div class="big">${esc(successRateText(model.confirmed, model.failed))}</div>
    <div class="sub">${esc(model.confirmed)} confirmed of ${esc(final)} final (${esc(model.failed)} failed)</div>
  </div>
  <div class="card" data-testid="unfinished">
    <h2>Unfinished settlements</h2>
    <div class="counts">${model.unfinished
      .map((entry) => `<div><div class="big">${esc(entry.count)}</div><div class="sub">${esc(entry.status)}</div></div>`)
      .join("")}</div>
    <div class="sub">${unfinishedTotal === 0 ? "nothing waiting on the chain" : "the watcher finishes these"}</div>
  </div>
  <div class="card">
    <h2>Signers</h2>
    <div class="big">${esc(model.signers.filter((signer) => !signer.low && signer.balanceWei !== undefined).length)} / ${esc(model.signers.length)}</div>
    <div class="sub">signer balances readable and above the minimum</div>
  </div>
</div>
<section>
  <h2>Signer balances</h2>
  <table>
    <thead><tr><th>Network</th><th>Signer</th><th class="num">Native balance</th><th class="num">In flight</th></tr></thead>
    <tbody>
${signerRows || '<tr><td colspan="4" class="empty">no signers</td></tr>'}
    </tbody>
  </table>
</section>
<section>
  <h2>Recent settlements (last ${esc(model.recentLimit)})</h2>
  <table>
    <thead><tr><th>Time (UTC)</th><th>Status</th><th>Network</th><th>Payer</th><th>Pay to</th><th class="num">Amount</th><th>Transaction</th></tr></thead>
    <tbody>
${settlementRows || '<tr><td colspan="7" class="empty">no settlements yet</td></tr>'}
    </tbody>
  </table>
</section>
</main>
</body>
</html>
`;
}
