// Batches: each batch's counts by status and cost so far (GET /v1/batches), refreshed; cancel one.

import { call, get } from "../api.js";
import { act, badge, cost, h, number, poll, redraw, showError, table, time } from "../ui.js";

const REFRESH_MS = 3000;

// A large batch is cancelled over several calls: call again while it answers `cancelling`.
async function cancel(id) {
  let batch;
  for (let calls = 0; calls < 50; calls += 1) {
    batch = (await call(`/v1/batches/${id}/cancel`, { method: "POST" })).data;
    if (batch.status !== "cancelling" || batch.counts.queued + batch.counts.in_progress === 0) break;
  }
  return batch;
}

function columns(refresh) {
  return [
    { label: "Batch", value: (b) => h("a", { href: `/console/jobs?batch_id=${b.id}` }, b.id) },
    { label: "Status", value: (b) => badge(b.status) },
    { label: "Created", value: (b) => time(b.created_at) },
    ...["total", "queued", "in_progress", "completed", "failed", "cancelled"].map((name) => (
      { label: name.replace("_", " "), num: true, value: (b) => number(b.counts[name]) })),
    { label: "Tokens", num: true, value: (b) => number(b.usage.input_tokens + b.usage.output_tokens) },
    { label: "Cost so far", num: true, value: (b) => cost(b.cost_usd) },
    { label: "Action", value: (b) => {
      const button = h("button", { type: "button", class: "secondary", id: `cancel-${b.id}`,
                                   disabled: b.status !== "in_progress",
                                   "aria-label": `Cancel batch ${b.id}` }, "Cancel");
      button.addEventListener("click", () => act(button, () => cancel(b.id), (done) => {
        refresh();
        return `Batch ${b.id} is ${done.status}.`;
      }));
      return button;
    } },
  ];
}

export function render(main) {
  const query = new URLSearchParams(location.search);
  const listed = h("div", { id: "batches" }, h("p", { class: "muted" }, "Loading…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.replaceChildren(h("h1", {}, "Batches"), listed, pager);
  let shown = null;
  const load = async () => {
    const page = await get("/v1/batches", { cursor: query.get("cursor"), limit: 20 });
    const seen = JSON.stringify(page);
    if (seen === shown) return;
    shown = seen;
    redraw(listed, table(columns(() => { shown = null; load().catch(showError); }), page.data,
      { empty: "No batches yet." }));
    redraw(pager, 
      query.get("cursor") ? h("a", { href: "/console/batches" }, "First page") : null,
      page.next_cursor ? h("a", { href: `/console/batches?cursor=${encodeURIComponent(page.next_cursor)}` },
        "Next page") : null);
  };
  poll(load, REFRESH_MS);
}
