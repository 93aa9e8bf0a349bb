// Usage: the caller's jobs, tokens and cost per day for a range, its budgets, limits and this minute's rates
// (GET /v1/usage and its x-ratelimit-* headers), and the same per model, summed from the jobs of the range.

import { call, get, withQuery } from "../api.js";
import { dayChart, dayStart } from "../charts.js";
import { drawReport, ratesFrom } from "../report.js";
import { cost, h, number, redraw, table } from "../ui.js";

const DAY_S = 86400;
const MODEL_PAGES = 10;  // at most 1,000 jobs are summed per model

function isoDay(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

function rangeForm(from, to) {
  return h("form", { class: "inline", method: "get", action: "/console/usage" },
    h("label", { for: "u-from" }, "From (UTC day)", h("input", { id: "u-from", name: "from", type: "date", value: from })),
    h("label", { for: "u-to" }, "To (UTC day)", h("input", { id: "u-to", name: "to", type: "date", value: to })),
    h("button", { type: "submit" }, "Show"));
}

// The jobs created in the range, newest first (GET /v1/jobs pages), grouped by model and by the day they ended.
async function byModel(days) {
  const first = dayStart(days[0]);
  const models = new Map();
  let cursor = null;
  let complete = false;
  for (let page = 0; page < MODEL_PAGES; page += 1) {
    const answer = await get("/v1/jobs", { limit: 100, cursor });
    for (const job of answer.data) {
      if (job.created_at < first) continue;
      const model = models.get(job.model) || { model: job.model, jobs: 0, tokens: 0, cost: 0, perDay: new Map() };
      model.jobs += 1;
      model.tokens += job.usage ? job.usage.total_tokens : 0;
      model.cost += job.cost_usd || 0;
      const day = isoDay(job.completed_at || job.created_at);
      model.perDay.set(day, (model.perDay.get(day) || 0) + 1);
      models.set(job.model, model);
    }
    cursor = answer.next_cursor;
    const oldest = answer.data.at(-1);
    if (!cursor || (oldest && oldest.created_at < first)) {
      complete = true;
      break;
    }
  }
  return { models: [...models.values()], complete };
}

export async function render(main) {
  const query = new URLSearchParams(location.search);
  const today = isoDay(Date.now() / 1000);
  const to = query.get("to") || today;
  const from = query.get("from") || isoDay(dayStart(to) - 6 * DAY_S);
  const report = h("div", { id: "report" }, h("p", { class: "muted" }, "Loading…"));
  const models = h("div", { id: "models" });
  main.replaceChildren(h("h1", {}, "Usage"), rangeForm(from, to), report, h("h2", {}, "Per model"), models);

  const { data, headers } = await call(withQuery("/v1/usage", { from, to }));
  drawReport(report, data, { rates: ratesFrom(headers) });
  const days = data.data.map((d) => d.date);
  const found = await byModel(days);
  redraw(models,
    h("p", { class: "muted" }, found.complete ? "The jobs created in the range, summed by model."
      : "The newest 1,000 jobs of the range, summed by model (there are more)."),
    table([
      { label: "Model", value: (m) => m.model },
      { label: "Jobs", num: true, value: (m) => number(m.jobs) },
      { label: "Tokens", num: true, value: (m) => number(m.tokens) },
      { label: "Cost", num: true, value: (m) => cost(m.cost) },
    ], found.models, { empty: "No jobs in this range." }));
  if (found.models.length) {
    dayChart(models, { id: "chart-models", title: "Jobs per day by model", days, format: number,
                       series: found.models.map((m) => ({ label: m.model, values: days.map((d) => m.perDay.get(d) || 0) })) });
  }
}
