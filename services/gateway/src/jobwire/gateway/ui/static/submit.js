// Submit: a command, script or program, image, resources, env, labels and uploaded inputs; with
// ?from=ID the form starts as that job's spec, to run it again with changes.
import { api } from "./api.js";
import { errorBox, h, joinCommand, pairs, replace, splitCommand } from "./dom.js";

const lines = (obj) => Object.entries(obj || {}).map(([k, v]) => `${k}=${v}`).join("\n");

function field(label, input, help) {
  return h("label", { class: "field" }, h("span", {}, label), input, help ? h("small", { class: "muted" }, help) : null);
}

export function render(main, ctx) {
  const from = ctx.params.get("from");
  const abort = new AbortController();
  const notice = h("div", { id: "notice" });
  const inp = (name, attrs = {}) => h("input", { name, id: `f-${name}`, ...attrs });
  const area = (name, attrs = {}) => h("textarea", { name, id: `f-${name}`, rows: 3, ...attrs });
  const kind = h("select", { name: "kind", id: "f-kind" },
    h("option", { value: "command" }, "Command"), h("option", { value: "script" }, "Script"), h("option", { value: "program" }, "Catalog program"));
  const command = inp("command", { placeholder: "python train.py --epochs 3", class: "mono" });
  const script = area("script", { rows: 6, class: "mono", placeholder: "#!/bin/sh\necho hello", hidden: true });
  const program = inp("program", { placeholder: "NAME@VERSION", hidden: true });
  const files = h("input", { type: "file", name: "inputs", id: "f-inputs", multiple: true });
  const form = h("form", { class: "card submit", id: "submit-form" },
    field("Name", inp("name", { placeholder: "optional" })),
    h("div", { class: "row" }, field("Run", kind), h("div", { class: "field grow" }, h("span", {}, "What"), command, script, program)),
    h("div", { class: "row" },
      field("Image", inp("image", { placeholder: "docker backends: e.g. python:3.11" })),
      field("Working directory", inp("workdir"))),
    h("fieldset", {}, h("legend", {}, "Resources"),
      h("div", { class: "row" },
        field("CPUs", inp("cpus", { type: "number", min: 0.1, step: 0.1, value: 1 })),
        field("Memory", inp("memory", { placeholder: "4G" })),
        field("GPUs", inp("gpus", { type: "number", min: 0, max: 64, value: 0 })),
        field("Slots", inp("slots", { type: "number", min: 1, value: 1 })),
        field("Walltime (s)", inp("walltime", { type: "number", min: 1 })),
        field("Expected runtime (s)", inp("expected_runtime", { type: "number", min: 0 }), "placement uses it"))),
    h("fieldset", {}, h("legend", {}, "Placement"),
      h("div", { class: "row" },
        field("Backend", inp("backend", { placeholder: "any" })),
        field("Pool", inp("pool")),
        field("Node", inp("node")),
        field("Attempts", inp("max_attempts", { type: "number", min: 1, value: 1 })),
        field("Priority", inp("priority", { type: "number", value: 0 })))),
    h("div", { class: "row" },
      field("Environment", area("env", { placeholder: "KEY=VALUE, one per line", class: "mono" })),
      field("Labels", area("labels", { placeholder: "project=alpha", class: "mono" }))),
    field("Input files", files, "uploaded to your inputs, then placed in the job's working directory"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "f-submit" }, from ? "Submit again" : "Submit")));

  const showKind = () => {
    command.hidden = kind.value !== "command";
    script.hidden = kind.value !== "script";
    program.hidden = kind.value !== "program";
  };
  kind.addEventListener("change", showKind);

  function fill(job) {
    const set = (name, value) => { if (value != null) form.elements[name].value = value; };
    set("name", job.name);
    kind.value = job.script ? "script" : job.program ? "program" : "command";
    set("command", job.command ? joinCommand(job.command) : "");
    set("script", job.script);
    set("program", job.program);
    for (const k of ["image", "workdir", "backend", "pool", "node", "max_attempts", "priority", "expected_runtime"]) set(k, job[k]);
    const r = job.resources || {};
    for (const k of ["cpus", "memory", "gpus", "slots", "walltime"]) set(k, r[k]);
    set("env", lines(job.env));
    set("labels", lines(job.labels));
    showKind();
    // What the form does not show (args, backend options, ...) is kept from the original spec.
    const { id, owner, state, reason, attempt, queue_position, exit_code, created_at, started_at, ended_at,
      transitions, usage, artifacts, ports, details, command: c, script: s, program: p,
      // what the system added to a job, never part of a spec (the gateway refuses unknown fields)
      array_id, array_index, attempts, not_before, estimated_start, ...rest } = job;
    base = rest;
  }
  let base = {};

  async function upload(list) {
    const refs = [];
    for (const file of list) {
      const name = `ui/${Date.now()}-${file.name}`;
      await api(`/v1/inputs/${name.split("/").map(encodeURIComponent).join("/")}`, { method: "PUT", body: file, contentType: "application/octet-stream" });
      refs.push({ name, path: file.name });
    }
    return refs;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(notice);
    const v = (name) => form.elements[name].value.trim();
    const num = (name) => (v(name) === "" ? undefined : Number(v(name)));
    try {
      const spec = { ...base, resources: { ...(base.resources || {}) } };
      spec.name = v("name") || undefined;
      if (kind.value === "command") spec.command = splitCommand(v("command"));
      else if (kind.value === "script") spec.script = form.elements.script.value;
      else spec.program = v("program");
      for (const k of ["image", "workdir", "backend", "pool", "node"]) if (v(k)) spec[k] = v(k);
      for (const k of ["max_attempts", "priority", "expected_runtime"]) if (num(k) !== undefined) spec[k] = num(k);
      for (const k of ["cpus", "gpus", "slots", "walltime"]) if (num(k) !== undefined) spec.resources[k] = num(k);
      if (v("memory")) spec.resources.memory = v("memory");
      spec.env = pairs(form.elements.env.value);
      spec.labels = pairs(form.elements.labels.value);
      spec.inputs = [...(base.inputs || []), ...(await upload(files.files))];
      const job = await api("/v1/jobs", { method: "POST", json: spec });
      ctx.go(`#/jobs/${job.id}`);
    } catch (err) {
      notice.append(errorBox(err));
      notice.scrollIntoView({ block: "nearest" });
    }
  });

  replace(main, h("div", { class: "page-head" }, h("h1", {}, from ? "Re-submit with changes" : "Submit a job"),
    from ? h("a", { href: `#/jobs/${from}`, class: "mono muted" }, `from ${from}`) : null), notice, form);
  if (!ctx.can("jobs:submit")) notice.append(errorBox(new Error("Your token lacks the jobs:submit scope: the API will refuse.")));
  if (from) api(`/v1/jobs/${from}`, { signal: abort.signal }).then(fill).catch(ctx.failed);
  showKind();
  return () => abort.abort();
}
