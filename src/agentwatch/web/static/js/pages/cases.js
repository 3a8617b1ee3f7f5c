// Cases: the list (GET /api/v1/cases, filters and keyset paging) and one case
// (GET /api/v1/cases/{id}) with its linked alerts, comments and timeline.

import { CursorPager, renderPagedList } from "../list.js";
import { fields, fill, fmtTime, h, heading, route, severityBadge, table, text } from "../render.js";

export const STATUSES = ["open", "investigating", "resolved", "closed"];

const filters = {
  values: { status: "", severity: "", assignee: "" },
  fields: [
    { name: "status", label: "Status", choices: STATUSES },
    { name: "severity", label: "Min severity", number: [0, 10] },
    { name: "assignee", label: "Assignee", maxlength: 128 },
  ],
};
const pager = new CursorPager(50);

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

export function renderList(root, { api }) {
  return renderPagedList(root, { api }, {
    title: "Cases",
    path: "/api/v1/cases",
    pager,
    filters,
    rows: (doc) => doc.cases,
    total: (doc) => doc.meta?.total,
    table: casesTable,
    noun: "cases",
  });
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
