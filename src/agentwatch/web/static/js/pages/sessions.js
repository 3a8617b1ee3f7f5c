// Agent sessions (AOP): the list (GET /sessions, filters and keyset paging) and one session
// (GET /sessions/{id}) with its events as sent, its alerts and its child sessions.

import { CursorPager, renderPagedList } from "../list.js";
import {
  errorBox,
  fields,
  fill,
  fmtTime,
  h,
  heading,
  jsonBlock,
  route,
  severityBadge,
  table,
  text,
} from "../render.js";

export const STATUSES = ["running", "completed", "failed", "cancelled", "timeout"];
const EVENTS_PAGE = 500;

const filters = {
  values: { status: "", agent: "" },
  fields: [
    { name: "status", label: "Status", choices: STATUSES },
    { name: "agent", label: "Agent", maxlength: 128 },
  ],
};
const pager = new CursorPager(50);

export function sessionsTable(sessions) {
  return table(
    [
      { title: "Session", cell: (s) => h("a", { href: route("sessions", s.id) }, text(s.id)) },
      { title: "Agent", cell: (s) => text(s.agent_id) },
      { title: "Status", cell: (s) => text(s.status) },
      { title: "Goal", cell: (s) => text(s.goal) },
      { title: "Steps", cell: (s) => text(s.total_steps) },
      { title: "Tokens", cell: (s) => text(s.total_tokens) },
      { title: "Cost (USD)", cell: (s) => text(s.total_cost_usd) },
      { title: "Last seen", cell: (s) => fmtTime(s.last_seen_at) },
    ],
    sessions,
    "No sessions match.",
  );
}

export function renderList(root, { api }) {
  return renderPagedList(root, { api }, {
    title: "Agent sessions",
    path: "/sessions",
    pager,
    filters,
    rows: (doc) => doc.sessions,
    total: (doc) => doc.total,
    table: sessionsTable,
    noun: "sessions",
  });
}

export function eventRows(events) {
  return events.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, text(e?.sequence)),
      h("td", {}, fmtTime(e?.timestamp)),
      h("td", {}, text(e?.type)),
      h("td", {}, jsonBlock(e?.payload ?? e)),
    ),
  );
}

export function sessionView(doc) {
  const s = doc.session || {};
  const children = Array.isArray(doc.children) ? doc.children : [];
  return h(
    "article",
    { class: "detail" },
    heading(`Session ${text(s.id)}`),
    fields([
      ["Agent", s.agent_id],
      ["Status", s.status],
      ["Goal", s.goal],
      [
        "Parent",
        s.parent_session_id ? h("a", { href: route("sessions", s.parent_session_id) }, text(s.parent_session_id)) : "none",
      ],
      ["Started", fmtTime(s.started_at)],
      ["Ended", fmtTime(s.ended_at)],
      ["Last seen", fmtTime(s.last_seen_at)],
      ["Steps", s.total_steps],
      ["Tokens", s.total_tokens],
      ["Cost (USD)", s.total_cost_usd],
      ["Children", s.children_count ?? children.length],
    ]),
    h("h2", {}, "Alerts"),
    table(
      [
        { title: "Severity", cell: (a) => severityBadge(a.severity_score, null) },
        { title: "Alert", cell: (a) => h("a", { href: route("alerts", a.id) }, text(a.type || a.id)) },
        { title: "Message", cell: (a) => text(a.message) },
        { title: "Status", cell: (a) => text(a.status) },
        { title: "Count", cell: (a) => text(a.count) },
        { title: "Last seen", cell: (a) => fmtTime(a.last_seen) },
      ],
      Array.isArray(doc.alerts) ? doc.alerts : [],
      "No alerts.",
    ),
    h("h2", {}, "Child sessions"),
    children.length === 0
      ? h("p", { class: "empty" }, "None.")
      : h("ul", { class: "plain" }, children.map((c) => h("li", {}, h("a", { href: route("sessions", c.id) }, text(c.id)), " ", text(c.status)))),
  );
}

function eventsTable(tbody) {
  return h(
    "table",
    { class: "grid events" },
    h("thead", {}, h("tr", {}, ["Seq", "Time", "Type", "Payload"].map((t) => h("th", { scope: "col" }, t)))),
    tbody,
  );
}

export async function renderDetail(root, { api, params }) {
  const id = params[0];
  const path = `/sessions/${encodeURIComponent(id)}`;
  fill(root, h("p", { class: "loading" }, "Loading…"));
  const doc = await api.get(path, { limit: EVENTS_PAGE });
  const tbody = h("tbody", {}, eventRows(doc.events || []));
  const more = h("div", { class: "more" });
  const showMore = (after) => {
    if (after === null || after === undefined) {
      fill(more);
      return;
    }
    fill(
      more,
      h(
        "button",
        {
          type: "button",
          on: {
            click: async () => {
              try {
                const next = await api.get(path, { limit: EVENTS_PAGE, after });
                for (const row of eventRows(next.events || [])) tbody.appendChild(row);
                showMore(next.next_after);
              } catch (err) {
                fill(more, errorBox(err));
              }
            },
          },
        },
        "More events",
      ),
    );
  };
  showMore(doc.next_after);
  fill(
    root,
    h("p", {}, h("a", { href: route("sessions") }, "← Sessions")),
    sessionView(doc),
    h("h2", {}, "Events"),
    eventsTable(tbody),
    more,
  );
}
