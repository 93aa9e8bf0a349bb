// The operator's page (admin key): a tenant's limits, as set and in force, and its usage. The API keeps no list of
// tenants, so the operator names one; the tenants that the audit of admin actions names are offered.

import { get, withQuery } from "../api.js";
import { drawReport } from "../report.js";
import { h, redraw, showError } from "../ui.js";

const AUDIT_PAGES = 5;

const shown = (value, none) => (value === null || value === undefined ? none
  : Array.isArray(value) ? value.join(", ") : String(value));

async function auditedTenants() {
  const tenants = new Set();
  let cursor = null;
  for (let page = 0; page < AUDIT_PAGES; page += 1) {
    const answer = await get("/v1/admin/audit", { limit: 100, cursor });
    for (const entry of answer.data) tenants.add(entry.tenant);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return [...tenants].sort();
}

function limitsTable(limits) {
  return h("table", { id: "limits" },
    h("caption", { class: "muted" }, "Set: what the operator set (default: the stack's); in force: what applies"),
    h("thead", {}, h("tr", {}, ["Limit", "Set", "In force"].map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, Object.keys(limits.in_force).map((name) => h("tr", {}, h("th", { scope: "row" }, name),
      h("td", {}, shown(limits.set[name], "default")), h("td", {}, shown(limits.in_force[name], "any"))))));
}

export async function render(main) {
  const query = new URLSearchParams(location.search);
  const tenant = query.get("tenant") || "";
  const known = h("div", { id: "known" });
  main.replaceChildren(h("h1", {}, "Tenants"),
    h("form", { class: "inline", method: "get", action: "/console/admin", role: "search" },
      h("label", { for: "a-tenant" }, "Tenant",
        h("input", { id: "a-tenant", name: "tenant", value: tenant, required: true, list: "audited",
                     pattern: "[A-Za-z0-9_.\\-]{1,64}" })),
      h("datalist", { id: "audited" }),
      h("button", { type: "submit" }, "Show")),
    known);
  auditedTenants().then((tenants) => {
    document.getElementById("audited").replaceChildren(...tenants.map((name) => h("option", { value: name })));
    redraw(known, tenants.length ? h("p", {}, "Tenants in the audit of admin actions: ",
      tenants.map((name, index) => [index ? ", " : "", h("a", { href: withQuery("/console/admin", { tenant: name }) },
        name)])) : null);
  }).catch(showError);
  if (!tenant) return;
  const base = `/v1/admin/tenants/${encodeURIComponent(tenant)}`;
  const [limits, usage] = await Promise.all([get(`${base}/limits`), get(`${base}/usage`)]);
  const report = h("div", { id: "report" });
  main.append(h("h2", {}, `Limits of ${limits.tenant}`), limitsTable(limits), report);
  drawReport(report, usage, { title: `Usage of ${limits.tenant}`, withLimits: false });
}
