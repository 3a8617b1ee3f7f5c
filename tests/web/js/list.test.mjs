// The shared paged list (list.js) and the list pages built on it: paging by cursor and by
// offset, the empty state, the API's error as text, hostile values as literal text, and a
// late answer to an older request never drawn over the newer one.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { CursorPager, OffsetPager, pagedResults, renderPagedList } from "../../../src/agentwatch/web/static/js/list.js";
import * as agents from "../../../src/agentwatch/web/static/js/pages/agents.js";
import * as alerts from "../../../src/agentwatch/web/static/js/pages/alerts.js";
import * as cases from "../../../src/agentwatch/web/static/js/pages/cases.js";
import * as sessions from "../../../src/agentwatch/web/static/js/pages/sessions.js";
import { table, text } from "../../../src/agentwatch/web/static/js/render.js";
import { byTag, fakeApi, findAll, installDocument } from "./fakedom.mjs";

const XSS = "<img src=x onerror=alert(1)>";
const tick = () => new Promise((r) => setImmediate(r));

beforeEach(() => installDocument());

/** A list page of things {name}, with one text filter `q`, on a CursorPager of 2. */
function thingsSpec(pager = new CursorPager(2)) {
  return {
    title: "Things",
    path: "/api/things",
    pager,
    noun: "things",
    filters: { values: { q: "" }, fields: [{ name: "q", label: "Name", maxlength: 64 }] },
    rows: (doc) => doc.things,
    total: (doc) => doc.total,
    table: (rows) => table([{ title: "Name", cell: (t) => text(t.name) }], rows, "No things."),
  };
}

const pagerButtons = (root) => {
  const [prev, next] = byTag(root, "button").filter((b) => ["Previous", "Next"].includes(b.textContent));
  return { prev, next };
};
const cells = (root) => byTag(root, "td").map((td) => td.textContent);

test("the list pages forward through two pages with the cursor of the first, and back", async () => {
  const pages = {
    null: { things: [{ name: "a" }, { name: "b" }], total: 3, next_cursor: "CUR-2" },
    "CUR-2": { things: [{ name: "c" }], total: 3, next_cursor: null },
  };
  const api = fakeApi(({ query }) => pages[String(query.cursor)]);
  const root = document.createElement("section");
  await renderPagedList(root, { api }, thingsSpec());
  assert.deepEqual(api.calls[0], { method: "GET", path: "/api/things", query: { q: "", limit: 2, cursor: null } });
  assert.deepEqual(cells(root), ["a", "b"]);
  assert.equal(findAll(root, (n) => n.getAttribute("class") === "pager-summary")[0].textContent, "3 things");
  let { prev, next } = pagerButtons(root);
  assert.equal(prev.disabled, true);
  assert.equal(next.disabled, false);
  await Promise.all(next.dispatch("click"));
  assert.deepEqual(api.calls[1].query, { q: "", limit: 2, cursor: "CUR-2" });
  assert.deepEqual(cells(root), ["c"]);
  ({ prev, next } = pagerButtons(root));
  assert.equal(prev.disabled, false);
  assert.equal(next.disabled, true);
  await Promise.all(prev.dispatch("click"));
  assert.equal(api.calls[2].query.cursor, null);
  assert.deepEqual(cells(root), ["a", "b"]);
  assert.equal(api.calls.length, 3);
});

test("applying the filters sends them and starts again from the first page", async () => {
  const api = fakeApi(({ query }) => ({ things: [{ name: query.q || "x" }], total: 9, next_cursor: "CUR-" + api.calls.length }));
  const root = document.createElement("section");
  await renderPagedList(root, { api }, thingsSpec());
  await Promise.all(pagerButtons(root).next.dispatch("click"));
  assert.equal(api.calls[1].query.cursor, "CUR-1");
  const form = byTag(root, "form")[0];
  byTag(form, "input")[0].value = "  zed ";
  form.dispatch("submit");
  await tick();
  assert.deepEqual(api.calls[2].query, { q: "zed", limit: 2, cursor: null });
  assert.deepEqual(cells(root), ["zed"]);
  assert.equal(pagerButtons(root).prev.disabled, true);
});

