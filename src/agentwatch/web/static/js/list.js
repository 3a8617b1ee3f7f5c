// Paged lists: the one way a list page (alerts, cases, sessions, agents) fetches a page,
// pages on by cursor or by offset, and shows the rows, the empty state or the API's error.
//
// Everything is built with h() from render.js, so every value from the API reaches the page
// as text. Only the answer to the latest request is shown: a page asked for earlier that
// arrives later (a slow "Next" overtaken by "Apply") is dropped, never drawn over it. A page
// that comes back empty while there are pages before it (its rows went away since it was
// reached, e.g. alerts closed meanwhile) is left for the last page that still has rows.

import { errorBox, fill, h, heading, labelled, option } from "./render.js";

/** The bar under a list: Previous, a summary, Next. */
function pagerBar({ canBack, canForward, back, forward, summary }) {
  return h(
    "div",
    { class: "pager" },
    h("button", { type: "button", disabled: !canBack, on: { click: back } }, "Previous"),
    h("span", { class: "pager-summary" }, summary ?? ""),
    h("button", { type: "button", disabled: !canForward, on: { click: forward } }, "Next"),
  );
}

/**
 * Keyset paging: remembers the cursors of the pages seen so "Previous" can go back.
 * `current` is the cursor of the page shown (null for the first), `next` the answer's
 * `next_cursor`.
 */
export class CursorPager {
  constructor(size = 50) {
    this.size = size;
    this.reset();
  }

  reset() {
    this.stack = [];
    this.current = null;
    this.next = null;
  }

  /** The paging part of the list's query. */
  query() {
    return { limit: this.size, cursor: this.current };
  }

  /** Takes in a page the API answered. */
  seen(doc) {
    this.next = doc?.next_cursor || null;
  }

  forward() {
    if (!this.next) return false;
    this.stack.push(this.current);
    this.current = this.next;
    return true;
  }

  back() {
    if (this.stack.length === 0) return false;
    this.current = this.stack.pop();
    return true;
  }

  /** After an empty page: step back when there is a page before it (its rows went away). */
  pastEnd() {
    return this.back();
  }

  controls(onMove, summary) {
    return pagerBar({
      canBack: this.stack.length > 0,
      canForward: Boolean(this.next),
      back: () => this.back() && onMove(),
      forward: () => this.forward() && onMove(),
      summary,
    });
  }
}

/** Offset paging, for the lists that only count rows: pages of `size` out of `total`. */
export class OffsetPager {
  constructor(size) {
    this.size = size;
    this.reset();
  }

  reset() {
    this.offset = 0;
    this.total = 0;
  }

  query() {
    return { limit: this.size, offset: this.offset || "" };
  }

  seen(_doc, total) {
    this.total = Number(total) || 0;
  }

  forward() {
    if (this.offset + this.size >= this.total) return false;
    this.offset += this.size;
    return true;
  }

  back() {
    if (this.offset === 0) return false;
    this.offset = Math.max(0, this.offset - this.size);
    return true;
  }

  /** After an empty page: go to the last page the total still reaches (or the first). */
  pastEnd() {
    if (this.offset === 0) return false;
    const last = Math.max(0, Math.floor((this.total - 1) / this.size) * this.size);
    this.offset = Math.max(0, Math.min(this.offset - this.size, last));
    return true;
  }

  controls(onMove, summary) {
    return pagerBar({
      canBack: this.offset > 0,
      canForward: this.offset + this.size < this.total,
      back: () => this.back() && onMove(),
      forward: () => this.forward() && onMove(),
      summary,
    });
  }
}

/**
 * The results of a paged list: `results` (the element to place) and `load()` (fetch the page
 * the pager is on and show it). `spec`:
 *   path     the API path (GET)
 *   query()  the filter part of the query (the pager adds limit and cursor or offset)
 *   pager    a CursorPager or OffsetPager (a page keeps its own, so a revisit stays put)
 *   rows(doc), total(doc)   the answer's rows and its total count
 *   table(rows)             the rows as a node (with its own empty message)
 *   noun     what the summary counts: "12 alerts"
 */
export function pagedResults(api, spec) {
  const results = h("div", { class: "results" });
  let latest = 0;
  const load = async () => {
    const mine = ++latest;
    fill(results, h("p", { class: "loading" }, "Loading…"));
    try {
      const doc = await api.get(spec.path, { ...spec.query(), ...spec.pager.query() });
      if (mine !== latest) return;
      const total = spec.total(doc);
      const rows = spec.rows(doc) || [];
      spec.pager.seen(doc, total);
      // a page kept from an earlier visit can be past the end now: show the last one instead
      if (rows.length === 0 && spec.pager.pastEnd()) return load();
      fill(results, spec.table(rows), spec.pager.controls(load, `${total ?? 0} ${spec.noun}`));
    } catch (err) {
      if (mine === latest) fill(results, errorBox(err));
    }
  };
  return { results, load };
}

/** A filter's control: a select (with "any" first), a number, a checkbox or a text box. */
function filterControl(field, value) {
  const name = field.name;
  if (field.choices) return h("select", { name }, option("", "any"), field.choices.map((c) => option(c, c, value === c)));
  if (field.number) return h("input", { type: "number", name, min: String(field.number[0]), max: String(field.number[1]), value });
  if (field.checkbox) return h("input", { type: "checkbox", name, checked: value });
  return h("input", { type: "text", name, maxlength: String(field.maxlength), value });
}

function filterValue(field, control) {
  if (field.checkbox) return Boolean(control.checked);
  return field.choices || field.number ? control.value : control.value.trim();
}

/**
 * A whole list page: the heading, the filter form and the paged results. `spec` is the one
 * of pagedResults() plus `title` and `filters`: `{values, fields}`, where `values` is the
 * page's own object of filter values (kept between visits) and each field names one of them:
 * {name, label, choices: [...]}, {name, label, number: [min, max]}, {name, label, checkbox:
 * true} or {name, label, maxlength} (text, trimmed). Submitting the form stores the values and
 * starts the list again from its first page. `query(values)` makes the filter part of the
 * query (the values as they are when left out).
 */
export async function renderPagedList(root, { api }, spec) {
  const { values, fields } = spec.filters;
  const query = spec.query ? () => spec.query(values) : () => ({ ...values });
  const { results, load } = pagedResults(api, { ...spec, query });
  const controls = fields.map((field) => filterControl(field, values[field.name]));
  const submit = (event) => {
    event.preventDefault();
    fields.forEach((field, i) => (values[field.name] = filterValue(field, controls[i])));
    spec.pager.reset();
    load();
  };
  const form = h(
    "form",
    { class: "filters", on: { submit } },
    fields.map((field, i) => labelled(field.label, controls[i])),
    h("button", { type: "submit" }, "Apply"),
  );
  fill(root, heading(spec.title), form, results);
  await load();
}
