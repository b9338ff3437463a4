// The review page. Every change goes through the same REST API a script would use; every
// value from the server is put on the page as text (textContent), never parsed as HTML.
"use strict";

const PAGE = 100;
const state = {
  token: sessionStorage.getItem("osed-token") || "",
  role: "viewer",
  building: "",
  offset: 0,
  total: 0,
  rows: new Map(),      // IRI -> row as shown
  selected: new Set(),
  correcting: null,     // rows being corrected
  chosenClass: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function say(text, error = false) {
  const box = $("message");
  box.textContent = text;
  box.className = error ? "error" : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = {};
  if (state.token) headers["Authorization"] = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_e) { data = { detail: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const b = () => encodeURIComponent(state.building);

// -- who am I -------------------------------------------------------------------------
async function refreshIdentity() {
  try {
    const me = await api("/auth/me");
    state.role = me.role;
    $("whoami").textContent = `${me.user} (${me.role})`;
  } catch (e) {
    state.role = "";
    $("whoami").textContent = "not signed in";
  }
  const signedIn = Boolean(state.token);
  $("signin").hidden = signedIn;
  $("signout").hidden = !signedIn;
  document.body.dataset.role = state.role;
  document.body.classList.toggle("readonly", !["reviewer", "operator", "admin"].includes(state.role));
}

async function signIn(event) {
  event.preventDefault();
  try {
    const out = await api("/auth/login", { method: "POST", body: { username: $("username").value, password: $("password").value } });
    state.token = out.token;
    sessionStorage.setItem("osed-token", out.token);
    $("password").value = "";
    say(`signed in as ${out.user} (${out.role})`);
    await start();
  } catch (e) { say(`sign-in failed: ${e.message}`, true); }
}

async function signOut() {
  try { await api("/auth/logout", { method: "POST" }); } catch (_e) { /* already gone */ }
  state.token = "";
  sessionStorage.removeItem("osed-token");
  await start();
}

// -- buildings and summary --------------------------------------------------------------
async function loadBuildings() {
  const select = $("building");
  select.replaceChildren();
  let buildings = [];
  try { buildings = await api("/buildings"); } catch (e) { say(e.message, true); return; }
  for (const bld of buildings) {
    const option = el("option", `${bld.label} (${bld.points})`);
    option.value = bld.id;
    select.append(option);
  }
  const wanted = new URLSearchParams(location.search).get("building");
  state.building = buildings.some((x) => x.id === wanted) ? wanted : (buildings[0] ? buildings[0].id : "");
  select.value = state.building;
}

async function loadSummary() {
  const s = await api(`/buildings/${b()}/summary`);
  $("s-total").textContent = s.total;
  $("s-decided").textContent = `${s.decided} (${s.by_status.confirmed || 0} confirmed, ${s.by_status.corrected || 0} corrected, ${s.by_status.rejected || 0} rejected)`;
  $("s-threshold").textContent = s.threshold;
  $("s-above").textContent = s.above_threshold;
  $("s-abstained").textContent = s.by_status.abstained || 0;
  $("s-accuracy").textContent = `${(100 * s.estimated_accuracy).toFixed(1)} %`;
}

// -- the table ------------------------------------------------------------------------
function filterParams() {
  const p = new URLSearchParams();
  const add = (key, value) => { if (value !== "" && value !== null && value !== undefined) p.set(key, value); };
  add("q", $("f-q").value.trim());
  add("status", $("f-status").value);
  add("brick_class", $("f-class").value.trim());
  add("equipment", $("f-equipment").value.trim());
  add("min_confidence", $("f-min").value);
  add("max_confidence", $("f-max").value);
  add("point", state.pointFilter || "");
  return p;
}

function filterBody() {
  const f = {};
  for (const [k, v] of filterParams()) f[k] = ["min_confidence", "max_confidence"].includes(k) ? Number(v) : v;
  return f;
}

async function loadPoints() {
  const p = filterParams();
  p.set("offset", state.offset);
  p.set("limit", PAGE);
  p.set("sort", $("f-sort").value);
  p.set("order", $("f-order").value);
  const page = await api(`/buildings/${b()}/points?${p}`);
  const lastPage = page.total ? Math.floor((page.total - 1) / PAGE) * PAGE : 0;
  if (!page.items.length && state.offset > lastPage) {
    // Fewer points match than before (decided away from a filter): show the last page.
    state.offset = lastPage;
    return loadPoints();
  }
  state.total = page.total;
  state.rows = new Map(page.items.map((r) => [r.iri, r]));
  const body = $("points").tBodies[0];
  body.replaceChildren(...page.items.map(renderRow));
  // The range says which rows are on the page, as counted, not as expected.
  const last = state.offset + page.items.length;
  $("page-info").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "no points match";
  $("prev").disabled = state.offset === 0;
  $("next").disabled = last >= page.total;
  $("select-all").checked = false;
  updateSelected();
  document.body.dataset.loaded = String(performance.now());
}

function renderRow(r) {
  const tr = el("tr");
  tr.dataset.iri = r.iri;
  const pick = el("input");
  pick.type = "checkbox";
  pick.className = "pick";
  pick.checked = state.selected.has(r.iri);
  pick.addEventListener("change", () => { pick.checked ? state.selected.add(r.iri) : state.selected.delete(r.iri); updateSelected(); });
  const conf = el("td");
  if (r.confidence !== null && r.confidence !== undefined) {
    const bar = el("span", null, "bar");
    const fill = el("span");
    fill.style.width = `${Math.round(100 * r.confidence)}%`;
    bar.append(fill);
    conf.append(bar, el("span", r.confidence.toFixed(2), "conf"));
  }
  const cells = [
    wrap(pick),
    el("td", r.name, "name"),
    el("td", r.description || ""),
    el("td", r.unit || ""),
    el("td", r.brick_class || "", "class"),
    conf,
    el("td", r.reason || "", "reason"),
    el("td", (r.alternatives || []).join(" | "), "alternatives"),
    el("td", r.equipment || ""),
    wrap(el("span", r.status, `status ${r.status}`)),
  ];
  cells[9].className = "status-cell";
  const actions = el("td", null, "actions");
  const button = (label, cls, fn, writer = true) => {
    const btn = el("button", label, `${cls}${writer ? " writer" : ""}`);
    btn.type = "button";
    btn.addEventListener("click", fn);
    actions.append(btn);
  };
  if (r.brick_class && !["confirmed", "corrected"].includes(r.status)) button("Confirm", "confirm", () => decide([r], "confirm"));
  button("Correct", "correct", () => openCorrect([r]));
  if (r.status !== "rejected") button("Reject", "reject", () => decide([r], "reject"));
  button("Similar", "similar", () => openSimilar(r));
  button("History", "history", () => showHistory(r), false);
  tr.append(...cells, actions);
  return tr;
}

function wrap(child) { const td = el("td"); td.append(child); return td; }

function updateSelected() {
  $("selected-count").textContent = `${state.selected.size} selected`;
}

// -- decisions ------------------------------------------------------------------------
function decisionFor(row, action, brickClass) {
  // What the reviewer saw: if the point changed meanwhile, the server refuses (409).
  return { point: row.iri, action, brick_class: brickClass || null, expected_status: row.status, expected_class: row.brick_class || "" };
}

async function decide(rows, action, brickClass) {
  await send(rows.map((r) => decisionFor(r, action, brickClass)), action);
}

async function send(decisions, label) {
  try {
    const out = await api(`/buildings/${b()}/decisions`, { method: "POST", body: { decisions } });
    for (const d of decisions) state.selected.delete(d.point);
    say(`${label}: ${out.decided} point(s); the agent relabeled ${out.relabeled} other point(s)`);
    await refreshAll();
  } catch (e) {
    await explain(e);
  }
}

async function explain(e) {
  if (e.status === 409 && e.body && e.body.current) {
    const now = e.body.current.map((c) => `${c.name}: now ${c.brick_class || "no class"} (${c.status})`).join("; ");
    say(`Not saved — another reviewer changed these points: ${now}. The table shows their new state.`, true);
    await refreshAll();
  } else if (e.status === 401 || e.status === 403) {
    say(`Not allowed: ${e.message}`, true);
  } else {
    say(e.message, true);
  }
}

async function confirmSelected(action) {
  const rows = [...state.selected].map((iri) => state.rows.get(iri)).filter(Boolean);
  if (!rows.length) { say("select points first", true); return; }
  await decide(action === "confirm" ? rows.filter((r) => r.brick_class) : rows, action);
}

async function confirmMatching() {
  try {
    const out = await api(`/buildings/${b()}/decisions/by-filter`, { method: "POST", body: { action: "confirm", filter: filterBody() } });
    say(`confirmed ${out.decided} matching point(s); the agent relabeled ${out.relabeled} other point(s)`);
    await refreshAll();
  } catch (e) { await explain(e); }
}

async function undo() {
  try {
    const out = await api(`/buildings/${b()}/undo`, { method: "POST" });
    say(`undone: ${out.decided} decision(s)`);
    await refreshAll();
  } catch (e) { await explain(e); }
}

// -- correct with the class search ------------------------------------------------------
let searchTimer = null;
function openCorrect(rows) {
  state.correcting = rows;
  state.chosenClass = null;
  $("correct-name").textContent = rows.map((r) => r.name).join(", ");
  $("class-search").value = rows[0].brick_class ? rows[0].brick_class.replaceAll("_", " ") : "";
  $("class-chosen").textContent = "none";
  $("correct-apply").disabled = true;
  $("correct-dialog").showModal();
  searchClasses();
}

let searchSeq = 0;
async function searchClasses() {
  const q = $("class-search").value.trim();
  const seq = ++searchSeq;
  const found = await api(`/classes?q=${encodeURIComponent(q)}&limit=25`);
  if (seq !== searchSeq) return; // a newer search is on its way: keep the list it will show
  const list = $("class-results");
  list.replaceChildren(...found.map((c) => {
    const li = el("li");
    li.dataset.cls = c.name;
    li.append(el("b", c.name), el("small", c.definition || c.label));
    li.addEventListener("click", () => {
      state.chosenClass = c.name;
      $("class-chosen").textContent = c.name;
      $("correct-apply").disabled = false;
      for (const other of list.children) other.classList.toggle("chosen", other === li);
    });
    return li;
  }));
}

async function applyCorrect(event) {
  if (event.submitter && event.submitter.value !== "apply") return;
  if (!state.correcting || !state.chosenClass) return;
  await decide(state.correcting, "correct", state.chosenClass);
}

// -- apply to similar ------------------------------------------------------------------
let similarPlan = null;
async function openSimilar(row) {
  try {
    const found = await api(`/buildings/${b()}/similar?point=${encodeURIComponent(row.iri)}`);
    const action = row.brick_class ? `confirmed as ${row.brick_class}` : "rejected";
    similarPlan = { rows: found.points, action: row.brick_class ? "correct" : "reject", cls: row.brick_class };
    $("similar-signature").textContent = found.signature || row.name;
    $("similar-count").textContent = found.points.length;
    $("similar-action").textContent = action;
    $("similar-list").replaceChildren(...found.points.map((p) => el("li", `${p.name} — now ${p.brick_class || "no class"} (${p.status})`)));
    $("similar-dialog").showModal();
  } catch (e) { say(e.message, true); }
}

async function applySimilar(event) {
  if (event.submitter && event.submitter.value !== "apply") return;
  if (!similarPlan) return;
  // The class the reviewer sees on this point, for all of them: points that already have
  // it are confirmed, the others corrected to it (or all rejected).
  const { rows, cls } = similarPlan;
  const decisions = rows.map((r) => (!cls ? decisionFor(r, "reject") : r.brick_class === cls && r.status !== "rejected" ? decisionFor(r, "confirm") : decisionFor(r, "correct", cls)));
  await send(decisions, "apply to similar");
}

// -- side panels ----------------------------------------------------------------------
function pointLink(label, iri) {
  const a = el("a", label, "point-link");
  a.addEventListener("click", () => showPoint(iri));
  return a;
}

async function showPoint(iri) {
  state.pointFilter = iri;
  state.offset = 0;
  say("showing one point — Clear to see all");
  await loadPoints();
}

async function loadQueue() {
  const queue = await api(`/buildings/${b()}/review-queue?k=10`);
  $("queue").replaceChildren(...queue.map((r) => {
    const li = el("li");
    li.append(pointLink(r.name, r.iri), el("span", ` → ${r.brick_class || "?"} (${r.confidence === null ? "–" : r.confidence.toFixed(2)})`));
    return li;
  }));
}

async function loadValidation() {
  const box = $("validation");
  try {
    const v = await api(`/buildings/${b()}/validation`);
    const head = el("p", v.conforms ? `conforms: ${v.points_checked} points checked` : `${v.violations} violation(s) in ${v.points_checked} points`);
    const list = el("ul");
    for (const r of v.results.slice(0, 200)) {
      const li = el("li", null, `severity-${r.severity}`);
      li.append(el("span", `${r.severity}: ${r.message} `));
      if (r.point) li.append(pointLink(r.point.split(/[/#:]/).pop(), r.point));
      list.append(li);
    }
    box.replaceChildren(head, list);
  } catch (e) { box.replaceChildren(el("p", e.message)); }
}

async function loadEquipment() {
  const nodes = await api(`/buildings/${b()}/equipment`);
  const byIri = new Map(nodes.map((n) => [n.iri, n]));
  const children = new Map();
  const roots = [];
  for (const n of nodes) {
    const parents = n.parents.filter((p) => byIri.has(p));
    if (!parents.length) roots.push(n);
    for (const p of parents) { if (!children.has(p)) children.set(p, []); children.get(p).push(n); }
  }
  const render = (n, depth) => {
    const li = el("li");
    const details = el("details");
    const s223 = n.s223_class ? ` / s223:${n.s223_class}` : "";
    const count = n.points.length ? ` (${n.points.length} points)` : "";
    details.append(el("summary", `${n.label} · ${n.brick_class}${s223}${count}`));
    const facts = [];
    for (const p of n.parents) {
      const parent = byIri.get(p);
      if (parent) facts.push(`${n.relations[p] === "contains" ? "part of" : "fed by"} ${parent.label}`);
    }
    for (const c of n.connections || []) facts.push(c);
    if (n.inference) facts.push(`inferred: ${n.inference}${n.inferred_from ? ` (from ${n.inferred_from})` : ""}`);
    if (facts.length) details.append(el("p", facts.join(" · "), "inferred"));
    const pts = el("ul");
    for (const p of n.points) {
      const pl = el("li");
      pl.append(pointLink(p.name, p.iri), el("span", ` ${p.brick_class || ""} · ${p.status}`));
      pts.append(pl);
    }
    details.append(pts);
    if (depth < 6) {
      const sub = el("ul");
      for (const c of children.get(n.iri) || []) sub.append(render(c, depth + 1));
      details.append(sub);
    }
    li.append(details);
    return li;
  };
  $("equipment").replaceChildren(...roots.map((n) => render(n, 0)));
}

async function showHistory(row) {
  const items = await api(`/buildings/${b()}/history?point=${encodeURIComponent(row.iri)}`);
  const box = $("history");
  const list = el("ol");
  for (const h of items) list.append(el("li", `${h.when} · ${h.who} · ${h.action} ${h.brick_class || ""}${h.previous_class ? ` (was ${h.previous_class})` : ""}`));
  box.replaceChildren(el("p", row.name, "history-name"), items.length ? list : el("p", "no decisions yet"));
  $("history-box").open = true;
}

async function download() {
  try {
    const response = await api(`/buildings/${b()}/model?format=turtle`, { raw: true });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const a = el("a");
    a.href = url;
    a.download = `${state.building}.ttl`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  } catch (e) { say(e.message, true); }
}

async function refreshAll() {
  await Promise.all([loadPoints(), loadSummary(), loadQueue()]);
  document.body.dataset.ready = String(performance.now());
  await loadPanels();
}

async function loadPanels() {
  // Validation (SHACL) takes longest: panels load when open, after the table is usable.
  const work = [];
  if ($("validation-box").open) work.push(loadValidation());
  if ($("equipment-box").open) work.push(loadEquipment());
  await Promise.all(work);
  document.body.dataset.panels = String(performance.now());
}

async function start() {
  await refreshIdentity();
  if (!state.role) {
    say("sign in to see the buildings");
    document.body.dataset.ready = String(Date.now());
    return;
  }
  await loadBuildings();
  if (!state.building) { say("no building yet: upload a point list through the API or `osed load`"); return; }
  state.offset = 0;
  await refreshAll();
}

function wire() {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("building").addEventListener("change", async () => { state.building = $("building").value; state.offset = 0; state.selected.clear(); await refreshAll(); });
  $("filters").addEventListener("submit", async (e) => { e.preventDefault(); state.pointFilter = ""; state.offset = 0; await loadPoints(); });
  $("clear-filter").addEventListener("click", async () => { $("filters").reset(); state.pointFilter = ""; state.offset = 0; await loadPoints(); });
  $("prev").addEventListener("click", async () => { state.offset = Math.max(0, state.offset - PAGE); await loadPoints(); });
  $("next").addEventListener("click", async () => { state.offset += PAGE; await loadPoints(); });
  $("select-all").addEventListener("change", () => {
    for (const box of document.querySelectorAll("#points tbody input.pick")) {
      box.checked = $("select-all").checked;
      const iri = box.closest("tr").dataset.iri;
      box.checked ? state.selected.add(iri) : state.selected.delete(iri);
    }
    updateSelected();
  });
  $("confirm-selected").addEventListener("click", () => confirmSelected("confirm"));
  $("reject-selected").addEventListener("click", () => confirmSelected("reject"));
  $("confirm-matching").addEventListener("click", confirmMatching);
  $("undo").addEventListener("click", undo);
  $("download").addEventListener("click", download);
  $("class-search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(searchClasses, 150); });
  $("correct-form").addEventListener("submit", applyCorrect);
  for (const id of ["validation-box", "equipment-box"]) {
    $(id).addEventListener("toggle", () => { if ($(id).open && state.building) loadPanels().catch((e) => say(e.message, true)); });
  }
  $("similar-dialog").querySelector("form").addEventListener("submit", applySimilar);
}

wire();
start().catch((e) => say(e.message, true));