test("the filter form: one labelled control per field, values read back by their kind", async () => {
  const values = { status: "closed", severity: "", name: "", gone: false };
  const fields = [
    { name: "status", label: "Status", choices: ["open", "closed"] },
    { name: "severity", label: "Min severity", number: [0, 10] },
    { name: "name", label: "Name", maxlength: 128 },
    { name: "gone", label: "Include gone", checkbox: true },
  ];
  const api = fakeApi({ "/api/things": { things: [], total: 0 } });
  const root = document.createElement("section");
  await renderPagedList(root, { api }, { ...thingsSpec(), filters: { values, fields }, query: (v) => ({ ...v, gone: v.gone ? "true" : "" }) });
  const form = byTag(root, "form")[0];
  assert.equal(form.getAttribute("class"), "filters");
  assert.deepEqual(byTag(form, "label").map((l) => l.firstChild.textContent), ["Status", "Min severity", "Name", "Include gone"]);
  const select = byTag(form, "select")[0];
  assert.deepEqual(byTag(select, "option").map((o) => [o.value, o.textContent, o.selected === true]), [["", "any", false], ["open", "open", false], ["closed", "closed", true]]);
  const [severity, name, gone] = byTag(form, "input");
  assert.deepEqual([severity.getAttribute("type"), severity.getAttribute("min"), severity.getAttribute("max")], ["number", "0", "10"]);
  assert.deepEqual([name.getAttribute("type"), name.getAttribute("maxlength")], ["text", "128"]);
  assert.equal(gone.getAttribute("type"), "checkbox");
  assert.equal(byTag(form, "button").at(-1).textContent, "Apply");
  assert.deepEqual(api.calls[0].query, { status: "closed", severity: "", name: "", gone: "", limit: 2, cursor: null });
  select.value = "open";
  severity.value = "7";
  name.value = ` ${XSS} `;
  gone.checked = true;
  form.dispatch("submit");
  await tick();
  assert.deepEqual(values, { status: "open", severity: "7", name: XSS, gone: true });
  assert.deepEqual(api.calls[1].query, { status: "open", severity: "7", name: XSS, gone: "true", limit: 2, cursor: null });
});

test("an empty list shows the page's empty message and a pager that goes nowhere", async () => {
  const api = fakeApi({ "/api/things": { things: [], total: 0, next_cursor: null } });
  const root = document.createElement("section");
  await renderPagedList(root, { api }, thingsSpec());
  const empty = findAll(root, (n) => n.getAttribute("class") === "empty");
  assert.equal(empty.length, 1);
  assert.equal(empty[0].textContent, "No things.");
  assert.equal(byTag(root, "table").length, 0);
  const { prev, next } = pagerButtons(root);
  assert.equal(prev.disabled, true);
  assert.equal(next.disabled, true);
  assert.ok(root.textContent.includes("0 things"));
});

test("an API error is shown as text in the results, the heading and filters stay", async () => {
  const api = fakeApi({ "/api/things": new Error(`cursor: not a cursor of this list ${XSS}`) });
  const root = document.createElement("section");
  await renderPagedList(root, { api }, thingsSpec());
  const error = findAll(root, (n) => n.getAttribute("class") === "error");
  assert.equal(error.length, 1);
  assert.equal(error[0].getAttribute("role"), "alert");
  assert.equal(error[0].textContent, `cursor: not a cursor of this list ${XSS}`);
  assert.equal(error[0].childNodes.length, 1);
  assert.equal(error[0].firstChild.nodeType, 3);
  assert.equal(byTag(root, "img").length, 0);
  assert.equal(byTag(root, "h1")[0].textContent, "Things");
  assert.equal(byTag(root, "form").length, 1);
  assert.equal(findAll(root, (n) => n.getAttribute("class") === "loading").length, 0);
});

test("a hostile value in a row, in the total or in the noun is rendered literally", async () => {
  const api = fakeApi({ "/api/things": { things: [{ name: XSS }], total: XSS, next_cursor: null } });
  const spec = { ...thingsSpec(), noun: "<b>things</b>" };
  const root = document.createElement("section");
  await renderPagedList(root, { api }, spec);
  const td = byTag(root, "td")[0];
  assert.equal(td.textContent, XSS);
  assert.equal(td.childNodes.length, 1);
  assert.equal(td.firstChild.nodeType, 3);
  assert.equal(findAll(root, (n) => n.getAttribute("class") === "pager-summary")[0].textContent, `${XSS} <b>things</b>`);
  assert.equal(byTag(root, "img").length + byTag(root, "b").length, 0);
});

test("offset paging moves by the page size and stops at the total", async () => {
  const api = fakeApi(({ query }) => ({ things: [{ name: `from ${query.offset || 0}` }], total: 5 }));
  const { results, load } = pagedResults(api, { ...thingsSpec(new OffsetPager(2)), query: () => ({ q: "" }) });
  await load();
  assert.deepEqual(api.calls[0].query, { q: "", limit: 2, offset: "" });
  for (const expected of [2, 4]) {
    await Promise.all(pagerButtons(results).next.dispatch("click"));
    assert.equal(api.calls.at(-1).query.offset, expected);
  }
  assert.equal(pagerButtons(results).next.disabled, true);
  await Promise.all(pagerButtons(results).prev.dispatch("click"));
  assert.equal(api.calls.at(-1).query.offset, 2);
  assert.deepEqual(cells(results), ["from 2"]);
});

