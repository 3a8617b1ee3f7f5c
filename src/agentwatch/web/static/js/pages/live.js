// Live events: the OISP WebSocket /ws/events. The browser sends the HttpOnly `aw_access`
// cookie set at sign-in with the handshake (same origin), so no token goes into the URL.
// A handshake refused before it opened (an expired cookie) is retried once after a refresh.

import { errorBox, fill, fmtTime, h, heading, jsonBlock, labelled, text } from "../render.js";

const KEEP = 200;

export function socketUrl(loc) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws/events`;
}

/** A frame's JSON document (binary frames carry UTF-8 JSON), or null when it is not JSON. */
export function decodeFrame(data) {
  try {
    const raw = typeof data === "string" ? data : new TextDecoder().decode(data);
    const doc = JSON.parse(raw);
    return doc && typeof doc === "object" ? doc : null;
  } catch {
    return null;
  }
}

export function eventItem(event) {
  const e = event && typeof event === "object" ? event : {};
  return h(
    "li",
    { class: "live-event" },
    h(
      "div",
      { class: "meta" },
      h("strong", {}, text(e.event_type)),
      " · ",
      fmtTime(e.ts ?? e.timestamp),
      e.source?.process?.name ? ` · ${text(e.source.process.name)}` : "",
    ),
    jsonBlock(e),
  );
}

export function subscribeFrame(typesText) {
  const types = String(typesText || "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  return JSON.stringify({ type: "subscribe", filter: { event_types: types } });
}

export async function render(root, { api, openSocket = (url) => new WebSocket(url), location = globalThis.location }) {
  const list = h("ol", { class: "live", reversed: "reversed" });
  const status = h("span", { class: "live-status" }, "connecting…");
  const problem = h("div", { class: "message" });
  const types = h("input", { type: "text", name: "event_types", placeholder: "ai.request, process.*", maxlength: "4096" });
  let socket = null;
  let paused = false;
  let closedByUs = false;
  let retried = false;

  const connect = () => {
    let opened = false;
    socket = openSocket(socketUrl(location));
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", () => {
      opened = true;
      fill(status, "connected");
      if (types.value.trim()) socket.send(subscribeFrame(types.value));
    });
    socket.addEventListener("message", (msg) => {
      const doc = decodeFrame(msg.data);
      if (!doc) return;
      if (doc.type === "event" && !paused) {
        list.insertBefore(eventItem(doc.data), list.firstChild);
        while (list.childNodes.length > KEEP) list.removeChild(list.lastChild);
      } else if (doc.type === "error") {
        fill(problem, errorBox(new Error(text(doc.error?.message))));
      } else if (doc.type === "subscribed") {
        fill(problem);
      }
    });
    socket.addEventListener("close", async (event) => {
      if (closedByUs) return;
      if (!opened && !retried) {
        retried = true;
        const renewed = await api.refresh().catch(() => false);
        if (closedByUs) return; // the page was left meanwhile
        if (renewed) {
          connect();
          return;
        }
      }
      fill(status, `disconnected (${text(event?.code)})`);
    });
  };

  const filterForm = h(
    "form",
    {
      class: "filters",
      on: {
        submit: (event) => {
          event.preventDefault();
          if (socket && socket.readyState === 1) socket.send(subscribeFrame(types.value));
        },
      },
    },
    labelled("Event types (comma separated, blank for all)", types),
    h("button", { type: "submit" }, "Filter"),
    h(
      "button",
      {
        type: "button",
        on: {
          click: (event) => {
            paused = !paused;
            event.target.textContent = paused ? "Resume" : "Pause";
          },
        },
      },
      "Pause",
    ),
    h("button", { type: "button", on: { click: () => list.replaceChildren() } }, "Clear"),
    h(
      "button",
      {
        type: "button",
        on: {
          click: () => {
            if (socket && socket.readyState <= 1) return;
            retried = false;
            fill(status, "connecting…");
            connect();
          },
        },
      },
      "Reconnect",
    ),
  );

  fill(root, heading("Live events", status), filterForm, problem, list);
  connect();
  return () => {
    closedByUs = true;
    if (socket) socket.close(1000, "page left");
  };
}
