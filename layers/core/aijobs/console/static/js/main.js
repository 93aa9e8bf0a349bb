// The shell: who is signed in, the navigation, sign out, and which page module renders the path.

import { session, signOut } from "./api.js";
import { clearError, showError } from "./ui.js";

const PAGES = [
  [/^\/console\/?$/, "tenant", "./pages/jobs.js"],
  [/^\/console\/jobs\/?$/, "tenant", "./pages/jobs.js"],
  [/^\/console\/jobs\/(job_[0-9A-Za-z]+)\/?$/, "tenant", "./pages/job.js"],
  [/^\/console\/batches\/?$/, "tenant", "./pages/batches.js"],
  [/^\/console\/schedules\/?$/, "tenant", "./pages/schedules.js"],
  [/^\/console\/usage\/?$/, "tenant", "./pages/usage.js"],
  [/^\/console\/admin\/?$/, "admin", "./pages/admin.js"],
];

function shell(current) {
  const nav = document.getElementById("nav");
  for (const item of nav.querySelectorAll("li")) item.hidden = item.dataset.role !== current.role;
  for (const link of nav.querySelectorAll("a")) {
    if (location.pathname.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
  }
  nav.hidden = false;
  const who = document.getElementById("who");
  who.textContent = current.role === "admin" ? "Signed in as the operator (admin key)" : "Signed in with a tenant key";
  who.hidden = false;
  const button = document.getElementById("signout");
  button.hidden = false;
  button.addEventListener("click", () => {
    signOut();
    location.assign("/console");
  });
}

async function start() {
  const main = document.getElementById("main");
  const current = session();
  if (!current) {
    const { render } = await import("./pages/signin.js");
    return render(main);
  }
  shell(current);
  const found = PAGES.find(([pattern]) => pattern.test(location.pathname));
  if (current.role === "admin" && (!found || found[1] !== "admin")) return location.replace("/console/admin");
  if (!found || found[1] !== current.role) {
    main.replaceChildren();
    return showError({ status: 404, type: "not_found", message: "This page is not part of the console." });
  }
  const [pattern, , module] = found;
  const { render } = await import(module);
  clearError();
  return render(main, ...location.pathname.match(pattern).slice(1));
}

start().catch(showError);
