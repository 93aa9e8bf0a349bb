// One job: the request it was made from (GET /v1/jobs/{id}/request), what it is, its status history and output as
// its stream (GET /v1/jobs/{id}/stream) tells them, its usage and cost, its webhook deliveries with redeliver, and
// cancel and retry.

import { call, get } from "../api.js";
import { follow } from "../sse.js";
import { act, badge, cost, fields, h, number, poll, showError, table, time } from "../ui.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
const DELIVERIES_MS = 2000;

function link(id) {
  return id ? h("a", { href: `/console/jobs/${id}` }, id) : null;
}

// What a job is and how it went; a field the job does not have is left out.
function details(job) {
  const usage = job.usage;
  const optional = (value) => (value === null || value === undefined || value === "" ? undefined : value);
  return fields([
    ["Status", badge(job.status)],
    ["Model", job.model + (job.provider_model && job.provider_model !== job.model ? ` (answered by ${job.provider_model})`
      : "")],
    ["Backend", optional(job.backend)],
    ["Kind", job.kind],
    ["Priority", job.priority],
    ["Prompt", optional(job.prompt_id && `${job.prompt_id} v${job.prompt_version}`)],
    ["Metadata", optional(Object.keys(job.metadata || {}).length ? JSON.stringify(job.metadata) : null)],
    ["Created", time(job.created_at)],
    ["Started", time(job.started_at)],
    ["Ended", time(job.completed_at)],
    ["Attempts", String(job.attempt)],
    ["Duration", optional(job.duration_ms === null ? null : `${number(job.duration_ms)} ms`)],
    ["Progress", optional(job.progress && `${number(job.progress.output_tokens)} tokens so far`)],
    ["Tokens", usage ? `${number(usage.input_tokens)} in, ${number(usage.output_tokens)} out`
      + (usage.estimated ? " (estimated)" : "") : "—"],
    ["Cost", cost(job.cost_usd) + (job.price_known === false ? " (fallback price)" : "")],
    ["Finish reason", optional(job.finish_reason)],
    ["Batch", optional(job.batch_id && h("a", { href: `/console/jobs?batch_id=${job.batch_id}` }, job.batch_id))],
    ["Schedule", optional(job.schedule_id && h("a", { href: `/console/jobs?schedule_id=${job.schedule_id}` },
      job.schedule_id))],
    ["Retry of", optional(link(job.retry_of))],
    ["Retried by", optional(link(job.retried_by))],
    ["Waiting", optional(job.status_details && `${job.status_details.reason} until ${time(job.status_details.not_before)}`)],
    ["Error", optional(job.error && `${job.error.type} (${job.error.code}): ${job.error.message}`)],
  ]);
}

// The body the job was made from, as JSON; its input and instructions once its content was deleted are gone.
function requestBody(answer) {
  const deleted = answer.content_deleted_at
    ? h("p", { class: "muted" }, `Its input and instructions were deleted at ${time(answer.content_deleted_at)}.`) : null;
  return [deleted, h("pre", { class: "output", tabindex: "0", "aria-label": "Request" },
    JSON.stringify(answer.request, null, 2))];
}

const DELIVERY_COLUMNS = [
  { label: "Attempt", num: true, value: (row) => row.attempt },
  { label: "Event", value: (row) => row.event_type },
  { label: "To", value: (row) => row.endpoint_id || "callback_url" },
  { label: "Outcome", value: (row) => row.outcome },
  { label: "HTTP status", num: true, value: (row) => row.status_code ?? "—" },
  { label: "Time", num: true, value: (row) => (row.duration_ms === null ? "—" : `${row.duration_ms} ms`) },
  { label: "At", value: (row) => time(row.at) },
  { label: "Next attempt", value: (row) => (row.next_attempt_at ? time(row.next_attempt_at) : "—") },
  { label: "Error", value: (row) => row.error || "" },
];

