// Safe rendering: the only way the dashboard builds its pages.
//
// Every value that came from the API reaches the page as a text node (createTextNode /
// textContent) or through an attribute setter; nothing is ever parsed as HTML. Event-handler
// and style attributes cannot be set through h() at all, and a URL attribute only takes what
// safeHref() lets through (a route of this app, or an absolute http(s) URL).

const URL_ATTRIBUTES = new Set(["href", "src", "action", "formaction", "xlink:href", "poster", "srcset"]);
const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "multiple", "required"]);
const SEVERITY_LABELS = new Set(["info", "low", "medium", "high", "critical"]);

/** The href a link may carry: a hash route of this app, or an absolute http(s) URL; else null. */
export function safeHref(value) {
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (/^#\/[^\s]*$/.test(text)) return text;
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

/** A hash route of this app from its parts, each part percent-encoded: route("alerts", id). */
export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

function appendChild(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) appendChild(el, c);
    return;
  }
  if (typeof child === "object" && typeof child.nodeType === "number") {
    el.appendChild(child);
    return;
  }
  el.appendChild(document.createTextNode(String(child)));
}

/**
 * An element: h("a", {href: route("alerts", id), class: "x"}, "text", otherNode).
 * props: `class`, `text` (textContent), `on` ({event: handler}), form properties
 * (value, checked, disabled, hidden, selected...), and plain attributes.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    const lower = name.toLowerCase();
    if (lower === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (lower === "text") {
      el.textContent = String(value);
    } else if (lower === "class") {
      el.setAttribute("class", String(value));
    } else if (PROPERTIES.has(lower)) {
      el[lower] = value;
    } else if (lower.startsWith("on") || lower === "style" || lower === "srcdoc") {
      throw new Error(`h: attribute ${name} is not allowed`);
    } else if (URL_ATTRIBUTES.has(lower)) {
      const href = safeHref(String(value));
      if (href !== null) el.setAttribute(lower, href);
    } else {
      el.setAttribute(lower, String(value));
    }
  }
  appendChild(el, children);
  return el;
}

/** Replace what `el` holds by `children` (nodes or text). */
export function fill(el, ...children) {
  el.replaceChildren();
  appendChild(el, children);
  return el;
}

/** A link when `href` is safe, else the text alone. */
export function link(href, text) {
  const safe = safeHref(href);
  if (safe === null) return h("span", {}, text);
  return h("a", { href: safe, rel: safe.startsWith("#/") ? null : "noopener noreferrer" }, text);
}

/** A time as the API gave it (RFC 3339 or epoch seconds), for display. */
export function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value === "number") {
    const d = new Date(value * 1000);
    return Number.isNaN(d.getTime()) ? String(value) : d.toISOString();
  }
  return String(value);
}

/** A value for a table cell: text, with objects as compact JSON. */
export function text(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function severityLabel(score, label) {
  if (typeof label === "string" && SEVERITY_LABELS.has(label)) return label;
  const n = Number(score);
  if (!Number.isFinite(n)) return "unknown";
  if (n <= 1) return "info";
  if (n <= 3) return "low";
  if (n <= 6) return "medium";
  if (n <= 8) return "high";
  return "critical";
}

/** A severity badge; its class comes from a fixed list, never from the data itself. */
export function severityBadge(score, label) {
  const word = severityLabel(score, label);
  const shown = score === null || score === undefined ? word : `${word} (${score})`;
  return h("span", { class: `badge sev-${word}` }, shown);
}

/** A table: columns are [{title, cell(row) -> node or text}]. */
export function table(columns, rows, empty = "Nothing to show.") {
  if (!rows || rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title)))),
    h(
      "tbody",
      {},
      rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(row))))),
    ),
  );
}

/** A description list of [label, value] pairs; values are text or nodes. */
export function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, typeof value === "object" && value?.nodeType ? value : text(value))]),
  );
}

/** A JSON document shown as text. */
export function jsonBlock(value) {
  return h("pre", { class: "json" }, JSON.stringify(value ?? null, null, 2));
}

/** An error as a message box (the API's message is shown as text). */
export function errorBox(err) {
  const message = err && err.message ? err.message : String(err);
  return h("p", { class: "error", role: "alert" }, message);
}

export function heading(title, ...rest) {
  return h("div", { class: "page-head" }, h("h1", {}, title), rest);
}

export function option(value, label, selected) {
  return h("option", { value, selected: selected ? true : null }, label ?? value);
}

/** A labelled form control. */
export function labelled(label, control) {
  return h("label", { class: "control" }, h("span", {}, label), control);
}
