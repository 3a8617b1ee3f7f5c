// Discovered agents: the discovery inventory (GET /api/agents, offset paging), each agent
// with its signals and their evidence.

import { OffsetPager, renderPagedList } from "../list.js";
import { fmtTime, h, jsonBlock, link, table, text } from "../render.js";

const LEVELS = new Set(["confirmed", "high", "medium", "low"]);

const filters = {
  values: { source: "", include_gone: false },
  fields: [
    { name: "source", label: "Source", choices: ["scan", "telemetry"] },
    { name: "include_gone", label: "Include gone", checkbox: true },
  ],
};
const pager = new OffsetPager(100);

function confidence(agent) {
  const level = LEVELS.has(agent.confidence_level) ? agent.confidence_level : "unknown";
  const score = typeof agent.confidence_score === "number" ? ` (${agent.confidence_score.toFixed(2)})` : "";
  return h("span", { class: `badge conf-${level}` }, `${text(agent.confidence_level)}${score}`);
}

export function signalsView(signals) {
  if (!Array.isArray(signals) || signals.length === 0) return "none";
  return h(
    "details",
    {},
    h("summary", {}, `${signals.length} signals`),
    h(
      "ul",
      { class: "plain" },
      signals.map((s) =>
        h(
          "li",
          {},
          h("strong", {}, text(s?.detector)),
          " ",
          text(s?.signal_type),
          ": ",
          text(s?.description),
          typeof s?.evidence?.url === "string" ? [" ", link(s.evidence.url, s.evidence.url)] : null,
          jsonBlock(s?.evidence ?? {}),
        ),
      ),
    ),
  );
}

export function agentsTable(agents) {
  return table(
    [
      { title: "Host", cell: (a) => text(a.host || a.ip_address) },
      { title: "Address", cell: (a) => `${text(a.ip_address)}:${text(a.port)}` },
      { title: "Protocol", cell: (a) => text(a.protocol) },
      { title: "Type", cell: (a) => text(a.agent_type) },
      { title: "Framework", cell: (a) => text(a.framework) },
      { title: "Status", cell: (a) => text(a.status) },
      { title: "Confidence", cell: (a) => confidence(a) },
      { title: "Source", cell: (a) => text(a.source) },
      { title: "Last seen", cell: (a) => fmtTime(a.last_seen) },
      { title: "Signals", cell: (a) => signalsView(a.signals) },
    ],
    agents,
    "No agents discovered yet.",
  );
}

export function render(root, { api }) {
  return renderPagedList(root, { api }, {
    title: "Discovered agents",
    path: "/api/agents",
    pager,
    filters,
    query: (f) => ({ source: f.source, include_gone: f.include_gone ? "true" : "" }),
    rows: (doc) => doc.agents,
    total: (doc) => doc.total,
    table: agentsTable,
    noun: "agents",
  });
}
