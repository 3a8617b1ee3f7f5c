// Cases: the list (GET /api/v1/cases, filters and keyset paging) and one case
// (GET /api/v1/cases/{id}) with its linked alerts, comments and timeline.

import {
  CursorPager,
  errorBox,
  fields,
  fill,
  fmtTime,
  h,
  heading,
  labelled,
  option,
  route,
  severityBadge,
  table,
  text,
} from "../render.js";

export const STATUSES = ["open", "investigating", "resolved", "closed"];
const PAGE = 50;

const state = { filters: { status: "", severity: "", assignee: "" }, pager: new CursorPager() };

export function casesTable(cases) {
  return table(
    [
      { title: "Severity", cell: (c) => severityBadge(c.severity, c.severity_label) },
      { title: "Title", cell: (c) => h("a", { href: route("cases", c.id) }, text(c.title || c.id)) },
      { title: "Status", cell: (c) => text(c.status) },
      { title: "Assignee", cell: (c) => text(c.assignee ?? "") },
      { title: "Alerts", cell: (c) => text(Array.isArray(c.alert_ids) ? c.alert_ids.length : 0) },
      { title: "Tags", cell: (c) => (Array.isArray(c.tags) ? c.tags.map(text).join(", ") : "") },
      { title: "Updated", cell: (c) => fmtTime(c.updated_at) },
    ],
    cases,
    "No cases match.",
  );
}

function filterForm(onApply) {
  const f = state.filters;
  const status = h("select", { name: "status" }, option("", "any"), STATUSES.map((s) => option(s, s, f.status === s)));
  const severity = h("input", { type: "number", name: "severity", min: "0", max: "10", value: f.severity });
  const assignee = h("input", { type: "text", name: "assignee", maxlength: "128", value: f.assignee });
  return h(
    "form",
    {
      class: "filters",
      on: {
        submit: (event) => {
          event.preventDefault();
          state.filters = { status: status.value, severity: severity.value, assignee: assignee.value.trim() };
          state.pager.reset();
          onApply();
        },
      },
    },
    labelled("Status", status),
    labelled("Min severity", severity),
    labelled("Assignee", assignee),
    h("button", { type: "submit" }, "Apply"),
  );
}

export async function renderList(root, { api }) {
  const results = h("div", { class: "results" });
  const load = async () => {
    fill(results, h("p", { class: "loading" }, "Loading…"));
    try {
      const doc = await api.get("/api/v1/cases", { ...state.filters, limit: PAGE, cursor: state.pager.current });
      state.pager.next = doc.next_cursor || null;
      fill(results, casesTable(doc.cases || []), state.pager.controls(load, `${doc.meta?.total ?? 0} cases`));
    } catch (err) {
      fill(results, errorBox(err));
    }
  };
  fill(root, heading("Cases"), filterForm(load), results);
  await load();
}

export function caseView(doc) {
  const comments = Array.isArray(doc.comments) ? doc.comments : [];
  const timeline = Array.isArray(doc.timeline) ? doc.timeline : [];
  return h(
    "article",
    { class: "detail" },
    heading(text(doc.title || doc.id), severityBadge(doc.severity, doc.severity_label)),
    h("p", { class: "prose" }, text(doc.description)),
    fields([
      ["Id", doc.id],
      ["Status", doc.status],
      ["Assignee", doc.assignee ?? "nobody"],
      ["Tags", Array.isArray(doc.tags) ? doc.tags.map(text).join(", ") : ""],
      ["Created by", doc.created_by],
      ["Created", fmtTime(doc.created_at)],
      ["Updated", fmtTime(doc.updated_at)],
      ["Closed", fmtTime(doc.closed_at)],
    ]),
    h("h2", {}, "Linked alerts"),
    table(
      [
        { title: "Severity", cell: (a) => severityBadge(a.severity, a.severity_label) },
        { title: "Title", cell: (a) => h("a", { href: route("alerts", a.id) }, text(a.title || a.id)) },
        { title: "Status", cell: (a) => text(a.status) },
        { title: "Rule", cell: (a) => text(a.rule_id) },
        { title: "Last seen", cell: (a) => fmtTime(a.last_seen) },
      ],
      Array.isArray(doc.alerts) ? doc.alerts : [],
      "No linked alerts.",
    ),
    h("h2", {}, `Comments (${text(doc.comments_total ?? comments.length)})`),
    comments.length === 0
      ? h("p", { class: "empty" }, "No comments.")
      : h(
          "ol",
          { class: "thread" },
          comments.map((c) =>
            h("li", {}, h("div", { class: "meta" }, `${text(c.author)} · ${fmtTime(c.created_at)}`), h("p", { class: "prose" }, text(c.body))),
          ),
        ),
    h("h2", {}, `Timeline (${text(doc.timeline_total ?? timeline.length)})`),
    table(
      [
        { title: "When", cell: (t) => fmtTime(t.ts) },
        { title: "Kind", cell: (t) => text(t.kind) },
        { title: "Title", cell: (t) => text(t.title) },
        { title: "Author", cell: (t) => text(t.author) },
        { title: "Description", cell: (t) => h("span", { class: "prose" }, text(t.description)) },
      ],
      timeline,
      "No entries.",
    ),
  );
}

export async function renderDetail(root, { api, params }) {
  fill(root, h("p", { class: "loading" }, "Loading…"));
  const doc = await api.get(`/api/v1/cases/${encodeURIComponent(params[0])}`);
  fill(root, h("p", {}, h("a", { href: route("cases") }, "← Cases")), caseView(doc));
}
