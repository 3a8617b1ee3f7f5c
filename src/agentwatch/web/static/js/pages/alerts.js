// Alerts: the list (GET /api/v1/alerts, filters and keyset paging) and one alert
// (GET /api/v1/alerts/{id}) with its triage: status (PATCH) and assignee (POST .../assign).

import { CursorPager, renderPagedList } from "../list.js";
import {
  errorBox,
  fields,
  fill,
  fmtTime,
  h,
  heading,
  jsonBlock,
  labelled,
  option,
  route,
  severityBadge,
  table,
  text,
} from "../render.js";

export const STATUSES = ["open", "acknowledged", "closed"];
export const TYPES = ["sigma", "atr", "builtin", "correlation", "ml", "ueba", "ioc", "discovery", "guard"];

const filters = {
  values: { status: "", type: "", severity: "", rule_id: "", assignee: "", unassigned: false },
  fields: [
    { name: "status", label: "Status", choices: STATUSES },
    { name: "type", label: "Type", choices: TYPES },
    { name: "severity", label: "Min severity", number: [0, 10] },
    { name: "rule_id", label: "Rule", maxlength: 256 },
    { name: "assignee", label: "Assignee", maxlength: 128 },
    { name: "unassigned", label: "Unassigned only", checkbox: true },
  ],
};
const pager = new CursorPager(50);

export function alertColumns() {
  return [
    { title: "Severity", cell: (a) => severityBadge(a.severity, a.severity_label) },
    { title: "Title", cell: (a) => h("a", { href: route("alerts", a.id) }, text(a.title || a.id)) },
    { title: "Type", cell: (a) => text(a.type) },
    { title: "Rule", cell: (a) => text(a.rule_id) },
    { title: "Status", cell: (a) => h("span", { class: "status" }, text(a.status)) },
    { title: "Assignee", cell: (a) => text(a.assignee ?? "") },
    { title: "Count", cell: (a) => text(a.count) },
    { title: "Last seen", cell: (a) => fmtTime(a.last_seen) },
  ];
}

export function alertsTable(alerts) {
  return table(alertColumns(), alerts, "No alerts match.");
}

function filterQuery(f) {
  return {
    status: f.status,
    type: f.type,
    severity: f.severity,
    rule_id: f.rule_id,
    assignee: f.unassigned ? "" : f.assignee,
    unassigned: f.unassigned ? "true" : "",
  };
}

export function renderList(root, { api }) {
  return renderPagedList(root, { api }, {
    title: "Alerts",
    path: "/api/v1/alerts",
    pager,
    filters,
    query: filterQuery,
    rows: (doc) => doc.alerts,
    total: (doc) => doc.meta?.total,
    table: alertsTable,
    noun: "alerts",
  });
}

function entityList(entities) {
  if (!Array.isArray(entities) || entities.length === 0) return "none";
  return h(
    "ul",
    { class: "plain" },
    entities.map((e) => h("li", {}, `${text(e?.type)}: ${text(e?.value)}`)),
  );
}

function triage(api, alert, redraw) {
  const message = h("div", { class: "message" });
  const status = h("select", { name: "status" }, STATUSES.map((s) => option(s, s, alert.status === s)));
  const assignee = h("input", { type: "text", name: "assignee", maxlength: "128", value: alert.assignee ?? "" });
  const act = async (call) => {
    fill(message);
    try {
      redraw(await call());
    } catch (err) {
      fill(message, errorBox(err));
    }
  };
  const path = `/api/v1/alerts/${encodeURIComponent(alert.id)}`;
  return h(
    "div",
    { class: "triage" },
    h(
      "form",
      { on: { submit: (e) => (e.preventDefault(), act(() => api.send("PATCH", path, { status: status.value }))) } },
      labelled("Status", status),
      h("button", { type: "submit" }, "Set status"),
    ),
    h(
      "form",
      {
        on: {
          submit: (e) => (e.preventDefault(), act(() => api.send("POST", path + "/assign", { assignee: assignee.value.trim() }))),
        },
      },
      labelled("Assignee", assignee),
      h("button", { type: "submit" }, "Assign"),
      h(
        "button",
        { type: "button", on: { click: () => act(() => api.send("PATCH", path, { assignee: null })) } },
        "Unassign",
      ),
    ),
    message,
  );
}

export function alertView(alert, actions) {
  const events = Array.isArray(alert.events) ? alert.events : [];
  return h(
    "article",
    { class: "detail" },
    heading(text(alert.title || alert.id), severityBadge(alert.severity, alert.severity_label)),
    h("p", { class: "message-text" }, text(alert.message)),
    fields([
      ["Id", alert.id],
      ["Status", alert.status],
      ["Assignee", alert.assignee ?? "nobody"],
      ["Type", alert.type],
      ["Detector", alert.detector],
      ["Rule", alert.rule_id],
      ["Count", alert.count],
      ["First seen", fmtTime(alert.first_seen)],
      ["Last seen", fmtTime(alert.last_seen)],
      ["Session", alert.session_id ? h("a", { href: route("sessions", alert.session_id) }, text(alert.session_id)) : "none"],
      ["Tags", Array.isArray(alert.tags) ? alert.tags.map(text).join(", ") : ""],
      ["Feedback", alert.feedback ? `${text(alert.feedback.tp)} true / ${text(alert.feedback.fp)} false positive` : ""],
    ]),
    actions || null,
    h("h2", {}, "Entities"),
    entityList(alert.entities),
    h("h2", {}, "Details"),
    jsonBlock(alert.details ?? {}),
    h("h2", {}, `Events (${events.length})`),
    events.length === 0 ? h("p", { class: "empty" }, "No events.") : events.map((e) => jsonBlock(e)),
  );
}

export async function renderDetail(root, { api, params }) {
  const id = params[0];
  fill(root, h("p", { class: "loading" }, "Loading…"));
  const alert = await api.get(`/api/v1/alerts/${encodeURIComponent(id)}`);
  const draw = (doc) => fill(root, h("p", {}, h("a", { href: route("alerts") }, "← Alerts")), alertView(doc, triage(api, doc, draw)));
  draw(alert);
}