export async function render(main, jobId) {
  const path = `/v1/jobs/${jobId}`;
  const info = h("div", { id: "job-details" });
  const request = h("div", { id: "request" }, h("p", { class: "muted" }, "Loading…"));
  const history = h("ol", { id: "history" });
  const output = h("pre", { id: "output", class: "output", tabindex: "0", "aria-label": "Output" });
  const deliveries = h("div", { id: "deliveries" }, h("p", { class: "muted" }, "Loading…"));
  const cancel = h("button", { type: "button", id: "cancel" }, "Cancel job");
  const retry = h("button", { type: "button", id: "retry", class: "secondary" }, "Retry job");
  const redeliver = h("button", { type: "button", id: "redeliver", class: "secondary" }, "Redeliver webhook");
  const outcome = h("p", { id: "outcome", "aria-live": "polite" });
  main.replaceChildren(
    h("p", {}, h("a", { href: "/console/jobs" }, "← All jobs")),
    h("h1", {}, "Job ", h("code", {}, jobId)),
    h("div", { class: "actions" }, cancel, retry), outcome,
    h("h2", {}, "Details"), info,
    h("h2", {}, "Request"), request,
    h("h2", {}, "Status history"), history,
    h("h2", {}, "Output"), output,
    h("h2", {}, "Webhook deliveries"), h("div", { class: "actions" }, redeliver), deliveries);

  let ended = false;
  // A text job's text; an answer job's answer and the chunks it cites; any other output (files, an ingest job's
  // documents) as JSON
  const outputText = (out) => typeof out.text === "string" ? out.text : typeof out.answer === "string"
    ? [out.answer, "", ...out.citations.map((c) => `[${c.marker}] ${c.chunk_id}`)].join("\n")
    : JSON.stringify(out, null, 2);
  const show = (job) => {
    if (ended && !FINAL.has(job.status)) return;  // a read that left before the final event came back after it
    ended = FINAL.has(job.status);
    info.replaceChildren(details(job));
    cancel.disabled = FINAL.has(job.status);
    retry.disabled = !["failed", "cancelled"].includes(job.status);
    if (job.output && FINAL.has(job.status)) output.textContent = outputText(job.output);
  };
  const job = await get(path);
  show(job);
  get(`${path}/request`).then((answer) => request.replaceChildren(...requestBody(answer).filter(Boolean)))
    .catch(showError);

  cancel.addEventListener("click", () => act(cancel, () => call(path, { method: "DELETE" }), ({ data }) => {
    show(data);
    outcome.textContent = `Cancelled: the job is ${data.status}.`;
    return outcome.textContent;
  }));
  retry.addEventListener("click", () => act(retry, () => call(`${path}/retry`, { method: "POST" }), ({ data }) => {
    outcome.replaceChildren("Retried as ", link(data.id), ` (${data.status}).`);
    return `Retried as ${data.id}`;
  }));
  redeliver.addEventListener("click", () => act(redeliver, () => call(`${path}/deliveries/redeliver`,
    { method: "POST" }), ({ data }) => {
    outcome.textContent = `Redelivery queued: attempt ${data.attempt} of webhook ${data.webhook_id}.`;
    return outcome.textContent;
  }));

  let shown = null;
  poll(async () => {
    const page = await get(`${path}/deliveries`);
    const seen = JSON.stringify(page.data);
    if (seen === shown) return;
    shown = seen;
    deliveries.replaceChildren(table(DELIVERY_COLUMNS, page.data, { empty: "No webhook delivery for this job." }));
  }, DELIVERIES_MS);

  const controller = new AbortController();
  addEventListener("pagehide", () => controller.abort());
  output.textContent = "";
  follow(`${path}/stream`, {
    signal: controller.signal,
    onEvent(event) {
      const data = JSON.parse(event.data);
      if (event.event === "delta") {
        output.textContent += data.text;
        return null;
      }
      const status = event.event === "status" ? data.status : event.event;
      history.append(h("li", {}, badge(status), data.attempt ? ` attempt ${data.attempt}` : "",
        h("span", { class: "muted" }, ` — event ${event.id}, seen ${new Date().toISOString().slice(11, 19)} UTC`)));
      if (!FINAL.has(event.event)) {
        get(path).then(show).catch(showError);  // its start time and attempt
        return null;
      }
      show(data);
      return "final";
    },
  }).catch((error) => {
    if (error.name !== "AbortError") showError(error);
  });
}
