// Jobs: the tenant's jobs, newest first, with filters, paging and counts that refresh every few seconds.
// Every filter is the API's (GET /v1/jobs: status, model, kind, batch, schedule, created from / before).

import { get, withQuery } from "../api.js";
import { badge, cost, h, number, poll, redraw, table, time } from "../ui.js";

const STATUSES = ["queued", "in_progress", "completed", "failed", "cancelled"];
const KINDS = ["text", "embedding", "image"];
const REFRESH_MS = 2000;

function select(name, label, options, value) {
  return h("label", { for: `f-${name}` }, label, h("select", { id: `f-${name}`, name },
    h("option", { value: "" }, "any"),
    options.map((option) => h("option", { value: option, selected: option === value }, option))));
}

function text(name, label, value, type = "text") {
  return h("label", { for: `f-${name}` }, label, h("input", { id: `f-${name}`, name, type, value: value || "" }));
}

function filtersForm(query) {
  return h("form", { class: "filters", method: "get", action: "/console/jobs", role: "search" },
    select("status", "Status", STATUSES, query.get("status")),
    text("model", "Model", query.get("model")),
    select("kind", "Kind", KINDS, query.get("kind")),
    text("batch_id", "Batch", query.get("batch_id")),
    text("schedule_id", "Schedule", query.get("schedule_id")),
    text("from", "Created from (UTC)", query.get("from"), "datetime-local"),
    text("to", "Created to (UTC)", query.get("to"), "datetime-local"),
    h("label", { for: "f-limit" }, "Per page", h("select", { id: "f-limit", name: "limit" },
      ["20", "50", "100"].map((n) => h("option", { value: n, selected: n === (query.get("limit") || "20") }, n)))),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "/console/jobs" }, "Clear"));
}

function utcSeconds(value) {
  return value ? Date.parse(`${value}Z`) / 1000 : null;
}

// What made the job: a batch or a schedule (its jobs), or a retry (the job it re-runs).
function from(job) {
  if (job.batch_id) return h("a", { href: `/console/jobs?batch_id=${job.batch_id}` }, job.batch_id);
  if (job.schedule_id) return h("a", { href: `/console/jobs?schedule_id=${job.schedule_id}` }, job.schedule_id);
  return job.retry_of ? ["retry of ", h("a", { href: `/console/jobs/${job.retry_of}` }, job.retry_of)] : "";
}

const COLUMNS = [
  { label: "Job", value: (job) => h("a", { href: `/console/jobs/${job.id}`, id: `link-${job.id}` }, job.id) },
  { label: "Status", value: (job) => badge(job.status) },
  { label: "Model", value: (job) => job.model },
  { label: "Kind", value: (job) => job.kind },
  { label: "Created", value: (job) => time(job.created_at) },
  { label: "Tokens", num: true, value: (job) => (job.usage ? number(job.usage.total_tokens) : "—") },
  { label: "Cost", num: true, value: (job) => cost(job.cost_usd) },
  { label: "From", value: from },
];

function counts(jobs) {
  return h("ul", { class: "counts", "aria-label": "Jobs on this page by status" },
    STATUSES.map((status) => h("li", { dataset: { status } }, badge(status), " ",
      h("span", { class: "count" }, jobs.filter((job) => job.status === status).length))));
}

export function render(main) {
  const query = new URLSearchParams(location.search);
  const listed = h("div", { id: "jobs" }, h("p", { class: "muted" }, "Loading…"));
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.replaceChildren(h("h1", {}, "Jobs"), filtersForm(query), listed, pager);
  const to = utcSeconds(query.get("to"));
  const request = {
    status: query.get("status"), model: query.get("model"), kind: query.get("kind"),
    batch_id: query.get("batch_id"), schedule_id: query.get("schedule_id"),
    created_from: utcSeconds(query.get("from")), created_before: to === null ? null : to + 1,  // "to" includes it
    limit: query.get("limit") || 20, cursor: query.get("cursor"),
  };
  let shown = null;
  poll(async () => {
    const page = await get("/v1/jobs", request);
    const jobs = page.data;
    const seen = JSON.stringify(page);
    if (seen === shown) return;  // redraw only what changed: a focused link keeps its focus
    shown = seen;
    redraw(listed, counts(jobs), table(COLUMNS, jobs, { empty: "No jobs match." }));
    const next = page.next_cursor ? new URLSearchParams({ ...Object.fromEntries(query), cursor: page.next_cursor })
      : null;
    redraw(pager, 
      query.get("cursor") ? h("a", { href: withQuery("/console/jobs", { ...Object.fromEntries(query), cursor: "" }) },
        "First page") : null,
      next ? h("a", { href: `/console/jobs?${next}`, rel: "next" }, "Next page") : null);
  }, REFRESH_MS);
}
