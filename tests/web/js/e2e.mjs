// The whole dashboard app against a real agentwatch server, in node with the fake DOM:
// sign in, every page, triage an alert, sign out. Run by tests/web/test_web_serving.py with
// AW_URL, AW_EMAIL, AW_PASSWORD, AW_ALERT_ID, AW_ALERT_TITLE and AW_CASE_ID in the environment.
import assert from "node:assert/strict";

import { byTag, createDocument, findAll } from "./fakedom.mjs";

const env = process.env;
const base = env.AW_URL;

// -- a browser-like global environment -------------------------------------------------------
const doc = createDocument();
const byId = new Map();
const el = (tag, id, ...children) => {
  const e = doc.createElement(tag);
  if (id) byId.set(id, e);
  e.append(...children);
  return e;
};
const nav = el("nav", "nav", ...["overview", "alerts", "cases", "sessions", "agents"].map((p) => {
  const a = doc.createElement("a");
  a.setAttribute("href", "#/" + p);
  return a;
}));
nav.hidden = true;
const logout = el("button", "logout");
el("header", null, nav, el("span", "who"), logout);
const main = el("main", "app");
doc.getElementById = (id) => byId.get(id) ?? null;
globalThis.document = doc;

const windowListeners = [];
let hash = "";
globalThis.window = { addEventListener: (type, fn) => type === "hashchange" && windowListeners.push(fn) };
globalThis.location = {
  protocol: "http:",
  host: new URL(base).host,
  get hash() {
    return hash;
  },
  set hash(value) {
    hash = value.startsWith("#") ? value : "#" + value;
    setImmediate(() => windowListeners.forEach((fn) => fn()));
  },
};
const store = new Map();
Object.defineProperty(globalThis, "sessionStorage", {
  value: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) },
  configurable: true,
});
const realFetch = globalThis.fetch;
const requests = [];
globalThis.fetch = (url, init) => {
  assert.ok(url.startsWith("/"), `the app fetches same-origin paths only: ${url}`);
  requests.push({ url, auth: init?.headers?.Authorization ?? null });
  return realFetch(base + url, init);
};

async function until(what, predicate, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}; the page shows: ${main.textContent.slice(0, 500)}`);
}

const go = async (to, what, predicate) => {
  location.hash = to;
  await until(what, predicate);
};
const loaded = () => !main.textContent.includes("Loading…");

// -- the run ------------------------------------------------------------------------------------
await import("../../../src/agentwatch/web/static/js/app.js");

await until("the sign-in page", () => byTag(main, "form").length === 1);
const [email, password] = byTag(main, "input");
email.value = env.AW_EMAIL;
password.value = "wrong password";
byTag(main, "form")[0].dispatch("submit");
await until("the sign-in error", () => main.textContent.includes("email or password: invalid"));
password.value = env.AW_PASSWORD;
byTag(main, "form")[0].dispatch("submit");
await until("the overview", () => main.textContent.includes("Open alerts") && loaded());
assert.equal(nav.hidden, false);
assert.equal(byId.get("who").textContent, env.AW_EMAIL);
assert.ok(findAll(main, (n) => n.getAttribute("class") === "card-value").some((n) => Number(n.textContent) >= 1));
assert.ok(main.textContent.includes("Events stored"));

await go("#/alerts", "the alert list", () => main.textContent.includes("Min severity") && loaded() && byTag(main, "table").length > 0);
const titleLink = byTag(main, "a").find((a) => a.getAttribute("href") === `#/alerts/${env.AW_ALERT_ID}`);
assert.ok(titleLink, "the seeded alert is listed");
assert.equal(titleLink.textContent, env.AW_ALERT_TITLE);
assert.equal(byTag(main, "img").length, 0);

await go(titleLink.getAttribute("href"), "the alert", () => main.textContent.includes("Set status") && loaded());
assert.equal(byTag(main, "h1")[0].textContent, env.AW_ALERT_TITLE);
const forms = byTag(byTag(main, "article")[0], "form");
byTag(forms[0], "select")[0].value = "acknowledged";
forms[0].dispatch("submit");
await until("the acknowledged alert", () => byTag(main, "dd").some((d) => d.textContent === "acknowledged"));
const forms2 = byTag(byTag(main, "article")[0], "form");
byTag(forms2[1], "input")[0].value = "alice@example.com";
forms2[1].dispatch("submit");
await until("the assigned alert", () => byTag(main, "dd").some((d) => d.textContent === "alice@example.com"));

await go("#/cases", "the case list", () => main.textContent.includes("cases") && loaded() && byTag(main, "table").length > 0);
await go(`#/cases/${env.AW_CASE_ID}`, "the case", () => main.textContent.includes("Linked alerts") && loaded());
assert.ok(byTag(main, "a").some((a) => a.getAttribute("href") === `#/alerts/${env.AW_ALERT_ID}` && a.textContent === env.AW_ALERT_TITLE));

await go("#/sessions", "the session list", () => main.textContent.includes("sessions") && loaded() && main.textContent.includes("Apply"));
assert.ok(!findAll(main, (n) => n.getAttribute("class") === "error").length, main.textContent);
await go("#/agents", "the inventory", () => main.textContent.includes("agents") && loaded() && main.textContent.includes("Include gone"));
assert.ok(!findAll(main, (n) => n.getAttribute("class") === "error").length, main.textContent);

// every data call carried the bearer token; sign-in did not
for (const r of requests) {
  if (r.url.startsWith("/api/v1/auth/login")) assert.equal(r.auth, null);
  else assert.match(r.auth, /^Bearer ey/, r.url);
}

const token = JSON.parse(store.get("agentwatch.session")).access;
logout.dispatch("click");
await until("the sign-in page again", () => byTag(main, "input").some((i) => i.getAttribute("type") === "password"));
assert.equal(store.size, 0);
assert.equal(nav.hidden, true);
let status = 200;
for (let i = 0; i < 100 && status !== 401; i++) {
  status = (await realFetch(base + "/api/v1/users/me", { headers: { Authorization: "Bearer " + token } })).status;
  if (status !== 401) await new Promise((r) => setTimeout(r, 50));
}
assert.equal(status, 401, "signing out ended the session on the server");
console.log("e2e ok");
process.exit(0);
