// Jobs: per-state count bars, filters, a keyset-paged table, kept live by the /v1/events feed.
import { api, sse } from "./api.js";
import { ACTIVE, ago, badge, duration, h, replace, shortId, STATES } from "./dom.js";

const PAGE = 25;
const FILTERS = ["state", "node", "name", "label", "owner", "array", "workflow"];

function query(filters, extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, v);
  return q.toString();
}

function runtime(job) {
  if (!job.started_at) return "—";
  const end = job.ended_at ? new Date(job.ended_at) : new Date();
  return duration((end - new Date(job.started_at)) / 1000);
}

export function render(main, ctx) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, ctx.params.get(k) || ""]));
  const cursors = [null]; // cursor of each page shown so far: keyset paging, no OFFSET
  const rows = new Map();
  const abort = new AbortController();
  let countsTimer = null;

  const bars = h("div", { class: "bars", id: "counts" });
  const tbody = h("tbody", { id: "job-rows" });
  const pager = h("div", { class: "pager" });
  const live = h("span", { class: "live", id: "live", title: "state changes arrive as they happen" }, "connecting…");

  const field = (name, label, attrs = {}) =>
    h("label", {}, label, h("input", { name, value: filters[name], ...attrs }));
  const stateSelect = h("select", { name: "state" }, h("option", { value: "" }, "any"),
    STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s.replace("_", " "))));
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, "State", stateSelect),
    field("name", "Name", { placeholder: "exact name" }),
    field("node", "Node"),
    field("label", "Label", { placeholder: "key=value" }),
    ctx.me.admin ? field("owner", "Owner") : null,
    field("array", "Array", { placeholder: "array id" }),
    field("workflow", "Workflow", { placeholder: "workflow id" }),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "#/jobs", class: "button-link" }, "Clear"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    ctx.go(`#/jobs?${query(data)}`);
  });

  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), live,
      ctx.can("jobs:submit") ? h("a", { href: "#/submit", class: "button primary" }, "New job") : null),
    bars, form,
    h("table", { class: "jobs" },
      h("thead", {}, h("tr", {}, ["Job", "Name", "Owner", "State", "Node", "Created", "Ran"].map((c) => h("th", {}, c)))),
      tbody),
    pager);

  function row(job) {
    const tr = h("tr", { dataset: { id: job.id, state: job.state } },
      h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono", title: job.id }, shortId(job.id))),
      h("td", { class: "name" }, job.name || (job.command || []).join(" ") || job.program || "—"),
      h("td", {}, job.owner),
      h("td", { class: "state" }, badge(job.state)),
      h("td", { class: "node" }, job.node || "—"),
      h("td", { title: job.created_at }, ago(job.created_at)),
      h("td", {}, runtime(job)));
    rows.set(job.id, { tr, job });
    return tr;
  }

  async function counts() {
    const { state, array, workflow, ...rest } = filters;
    if (array || workflow) {
      // the counts of an array or a workflow are on its own page (every task, made or not)
      replace(bars, h("a", { id: "group-link", href: array ? `#/arrays/${encodeURIComponent(array)}` : `#/workflows/${encodeURIComponent(workflow)}` },
        array ? "The array's counts and tasks ›" : "The workflow's graph ›"));
      return;
    }
    const data = await api(`/v1/jobs/counts?${query(rest)}`, { signal: abort.signal });
    const max = Math.max(1, ...Object.values(data.by_state));
    replace(bars, STATES.map((s) => {
      const n = data.by_state[s] || 0;
      return h("a", { class: `bar${state === s ? " on" : ""}`, href: `#/jobs?${query({ ...rest, state: s })}`,
        dataset: { state: s, count: n }, title: `${n} ${s}` },
        h("span", { class: "bar-label" }, s.replace("_", " ")),
        h("span", { class: "bar-track" }, h("span", { class: `bar-fill s-${s}`, style: { width: `${(100 * n) / max}%` } })),
        h("span", { class: "bar-n" }, String(n)));
    }), h("span", { class: "total" }, `${data.total} jobs`));
  }

  function countsSoon() {
    clearTimeout(countsTimer);
    countsTimer = setTimeout(() => counts().catch(() => {}), 300);
  }

  async function page(i) {
    const data = await api(`/v1/jobs?${query(filters, { limit: PAGE, cursor: cursors[i] })}`, { signal: abort.signal });
    rows.clear();
    replace(tbody, data.items.length ? data.items.map(row)
      : h("tr", {}, h("td", { colspan: 7, class: "muted empty" }, "No jobs match.")));
    cursors.length = i + 1;
    if (data.next_cursor) cursors.push(data.next_cursor);
    replace(pager,
      h("button", { disabled: i === 0, onclick: () => page(0).catch(ctx.failed) }, "« First"),
      h("button", { disabled: i === 0, onclick: () => page(i - 1).catch(ctx.failed) }, "‹ Newer"),
      h("span", { class: "muted" }, `page ${i + 1}`),
      h("button", { id: "older", disabled: !data.next_cursor, onclick: () => page(i + 1).catch(ctx.failed) }, "Older ›"));
    pageIndex = i;
  }
  let pageIndex = 0;

  function matches(event) {
    if (filters.state && filters.state !== event.state) return false;
    if (filters.node && filters.node !== event.node) return false;
    if (filters.owner && filters.owner !== event.owner) return false;
    return true;
  }

  function matchesJob(job) {
    if (filters.name && filters.name !== job.name) return false;
    if (filters.array && filters.array !== job.array_id) return false;
    if (filters.label) {
      const at = filters.label.indexOf("=");
      const [key, value] = [filters.label.slice(0, at), filters.label.slice(at + 1)];
      if (at < 0 || (job.labels || {})[key] !== value) return false;
    }
    return true;
  }

  // Events are applied one at a time, in stream order: a slow read for one must not let an older state
  // overwrite a newer one. A shown job is updated from the event itself (no request); a new one is read once.
  let chain = Promise.resolve();
  function onTransition(event) {
    chain = chain.then(() => apply(event)).catch(() => {});
  }

  async function apply(event) {
    countsSoon();
    const known = rows.get(event.job_id);
    if (known) {
      const job = { ...known.job, state: event.state, node: event.node ?? known.job.node };
      if (event.state === "running" && !job.started_at) job.started_at = event.at;
      if (!ACTIVE.has(event.state) && event.state !== "lost") job.ended_at = event.at;
      const fresh = row(job);
      if (filters.state && filters.state !== event.state) fresh.classList.add("leaving");
      known.tr.replaceWith(fresh);
      fresh.classList.add("flash");
      return;
    }
    // A job we do not show that now matches the filters: put it where the newest-first order wants it
    // (ids sort by creation time), if that is on this page. Name, label and array are read from the job
    // itself (an event does not carry them); a workflow's jobs all exist from its submit, so none is new.
    if (pageIndex !== 0 || !matches(event) || filters.workflow) return;
    const job = await api(`/v1/jobs/${event.job_id}`, { signal: abort.signal }).catch(() => null);
    if (!job || rows.has(job.id) || !matchesJob(job)) return;
    const after = [...tbody.children].find((tr) => tr.dataset.id && tr.dataset.id < job.id);
    if (!after && rows.size >= PAGE) return;
    tbody.querySelector(".empty")?.closest("tr")?.remove();
    const tr = row(job);
    tr.classList.add("flash");
    if (after) after.before(tr);
    else tbody.append(tr);
    while (tbody.children.length > PAGE) {
      rows.delete(tbody.lastElementChild.dataset.id);
      tbody.lastElementChild.remove();
    }
  }

  async function follow() {
    let last = null;
    while (!abort.signal.aborted) {
      try {
        live.textContent = "live";
        live.classList.add("on");
        await sse("/v1/events", {
          signal: abort.signal,
          lastEventId: last,
          onEvent: (e) => {
            if (e.event !== "transition") return;
            last = e.id;
            onTransition(JSON.parse(e.data));
          },
        });
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err.status === 401) return ctx.failed(err);
      }
      live.textContent = "reconnecting…";
      live.classList.remove("on");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  // The "ran" column of running jobs ticks without asking the server.
  const ticker = setInterval(() => {
    for (const { tr, job } of rows.values()) {
      if (ACTIVE.has(job.state) && job.started_at) tr.lastElementChild.textContent = runtime(job);
    }
  }, 1000);

  Promise.all([counts(), page(0)]).catch(ctx.failed);
  follow();
  return () => {
    abort.abort();
    clearInterval(ticker);
    clearTimeout(countsTimer);
  };
}
