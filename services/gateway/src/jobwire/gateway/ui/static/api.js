// The dashboard's only way to the server: the REST API under /v1, with the user's token as a header.
// The token lives in sessionStorage (this tab, until it closes), never in a cookie: no other site can
// make the browser send it, so there is nothing for CSRF to ride on.

const KEY = "jobwire.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText || `HTTP ${response.status}` };
  }
}

/** JSON in, JSON out; an RFC 9457 problem becomes an ApiError. */
export async function api(path, { method = "GET", json, body, contentType, signal } = {}) {
  const extra = { Accept: "application/json" };
  if (json !== undefined) {
    extra["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (contentType) {
    extra["Content-Type"] = contentType;
  }
  const response = await fetch(path, { method, headers: headers(extra), body, signal });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/**
 * Server-sent events over fetch (EventSource cannot send an Authorization header). Calls
 * onEvent({event, data, id}) for each; resolves when the server ends the stream or `signal` aborts.
 */
export async function sse(path, { onEvent, signal, lastEventId } = {}) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId != null) extra["Last-Event-ID"] = String(lastEventId);
  const response = await fetch(path, { headers: headers(extra), signal });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let nl;
      while ((nl = buffer.search(/\r?\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer[nl] === "\r" ? 2 : 1));
        if (line === "") {
          if (event.data.length || event.event !== "message") {
            onEvent({ event: event.event, data: event.data.join("\n"), id: event.id });
          }
          event = { event: "message", data: [], id: null };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "data") event.data.push(text);
          else if (field === "event") event.event = text;
          else if (field === "id") event.id = text;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  } finally {
    reader.releaseLock?.();
  }
}

/** Fetches with the token and saves the body as a file (a plain link could not carry the header). */
export async function download(path, filename) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
