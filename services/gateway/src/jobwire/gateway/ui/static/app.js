// The dashboard shell: sign-in, the hash router (#/jobs, #/jobs/ID, #/arrays/ID, #/workflows[/ID],
// #/nodes, #/submit), the header.
// Each page is a module whose render(main, ctx) returns a function that stops its live streams.
import { api, ApiError, token } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import * as jobs from "./jobs.js";
import * as array from "./array.js";
import * as job from "./job.js";
import * as nodes from "./nodes.js";
import * as submit from "./submit.js";
import * as workflow from "./workflow.js";

const main = document.getElementById("main");
const who = document.getElementById("who");
let stop = () => {};
let me = null;

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  return { parts, params: new URLSearchParams(query) };
}

function signIn(message) {
  token.clear();
  me = null;
  replace(who);
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true,
    placeholder: "jw_…", "aria-label": "API token" });
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste an API token (", h("code", {}, "jobwire token create"),
      ", or the one ", h("code", {}, "make run"), " wrote to .jobwire/token). It stays in this tab only."),
    message ? h("div", { class: "error", role: "alert" }, message) : null,
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    token.set(input.value.trim());
    try {
      me = await api("/v1/whoami");
      show();
    } catch (err) {
      signIn(err instanceof ApiError && err.status === 401 ? "That token is not valid." : err.message);
    }
  });
  replace(main, form);
  input.focus();
}

function header() {
  replace(who,
    h("span", { class: "owner", id: "whoami", title: me.scopes.join(", ") }, me.owner, me.admin ? " (admin)" : ""),
    h("button", { class: "link", id: "signout", onclick: () => { stop(); signIn(); } }, "Sign out"));
  const page = route().parts[0] || "jobs";
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === page);
  }
}

async function show() {
  stop();
  stop = () => {};
  if (!token.get()) return signIn();
  if (!me) {
    try {
      me = await api("/v1/whoami");
    } catch (err) {
      return signIn(err.status === 401 ? "Your session's token is no longer valid." : err.message);
    }
  }
  header();
  const { parts, params } = route();
  const ctx = {
    me,
    params,
    can: (scope) => me.admin || me.scopes.includes(scope),
    go: (hash) => { location.hash = hash; },
    failed: (err) => {
      // a page left (or shown again) aborts its own requests: that is no error to show on the next page
      if (err?.name === "AbortError") return;
      if (err instanceof ApiError && err.status === 401) signIn("Your token expired or was revoked.");
      else main.prepend(errorBox(err));
    },
  };
  try {
    if (parts[0] === "jobs" && parts[1]) stop = job.render(main, parts[1], ctx);
    else if (parts[0] === "arrays" && parts[1]) stop = array.render(main, parts[1], ctx);
    else if (parts[0] === "workflows" && parts[1]) stop = workflow.render(main, parts[1], ctx);
    else if (parts[0] === "workflows") stop = workflow.renderList(main, ctx);
    else if (parts[0] === "nodes") stop = nodes.render(main, ctx);
    else if (parts[0] === "submit") stop = submit.render(main, ctx);
    else stop = jobs.render(main, ctx);
  } catch (err) {
    ctx.failed(err);
  }
}

window.addEventListener("hashchange", show);
show();