/** An API whose GETs wait until the test answers them, in whatever order it likes. */
function heldApi() {
  const calls = [];
  return {
    calls,
    get(path, query) {
      let answer;
      const promise = new Promise((resolve) => (answer = (doc) => (resolve(structuredClone(doc)), tick())));
      calls.push({ path, query, answer });
      return promise;
    },
  };
}

// Each list page, with an answer holding one row whose name it shows, and a total.
const LIST_PAGES = [
  ["alerts", alerts.renderList, (name, total, next) => ({ alerts: [{ id: name, title: name }], meta: { total }, next_cursor: next })],
  ["cases", cases.renderList, (name, total, next) => ({ cases: [{ id: name, title: name }], meta: { total }, next_cursor: next })],
  ["sessions", sessions.renderList, (name, total, next) => ({ sessions: [{ id: name }], total, next_cursor: next })],
  ["agents", agents.render, (name, total) => ({ agents: [{ host: name }], count: 1, total })],
];

for (const [name, render, answer] of LIST_PAGES) {
  test(`${name}: a page answered after a newer request is dropped, not drawn over it`, async () => {
    const api = heldApi();
    const root = document.createElement("section");
    const first = render(root, { api, params: [] });
    await api.calls[0].answer(answer("first page", 500, "CUR-2"));
    await first;
    pagerButtons(root).next.dispatch("click"); // page 2 asked for, its answer is slow
    assert.equal(api.calls.length, 2);
    byTag(root, "form")[0].dispatch("submit"); // then the filters applied: page 1 again
    assert.equal(api.calls.length, 3);
    assert.ok(!api.calls[2].query.cursor && !api.calls[2].query.offset, "Apply starts from the first page");
    await api.calls[2].answer(answer("filtered", 1, null));
    await api.calls[1].answer(answer("stale page 2", 500, "CUR-3"));
    assert.ok(root.textContent.includes("filtered"), root.textContent);
    assert.ok(!root.textContent.includes("stale page 2"), "the older answer was drawn over the newer one");
    assert.ok(root.textContent.includes(`1 ${name}`));
    const { prev, next } = pagerButtons(root);
    assert.equal(prev.disabled, true);
    assert.equal(next.disabled, true, "Next follows the stale answer");
  });
}

test("agents: a page past the end of a shrunken inventory moves back to the last page", async () => {
  let total = 250;
  const api = fakeApi(({ query }) => {
    const offset = Number(query.offset || 0);
    const rows = Math.max(0, Math.min(100, total - offset));
    return { agents: Array.from({ length: rows }, (_, i) => ({ host: `agent ${offset + i}` })), count: rows, total };
  });
  const root = document.createElement("section");
  await agents.render(root, { api, params: [] });
  for (let i = 0; i < 2; i++) await Promise.all(pagerButtons(root).next.dispatch("click"));
  assert.equal(api.calls.at(-1).query.offset, 200);
  total = 150; // agents gone meanwhile: the page kept its offset of 200
  const again = document.createElement("section");
  await agents.render(again, { api, params: [] });
  await tick();
  assert.equal(api.calls.at(-1).query.offset, 100);
  assert.ok(again.textContent.includes("agent 149"), again.textContent);
  assert.ok(!again.textContent.includes("No agents discovered yet."));
  assert.equal(pagerButtons(again).next.disabled, true);
  assert.equal(pagerButtons(again).prev.disabled, false);
});

test("alerts: a page 2 emptied meanwhile (its alerts closed) goes back to the page before it", async () => {
  let closed = false;
  const api = fakeApi(({ query }) =>
    query.cursor === "CUR-2"
      ? { alerts: closed ? [] : [{ id: "b", title: "second page" }], meta: { total: closed ? 1 : 2 }, next_cursor: null }
      : { alerts: [{ id: "a", title: "first page" }], meta: { total: closed ? 1 : 2 }, next_cursor: closed ? null : "CUR-2" },
  );
  const root = document.createElement("section");
  await alerts.renderList(root, { api, params: [] });
  await Promise.all(pagerButtons(root).next.dispatch("click"));
  assert.ok(root.textContent.includes("second page"));
  closed = true;
  const again = document.createElement("section");
  await alerts.renderList(again, { api, params: [] });
  await tick();
  assert.deepEqual(api.calls.slice(-2).map((c) => c.query.cursor), ["CUR-2", null]);
  assert.ok(again.textContent.includes("first page"), again.textContent);
  assert.ok(!again.textContent.includes("No alerts match."));
  assert.equal(pagerButtons(again).prev.disabled, true);
  assert.equal(pagerButtons(again).next.disabled, true);
});
