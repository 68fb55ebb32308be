// One array: its counts by state as bars (over every task, unmade ones counted as the array is) and its
// tasks in index order, a page at a time (keyset cursor). Re-read every 2 s while it is not done: an
// array of 100,000 tasks sends no event per task worth following here.
import { api } from "./api.js";
import { badge, h, replace, shortId, STATES, when } from "./dom.js";

const PAGE = 50;

export function render(main, id, ctx) {
  const abort = new AbortController();
  const cursors = [null];
  let pageIndex = 0;
  let timer = null;

  const head = h("div", { class: "page-head" });
  const bars = h("div", { class: "bars", id: "array-counts" });
  const tbody = h("tbody", { id: "task-rows" });
  const pager = h("div", { class: "pager" });
  replace(main, head, h("section", { class: "card" }, h("h2", {}, "Tasks by state"), bars),
    h("table", { class: "jobs" },
      h("thead", {}, h("tr", {}, ["Index", "State", "Job", "Attempt", "Node", "Exit code", "Reason"].map((c) => h("th", {}, c)))),
      tbody),
    pager);

  function task(t) {
    return h("tr", { dataset: { index: t.index, state: t.state } },
      h("td", { class: "mono" }, String(t.index)),
      h("td", { class: "state" }, badge(t.state)),
      h("td", {}, t.job_id ? h("a", { href: `#/jobs/${t.job_id}`, class: "mono", title: t.job_id }, shortId(t.job_id)) : h("span", { class: "muted" }, "not made yet")),
      h("td", {}, t.attempt ? String(t.attempt) : "—"),
      h("td", {}, t.node || "—"),
      h("td", {}, t.exit_code != null ? String(t.exit_code) : "—"),
      h("td", { class: "reason" }, t.reason || ""));
  }

  async function load(i) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursors[i]) q.set("cursor", cursors[i]);
    const a = await api(`/v1/arrays/${id}?${q}`, { signal: abort.signal });
    replace(head,
      h("div", {}, h("h1", {}, a.name || "Array", " ", h("span", { class: "muted" }, `${a.count} tasks`)),
        h("div", { class: "mono muted", id: "array-id" }, a.id)),
      h("div", { class: "actions" },
        h("span", { class: "muted" }, `${a.materialised} made · parallelism ${a.parallelism ?? "any"} · `,
          a.done ? "done" : a.cancelled ? "cancelled" : a.held ? "held" : "active", ` · created ${when(a.created_at)}`),
        h("a", { class: "button-link", id: "array-jobs", href: `#/jobs?array=${encodeURIComponent(a.id)}` }, "As jobs")));
    const max = Math.max(1, a.count);
    replace(bars, STATES.filter((s) => a.counts[s]).map((s) => {
      const n = a.counts[s];
      return h("div", { class: "bar", dataset: { state: s, count: n }, title: `${n} ${s}` },
        h("span", { class: "bar-label" }, s.replace("_", " ")),
        h("span", { class: "bar-track" }, h("span", { class: `bar-fill s-${s}`, style: { width: `${(100 * n) / max}%` } })),
        h("span", { class: "bar-n" }, String(n)));
    }));
    replace(tbody, a.tasks.length ? a.tasks.map(task) : h("tr", {}, h("td", { colspan: 7, class: "muted empty" }, "No tasks.")));
    cursors.length = i + 1;
    if (a.next_cursor) cursors.push(a.next_cursor);
    pageIndex = i;
    replace(pager,
      h("button", { disabled: i === 0, onclick: () => load(0).catch(ctx.failed) }, "« First"),
      h("button", { disabled: i === 0, onclick: () => load(i - 1).catch(ctx.failed) }, "‹ Previous"),
      h("span", { class: "muted" }, `tasks ${i * PAGE + 1}–${i * PAGE + a.tasks.length}`),
      h("button", { id: "next-tasks", disabled: !a.next_cursor, onclick: () => load(i + 1).catch(ctx.failed) }, "Next ›"));
    clearTimeout(timer);
    if (!a.done) timer = setTimeout(() => load(pageIndex).catch(ctx.failed), 2000);
  }

  load(0).catch(ctx.failed);
  return () => {
    abort.abort();
    clearTimeout(timer);
  };
}
