// The API client: the bearer token on every data call, one refresh on a 401, sign-out.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, createApi } from "../../../src/agentwatch/web/static/js/api.js";

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), m };
}

function json(status, doc) {
  return { ok: status >= 200 && status < 300, status, json: async () => doc };
}

const tokens = (n) => ({ access_token: `access-${n}`, refresh_token: `refresh-${n}`, user: { email: "a@example.com" } });

function server(routes) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    const call = { url, method: init.method, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    const handler = routes[`${init.method} ${url.split("?")[0]}`];
    return handler ? handler(call) : json(404, { error: { code: "NOT_FOUND", message: "nope" } });
  };
  return { calls, fetchImpl };
}

test("login keeps the tokens for the tab and data calls carry the bearer token", async () => {
  const storage = memoryStorage();
  const s = server({
    "POST /api/v1/auth/login": () => json(200, tokens(1)),
    "GET /api/v1/alerts": () => json(200, { alerts: [] }),
  });
  const api = createApi({ fetchImpl: s.fetchImpl, storage });
  assert.equal(api.signedIn(), false);
  await api.login("a@example.com", "pw");
  assert.deepEqual(s.calls[0].body, { email: "a@example.com", password: "pw" });
  assert.equal(s.calls[0].headers.Authorization, undefined);
  assert.equal(api.signedIn(), true);
  assert.equal(api.user().email, "a@example.com");
  await api.get("/api/v1/alerts", { status: "open", assignee: "", cursor: null, limit: 50 });
  assert.equal(s.calls[1].url, "/api/v1/alerts?status=open&limit=50");
  assert.equal(s.calls[1].headers.Authorization, "Bearer access-1");
  // a reload of the tab finds the session again
  assert.equal(createApi({ fetchImpl: s.fetchImpl, storage }).signedIn(), true);
});

test("a 401 is answered by one refresh shared by the waiting calls, then the calls are retried", async () => {
  let refreshes = 0;
  const s = server({
    "POST /api/v1/auth/login": () => json(200, tokens(1)),
    "POST /api/v1/auth/refresh": (c) => (assert.equal(c.body.refresh_token, "refresh-1"), refreshes++, json(200, tokens(2))),
    "GET /api/stats": (c) => (c.headers.Authorization === "Bearer access-2" ? json(200, { ok: 1 }) : json(401, { error: { code: "UNAUTHORIZED", message: "expired" } })),
  });
  const api = createApi({ fetchImpl: s.fetchImpl, storage: memoryStorage() });
  await api.login("a@example.com", "pw");
  const answers = await Promise.all([api.get("/api/stats"), api.get("/api/stats")]);
  assert.deepEqual(answers, [{ ok: 1 }, { ok: 1 }]);
  assert.equal(refreshes, 1);
});

test("a failed refresh forgets the session and tells the app", async () => {
  const storage = memoryStorage();
  const s = server({
    "POST /api/v1/auth/login": () => json(200, tokens(1)),
    "POST /api/v1/auth/refresh": () => json(401, { error: { code: "UNAUTHORIZED", message: "spent" } }),
    "GET /api/stats": () => json(401, { error: { code: "UNAUTHORIZED", message: "expired" } }),
  });
  const api = createApi({ fetchImpl: s.fetchImpl, storage });
  const changes = [];
  api.onChange((session) => changes.push(session));
  await api.login("a@example.com", "pw");
  await assert.rejects(api.get("/api/stats"), (e) => e instanceof ApiError && e.status === 401);
  assert.equal(api.signedIn(), false);
  assert.equal(storage.m.size, 0);
  assert.equal(changes.at(-1), null);
});

test("errors carry the API's code and message", async () => {
  const s = server({ "PATCH /api/v1/alerts/x": () => json(400, { error: { code: "INVALID_REQUEST", message: "status: bad" } }) });
  const api = createApi({ fetchImpl: s.fetchImpl, storage: memoryStorage() });
  await assert.rejects(api.send("PATCH", "/api/v1/alerts/x", { status: "bad" }), (e) => e.code === "INVALID_REQUEST" && e.message === "status: bad");
  assert.equal(s.calls[0].headers["Content-Type"], "application/json");
});

test("logout forgets the tokens and ends the session on the server", async () => {
  const storage = memoryStorage();
  const s = server({
    "POST /api/v1/auth/login": () => json(200, tokens(1)),
    "POST /api/v1/auth/logout": () => json(200, { revoked: true }),
  });
  const api = createApi({ fetchImpl: s.fetchImpl, storage });
  await api.login("a@example.com", "pw");
  await api.logout();
  assert.equal(api.signedIn(), false);
  assert.equal(storage.m.size, 0);
  const call = s.calls.at(-1);
  assert.equal(call.url, "/api/v1/auth/logout");
  assert.equal(call.headers.Authorization, "Bearer access-1");
  assert.deepEqual(call.body, { refresh_token: "refresh-1" });
});
