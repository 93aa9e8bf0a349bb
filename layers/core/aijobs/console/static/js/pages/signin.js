// Sign in with an API key: a tenant's (GET /v1/usage answers it) or the operator's admin key (/v1/admin answers it).
// The key is kept in sessionStorage only; the form is never submitted to the server, so it never lands in a URL.

import { ApiError, call, signIn } from "../api.js";
import { clearError, h, showError } from "../ui.js";

async function roleOf(key) {
  try {
    await call("/v1/usage", { key });
    return "tenant";
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    try {
      await call("/v1/admin/audit?limit=1", { key });
      return "admin";
    } catch {
      throw error;  // not the admin key either: the tenant route's 401 says why
    }
  }
}

export function render(main) {
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true,
                             spellcheck: "false" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { id: "signin", method: "post", action: "/console", novalidate: true },
    h("label", { for: "key" }, "API key (a tenant's, or the admin key)", input), h("div", {}, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const key = input.value.trim();
    if (!key) {
      showError({ type: "invalid_request", message: "Enter an API key." });
      return input.focus();
    }
    button.disabled = true;
    try {
      signIn(key, await roleOf(key));
      location.assign(location.pathname === "/console/" ? "/console" : location.pathname);
    } catch (error) {
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
