// Small DOM helpers shared by the pages: building elements, formatting, the alert and status regions, polling.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : String(child))));
  return element;
}

export function time(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function cost(usd) {
  if (usd === null || usd === undefined) return "—";
  return `$${Number(usd).toFixed(Math.abs(usd) >= 1 ? 2 : 6)}`;
}

export function number(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString("en-US");
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

export function table(columns, rows, { caption, empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col", class: column.num ? "num" : null },
      column.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((column) => h("td", { class: column.num ? "num" : null },
      column.value(row)))))));
}

export function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.filter(([, value]) => value !== undefined)
    .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value ?? "—")]));
}

// The API's error, said plainly in the alert region: its type, message and request id.
export function showError(error) {
  const region = document.getElementById("alert");
  region.replaceChildren(h("p", {},
    h("strong", {}, error.status ? `The API answered ${error.status} ${error.type}` : "Error"),
    error.code ? [" (", h("code", {}, error.code), ")"] : null, ": ", error.message,
    error.requestId ? [" — request id ", h("code", { class: "request-id" }, error.requestId)] : null));
  region.hidden = false;
}

export function clearError() {
  const region = document.getElementById("alert");
  region.hidden = true;
  region.replaceChildren();
}

export function announce(message) {
  document.getElementById("status").textContent = message;
}

// Run fn now and then every ms while the page is open; errors go to the alert region. Returns a stop function.
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      if (error.name !== "AbortError") showError(error);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// Run an action of a button: the button is disabled meanwhile; the outcome is announced, an error shown.
export async function act(button, action, success) {
  button.disabled = true;
  clearError();
  try {
    const result = await action();
    announce(success(result));
    return result;
  } catch (error) {
    showError(error);
    return null;
  } finally {
    button.disabled = false;
  }
}

// Replace a region's content, keeping the focus on the element of the same id when there is one.
export function redraw(container, ...nodes) {
  const focused = container.contains(document.activeElement) ? document.activeElement.id : null;
  container.replaceChildren(...nodes.flat(Infinity).filter((node) => node !== null && node !== undefined));
  if (focused) document.getElementById(focused)?.focus();
}
