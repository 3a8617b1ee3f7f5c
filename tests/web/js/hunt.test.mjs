// Defects found by review: a refresh ending after sign-out, a transient refresh failure, a
// socket reopened after the live page was left, and hash routes naming "." or "..".
import assert from "node:assert/strict";
import { test } from "node:test";

import { createApi } from "../../../src/agentwatch/web/static/js/api.js";
import { parseHash } from "../../../src/agentwatch/web/static/js/app.js";
import * as live from "../../../src/agentwatch/web/static/js/pages/live.js";
import { fakeApi, installDocument } from "./fakedom.mjs";

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), m };
}

const json = (status, doc) => ({ ok: status >= 200 && status < 300, status, json: async () => doc });
const tokens = (n) => ({ access_token: `access-${n}`, refresh_token: `refresh-${n}`, user: { email: "a@example.com" } });

test("a refresh that ends after sign-out does not sign the tab in again", async () => {
  let finishRefresh;
  const fetchImpl = async (url, init) => {
    if (url === "/api/v1/auth/login") return json(200, tokens(1));
    if (url === "/api/v1/auth/refresh") return new Promise((resolve) => (finishRefresh = () => resolve(json(200, tokens(2)))));
    if (url === "/api/v1/auth/logout") return json(200, {});
    return init.headers.Authorization === "Bearer access-2" ? json(200, {}) : json(401, { error: { code: "UNAUTHORIZED", message: "expired" } });
  };
  const storage = memoryStorage();
  const api = createApi({ fetchImpl, storage });
  await api.login("a@example.com", "pw");
  const pending = api.get("/api/stats").catch((e) => e);
  while (!finishRefresh) await new Promise((r) => setTimeout(r, 1));
  await api.logout();
  finishRefresh();
  await pending;
  assert.equal(api.signedIn(), false);
  assert.equal(storage.m.size, 0);
});

test("a refresh refused by an unavailable server (5xx, 429) keeps the session", async () => {
  for (const status of [503, 429, 502]) {
    const fetchImpl = async (url) => {
      if (url === "/api/v1/auth/login") return json(200, tokens(1));
      if (url === "/api/v1/auth/refresh") return json(status, { error: { code: "UNAVAILABLE", message: "retry later" } });
      return json(401, { error: { code: "UNAUTHORIZED", message: "expired" } });
    };
    const api = createApi({ fetchImpl, storage: memoryStorage() });
    await api.login("a@example.com", "pw");
    await assert.rejects(api.get("/api/stats"), (e) => e.status === status && e.message === "retry later");
    assert.equal(api.signedIn(), true, `signed out by a ${status} on refresh`);
  }
});

test("live events: leaving the page while the refresh after a refused handshake runs opens no socket", async () => {
  installDocument();
  const sockets = [];
  const openSocket = () => {
    const s = document.createElement("ws");
    s.close = () => (s.closed = true);
    sockets.push(s);
    return s;
  };
  let finish;
  const api = { ...fakeApi(), refresh: () => new Promise((r) => (finish = () => r(true))) };
  const root = document.createElement("section");
  const stop = await live.render(root, { api, openSocket, location: { protocol: "http:", host: "127.0.0.1:7777" } });
  const closing = Promise.all(sockets[0].dispatch("close", { code: 1006 }));
  stop();
  finish();
  await closing;
  assert.equal(sockets.length, 1, "a socket was opened after the page was left");
});

test("the router refuses '.' and '..' as a part (they would move the API path the page calls)", () => {
  for (const hash of ["#/alerts/..", "#/alerts/.", "#/sessions/%2E%2E", "#/cases/%2e"]) {
    assert.deepEqual(parseHash(hash), ["overview", []], hash);
  }
  assert.deepEqual(parseHash("#/alerts/..a"), ["alerts", ["..a"]]);
});
