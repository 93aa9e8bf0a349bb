// Sign in with an API key: a tenant's (checked with GET /v1/usage) or the operator's admin key (checked with
// GET /v1/admin/audit). The key is kept in sessionStorage only; the form is never submitted to the server, so the
// key never lands in a URL.

import { call, signIn } from "../api.js";
import { clearError, h, showError } from "../ui.js";

const CHECKS = { tenant: "/v1/usage", admin: "/v1/admin/audit?limit=1" };

function choice(value, label, checked) {
  return h("label", { class: "choice", for: `role-${value}` },
    h("input", { type: "radio", name: "role", id: `role-${value}`, value, checked }), label);
}

export function render(main) {
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true,
                             spellcheck: "false" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { id: "signin", method: "post", action: "/console", novalidate: true },
    h("label", { for: "key" }, "API key", input),
    h("fieldset", {}, h("legend", {}, "The key is"),
      choice("tenant", "a tenant's key", true), choice("admin", "the operator's admin key", false)),
    h("div", {}, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const key = input.value.trim();
    const role = form.elements.role.value;
    if (!key) {
      showError({ type: "invalid_request", message: "Enter an API key." });
      return input.focus();
    }
    button.disabled = true;
    try {
      await call(CHECKS[role], { key });
      signIn(key, role);
      location.assign(location.pathname);
    } catch (error) {
      if (role === "admin" && error.status === 404) error.message = "This is not the admin key (or the admin API is off).";
      showError(error);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(h("section", { class: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "The key stays in this browser tab (sessionStorage) until you sign out or close the tab; it is sent ",
      "only in the Authorization header of the console's calls to the API."),
    form));
  input.focus();
}
