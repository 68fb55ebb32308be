// One job: summary, actions allowed by the token's scopes, progress, timeline by attempt, usage, spec,
// artifacts, ports and live logs (follow, stdout/stderr, search, download). Kept live by its events.
import { api, download, sse } from "./api.js";
import { ACTIVE, badge, bytes, duration, errorBox, h, replace, RUNNING, when } from "./dom.js";

const CANCEL = new Set(["queued", "held", "starting", "running"]);
const FINISHED = new Set(["succeeded", "failed", "cancelled", "timed_out", "lost"]);

/** A fraction 0..1 from what the job wrote to its progress file, or null when it says no number. */
export function fraction(p) {
  if (p == null) return null;
  if (typeof p === "number") return p > 1 ? p / 100 : p;
  if (typeof p === "object") {
    if (typeof p.current === "number" && typeof p.total === "number" && p.total > 0) return p.current / p.total;
    if (typeof p.percent === "number") return p.percent / 100;
    if (typeof p.fraction === "number") return p.fraction;
    if (typeof p.progress === "number") return p.progress > 1 ? p.progress / 100 : p.progress;
  }
  return null;
}

function dl(entries) {
  return h("dl", { class: "facts" }, entries.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function render(main, id, ctx) {
  const abort = new AbortController();
  const signal = abort.signal;
  let job = null;
  let refreshTimer = null;

  const head = h("div", { class: "page-head" });
  const actions = h("div", { class: "actions", id: "actions" });
  const notice = h("div", { id: "notice" });
  const summary = h("section", { class: "card", id: "summary" });
  const progress = h("section", { class: "card", id: "progress", hidden: true });
  const timeline = h("section", { class: "card", id: "timeline" });
  const attempts = h("section", { class: "card", id: "attempts", hidden: true });
  const usage = h("section", { class: "card", id: "usage" });
  const files = h("section", { class: "card", id: "artifacts" });
  const running = h("section", { class: "card", id: "files", hidden: true });
  const spec = h("section", { class: "card", id: "spec" });
  const logs = logPanel(id, ctx, signal);

  replace(main, head, notice,
    h("div", { class: "grid" },
      h("div", { class: "col" }, summary, progress, attempts, timeline, usage),
      h("div", { class: "col wide" }, logs.el, running, files, spec)));

  async function act(verb, method = "POST") {
    replace(notice);
    try {
      const path = verb === "delete" ? `/v1/jobs/${id}` : `/v1/jobs/${id}/${verb}`;
      await api(path, { method });
      if (verb === "delete") return ctx.go("#/jobs");
      await refresh();
    } catch (err) {
      notice.append(errorBox(err));
    }
  }

  function showActions() {
    const can = ctx.can("jobs:cancel");
    const why = can ? null : "your token lacks the jobs:cancel scope";
    const button = (verb, label, show, extra = {}) => show
      ? h("button", { id: `do-${verb}`, disabled: !can, title: why, onclick: () => act(verb, verb === "delete" ? "DELETE" : "POST"), ...extra }, label)
      : null;
    replace(actions,
      button("cancel", "Cancel", CANCEL.has(job.state), { class: "danger" }),
      button("hold", "Hold", job.state === "queued" || job.state === "starting"),
      button("release", "Release", job.state === "held"),
      button("delete", "Delete", true, { class: "danger ghost" }),
      ctx.can("jobs:submit") ? h("a", { class: "button-link", id: "resubmit", href: `#/submit?from=${id}` }, "Re-submit with changes…") : null);
  }

  function show() {
    replace(head,
      h("div", {}, h("h1", {}, job.name || "Job", " ", badge(job.state)), h("div", { class: "mono muted", id: "job-id" }, job.id)),
      actions);
    showActions();
    const ports = Object.entries(job.ports || {});
    const started = job.started_at ? new Date(job.started_at) : null;
    const ended = job.ended_at ? new Date(job.ended_at) : null;
    replace(summary, h("h2", {}, "Summary"), dl([
      ["State", badge(job.state)],
      ["Reason", job.reason],
      ["Owner", job.owner],
      ["Node", job.node || "—"],
      ["Attempt", `${job.attempt} of ${job.max_attempts ?? 1}`],
      ["Array", job.array_id ? h("a", { id: "array-link", href: `#/arrays/${job.array_id}` }, `task ${job.array_index} of the array`) : null],
      ["Queue position", job.state === "queued" && job.queue_position != null ? String(job.queue_position) : null],
      ["Estimated start", job.state === "queued" && job.estimated_start ? when(job.estimated_start) : null],
      ["Expected runtime", job.expected_runtime != null ? duration(job.expected_runtime) : null],
      ["Exit code", job.exit_code != null ? String(job.exit_code) : null],
      ["Created", when(job.created_at)],
      ["Started", when(job.started_at)],
      ["Ended", job.ended_at ? when(job.ended_at) : null],
      ["Ran", started ? h("span", { id: "ran" }, duration(((ended || new Date()) - started) / 1000)) : null],
      ["Ports", ports.length ? ports.map(([name, url]) => h("a", { href: url, target: "_blank", rel: "noopener" }, `${name} `)) : null],
      ["Labels", Object.keys(job.labels || {}).length ? Object.entries(job.labels).map(([k, v]) =>
        h("a", { class: "chip", href: `#/jobs?label=${encodeURIComponent(`${k}=${v}`)}` }, `${k}=${v}`)) : null],
    ]));
    // How each attempt went, with its own logs (GET /v1/jobs/{id}/logs?attempt=N) a click away.
    const tries = job.attempts || [];
    attempts.hidden = tries.length < 2; // one attempt: the summary already says how it went
    replace(attempts, h("h2", {}, "Attempts"), h("table", { class: "jobs attempts" },
      h("thead", {}, h("tr", {}, ["#", "State", "Exit code", "Node", "Reason", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, tries.map((a) => h("tr", { dataset: { attempt: a.attempt, state: a.state } },
        h("td", {}, String(a.attempt)),
        h("td", {}, badge(a.state)),
        h("td", { class: "exit" }, a.exit_code != null ? String(a.exit_code) : "—"),
        h("td", {}, a.node || "—"),
        h("td", { class: "reason" }, a.reason || ""),
        h("td", {}, h("button", { class: "link", dataset: { logs: a.attempt }, onclick: () => logs.attempt(a.attempt) }, "logs")))))));
    logs.attempts(tries.map((a) => a.attempt));
    const byAttempt = new Map();
    for (const t of job.transitions || []) {
      if (!byAttempt.has(t.attempt)) byAttempt.set(t.attempt, []);
      byAttempt.get(t.attempt).push(t);
    }
    replace(timeline, h("h2", {}, "Timeline"),
      [...byAttempt.entries()].map(([attempt, items]) => h("div", { class: "attempt" },
        byAttempt.size > 1 || attempt > 0 ? h("h3", {}, attempt ? `Attempt ${attempt}` : "Submitted") : null,
        h("ol", { class: "timeline" }, items.map((t) => h("li", { dataset: { state: t.state } },
          badge(t.state), h("time", { datetime: t.at }, when(t.at)), t.reason ? h("span", { class: "reason" }, t.reason) : null))))));
    const u = job.usage || {};
    replace(usage, h("h2", {}, "Usage"), job.usage ? dl([
      ["Wall time", u.wall_seconds != null ? duration(u.wall_seconds) : null],
      ["CPU time", u.cpu_seconds != null ? duration(u.cpu_seconds) : null],
      ["Max memory", u.max_rss_bytes != null ? bytes(u.max_rss_bytes) : null],
      ["Max virtual memory", u.max_vmem_bytes != null ? bytes(u.max_vmem_bytes) : null],
      ["Memory × CPU", u.mem_cpu_seconds != null ? `${u.mem_cpu_seconds.toFixed(1)} s` : null],
      ["Read", u.io_read_bytes != null ? bytes(u.io_read_bytes) : null],
      ["Written", u.io_write_bytes != null ? bytes(u.io_write_bytes) : null],
      ["IO", u.io_bytes != null ? bytes(u.io_bytes) : null],
      ["Nodes", u.node_list ? u.node_list.join(", ") : null],
    ]) : h("p", { class: "muted" }, FINISHED.has(job.state) ? "The backend reported no usage." : "Reported when the job ends."));
    replace(files, h("h2", {}, "Artifacts"), (job.artifacts || []).length
      ? h("ul", { class: "files" }, job.artifacts.map((a) => h("li", {},
        h("button", { class: "link", onclick: () => download(`/v1/jobs/${id}/artifacts/${a.name.split("/").map(encodeURIComponent).join("/")}`, a.name.split("/").pop()).catch((e) => notice.append(errorBox(e))) }, a.name),
        h("span", { class: "muted" }, ` ${bytes(a.size)}`))))
      : h("p", { class: "muted" }, FINISHED.has(job.state) ? "None: the job left nothing in outputs/." : "Files the job leaves in outputs/ appear here when it ends."));
    const { id: _i, owner, state, reason, node, attempt, queue_position, exit_code, created_at, started_at, ended_at,
      transitions, usage: _u, artifacts, ports: _p, details, array_id: _ai, array_index: _ax, attempts: _at,
      not_before: _nb, estimated_start: _es, ...rest } = job;
    const shown = Object.fromEntries(Object.entries(rest).filter(([, v]) =>
      v !== null && !(Array.isArray(v) && !v.length) && !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length)));
    replace(spec, h("h2", {}, "Spec"), h("pre", { class: "spec" }, JSON.stringify(shown, null, 2)));
  }

  // The job's directory on its node while it runs (a training log, a checkpoint), read on demand.
  async function listFiles() {
    const path = (p) => p.split("/").map(encodeURIComponent).join("/");
    try {
      const { items, truncated } = await api(`/v1/jobs/${id}/files`, { signal });
      const shown = items.filter((f) => f.kind === "file");
      replace(running, h("div", { class: "card-head" }, h("h2", {}, "Running files"),
        h("button", { class: "link", id: "files-refresh", onclick: () => listFiles() }, "refresh")),
        shown.length ? h("ul", { class: "files" }, shown.map((f) => h("li", {},
          h("button", { class: "link", onclick: () => download(`/v1/jobs/${id}/files/${path(f.path)}`, f.path.split("/").pop()).catch((e) => notice.append(errorBox(e))) }, f.path),
          h("span", { class: "muted" }, ` ${bytes(f.size)}`)))) : h("p", { class: "muted" }, "No files yet."),
        truncated ? h("p", { class: "muted" }, `${truncated} more not listed`) : null);
      running.hidden = false;
    } catch {
      running.hidden = true; // the node may not answer, or the run just ended: the artifacts say the rest
    }
  }

  async function refresh() {
    job = await api(`/v1/jobs/${id}`, { signal });
    show();
    if (job.state === "running") listFiles();
    else running.hidden = true;
    if (job.state === "running" || FINISHED.has(job.state)) loadProgress();
    logs.job(job);
  }

  async function loadProgress(p) {
    if (p === undefined) {
      try {
        p = (await api(`/v1/jobs/${id}/progress`, { signal })).progress;
      } catch {
        return;
      }
    }
    const f = fraction(p);
    progress.hidden = false;
    replace(progress, h("h2", {}, "Progress"),
      f != null ? h("div", { class: "progress", role: "progressbar", "aria-valuenow": Math.round(f * 100), "aria-valuemin": 0, "aria-valuemax": 100 },
        h("div", { class: "progress-fill", style: { width: `${Math.min(100, Math.max(0, f * 100))}%` } }),
        h("span", {}, `${Math.round(f * 100)}%`)) : null,
      h("code", { class: "muted" }, JSON.stringify(p)));
  }

  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refresh().catch(() => {}), 150);
  }

  async function follow() {
    let last = null;
    while (!signal.aborted && job && !FINISHED.has(job.state)) {
      try {
        await sse(`/v1/jobs/${id}/events`, {
          signal,
          lastEventId: last,
          onEvent: (e) => {
            if (e.id) last = e.id;
            if (e.event === "transition") refreshSoon();
            else if (e.event === "progress") loadProgress(JSON.parse(e.data).progress);
            else if (e.event === "deleted") ctx.go("#/jobs");
          },
        });
      } catch (err) {
        if (signal.aborted) return;
        if (err.status === 401 || err.status === 404) return ctx.failed(err);
      }
      await new Promise((r) => setTimeout(r, 1000));
      await refresh().catch(() => {});
    }
  }

  // A running job's "Ran" ticks without asking the server.
  const ticker = setInterval(() => {
    const ran = document.getElementById("ran");
    if (ran && job?.started_at && !job.ended_at) ran.textContent = duration((Date.now() - new Date(job.started_at)) / 1000);
  }, 1000);

  refresh().then(follow).catch(ctx.failed);
  return () => {
    clearInterval(ticker);
    abort.abort();
    clearTimeout(refreshTimer);
    logs.stop();
  };
}

function logPanel(id, ctx, pageSignal) {
  let abort = null;
  let current = null;
  let started = false;
  const chunks = []; // {stream, text}
  const out = h("pre", { class: "logs", id: "log-output", tabindex: 0 });
  const status = h("span", { class: "muted", id: "log-status" });
  const which = h("select", { id: "log-stream", "aria-label": "stream" },
    h("option", { value: "" }, "stdout + stderr"), h("option", { value: "stdout" }, "stdout"), h("option", { value: "stderr" }, "stderr"));
  const followBox = h("input", { type: "checkbox", id: "log-follow", checked: true });
  const attemptSelect = h("select", { id: "log-attempt", "aria-label": "attempt", hidden: true }, h("option", { value: "" }, "latest attempt"));
  const search = h("input", { type: "search", id: "log-search", placeholder: "Search logs", "aria-label": "search logs" });
  const el = h("section", { class: "card", id: "logs" },
    h("div", { class: "card-head" }, h("h2", {}, "Logs"), status),
    h("div", { class: "toolbar" }, which, attemptSelect, h("label", {}, followBox, " follow"), search,
      h("button", { id: "log-download", onclick: () => download(`/v1/jobs/${id}/logs?${new URLSearchParams([...(which.value ? [["stream", which.value]] : []), ...(attemptSelect.value ? [["attempt", attemptSelect.value]] : [])])}`, `${id}.log`).catch(ctx.failed) }, "Download")),
    out);

  function draw() {
    const needle = search.value;
    const lines = chunks.filter((c) => !which.value || c.stream === which.value).map((c) => c.text).join("").split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    const shown = needle ? lines.filter((l) => l.includes(needle)) : lines;
    replace(out, shown.map((line) => {
      if (!needle) return line + "\n";
      const parts = line.split(needle);
      return [parts.flatMap((p, i) => (i ? [h("mark", {}, needle), p] : [p])), "\n"];
    }));
    if (needle) status.textContent = `${shown.length} of ${lines.length} lines match`;
    if (followBox.checked) out.scrollTop = out.scrollHeight;
  }

  async function start(followOn) {
    abort?.abort();
    abort = new AbortController();
    pageSignal.addEventListener("abort", () => abort.abort(), { once: true });
    chunks.length = 0;
    draw();
    status.textContent = followOn ? "following…" : "";
    try {
      const attempt = attemptSelect.value ? `&attempt=${attemptSelect.value}` : "";
      await sse(`/v1/jobs/${id}/logs?follow=${followOn}${attempt}`, {
        signal: abort.signal,
        onEvent: (e) => {
          if (e.event !== "log") return;
          const c = JSON.parse(e.data);
          if (c.data) {
            chunks.push({ stream: c.stream, text: c.data });
            draw();
          }
        },
      });
      if (!abort.signal.aborted) status.textContent = search.value ? status.textContent : "end of output";
    } catch (err) {
      if (!abort.signal.aborted) status.textContent = `log stream failed: ${err.message}`;
    }
  }

  which.addEventListener("change", draw);
  // one attempt's output is read whole; back to the latest follows again while the job is active
  attemptSelect.addEventListener("change", () => {
    started = true;
    start(!attemptSelect.value && current != null && ACTIVE.has(current.state));
  });
  search.addEventListener("input", draw);
  followBox.addEventListener("change", () => { if (followBox.checked) out.scrollTop = out.scrollHeight; });

  return {
    el,
    job(j) {
      const was = current;
      current = j;
      const active = ACTIVE.has(j.state);
      // Start once: following while the job may still write, a plain read once it has finished.
      if (!started && (RUNNING.has(j.state) || !active)) {
        started = true;
        start(active);
      } else if (!started) {
        status.textContent = "waiting for the job to start";
      }
      return was;
    },
    attempts(numbers) {
      const have = new Set([...attemptSelect.options].map((o) => o.value));
      for (const n of numbers) if (!have.has(String(n))) attemptSelect.append(h("option", { value: String(n) }, `attempt ${n}`));
      attemptSelect.hidden = numbers.length < 2;
    },
    attempt(n) {
      attemptSelect.value = String(n);
      attemptSelect.dispatchEvent(new Event("change"));
      el.scrollIntoView({ block: "nearest" });
    },
    stop() { abort?.abort(); },
  };
}
