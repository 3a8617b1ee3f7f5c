// The shared render module: text stays text, attributes cannot carry script, links are checked.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { CursorPager } from "../../../src/agentwatch/web/static/js/list.js";
import {
  fields,
  h,
  jsonBlock,
  link,
  route,
  safeHref,
  severityBadge,
  table,
} from "../../../src/agentwatch/web/static/js/render.js";
import { attributeNames, byTag, installDocument } from "./fakedom.mjs";

const XSS = "<img src=x onerror=alert(1)>";

beforeEach(() => installDocument());

test("a string child becomes a text node holding the literal markup", () => {
  const el = h("p", {}, XSS);
  assert.equal(el.childNodes.length, 1);
  assert.equal(el.firstChild.nodeType, 3);
  assert.equal(el.textContent, XSS);
  assert.equal(byTag(el, "img").length, 0);
});

test("the text prop sets textContent, never markup", () => {
  const el = h("div", { text: XSS });
  assert.equal(el.textContent, XSS);
  assert.equal(byTag(el, "img").length, 0);
});

test("event-handler, style and srcdoc attributes are refused", () => {
  for (const name of ["onclick", "onError", "ONMOUSEOVER", "style", "srcdoc"]) {
    assert.throws(() => h("div", { [name]: "alert(1)" }), /not allowed/, name);
  }
});

test("safeHref keeps app routes and http(s) URLs and refuses every other scheme", () => {
  assert.equal(safeHref("#/alerts/abc"), "#/alerts/abc");
  assert.equal(safeHref("https://example.com/a?b=1"), "https://example.com/a?b=1");
  assert.equal(safeHref("http://10.0.0.5:11434/"), "http://10.0.0.5:11434/");
  for (const bad of [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\nscript:alert(1)",
    "java\tscript:alert(1)",
    "\u0000javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "/ui/../x",
    "#/a b",
    "file:///etc/passwd",
    null,
    42,
  ]) {
    assert.equal(safeHref(bad), null, String(bad));
  }
});

test("a URL attribute with an unsafe value is left out; link() falls back to text", () => {
  const a = h("a", { href: "javascript:alert(1)" }, "x");
  assert.equal(a.getAttribute("href"), null);
  const l = link("javascript:alert(1)", "javascript:alert(1)");
  assert.equal(l.tagName, "SPAN");
  assert.equal(l.textContent, "javascript:alert(1)");
  const out = link("https://ok.example/", "ok");
  assert.equal(out.getAttribute("href"), "https://ok.example/");
  assert.equal(out.getAttribute("rel"), "noopener noreferrer");
  assert.equal(link("#/alerts/x", "x").getAttribute("rel"), null);
});

test("route() percent-encodes each part, so an id cannot break out of its segment", () => {
  assert.equal(route("alerts", 'a/"><script>'), "#/alerts/a%2F%22%3E%3Cscript%3E");
  assert.equal(safeHref(route("sessions", "team/run 7")), "#/sessions/team%2Frun%207");
});

test("severity badges take their class from a fixed list, not from the data", () => {
  assert.equal(severityBadge(9, "critical").getAttribute("class"), "badge sev-critical");
  assert.equal(severityBadge(5, 'x" onmouseover="alert(1)').getAttribute("class"), "badge sev-medium");
  assert.equal(severityBadge("zz", "nope").getAttribute("class"), "badge sev-unknown");
});

test("tables, field lists and JSON blocks show values as text", () => {
  const t = table([{ title: "T", cell: (r) => r.v }], [{ v: XSS }]);
  assert.equal(byTag(t, "td")[0].textContent, XSS);
  const f = fields([["k", XSS], ["o", { a: XSS }]]);
  assert.match(f.textContent, /<img src=x onerror=alert\(1\)>/);
  assert.equal(jsonBlock({ t: XSS }).textContent, JSON.stringify({ t: XSS }, null, 2));
  for (const el of [t, f]) assert.equal(byTag(el, "img").length, 0);
  assert.deepEqual([...attributeNames(t)].filter((n) => n.startsWith("on")), []);
});

test("the cursor pager walks forward and back through the cursors it was given", () => {
  const p = new CursorPager();
  assert.equal(p.forward(), false);
  p.next = "c1";
  assert.equal(p.forward(), true);
  assert.equal(p.current, "c1");
  p.next = "c2";
  p.forward();
  assert.equal(p.current, "c2");
  assert.equal(p.back(), true);
  assert.equal(p.current, "c1");
  assert.equal(p.back(), true);
  assert.equal(p.current, null);
  assert.equal(p.back(), false);
});
