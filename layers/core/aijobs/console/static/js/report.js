// A usage report (GET /v1/usage, or an admin's GET /v1/admin/tenants/{t}/usage) drawn: budgets, limits and charts
// of jobs, tokens and cost per day. Shared by the usage page and the operator's tenants page.

import { dayChart } from "./charts.js";
import { cost, fields, h, number, redraw } from "./ui.js";

const money = (v) => (v === null || v === undefined ? "—" : `$${Number(Number(v).toPrecision(3))}`);

function meter(id, label, value, max, { high, format = number } = {}) {
  return h("p", { class: "gauge" }, h("label", { for: id }, label), " ",
    h("meter", { id, min: 0, max, value: Math.min(value, max), high, optimum: 0 }),
    ` ${format(value)} of ${format(max)}`);
}

// rates: the answer's x-ratelimit-* headers (this minute's window), when the report is the caller's own.
// withLimits: false when the page shows the limits already (the operator's, as set and in force).
export function drawReport(container, report, { rates = null, title = "Usage", withLimits = true } = {}) {
  const { limits, budget } = report;
  const days = report.data.map((d) => d.date);
  const column = (name) => report.data.map((d) => d[name]);
  const flat = (value) => days.map(() => value);
  redraw(container,
    h("h2", {}, "Today's budget"),
    meter("budget-meter", "Spent today:", budget.spent_usd, budget.daily_cost_usd,
      { high: budget.daily_cost_soft_usd, format: cost }),
    fields([
      ["Spent", cost(budget.spent_usd)],
      ["Soft budget", cost(budget.daily_cost_soft_usd) + (budget.soft_limit_reached ? " (reached)" : "")],
      ["Hard budget", cost(budget.daily_cost_usd) + (budget.hard_limit_reached ? " (reached: new jobs are refused)"
        : "")],
      ["Remaining", cost(budget.remaining_usd)],
    ]),
    rates ? [h("h2", {}, "Rate this minute"),
      meter("requests-meter", "Requests:", rates.limitRequests - rates.remainingRequests, rates.limitRequests),
      meter("tokens-meter", "Tokens:", rates.limitTokens - rates.remainingTokens, rates.limitTokens)] : null,
    withLimits ? h("h2", {}, "Limits in force") : null,
    withLimits ? fields([
      ["Requests per minute", number(limits.requests_per_minute)],
      ["Tokens per minute", number(limits.tokens_per_minute)],
      ["Concurrent jobs", number(limits.concurrent_jobs)],
      ["Daily budget (hard, soft)", `${cost(limits.daily_cost_usd)}, ${cost(limits.daily_cost_soft_usd)}`],
      ["Models", limits.allowed_models ? limits.allowed_models.join(", ") : "any"],
      ["Over a limit", limits.on_limit === "defer" ? "jobs wait (defer)" : "refused (429)"],
    ]) : null,
    h("h2", {}, `${title} per day`));
  dayChart(container, {
    id: "chart-cost", title: "Cost per day (USD, log scale)", days, format: money, log: true, series: [
      { label: "Cost", values: column("cost_usd") },
      { label: "Soft budget", values: flat(limits.daily_cost_soft_usd), color: "#b35c00", dash: [6, 4] },
      { label: "Hard budget", values: flat(limits.daily_cost_usd), color: "#a4161a", dash: [2, 3] },
    ] });
  dayChart(container, {
    id: "chart-jobs", title: "Jobs and requests per day", days, format: number, series: [
      { label: "Jobs", values: column("jobs") },
      { label: "Requests", values: column("requests") },
      { label: "Request limit per day", values: flat(limits.requests_per_minute * 1440), color: "#a4161a",
        dash: [2, 3], show: false },
    ] });
  dayChart(container, {
    id: "chart-tokens", title: "Tokens per day", days, format: number, series: [
      { label: "Input tokens", values: column("input_tokens") },
      { label: "Output tokens", values: column("output_tokens") },
      { label: "Token limit per day", values: flat(limits.tokens_per_minute * 1440), color: "#a4161a",
        dash: [2, 3], show: false },
    ] });
}

export function ratesFrom(headers) {
  const read = (name) => Number(headers.get(`x-ratelimit-${name}`));
  if (!headers.has("x-ratelimit-limit-requests")) return null;
  return { limitRequests: read("limit-requests"), remainingRequests: read("remaining-requests"),
           limitTokens: read("limit-tokens"), remainingTokens: read("remaining-tokens") };
}
