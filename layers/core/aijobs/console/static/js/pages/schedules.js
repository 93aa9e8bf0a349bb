// Schedules: each schedule, its next fire times, enable or disable it, run it now, and the jobs its fires made.

import { call, get } from "../api.js";
import { act, h, poll, redraw, showError, table, time } from "../ui.js";

const REFRESH_MS = 5000;

function actions(schedule, refresh) {
  const toggle = h("button", { type: "button", class: "secondary", id: `toggle-${schedule.id}`,
                               "aria-label": `${schedule.enabled ? "Disable" : "Enable"} schedule ${schedule.id}` },
  schedule.enabled ? "Disable" : "Enable");
  toggle.addEventListener("click", () => act(toggle, () => call(`/v1/schedules/${schedule.id}`,
    { method: "PATCH", body: { enabled: !schedule.enabled } }), ({ data }) => {
    refresh();
    return `Schedule ${data.id} is ${data.enabled ? "enabled" : "disabled"}.`;
  }));
  const run = h("button", { type: "button", id: `run-${schedule.id}`, "aria-label": `Run schedule ${schedule.id} now` }, "Run now");
  const made = h("span", { class: "made" });
  run.addEventListener("click", () => act(run, () => call(`/v1/schedules/${schedule.id}/run`, { method: "POST" }),
    ({ data }) => {
      made.replaceChildren(" made ", h("a", { href: `/console/jobs/${data.id}` }, data.id));
      return `Schedule ${schedule.id} fired: job ${data.id}.`;
    }));
  return h("div", { class: "actions" }, toggle, run, made);
}

const describe = (job) => `${job.model || "default model"}: ${typeof job.input === "string" ? job.input
  : JSON.stringify(job.input ?? job.texts ?? "")}`.slice(0, 120);

export function render(main) {
  const listed = h("div", { id: "schedules" }, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(h("h1", {}, "Schedules"), listed);
  let shown = null;
  const refresh = () => { shown = null; load().catch(showError); };
  const columns = [
    { label: "Schedule", value: (s) => h("code", {}, s.id) },
    { label: "Expression", value: (s) => `${s.expression} (${s.timezone})` },
    { label: "Enabled", value: (s) => (s.enabled ? "yes" : "no") },
    { label: "Next fires", value: (s) => (s.next_fire_times.length
      ? h("ul", {}, s.next_fire_times.map((t) => h("li", {}, time(t)))) : "none") },
    { label: "Job", value: (s) => describe(s.job) },
    { label: "Jobs made", value: (s) => h("a", { href: `/console/jobs?schedule_id=${s.id}` }, "Jobs of its fires") },
    { label: "Actions", value: (s) => actions(s, refresh) },
  ];
  const load = async () => {
    const page = await get("/v1/schedules", { limit: 100 });
    const seen = JSON.stringify(page);
    if (seen === shown) return;
    shown = seen;
    redraw(listed, table(columns, page.data, { empty: "No schedules yet (POST /v1/schedules makes one)." }),
      page.next_cursor ? h("p", { class: "muted" }, "The first 100 schedules are shown.") : null);
  };
  poll(load, REFRESH_MS);
}
