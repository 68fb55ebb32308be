// One workflow, drawn simply: one row per level (a job's level is one more than its deepest
// dependency's, as `jobwire workflow show` prints them), each job a box with its state, reason and a
// link to its page; re-read every 2 s while any job is active.
import { api } from "./api.js";
import { ACTIVE, badge, h, replace, STATES, when } from "./dom.js";

/** name -> level: 0 for a job that waits for nothing in the workflow, else 1 + its deepest dependency. */
export function levels(jobs, edges) {
  const parents = new Map(jobs.map((j) => [j.name, []]));
  for (const e of edges) if (parents.has(e.to) && parents.has(e.from)) parents.get(e.to).push(e.from);
  const level = new Map();
  const of = (name, seen = new Set()) => {
    if (level.has(name)) return level.get(name);
    if (seen.has(name)) return 0; // the gateway refuses cycles; never loop on one anyway
    seen.add(name);
    const l = Math.max(-1, ...parents.get(name).map((p) => of(p, seen))) + 1;
    level.set(name, l);
    return l;
  };
  for (const j of jobs) of(j.name);
  return level;
}

export function render(main, id, ctx) {
  const abort = new AbortController();
  let timer = null;
  const head = h("div", { class: "page-head" });
  const counts = h("div", { class: "muted", id: "workflow-counts" });
  const dag = h("div", { class: "dag", id: "dag" });
  replace(main, head, counts, dag);

  function box(j, after) {
    // an array in a workflow is shown as one job whose reason counts its tasks; its page is the array's
    const isArray = (j.reason || "").startsWith("array:");
    return h("div", { class: "dag-job card", dataset: { name: j.name, state: j.state } },
      h("div", {}, h("a", { href: isArray ? `#/arrays/${j.id}` : `#/jobs/${j.id}`, class: "dag-name" }, j.name), " ", badge(j.state)),
      j.reason ? h("div", { class: "reason muted" }, j.reason) : null,
      after.length ? h("div", { class: "muted dag-after" }, "after ", after.map((e) => `${e.from}${e.when === "succeeded" ? "" : ` (${e.when})`}`).join(", ")) : null,
      j.exit_code != null && !(j.reason || "").includes("exit code") ? h("div", { class: "muted" }, `exit code ${j.exit_code}`) : null);
  }

  async function load() {
    const w = await api(`/v1/workflows/${id}`, { signal: abort.signal });
    replace(head,
      h("div", {}, h("h1", {}, w.name || "Workflow", " ", h("span", { class: "muted" }, `${w.jobs.length} jobs`)),
        h("div", { class: "mono muted", id: "workflow-id" }, w.id)),
      h("div", { class: "actions" },
        h("span", { class: "muted" }, `${w.owner} · created ${when(w.created_at)}`),
        h("a", { class: "button-link", id: "workflow-jobs", href: `#/jobs?workflow=${encodeURIComponent(w.id)}` }, "As jobs")));
    replace(counts, STATES.filter((s) => w.counts[s]).map((s) => [badge(s), ` ${w.counts[s]}  `]));
    const level = levels(w.jobs, w.edges);
    const rows = [];
    for (const j of w.jobs) (rows[level.get(j.name)] ||= []).push(j);
    replace(dag, rows.map((jobs, i) => h("div", { class: "dag-level", dataset: { level: i } },
      h("span", { class: "dag-level-n muted" }, String(i)),
      jobs.map((j) => box(j, w.edges.filter((e) => e.to === j.name))))));
    clearTimeout(timer);
    if (w.jobs.some((j) => ACTIVE.has(j.state))) timer = setTimeout(() => load().catch(ctx.failed), 2000);
  }

  load().catch(ctx.failed);
  return () => {
    abort.abort();
    clearTimeout(timer);
  };
}

/** #/workflows: the caller's workflows (an admin's: everyone's), newest first, a page at a time. */
export function renderList(main, ctx) {
  const abort = new AbortController();
  const cursors = [null];
  const tbody = h("tbody", { id: "workflow-rows" });
  const pager = h("div", { class: "pager" });
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Workflows")),
    h("table", { class: "jobs" }, h("thead", {}, h("tr", {}, ["Workflow", "Name", "Owner", "Jobs", "Created"].map((c) => h("th", {}, c)))), tbody),
    pager);

  async function load(i) {
    const q = new URLSearchParams({ limit: "25" });
    if (cursors[i]) q.set("cursor", cursors[i]);
    const data = await api(`/v1/workflows?${q}`, { signal: abort.signal });
    replace(tbody, data.items.length ? data.items.map((w) => h("tr", { dataset: { id: w.id } },
      h("td", {}, h("a", { href: `#/workflows/${w.id}`, class: "mono" }, w.id.slice(0, 8) + "…")),
      h("td", {}, w.name || "—"), h("td", {}, w.owner), h("td", {}, String(w.jobs)), h("td", {}, when(w.created_at))))
      : h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, "No workflows yet.")));
    cursors.length = i + 1;
    if (data.next_cursor) cursors.push(data.next_cursor);
    replace(pager,
      h("button", { disabled: i === 0, onclick: () => load(i - 1).catch(ctx.failed) }, "‹ Newer"),
      h("button", { disabled: !data.next_cursor, onclick: () => load(i + 1).catch(ctx.failed) }, "Older ›"));
  }

  load(0).catch(ctx.failed);
  return () => abort.abort();
}
