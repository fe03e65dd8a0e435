/**
 * The operator page as one self-contained HTML string: inline CSS, no external assets, one script
 * of ours (/dashboard/refresh.js, auto-refresh) and none inline. Every value that comes from the
 * database, the chain or the configuration goes through esc(); links are http(s) only.
 */

/** A value shown as text, linked to the block explorer when one is known (an http(s) URL). */
export interface Linked {
  text: string;
  href?: string;
}

export interface DashboardSettlement {
  createdAt: Date;
  status: string;
  /** One label per chain, e.g. "Base Sepolia (eip155:84532)", whichever name the caller used. */
  chain: string;
  payer: Linked;
  payTo: Linked;
  /** Already formatted, e.g. "0.01 USDC" (or "10000 (atomic)" for an asset not in the configuration). */
  amount: string;
  tx: Linked | null;
  errorReason: string | null;
}

export interface DashboardSigner {
  signer: Linked;
  /** undefined when the balance could not be read within the bound. */
  balanceWei: bigint | undefined;
  /** Formatted native balance, rounded, e.g. "0.0421 ETH", or why it is missing. */
  balance: string;
  low: boolean;
  inFlight: number;
}

/** A chain's signers under the chain's one label. */
export interface DashboardChain {
  label: string;
  signers: DashboardSigner[];
}

