// The console's one way to the API: fetch() with the signed-in key, JSON in and out, typed errors.
// The key lives in sessionStorage only (this tab, until it closes or the person signs out): never in a URL or a log.

const SESSION = "aijobs.console";

export function session() {
  const saved = sessionStorage.getItem(SESSION);
  return saved ? JSON.parse(saved) : null;
}

export function signIn(key, role) {
  sessionStorage.setItem(SESSION, JSON.stringify({ key, role }));
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
}

// An error the API answered ({"error": {type, code, message, request_id}}), or one of the network.
export class ApiError extends Error {
  constructor(status, body, requestId) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || (status ? "http_error" : "network_error");
    this.code = error.code || null;
    this.requestId = error.request_id || requestId || null;
  }
}

export function headers(key = session()?.key, extra = {}) {
  return { Accept: "application/json", Authorization: `Bearer ${key}`, ...extra };
}

// The answer's JSON and headers; throws ApiError for any answer that is not 2xx.
export async function call(path, { method = "GET", body, key, signal } = {}) {
  const init = { method, headers: headers(key), signal, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { error: { message: "The API could not be reached." } });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get("x-request-id"));
  return { data, headers: response.headers, status: response.status };
}

export async function get(path, query = {}) {
  return (await call(withQuery(path, query))).data;
}

export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}
