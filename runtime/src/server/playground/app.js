// Kustodian playground: run a KQL query as several principals and compare what each sees.
// The page's state lives in the URL fragment (db, q, as=principal|group|group), so a link
// reproduces a comparison (a principal and its groups are separated by `|`: an FQN may hold
// `;tenant`). No dependency, nothing loaded from elsewhere.
"use strict";

const KEYWORDS = new Set(("where filter project project-away project-keep project-rename project-reorder extend summarize by " +
  "count take limit top sort order asc desc nulls first last join lookup on kind union as let print range from to step " +
  "distinct mv-expand mv-apply parse parse-where extract evaluate render make-series search find in has has_any has_all " +
  "contains startswith endswith matches regex and or not between datatable materialize toscalar view set declare " +
  "query_parameters restrict access with invoke facet fork partition scan serialize sample sample-distinct getschema " +
  "inner outer leftouter rightouter fullouter leftanti rightanti leftsemi rightsemi innerunique true false").split(" "));
const TYPES = new Set("bool boolean int long real double decimal string datetime timespan dynamic guid".split(" "));

function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** KQL as HTML with spans for comments, strings, numbers, keywords, types and function calls. */
function highlight(text) {
  const token = /(\/\/[^\n]*)|(@?"(?:[^"\\\n]|\\.)*"?|@?'(?:[^'\\\n]|\\.)*'?|```[\s\S]*?(?:```|$))|(\b\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:d|h|m|s|ms|tick)?\b)|([A-Za-z_][A-Za-z0-9_-]*(?:-[a-z]+)*)(\s*\()?|(\|)/g;
  let out = "";
  let last = 0;
  let m;
  while ((m = token.exec(text)) !== null) {
    out += escapeHtml(text.slice(last, m.index));
    last = token.lastIndex;
    if (m[1]) out += `<span class="tok-comment">${escapeHtml(m[1])}</span>`;
    else if (m[2]) out += `<span class="tok-string">${escapeHtml(m[2])}</span>`;
    else if (m[3]) out += `<span class="tok-number">${escapeHtml(m[3])}</span>`;
    else if (m[4]) {
      const word = m[4];
      const lower = word.toLowerCase();
      let cls = "";
      if (m[5] && !KEYWORDS.has(lower)) cls = "tok-function";
      else if (KEYWORDS.has(lower)) cls = "tok-keyword";
      else if (TYPES.has(lower)) cls = "tok-type";
      out += cls ? `<span class="${cls}">${escapeHtml(word)}</span>` : escapeHtml(word);
      if (m[5]) out += escapeHtml(m[5]);
    } else if (m[6]) out += `<span class="tok-pipe">|</span>`;
  }
  out += escapeHtml(text.slice(last));
  // A trailing newline needs a character after it to take its height in the <pre>.
  return out + "\n";
}

const state = { db: "", principals: [], token: sessionStorage.getItem("kustodian-token") || "" };

function $(id) { return document.getElementById(id); }

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.token) h["Authorization"] = `Bearer ${state.token}`;
  return h;
}

/** principal|group|group */
function encodePrincipal(p) { return [p.principal, ...p.groups].join("|"); }
function decodePrincipal(s) {
  const [principal, ...groups] = s.split("|").map((x) => x.trim()).filter((x) => x);
  return { principal, groups };
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("db")) state.db = params.get("db");
  if (params.get("q") !== null) $("query").value = params.get("q");
  const as = params.getAll("as").filter((x) => x);
  if (as.length) state.principals = as.map(decodePrincipal);
  return params.get("q") !== null;
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.db) params.set("db", state.db);
  params.set("q", $("query").value);
  for (const p of state.principals) params.append("as", encodePrincipal(p));
  history.replaceState(null, "", `#${params.toString()}`);
}

function renderPrincipals() {
  const list = $("principal-list");
  list.textContent = "";
  if (!state.principals.length) {
    const li = document.createElement("li");
    li.className = "me";
    li.textContent = "yourself (add principals to compare)";
    list.appendChild(li);
  }
  state.principals.forEach((p, i) => {
    const li = document.createElement("li");
    li.textContent = p.principal + (p.groups.length ? ` + ${p.groups.join(", ")}` : "");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "remove";
    remove.addEventListener("click", () => { state.principals.splice(i, 1); renderPrincipals(); });
    li.appendChild(remove);
    list.appendChild(li);
  });
}

function syncHighlight() {
  $("highlight").innerHTML = highlight($("query").value);
  $("highlight").scrollTop = $("query").scrollTop;
  $("highlight").scrollLeft = $("query").scrollLeft;
}

async function loadSession() {
  const r = await fetch("/playground/api/session", { headers: headers() });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("auth").open = true;
    $("caller").textContent = body.error ? body.error.message : `HTTP ${r.status}`;
    return;
  }
  $("caller").textContent = `signed in as ${body.principal}`;
  const select = $("database");
  select.textContent = "";
  for (const db of body.databases) {
    const o = document.createElement("option");
    o.value = o.textContent = db;
    select.appendChild(o);
  }
  if (!state.db && body.databases.length) state.db = body.databases[0];
  select.value = state.db;
  const known = $("known-principals");
  known.textContent = "";
  for (const p of body.principals) {
    const o = document.createElement("option");
    o.value = p;
    known.appendChild(o);
  }
}

