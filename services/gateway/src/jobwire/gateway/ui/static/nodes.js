// Nodes: up/down, backend, capacity, running and queued, queued time as a bar, GPUs with the job holding
// each, last heartbeat; and the program catalog per cluster. Re-read every few seconds.
import { api } from "./api.js";
import { ago, bytes, duration, h, replace, shortId } from "./dom.js";

function gpuList(node) {
  const total = node.capacity.gpus || 0;
  if (node.gpus && node.gpus.length) {
    return h("ul", { class: "gpus" }, node.gpus.map((g) => h("li", { class: g.job_id ? "busy" : "free", dataset: { index: g.index } },
      h("span", { class: "gpu-name" }, `GPU ${g.index}`, g.name ? ` · ${g.name}` : ""),
      g.memory_total_mib ? h("span", { class: "muted" }, ` ${g.memory_used_mib ?? 0}/${g.memory_total_mib} MiB`) : null,
      g.utilization_percent != null ? h("span", { class: "muted" }, ` ${g.utilization_percent}%`) : null,
      " ", g.job_id ? h("a", { href: `#/jobs/${g.job_id}`, class: "mono" }, `held by ${shortId(g.job_id)}`) : h("span", { class: "free-label" }, "free"))));
  }
  if (!total) return h("span", { class: "muted" }, "none");
  return h("span", {}, `${total} (no per-GPU inventory from this backend)`);
}

function nodeCard(node, maxQueued) {
  const cap = node.capacity;
  const up = node.state === "up";
  return h("article", { class: `card node ${up ? "up" : "down"}`, dataset: { node: node.name, state: node.state } },
    h("div", { class: "card-head" },
      h("h2", {}, node.name),
      h("span", { class: `badge ${up ? "s-succeeded" : "s-failed"}` }, node.state),
      h("span", { class: "muted" }, node.backend, node.pool ? ` · pool ${node.pool}` : "")),
    h("dl", { class: "facts" },
      h("dt", {}, "Slots"), h("dd", {}, h("span", { class: "slots" },
        Array.from({ length: Math.min(cap.slots, 64) }, (_, i) => h("span", { class: `slot${i < node.running ? " used" : ""}` }))),
        ` ${node.running} running of ${cap.slots}`),
      h("dt", {}, "Queued"), h("dd", {}, `${node.queued} job${node.queued === 1 ? "" : "s"}`),
      h("dt", {}, "Queued time"), h("dd", {},
        h("span", { class: "bar-track small" }, h("span", { class: "bar-fill s-queued", style: { width: `${(100 * node.queued_seconds) / maxQueued}%` } })),
        ` ${duration(node.queued_seconds)}`),
      h("dt", {}, "CPUs"), h("dd", {}, String(cap.cpus)),
      h("dt", {}, "Memory"), h("dd", {}, cap.memory ? bytes(cap.memory) : "—"),
      h("dt", {}, "GPUs"), h("dd", { class: "gpu-cell" }, gpuList(node)),
      h("dt", {}, "Heartbeat"), h("dd", { title: node.last_heartbeat || "" }, ago(node.last_heartbeat)),
      cap.owner ? [h("dt", {}, "Runs jobs of"), h("dd", { class: "served-owner", title: "its jobs run as the executor's own account, which one owner's files may share" }, `${cap.owner} only`)] : null,
      Object.keys(node.labels || {}).length ? [h("dt", {}, "Labels"), h("dd", {}, Object.entries(node.labels).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)))] : null,
      node.version ? [h("dt", {}, "Version"), h("dd", { class: "muted" }, node.version)] : null));
}

export function render(main, ctx) {
  const abort = new AbortController();
  const list = h("div", { class: "nodes", id: "node-list" });
  const summary = h("span", { class: "muted", id: "node-summary" });
  const catalog = h("section", { class: "card", id: "catalog" }, h("h2", {}, "Program catalog"));
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Nodes"), summary), list, catalog);

  async function load() {
    const { items } = await api("/v1/nodes", { signal: abort.signal });
    const maxQueued = Math.max(1, ...items.map((n) => n.queued_seconds));
    const up = items.filter((n) => n.state === "up").length;
    const gpus = items.reduce((s, n) => s + (n.capacity.gpus || 0), 0);
    summary.textContent = `${up} of ${items.length} up · ${gpus} GPUs`;
    replace(list, items.length ? items.map((n) => nodeCard(n, maxQueued)) : h("p", { class: "muted" }, "No executor has registered a node yet."));
  }

  async function programs() {
    const { items } = await api("/v1/programs", { signal: abort.signal });
    const clusters = new Map();
    for (const p of items) {
      if (!clusters.has(p.cluster)) clusters.set(p.cluster, []);
      clusters.get(p.cluster).push(p);
    }
    // clusters by name (the API sorts programs by name, which would order clusters by their first program)
    const byName = [...clusters.entries()].sort(([a], [b]) => a.localeCompare(b));
    replace(catalog, h("h2", {}, "Program catalog"), items.length ? byName.map(([cluster, progs]) => [
      h("h3", {}, cluster),
      h("table", {}, h("thead", {}, h("tr", {}, ["Program", "Node", "Description"].map((c) => h("th", {}, c)))),
        h("tbody", {}, progs.map((p) => h("tr", {}, h("td", { class: "mono" }, `${p.name}@${p.version}`), h("td", {}, p.node), h("td", {}, p.description || "")))))])
      : h("p", { class: "muted" }, "No node publishes a program catalog."));
  }

  load().catch(ctx.failed);
  programs().catch(() => {});
  const timer = setInterval(() => load().catch(() => {}), 3000);
  return () => {
    abort.abort();
    clearInterval(timer);
  };
}
