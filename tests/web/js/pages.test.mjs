// The page modules, fed hostile API answers: every value shows as text, no element or
// attribute comes from the data, and links built from data are checked.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import * as agents from "../../../src/agentwatch/web/static/js/pages/agents.js";
import * as alerts from "../../../src/agentwatch/web/static/js/pages/alerts.js";
import * as cases from "../../../src/agentwatch/web/static/js/pages/cases.js";
import * as live from "../../../src/agentwatch/web/static/js/pages/live.js";
import * as login from "../../../src/agentwatch/web/static/js/pages/login.js";
import * as overview from "../../../src/agentwatch/web/static/js/pages/overview.js";
import * as sessions from "../../../src/agentwatch/web/static/js/pages/sessions.js";
import { parseHash } from "../../../src/agentwatch/web/static/js/app.js";
import { attributeNames, byTag, fakeApi, findAll, installDocument } from "./fakedom.mjs";

const XSS = "<img src=x onerror=alert(1)>";
const SCRIPT = '"><script>alert(document.cookie)</script>';
const ALLOWED_TAGS = new Set(
  "DIV SPAN P A H1 H2 SECTION ARTICLE TABLE THEAD TBODY TR TH TD DL DT DD PRE UL OL LI STRONG DETAILS SUMMARY FORM LABEL INPUT SELECT OPTION BUTTON".split(
    " ",
  ),
);

function alert(extra = {}) {
  return {
    id: "2aa9d73a-25b7-5a5d-a101-9779bc642358",
    type: "sigma",
    detector: XSS,
    rule_id: SCRIPT,
    title: XSS,
    message: XSS,
    severity: 8,
    severity_label: "high",
    status: "open",
    assignee: XSS,
    count: 3,
    first_seen: "2026-12-06T09:00:00Z",
    last_seen: "2026-12-06T09:05:00Z",
    session_id: "javascript:alert(1)",
    tags: [XSS],
    entities: [{ type: "host", value: XSS, id: "e1" }],
    event_ids: ["e1"],
    details: { note: XSS },
    events: [{ event_id: "e1", event_type: "ai.request", data: { prompt: XSS } }],
    feedback: { tp: 1, fp: 0 },
    ...extra,
  };
}

