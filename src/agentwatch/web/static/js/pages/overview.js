// Overview: event and AI statistics (GET /api/stats) and alert counts (GET /api/v1/alerts).

import { errorBox, fields, fill, h, heading, route, table } from "../render.js";

const COUNTS = [
  ["Open alerts", { status: "open" }],
  ["Acknowledged", { status: "acknowledged" }],
  ["Closed", { status: "closed" }],
  ["Open, high or critical", { status: "open", severity: 7 }],
  ["Open, unassigned", { status: "open", unassigned: "true" }],
];

async function alertCounts(api) {
  const answers = await Promise.allSettled(COUNTS.map(([, q]) => api.get("/api/v1/alerts", { ...q, limit: 1 })));
  return COUNTS.map(([label], i) => {
    const a = answers[i];
    return { label, value: a.status === "fulfilled" ? a.value?.meta?.total ?? 0 : null, error: a.reason };
  });
}

export function countCards(counts) {
  return h(
    "div",
    { class: "cards" },
    counts.map((c) =>
      h(
        "div",
        { class: "card" },
        h("div", { class: "card-value" }, c.value === null ? "n/a" : String(c.value)),
        h("div", { class: "card-label" }, c.label),
        c.error ? h("div", { class: "card-error" }, c.error.message || String(c.error)) : null,
      ),
    ),
  );
}

export function statsView(stats) {
  const ev = stats?.events || {};
  const ai = stats?.ai || {};
  const byType = Object.entries(ev.by_type || {}).sort((a, b) => b[1] - a[1]);
  const models = Object.entries(ai.models || {}).sort((a, b) => b[1] - a[1]);
  return h(
    "div",
    { class: "stats" },
    h("h2", {}, "Events"),
    fields([
      ["Events stored", ev.total ?? 0],
      ["Events per second", stats?.capture?.events_per_second ?? 0],
      ["LLM requests", ai.requests ?? 0],
      ["LLM responses", ai.responses ?? 0],
      ["Tokens", ai.tokens?.total ?? 0],
      ["Cost (USD)", ai.cost_usd ?? 0],
    ]),
    h("h2", {}, "Events by type"),
    table(
      [
        { title: "Type", cell: (r) => r[0] },
        { title: "Count", cell: (r) => String(r[1]) },
      ],
      byType,
      "No events yet.",
    ),
    h("h2", {}, "Models"),
    table(
      [
        { title: "Model", cell: (r) => r[0] },
        { title: "Calls", cell: (r) => String(r[1]) },
      ],
      models,
      "No LLM calls seen yet.",
    ),
  );
}

export async function render(root, { api }) {
  fill(root, heading("Overview"), h("p", { class: "loading" }, "Loading…"));
  const [counts, stats] = await Promise.all([
    alertCounts(api),
    api.get("/api/stats").then(
      (value) => ({ value }),
      (error) => ({ error }),
    ),
  ]);
  fill(
    root,
    heading("Overview", h("a", { href: route("alerts"), class: "button" }, "All alerts")),
    countCards(counts),
    stats.error ? errorBox(stats.error) : statsView(stats.value),
  );
}
