// The app: routes `#/page/param` to the page modules, keeps signed-out users on the sign-in
// page, and owns the header (navigation, who is signed in, sign out).

import { createApi } from "./api.js";
import { errorBox, fill, h } from "./render.js";
import * as agents from "./pages/agents.js";
import * as alerts from "./pages/alerts.js";
import * as cases from "./pages/cases.js";
import * as live from "./pages/live.js";
import * as login from "./pages/login.js";
import * as overview from "./pages/overview.js";
import * as sessions from "./pages/sessions.js";

// route name -> [page without a parameter, page with one]
const ROUTES = {
  overview: [overview.render, null],
  alerts: [alerts.renderList, alerts.renderDetail],
  cases: [cases.renderList, cases.renderDetail],
  sessions: [sessions.renderList, sessions.renderDetail],
  agents: [agents.render, null],
  live: [live.render, null],
};

/** `#/alerts/a%2Fb` -> ["alerts", ["a/b"]]; anything malformed (or a "." / ".." part) -> the overview. */
export function parseHash(hash) {
  const path = String(hash || "").replace(/^#\/?/, "");
  const parts = path.split("/").filter((p) => p !== "");
  try {
    const decoded = parts.map((p) => decodeURIComponent(p));
    // "." and ".." would be dot-segments of the API path a page builds from them
    if (decoded.some((p) => p === "." || p === "..")) return ["overview", []];
    return [decoded[0] || "overview", decoded.slice(1)];
  } catch {
    return ["overview", []];
  }
}

function start() {
  const api = createApi();
  const main = document.getElementById("app");
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const logoutButton = document.getElementById("logout");
  let cleanup = null;
  let serial = 0;

  const navigate = (hash) => {
    if (location.hash === hash) show();
    else location.hash = hash;
  };

  const header = () => {
    const signedIn = api.signedIn();
    nav.hidden = !signedIn;
    logoutButton.hidden = !signedIn;
    const user = api.user();
    fill(who, signedIn && user ? String(user.email || user.id || "") : "");
  };

  async function show() {
    const mine = ++serial;
    if (cleanup) {
      cleanup();
      cleanup = null;
    }
    header();
    const root = h("section", { class: "page" });
    fill(main, root);
    const ctx = { api, navigate };
    if (!api.signedIn()) {
      await login.render(root, { ...ctx, params: [] });
      return;
    }
    const [name, params] = parseHash(location.hash);
    const pages = ROUTES[name] || ROUTES.overview;
    const page = (params.length > 0 ? pages[1] : pages[0]) || pages[0];
    for (const link of nav.getElementsByTagName("a")) {
      link.setAttribute("aria-current", link.getAttribute("href") === "#/" + name ? "page" : "false");
    }
    try {
      const done = await page(root, { ...ctx, params });
      if (typeof done === "function") {
        if (mine === serial) cleanup = done;
        else done();
      }
    } catch (err) {
      if (mine !== serial) return;
      if (!api.signedIn()) {
        show();
        return;
      }
      fill(root, errorBox(err));
    }
  }

  api.onChange((session) => {
    if (!session) show();
    else header();
  });
  logoutButton.addEventListener("click", async () => {
    await api.logout();
    navigate("#/overview");
  });
  window.addEventListener("hashchange", show);
  show();
}

if (typeof document !== "undefined" && typeof window !== "undefined" && document.getElementById?.("app")) {
  start();
}
