// The operator's page (admin key): the tenants (GET /v1/admin/tenants), and a tenant's limits, as set and in force,
// and its usage.

import { get, withQuery } from "../api.js";
import { drawReport } from "../report.js";
import { h, redraw, showError } from "../ui.js";

const TENANT_PAGES = 10;  // the first 1,000 tenants are offered; another one can be typed

const shown = (value, none) => (value === null || value === undefined ? none
  : Array.isArray(value) ? value.join(", ") : String(value));

async function listedTenants() {
  const tenants = [];
  let cursor = null;
  for (let page = 0; page < TENANT_PAGES; page += 1) {
    const answer = await get("/v1/admin/tenants", { limit: 100, cursor });
    tenants.push(...answer.data.map((entry) => entry.tenant));
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return tenants;
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
        h("input", { id: "a-tenant", name: "tenant", value: tenant, required: true, list: "tenants",
                     pattern: "[A-Za-z0-9_.\\-]{1,64}" })),
      h("datalist", { id: "tenants" }),
      h("button", { type: "submit" }, "Show")),
    known);
  listedTenants().then((tenants) => {
    document.getElementById("tenants").replaceChildren(...tenants.map((name) => h("option", { value: name })));
    redraw(known, tenants.length ? h("p", {}, "Tenants: ",
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
