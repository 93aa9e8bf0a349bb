// The operator's page (admin key): a tenant's limits, as set and in force, and its usage. The API has no list of
// tenants, so the operator names one.

import { get, withQuery } from "../api.js";
import { drawReport } from "../report.js";
import { fields, h } from "../ui.js";

const shown = (value) => (value === null || value === undefined ? "default" : Array.isArray(value) ? value.join(", ")
  : String(value));

export async function render(main) {
  const query = new URLSearchParams(location.search);
  const tenant = query.get("tenant") || "";
  main.replaceChildren(h("h1", {}, "Tenants"),
    h("form", { class: "inline", method: "get", action: "/console/admin", role: "search" },
      h("label", { for: "a-tenant" }, "Tenant",
        h("input", { id: "a-tenant", name: "tenant", value: tenant, required: true, pattern: "[A-Za-z0-9_.\\-]{1,64}" })),
      h("button", { type: "submit" }, "Show")));
  if (!tenant) return;
  const base = `/v1/admin/tenants/${encodeURIComponent(tenant)}`;
  const limits = await get(`${base}/limits`);
  const usage = await get(withQuery(`${base}/usage`, {}));
  const names = Object.keys(limits.in_force);
  const report = h("div", { id: "report" });
  main.append(h("h2", {}, `Limits of ${limits.tenant}`),
    h("table", { id: "limits" },
      h("thead", {}, h("tr", {}, ["Limit", "Set", "In force"].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, names.map((name) => h("tr", {}, h("th", { scope: "row" }, name),
        h("td", {}, shown(limits.set[name])), h("td", {}, shown(limits.in_force[name])))))),
    fields([["Change them", "PUT /v1/admin/tenants/{tenant}/limits (README, Limits)"]]), report);
  drawReport(report, usage, { title: `Usage of ${limits.tenant}` });
}