/** No element or attribute came from the data, and every href is an app route or http(s). */
function assertInert(root) {
  for (const el of findAll(root, () => true)) {
    assert.ok(ALLOWED_TAGS.has(el.tagName), `unexpected element ${el.tagName}`);
    for (const [name, value] of el.attributes) {
      assert.ok(!name.startsWith("on"), `event handler attribute ${name}`);
      assert.notEqual(name, "style");
      if (name === "href") assert.match(value, /^(#\/|https?:\/\/)/, `href ${value}`);
      if (name === "href") assert.doesNotMatch(value, /[<>"\s]/, `href ${value}`);
    }
  }
  assert.equal(byTag(root, "img").length, 0);
  assert.equal(byTag(root, "script").length, 0);
}

beforeEach(() => installDocument());

test("an alert titled <img src=x onerror=alert(1)> renders as that literal text in the list", async () => {
  const api = fakeApi({ "/api/v1/alerts": { alerts: [alert()], meta: { total: 1, page: 1, limit: 50 }, next_cursor: null } });
  const root = document.createElement("section");
  await alerts.renderList(root, { api, params: [] });
  const titleLink = byTag(root, "a").find((a) => a.getAttribute("href") === "#/alerts/2aa9d73a-25b7-5a5d-a101-9779bc642358");
  assert.ok(titleLink, "the title links to the alert");
  assert.equal(titleLink.textContent, XSS);
  assert.equal(titleLink.childNodes.length, 1);
  assert.equal(titleLink.firstChild.nodeType, 3);
  assertInert(root);
  assert.equal(api.calls[0].path, "/api/v1/alerts");
  assert.equal(api.calls[0].query.limit, 50);
});

test("the alert list pages on with next_cursor and back again", async () => {
  const pages = { null: { alerts: [alert()], meta: { total: 2 }, next_cursor: "CUR2" }, CUR2: { alerts: [alert({ id: "b" })], meta: { total: 2 }, next_cursor: null } };
  const api = fakeApi(({ query }) => pages[String(query.cursor)]);
  const root = document.createElement("section");
  await alerts.renderList(root, { api, params: [] });
  const buttons = () => byTag(root, "button").filter((b) => ["Next", "Previous"].includes(b.textContent));
  const [prev, next] = buttons();
  assert.equal(prev.disabled, true);
  assert.equal(next.disabled, false);
  await Promise.all(next.dispatch("click"));
  await new Promise((r) => setImmediate(r));
  assert.equal(api.calls.at(-1).query.cursor, "CUR2");
  const [prev2, next2] = buttons();
  assert.equal(next2.disabled, true);
  prev2.dispatch("click");
  await new Promise((r) => setImmediate(r));
  assert.equal(api.calls.at(-1).query.cursor, null);
});

test("the alert filters are sent as query parameters", async () => {
  const api = fakeApi({ "/api/v1/alerts": { alerts: [], meta: { total: 0 }, next_cursor: null } });
  const root = document.createElement("section");
  await alerts.renderList(root, { api, params: [] });
  const form = byTag(root, "form")[0];
  const [status, type] = byTag(form, "select");
  status.value = "acknowledged";
  type.value = "atr";
  const severity = byTag(form, "input").find((i) => i.getAttribute("name") === "severity");
  severity.value = "7";
  form.dispatch("submit");
  await new Promise((r) => setImmediate(r));
  const q = api.calls.at(-1).query;
  assert.equal(q.status, "acknowledged");
  assert.equal(q.type, "atr");
  assert.equal(q.severity, "7");
  assert.equal(q.cursor, null);
});

test("the alert detail shows every hostile field as text and checks the session link", async () => {
  const api = fakeApi({ "/api/v1/alerts/2aa9d73a-25b7-5a5d-a101-9779bc642358": alert() });
  const root = document.createElement("section");
  await alerts.renderDetail(root, { api, params: ["2aa9d73a-25b7-5a5d-a101-9779bc642358"] });
  assert.equal(byTag(root, "h1")[0].textContent, XSS);
  assert.ok(root.textContent.includes(SCRIPT));
  // the session id is not a URL: it becomes an encoded app route, never a javascript: link
  const session = byTag(root, "a").find((a) => a.textContent === "javascript:alert(1)");
  assert.equal(session.getAttribute("href"), "#/sessions/javascript%3Aalert(1)");
  assertInert(root);
});

test("triage sends the status change and the assignee to the API and shows the answer", async () => {
  const id = "a/b?c";
  const api = fakeApi(({ method, body }) => (method === "GET" ? alert({ id }) : alert({ id, ...body, assignee: body.assignee ?? null })));
  const root = document.createElement("section");
  await alerts.renderDetail(root, { api, params: [id] });
  assert.equal(api.calls[0].path, "/api/v1/alerts/a%2Fb%3Fc");
  const forms = byTag(byTag(root, "article")[0], "form");
  byTag(forms[0], "select")[0].value = "closed";
  await Promise.all(forms[0].dispatch("submit"));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(api.calls.at(-1), { method: "PATCH", path: "/api/v1/alerts/a%2Fb%3Fc", body: { status: "closed" } });
  const forms2 = byTag(byTag(root, "article")[0], "form");
  byTag(forms2[1], "input")[0].value = "  alice@example.com ";
  forms2[1].dispatch("submit");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(api.calls.at(-1), { method: "POST", path: "/api/v1/alerts/a%2Fb%3Fc/assign", body: { assignee: "alice@example.com" } });
  const unassign = byTag(root, "button").find((b) => b.textContent === "Unassign");
  unassign.dispatch("click");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(api.calls.at(-1), { method: "PATCH", path: "/api/v1/alerts/a%2Fb%3Fc", body: { assignee: null } });
});

test("a refused triage shows the API's message as text", async () => {
  const api = fakeApi(({ method }) => (method === "GET" ? alert() : new Error(`assignee: ${XSS}`)));
  const root = document.createElement("section");
  await alerts.renderDetail(root, { api, params: ["x"] });
  const forms = byTag(root, "form");
  forms[1].dispatch("submit");
  await new Promise((r) => setImmediate(r));
  const error = findAll(root, (n) => n.getAttribute("class") === "error")[0];
  assert.equal(error.textContent, `assignee: ${XSS}`);
  assertInert(root);
});

test("cases: the list and the detail with its linked alerts, comments and timeline stay text", async () => {
  const c = {
    id: "5b0e0000-0000-4000-8000-000000000000",
    title: XSS,
    description: SCRIPT,
    severity: 9,
    severity_label: "critical",
    status: "open",
    assignee: XSS,
    tags: [XSS],
    alert_ids: ["a1"],
    created_by: "user:1",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    closed_at: null,
    alerts: [{ id: "a1", title: XSS, severity: 7, severity_label: "high", status: "open", rule_id: SCRIPT, last_seen: "x" }],
    comments: [{ id: "m", author: XSS, body: SCRIPT, created_at: "t" }],
    comments_total: 1,
    timeline: [{ id: "t", ts: "t", kind: "change", title: XSS, description: SCRIPT, author: "system" }],
    timeline_total: 1,
  };
  const api = fakeApi({ "/api/v1/cases": { cases: [c], meta: { total: 1 }, next_cursor: null }, [`/api/v1/cases/${c.id}`]: c });
  const list = document.createElement("section");
  await cases.renderList(list, { api, params: [] });
  assert.equal(byTag(list, "a").find((a) => a.getAttribute("href") === `#/cases/${c.id}`).textContent, XSS);
  assertInert(list);
  const detail = document.createElement("section");
  await cases.renderDetail(detail, { api, params: [c.id] });
  assert.equal(byTag(detail, "a").find((a) => a.getAttribute("href") === "#/alerts/a1").textContent, XSS);
  assert.ok(detail.textContent.includes(SCRIPT));
  assertInert(detail);
});

test("agent sessions: ids with slashes are encoded in links and paths, events shown as text", async () => {
  const s = { id: "team/run 7", agent_id: XSS, status: "running", goal: XSS, parent_session_id: "javascript:x", children_count: 1 };
  const doc = {
    session: s,
    events: [{ sequence: 1, timestamp: "t", type: "cognition.thought", payload: { content: XSS } }],
    alerts: [{ id: "al", type: XSS, message: SCRIPT, severity_score: 8, status: "open", count: 1 }],
    children: [{ id: "child<1>", status: "running" }],
    next_after: null,
  };
  const api = fakeApi({ "/sessions": { sessions: [s], total: 1, next_cursor: null }, "/sessions/team%2Frun%207": doc });
  const list = document.createElement("section");
  await sessions.renderList(list, { api, params: [] });
  assert.ok(byTag(list, "a").some((a) => a.getAttribute("href") === "#/sessions/team%2Frun%207"));
  assertInert(list);
  const detail = document.createElement("section");
  await sessions.renderDetail(detail, { api, params: ["team/run 7"] });
  assert.equal(api.calls.at(-1).path, "/sessions/team%2Frun%207");
  assert.ok(byTag(detail, "a").some((a) => a.getAttribute("href") === "#/sessions/child%3C1%3E"));
  assert.ok(detail.textContent.includes(XSS) && detail.textContent.includes(SCRIPT));
  assertInert(detail);
});

test("discovered agents: evidence URLs become links only when http(s)", async () => {
  const agent = (url) => ({
    id: "x",
    host: XSS,
    ip_address: "127.0.0.1",
    port: 11434,
    protocol: "http",
    agent_type: XSS,
    framework: SCRIPT,
    status: "active",
    confidence_score: 0.9,
    confidence_level: 'high" onclick="x',
    source: "scan",
    last_seen: "t",
    signals: [{ detector: XSS, signal_type: "banner", description: SCRIPT, confidence: 0.5, evidence: { url } }],
  });
  const api = fakeApi({ "/api/agents": { agents: [agent("javascript:alert(1)"), agent("http://127.0.0.1:11434/")], count: 2, total: 2 } });
  const root = document.createElement("section");
  await agents.render(root, { api, params: [] });
  const hrefs = byTag(root, "a").map((a) => a.getAttribute("href"));
  assert.deepEqual(hrefs, ["http://127.0.0.1:11434/"]);
  assert.ok(root.textContent.includes("javascript:alert(1)"));
  assert.ok(findAll(root, (n) => (n.getAttribute("class") || "").includes("conf-unknown")).length === 2);
  assertInert(root);
});

test("overview: alert counts and stats, a refused stats call shown as a message", async () => {
  const api = fakeApi(({ path, query }) => {
    if (path === "/api/stats") return new Error("permission 'events:read' required");
    return { alerts: [], meta: { total: query.status === "open" ? 4 : 1 } };
  });
  const root = document.createElement("section");
  await overview.render(root, { api, params: [] });
  const values = findAll(root, (n) => n.getAttribute("class") === "card-value").map((n) => n.textContent);
  assert.equal(values[0], "4");
  assert.ok(root.textContent.includes("permission 'events:read' required"));
  const statsRoot = overview.statsView({ events: { total: 5, by_type: { [XSS]: 5 } }, ai: { models: { [SCRIPT]: 2 } } });
  assert.ok(statsRoot.textContent.includes(XSS) && statsRoot.textContent.includes(SCRIPT));
  assertInert(root);
  assertInert(statsRoot);
});

test("live events: frames (binary or text) are decoded and shown as text, newest first", async () => {
  const sockets = [];
  const openSocket = (url) => {
    const s = document.createElement("ws");
    s.url = url;
    s.readyState = 1;
    s.sent = [];
    s.send = (m) => s.sent.push(m);
    s.close = () => (s.closed = true);
    sockets.push(s);
    return s;
  };
  const root = document.createElement("section");
  const stop = await live.render(root, { api: fakeApi(), openSocket, location: { protocol: "https:", host: "dash.example:8443" } });
  assert.equal(sockets[0].url, "wss://dash.example:8443/ws/events");
  sockets[0].dispatch("open");
  const frame = (doc) => new TextEncoder().encode(JSON.stringify(doc)).buffer;
  sockets[0].dispatch("message", { data: frame({ type: "event", data: { event_type: XSS, ts: "t1", data: { x: SCRIPT } } }) });
  sockets[0].dispatch("message", { data: JSON.stringify({ type: "event", data: { event_type: "second", ts: "t2" } }) });
  sockets[0].dispatch("message", { data: "not json <b>" });
  const items = findAll(root, (n) => n.getAttribute("class") === "live-event");
  assert.equal(items.length, 2);
  assert.equal(byTag(items[0], "strong")[0].textContent, "second");
  assert.equal(byTag(items[1], "strong")[0].textContent, XSS);
  sockets[0].dispatch("message", { data: JSON.stringify({ type: "error", error: { message: XSS } }) });
  assert.ok(root.textContent.includes(XSS));
  assertInert(root);
  assert.equal(live.subscribeFrame(" ai.request, process.* ,"), '{"type":"subscribe","filter":{"event_types":["ai.request","process.*"]}}');
  stop();
  assert.equal(sockets[0].closed, true);
});

test("live events: a handshake refused before opening is retried once after a refresh", async () => {
  const sockets = [];
  const openSocket = () => {
    const s = document.createElement("ws");
    s.close = () => {};
    sockets.push(s);
    return s;
  };
  let refreshed = 0;
  const api = { ...fakeApi(), refresh: async () => (++refreshed, true) };
  const root = document.createElement("section");
  await live.render(root, { api, openSocket, location: { protocol: "http:", host: "127.0.0.1:7777" } });
  assert.equal(sockets.length, 1);
  await Promise.all(sockets[0].dispatch("close", { code: 1006 }));
  assert.equal(refreshed, 1);
  assert.equal(sockets.length, 2);
  await Promise.all(sockets[1].dispatch("close", { code: 1006 }));
  assert.equal(sockets.length, 2);
  assert.ok(root.textContent.includes("disconnected (1006)"));
});

test("login: the form signs in with the typed email and password, errors shown as text", async () => {
  const seen = [];
  let navigated = null;
  const api = {
    ...fakeApi(),
    login: async (email, password) => {
      seen.push([email, password]);
      if (password === "bad") throw new Error(`email or password: invalid ${XSS}`);
    },
  };
  const root = document.createElement("section");
  await login.render(root, { api, navigate: (h) => (navigated = h), params: [] });
  const [email, password] = byTag(root, "input");
  assert.equal(password.getAttribute("type"), "password");
  email.value = "a@example.com";
  password.value = "bad";
  await Promise.all(byTag(root, "form")[0].dispatch("submit"));
  assert.ok(root.textContent.includes(`email or password: invalid ${XSS}`));
  assert.equal(navigated, null);
  password.value = "good";
  await Promise.all(byTag(root, "form")[0].dispatch("submit"));
  assert.deepEqual(seen, [["a@example.com", "bad"], ["a@example.com", "good"]]);
  assert.equal(navigated, "#/overview");
  assert.equal(password.value, "");
  assertInert(root);
});

test("the router decodes each part of the hash and falls back to the overview", () => {
  assert.deepEqual(parseHash("#/alerts/a%2Fb"), ["alerts", ["a/b"]]);
  assert.deepEqual(parseHash(""), ["overview", []]);
  assert.deepEqual(parseHash("#/alerts/%E0%A4%A"), ["overview", []]);
});