function cellKey(row) { return JSON.stringify(row); }

/** Rows and cells that differ between principals get classes: a row not in every other
 *  answer, a cell that differs from the same row (by position) of the first answer. */
function renderResults(results) {
  const root = $("results");
  root.textContent = "";
  const answers = results.map((r) => (r.rows || []).map(cellKey));
  const counts = answers.map((keys) => {
    const m = new Map();
    for (const k of keys) m.set(k, (m.get(k) || 0) + 1);
    return m;
  });
  const base = results[0] && results[0].rows ? results[0].rows : [];
  results.forEach((res, i) => {
    const col = document.createElement("article");
    col.className = "answer";
    col.dataset.principal = res.principal;
    const h = document.createElement("h2");
    h.textContent = res.principal + (res.groups && res.groups.length ? ` + ${res.groups.join(", ")}` : "");
    col.appendChild(h);
    if (res.error) {
      const e = document.createElement("pre");
      e.className = "error";
      e.textContent = `error[${res.error.code}]: ${res.error.message}`;
      col.appendChild(e);
    }
    if (res.columns) {
      const meta = document.createElement("p");
      meta.className = "count";
      meta.textContent = `${res.rows.length} row${res.rows.length === 1 ? "" : "s"}${res.truncated ? " (first " + res.rows.length + ")" : ""}`;
      col.appendChild(meta);
      const table = document.createElement("table");
      table.className = "grid";
      table.dataset.principal = res.principal;
      const head = table.createTHead().insertRow();
      for (const c of res.columns) {
        const th = document.createElement("th");
        th.textContent = c.name;
        th.title = c.type;
        head.appendChild(th);
      }
      const tbody = table.createTBody();
      res.rows.forEach((row, r) => {
        const tr = tbody.insertRow();
        tr.className = "row";
        const key = cellKey(row);
        if (counts.some((m, j) => j !== i && (m.get(key) || 0) < counts[i].get(key))) tr.classList.add("row-diff");
        row.forEach((v, c) => {
          const td = tr.insertCell();
          td.textContent = v;
          if (i > 0 && base[r] && base[r][c] !== v) td.classList.add("cell-diff");
        });
      });
      col.appendChild(table);
    }
    if (res.effective_kql !== undefined) {
      col.appendChild(section("Effective query", highlight(res.effective_kql), "kql"));
      const policies = section("Policies applied", escapeHtml(res.policies.length ? res.policies.join("\n") : "(none)"), "policies");
      policies.open = true;
      col.appendChild(policies);
      const plan = res.plan.split("\n").map((line) =>
        /BarrierExec|SecurityBarrier|ProtectedScan/.test(line) ? `<mark class="barrier">${escapeHtml(line)}</mark>` : escapeHtml(line)).join("\n");
      col.appendChild(section("Plan (barriers marked)", plan, "plan"));
    }
    root.appendChild(col);
  });
}

function section(title, html, cls) {
  const d = document.createElement("details");
  d.className = cls;
  const s = document.createElement("summary");
  s.textContent = title;
  const pre = document.createElement("pre");
  pre.innerHTML = html;
  d.appendChild(s);
  d.appendChild(pre);
  return d;
}

async function run() {
  writeHash();
  const status = $("status");
  status.className = "status";
  status.textContent = "running…";
  document.body.dataset.state = "running";
  try {
    const r = await fetch("/playground/api/run", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ db: state.db, csl: $("query").value, as: state.principals }),
    });
    const body = await r.json();
    if (!r.ok) {
      status.className = "status error";
      status.textContent = `error[${body.error.code}]: ${body.error.message}`;
      $("results").textContent = "";
    } else {
      status.textContent = `${body.results.length} principal${body.results.length === 1 ? "" : "s"} in ${body.duration_ms} ms`;
      renderResults(body.results);
    }
  } catch (e) {
    status.className = "status error";
    status.textContent = String(e);
  }
  document.body.dataset.state = "done";
}

document.addEventListener("DOMContentLoaded", async () => {
  const autorun = readHash();
  renderPrincipals();
  syncHighlight();
  $("query").addEventListener("input", syncHighlight);
  $("query").addEventListener("scroll", syncHighlight);
  $("query").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  $("run").addEventListener("click", run);
  $("database").addEventListener("change", (e) => { state.db = e.target.value; });
  $("add-principal").addEventListener("submit", (e) => {
    e.preventDefault();
    const principal = $("new-principal").value.trim();
    if (!principal) return;
    const groups = $("new-groups").value.split(",").map((g) => g.trim()).filter((g) => g);
    state.principals.push({ principal, groups });
    $("new-principal").value = $("new-groups").value = "";
    renderPrincipals();
  });
  $("token").value = state.token;
  $("save-token").addEventListener("click", async () => {
    state.token = $("token").value.trim();
    sessionStorage.setItem("kustodian-token", state.token);
    await loadSession();
  });
  await loadSession();
  if (autorun) await run();
});
