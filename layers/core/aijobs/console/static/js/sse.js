// Server-sent events over fetch(): EventSource cannot send the Authorization header.
// Parses the SSE framing (event, id, data, retry; comments are heartbeats), and reconnects after a dropped
// connection with Last-Event-ID, so that nothing is lost or repeated; stops after a final event or on abort.

import { ApiError, headers } from "./api.js";

function parseEvent(block) {
  const event = { event: "message", data: [], id: null, retry: null };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") event.data.push(value);
    else if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
  }
  return { ...event, data: event.data.join("\n") };
}

async function readOnce(path, lastEventId, signal, onEvent) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId !== null) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(path, { headers: headers(undefined, extra), signal, cache: "no-store" });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { body = null; }
    throw new ApiError(response.status, body, response.headers.get("x-request-id"));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let state = { lastEventId, retry: null, final: false };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return state;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const parsed = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (parsed.retry !== null) state.retry = parsed.retry;
      if (parsed.id !== null) state.lastEventId = parsed.id;
      if (parsed.data === "" && parsed.id === null) continue;  // a comment or a retry hint only
      if (onEvent(parsed) === "final") state = { ...state, final: true };
    }
    if (state.final) {
      reader.cancel();
      return state;
    }
  }
}

// Follow a stream until onEvent returns "final" or signal aborts; a dropped connection resumes after the last id.
export async function follow(path, { onEvent, signal, retryMs = 1000, attempts = 20 }) {
  let lastEventId = null;
  for (let attempt = 0; attempt < attempts && !signal.aborted; attempt += 1) {
    try {
      const state = await readOnce(path, lastEventId, signal, onEvent);
      if (state.final) return;
      lastEventId = state.lastEventId;
      retryMs = state.retry ?? retryMs;
    } catch (error) {
      if (error.name === "AbortError" || error instanceof ApiError) throw error;
      // a network failure: wait and resume with Last-Event-ID
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}
