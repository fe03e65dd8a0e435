/**
 * /dashboard/refresh.js, the dashboard's one script (the page allows scripts from itself only, none
 * inline): every `data-refresh-seconds` it fetches the page again, with the same cookies, and swaps
 * in the new <main>, so the page does not flash and keeps its scroll position. A session that ended
 * (the answer redirects to the login form, or is a 401/403) reloads the page, which then shows the
 * login form; any other failure is shown in the header and retried at the next tick. Nothing from
 * the answer runs: a parsed document's scripts never execute, and <main> holds none.
 */
export const dashboardRefreshScript = `"use strict";
(() => {
  const seconds = Number(document.body.dataset.refreshSeconds);
  if (!Number.isInteger(seconds) || seconds <= 0) return;
  const status = document.getElementById("refresh-status");
  const show = (text) => { if (status) status.textContent = text; };
  const tick = async () => {
    if (document.hidden) return schedule();
    try {
      const response = await fetch(location.href, { credentials: "same-origin", cache: "no-store", headers: { accept: "text/html" } });
      if (response.redirected || response.status === 401 || response.status === 403) return location.reload();
      if (!response.ok) throw new Error("HTTP " + response.status);
      const next = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("main");
      const current = document.querySelector("main");
      if (!next || !current) throw new Error("no dashboard in the answer");
      current.replaceWith(document.adoptNode(next));
      show("");
    } catch (error) {
      show("refresh failed (" + (error instanceof Error ? error.message : String(error)) + "), retrying");
    }
    schedule();
  };
  const schedule = () => { setTimeout(tick, seconds * 1000); };
  schedule();
})();
`;
