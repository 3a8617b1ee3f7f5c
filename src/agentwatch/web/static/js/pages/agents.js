// Discovered agents: the discovery inventory (GET /api/agents, offset paging), each agent
// with its signals and their evidence.

import { errorBox, fill, fmtTime, h, heading, jsonBlock, labelled, link, option, table, text } from "../render.js";

const PAGE = 100;
const LEVELS = new Set(["confirmed", "high", "medium", "low"]);

const state = { filters: { source: "", include_gone: false }, offset: 0 };

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

function filterForm(onApply) {
  const source = h(
    "select",
    { name: "source" },
    option("", "any"),
    ["scan", "telemetry"].map((s) => option(s, s, state.filters.source === s)),
  );
  const gone = h("input", { type: "checkbox", name: "include_gone", checked: state.filters.include_gone });
  return h(
    "form",
    {
      class: "filters",
      on: {
        submit: (event) => {
          event.preventDefault();
          state.filters = { source: source.value, include_gone: Boolean(gone.checked) };
          state.offset = 0;
          onApply();
        },
      },
    },
    labelled("Source", source),
    labelled("Include gone", gone),
    h("button", { type: "submit" }, "Apply"),
  );
}

export async function render(root, { api }) {
  const results = h("div", { class: "results" });
  const load = async () => {
    fill(results, h("p", { class: "loading" }, "Loading…"));
    try {
      const doc = await api.get("/api/agents", {
        source: state.filters.source,
        include_gone: state.filters.include_gone ? "true" : "",
        limit: PAGE,
        offset: state.offset || "",
      });
      const total = doc.total ?? 0;
      const move = (delta) => {
        state.offset = Math.max(0, state.offset + delta);
        load();
      };
      fill(
        results,
        agentsTable(doc.agents || []),
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", disabled: state.offset === 0, on: { click: () => move(-PAGE) } }, "Previous"),
          h("span", { class: "pager-summary" }, `${total} agents`),
          h("button", { type: "button", disabled: state.offset + PAGE >= total, on: { click: () => move(PAGE) } }, "Next"),
        ),
      );
    } catch (err) {
      fill(results, errorBox(err));
    }
  };
  fill(root, heading("Discovered agents"), filterForm(load), results);
  await load();
}