export interface DashboardModel {
  generatedAt: Date;
  windowHours: number;
  confirmed: number;
  failed: number;
  unfinished: Array<{ status: string; count: number }>;
  chains: DashboardChain[];
  recent: DashboardSettlement[];
  recentLimit: number;
  /** Auto-refresh period of this view (0: off) and the one the toggle turns it back on with. */
  refresh: { seconds: number; defaultSeconds: number };
  /** Present when the viewer came with a session cookie: who, and a logout button. */
  session?: { keyName: string };
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
a { color: #1d4ed8; text-decoration: none; }
a:hover { text-decoration: underline; }
header nav { display: flex; align-items: center; gap: 14px; font-size: 12px; }
header nav a.toggle { color: #c7d2fe; }
header nav #refresh-status { color: #fca5a5; }
.logout { display: flex; align-items: center; gap: 8px; margin: 0; color: #9ca3af; }
button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid #4b5563; background: #1f2937; color: #f3f4f6; cursor: pointer; }
tr.group th { padding-top: 12px; font-size: 13px; color: var(--fg); }
.generated { margin: 0 0 14px; color: var(--muted); font-size: 12px; }
`;

/** Only http(s) links are ever written; anything else is shown as plain text. */
function linked(value: Linked, testId?: string): string {
  const attributes = testId ? ` data-testid="${esc(testId)}"` : "";
  if (value.href === undefined || !/^https?:\/\//i.test(value.href)) return testId ? `<span${attributes}>${esc(value.text)}</span>` : esc(value.text);
  return `<a href="${esc(value.href)}" rel="noopener noreferrer" target="_blank"${attributes}>${esc(value.text)}</a>`;
}

function refreshControl(refresh: DashboardModel["refresh"]): string {
  if (refresh.seconds > 0) {
    return `<a class="toggle" data-testid="refresh-toggle" href="/dashboard?refresh=0" title="stop refreshing">auto-refresh every ${esc(refresh.seconds)} s · pause</a>`;
  }
  return `<a class="toggle" data-testid="refresh-toggle" href="/dashboard?refresh=${esc(refresh.defaultSeconds)}" title="refresh every ${esc(refresh.defaultSeconds)} s">auto-refresh off · resume</a>`;
}

function sessionControl(session: DashboardModel["session"]): string {
  if (!session) return "";
  return `<form method="post" action="/dashboard/logout" class="logout"><span>signed in as ${esc(session.keyName)}</span> <button type="submit" data-testid="logout">Log out</button></form>`;
}

export function renderDashboard(model: DashboardModel): string {
  const final = model.confirmed + model.failed;
  const unfinishedTotal = model.unfinished.reduce((sum, entry) => sum + entry.count, 0);
  const signers = model.chains.flatMap((chain) => chain.signers);
  const signerRows = model.chains
    .map((chain) => {
      const rows = chain.signers.map(
        (signer) => `<tr>
  <td class="mono">${linked(signer.signer)}</td>
  <td class="num${signer.low || signer.balanceWei === undefined ? " low" : ""}" data-testid="signer-balance"${signer.balanceWei === undefined ? "" : ` title="${esc(signer.balanceWei)} wei"`}>${esc(signer.balance)}${signer.low ? " (low)" : ""}</td>
  <td class="num">${esc(signer.inFlight)}</td>
</tr>`,
      );
      return `<tr class="group"><th colspan="3" data-testid="chain-label">${esc(chain.label)}</th></tr>\n${rows.join("\n") || '<tr><td colspan="3" class="empty">no signers</td></tr>'}`;
    })
    .join("\n");
  const settlementRows = model.recent
    .map(
      (row) => `<tr>
  <td class="nowrap">${esc(time(row.createdAt))}</td>
  <td><span class="pill ${esc(row.status)}">${esc(row.status)}</span>${row.errorReason ? `<div class="reason">${esc(row.errorReason)}</div>` : ""}</td>
  <td class="nowrap">${esc(row.chain)}</td>
  <td class="mono">${linked(row.payer)}</td>
  <td class="mono">${linked(row.payTo)}</td>
  <td class="num" data-testid="amount">${esc(row.amount)}</td>
  <td class="mono">${row.tx ? linked(row.tx, "tx") : '<span class="empty">none</span>'}</td>
</tr>`,
    )
    .join("\n");
  const refreshing = model.refresh.seconds > 0;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>x402 facilitator – operator</title>
<style>${css}</style>
${refreshing ? '<script src="/dashboard/refresh.js" defer></script>\n' : ""}</head>
<body data-refresh-seconds="${esc(model.refresh.seconds)}">
<header><h1>x402 facilitator · operator</h1><nav><span id="refresh-status" data-testid="refresh-status"></span>${refreshControl(model.refresh)}${sessionControl(model.session)}</nav></header>
<main>
<p class="generated" data-testid="generated">generated ${esc(time(model.generatedAt))}${refreshing ? "" : " · reload for fresh figures"}</p>
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
    <div class="big">${esc(signers.filter((signer) => !signer.low && signer.balanceWei !== undefined).length)} / ${esc(signers.length)}</div>
    <div class="sub">signer balances readable and above the minimum</div>
  </div>
</div>
<section>
  <h2>Signer balances</h2>
  <table>
    <thead><tr><th>Signer</th><th class="num">Native balance</th><th class="num">In flight</th></tr></thead>
    <tbody>
${signerRows || '<tr><td colspan="3" class="empty">no signers</td></tr>'}
    </tbody>
  </table>
</section>
<section>
  <h2>Recent settlements (last ${esc(model.recentLimit)})</h2>
  <table>
    <thead><tr><th>Time (UTC)</th><th>Status</th><th>Chain</th><th>Payer</th><th>Pay to</th><th class="num">Amount</th><th>Transaction</th></tr></thead>
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

const loginCss = `
.login { max-width: 440px; margin: 48px auto; }
.login form { display: grid; gap: 10px; }
.login label { font-weight: 600; }
.login input { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; width: 100%; }
.login button { justify-self: start; background: #111827; }
.error { color: var(--bad); background: var(--bad-bg); border-radius: 6px; padding: 8px 10px; margin: 0 0 12px; }
.note { color: var(--muted); font-size: 12px; margin: 12px 0 0; }
`;

/** GET /dashboard/login, and the same form again with what went wrong (a wrong key, too many attempts). */
export function renderLogin(options: { error?: string } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>x402 facilitator – operator login</title>
<style>${css}${loginCss}</style>
</head>
<body>
<header><h1>x402 facilitator · operator</h1></header>
<main>
<section class="login">
  <h2>Log in to the dashboard</h2>
  ${options.error === undefined ? "" : `<p class="error" role="alert" data-testid="login-error">${esc(options.error)}</p>`}
  <form method="post" action="/dashboard/login">
    <label for="key">Admin API key</label>
    <input id="key" name="key" type="password" autocomplete="current-password" required maxlength="512" placeholder="x402_…" autofocus>
    <button type="submit">Log in</button>
  </form>
  <p class="note">An admin key (<code>keys create --admin</code>). The browser keeps a session cookie, never the key; the session ends after 12 h, at logout, or when the key is revoked.</p>
</section>
</main>
</body>
</html>
`;
}
