// The live view: follows the server's snapshots (Server-Sent Events, at most a few a second)
// and redraws from each one; the buttons post actions and the server's answer is announced.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k.startsWith("aria-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const fmt = (v) => (v === undefined || v === null ? "–" : String(v));

// Posts an action (`crash/2`, `cut/0/1`, `heal`) and announces the server's one-line answer.
async function act(path) {
  const out = $("#action-result");
  out.textContent = `${path.replace(/\//g, " ")}…`;
  try {
    const r = await fetch(`/action/${path}`, { method: "POST", headers: { "X-Agora-Action": "1" } });
    out.textContent = (await r.text()).trim();
    out.className = r.ok ? "" : "refused";
  } catch (e) {
    out.textContent = `${path}: ${e}`;
    out.className = "refused";
  }
}

// The table's columns, each shown only when some row has its field: `agora kv` samples its
// replicas' Raft state (commit, applied, keys, RESP), a run of any protocol its nodes'
// observations (observed, latest).
const COLUMNS = [
  { key: "role", head: "Role", cell: (r) => el("span", { class: `role role-${r.role}` }, r.role) },
  { key: "term", head: "Term", num: true },
  { key: "commit", head: "Commit", num: true },
  { key: "applied", head: "Applied", num: true },
  { key: "keys", head: "Keys", num: true },
  { key: "health", head: "Health" },
  { key: "sent_per_s", head: "Sent/s", num: true },
  { key: "delivered_per_s", head: "Received/s", num: true },
  { key: "observed", head: "Observations", num: true },
  { key: "latest", head: "Latest observation", class: "obs" },
  { key: "resp", head: "RESP" },
];

function drawHead(cols, noun, controls) {
  const heads = [el("th", { scope: "col" }, noun[0].toUpperCase() + noun.slice(1))];
  for (const c of cols) heads.push(el("th", { scope: "col" }, c.head));
  if (controls) heads.push(el("th", { scope: "col" }, "Control"));
  $("#nodes thead").replaceChildren(el("tr", {}, ...heads));
}

// The leader the snapshot names (`lead`), or else the replica that says it leads in the
// highest term.
function leadOf(s) {
  if (s.lead) return s.lead;
  let leader = null;
  for (const r of s.replicas) {
    if (r.role === "leader" && (leader === null || r.term > leader.term)) leader = r;
  }
  return { label: "Leader", id: leader ? leader.id : null, term: leader ? leader.term : null };
}

// One control of a row: a button that posts `verb/id`, keyed so that it keeps the focus
// across redraws (Crash becomes Restart under the same key).
function control(key, verb, label, noun, id, danger) {
  const b = el("button", { type: "button", class: danger ? "danger" : "", [`data-${verb}`]: id,
    "data-key": `${key}-${id}`, "aria-label": `${label} ${noun} ${id}` }, label);
  b.addEventListener("click", () => act(`${verb}/${id}`));
  return b;
}

// The rows are rebuilt from each snapshot; the control that had the focus gets it back, so
// a keyboard user stays where they were. `agora kv` crashes and restarts; the runs of any
// protocol also pause and resume (`verbs`).
function drawReplicas(s) {
  const noun = s.noun || "replica";
  const controls = s.controls !== false && !s.ended;
  const verbs = s.verbs || ["crash", "restart"];
  const rows = s.replicas;
  const cols = COLUMNS.filter((c) => rows.some((r) => r[c.key] !== undefined));
  drawHead(cols, noun, controls);
  const focused = document.activeElement && document.activeElement.dataset.key;
  const body = $("#nodes tbody");
  body.replaceChildren();
  for (const r of rows) {
    const crashed = r.role === "crashed";
    const paused = r.health === "paused";
    const cells = [el("th", { scope: "row" }, `${noun} ${r.id}`)];
    for (const c of cols) {
      const v = c.cell ? c.cell(r) : fmt(r[c.key]);
      cells.push(el("td", { class: c.num ? "num" : (c.class || "") }, v));
    }
    const buttons = [];
    if (controls) {
      if (verbs.includes("crash")) {
        buttons.push(crashed ? control("control", "restart", "Restart", noun, r.id, false)
          : control("control", "crash", "Crash", noun, r.id, true));
      }
      if (verbs.includes("pause") && !crashed) {
        buttons.push(paused ? control("pause", "resume", "Resume", noun, r.id, false)
          : control("pause", "pause", "Pause", noun, r.id, false));
      }
      cells.push(el("td", { class: "controls" }, ...buttons));
    }
    body.append(el("tr", { class: crashed ? "crashed" : "", "data-replica": r.id, "data-role": r.role,
      "data-health": r.health }, ...cells));
    for (const b of buttons) if (focused && b.dataset.key === focused) b.focus();
  }
  const lead = leadOf(s);
  $("#lead-label").textContent = lead.label;
  const l = $("#leader");
  const term = lead.term === null || lead.term === undefined ? "" : ` (term ${lead.term})`;
  l.textContent = lead.id === null ? "none" : `${noun} ${lead.id}${term}`;
  l.dataset.id = lead.id === null ? "" : String(lead.id);
}

function drawBars(list, rows) {
  const max = Math.max(1, ...rows.map((r) => r.per_s));
  list.replaceChildren(...rows.map((r) => {
    const bar = el("span", { class: "bar", "aria-hidden": "true" });
    bar.style.width = `${(100 * r.per_s) / max}%`;
    return el("li", r.attrs || {}, el("span", {}, r.label), bar, el("span", { class: "num" }, fmt(r.per_s)));
  }));
}

function drawKinds(kinds) {
  drawBars($("#kinds"), kinds.map((k) => ({ label: k.kind, per_s: k.per_s })));
}

// Messages per second on each link (from → to), the busiest first; only runs that count
// them per link (`links` in the snapshot) show the section.
function drawLinks(s) {
  const section = $("#links-section");
  section.hidden = s.links === undefined;
  if (section.hidden) return;
  // Sent counts what the sender's protocol sent on the link, received what the receiver
  // handled from it: the difference was lost on the link (a cut) or is still on its way.
  drawBars($("#links"), s.links.map((k) => {
    const received = k.received === undefined ? "" : `, ${k.received} received`;
    // Each end is read at its own moment (in another process, at its own time): only a
    // shortfall is shown.
    const lost = k.received === undefined || k.total <= k.received ? "" : `, ${k.total - k.received} not received`;
    return { label: `${k.from} → ${k.to}: ${k.total} sent${received}${lost} so far`, per_s: k.per_s,
      attrs: { "data-from": k.from, "data-to": k.to, "data-sent": k.total, "data-received": fmt(k.received) } };
  }));
  const more = s.links_active - s.links.length;
  $("#links-note").textContent = s.links_active === 0 ? "no traffic in the last sample"
    : more > 0 ? `the ${s.links.length} busiest of ${s.links_active} links` : "";
}

// The space-time diagram of the latest messages (`messages` in the snapshot, at most a
// hundred or so whatever the message rate): one horizontal line per node that sent or
// received one of them, time from left to right, an arrow from each send to its receipt.
// Every arrow has its kind, ends and times as a tooltip; the caption says what is drawn.
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawMessages(s) {
  const section = $("#messages-section");
  section.hidden = !Array.isArray(s.messages);
  if (section.hidden) return;
  const msgs = s.messages;
  const plot = $("#spacetime");
  plot.setAttribute("data-t", String(s.t_ms));
  if (msgs.length === 0) {
    plot.replaceChildren();
    plot.setAttribute("height", "0");
    $("#messages-summary").textContent = "No message paired in the last sample.";
    $("#messages-note").textContent = "";
    return;
  }
  const ids = [...new Set(msgs.flatMap((m) => [m.from, m.to]))].sort((a, b) => a - b);
  const row = new Map(ids.map((id, i) => [id, i]));
  const t0 = Math.min(...msgs.map((m) => m.sent_ms));
  const t1 = Math.max(...msgs.map((m) => m.received_ms));
  const width = 900, left = 80, right = 10, gap = 22, top = 16;
  const height = top + gap * ids.length;
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 0.001)) * (width - left - right);
  const y = (id) => top + gap * row.get(id);
  plot.setAttribute("viewBox", `0 0 ${width} ${height}`);
  plot.setAttribute("height", String(Math.min(height, 2000)));
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#1f3a93" }));
  defs.append(marker);
  const parts = [defs];
  for (const id of ids) {
    parts.push(svg("line", { x1: left, x2: width - right, y1: y(id), y2: y(id), class: "st-node" }));
    parts.push(svg("text", { x: 4, y: y(id) + 4, class: "st-label" }, `${s.noun || "node"} ${id}`));
  }
  for (const m of msgs) {
    const a = svg("line", { x1: x(m.sent_ms), y1: y(m.from), x2: x(m.received_ms), y2: y(m.to),
      class: "st-msg", "marker-end": "url(#arrow)", "data-kind": m.kind, "data-from": m.from, "data-to": m.to });
    a.append(svg("title", {}, `${m.kind} ${m.from} → ${m.to}: sent ${m.sent_ms} ms, received ${m.received_ms} ms`));
    parts.push(a);
  }
  plot.replaceChildren(...parts);
  const kinds = [...new Set(msgs.map((m) => m.kind))].join(", ");
  $("#messages-summary").textContent = `The ${msgs.length} latest messages paired (${kinds}) between ${ids.length} ` +
    `nodes, from ${(t0 / 1000).toFixed(3)} s to ${(t1 / 1000).toFixed(3)} s: each node a line, each message an arrow from its send to its receipt.`;
  $("#messages-note").textContent = "A sample: each node keeps its latest messages sent and received; the view pairs them.";
}

// A table of the system's view: `{ columns, rows }`, numbers right-aligned.
function drawTable(table, t) {
  table.querySelector("thead").replaceChildren(el("tr", {}, ...t.columns.map((c) => el("th", { scope: "col" }, c))));
  table.querySelector("tbody").replaceChildren(...t.rows.map((row) =>
    el("tr", {}, ...row.map((v) => el("td", { class: typeof v === "number" ? "num" : "" }, fmt(v))))));
}

// The system's own view, as a table the command fills in (the election's ballots per
// state, the market's trades), with more tables after it (`more`: the market's prices and
// accounts) and, for the election, the tile map (`tiles`).
function drawSystem(view) {
  const section = $("#system-section");
  section.hidden = !view;
  if (!view) return;
  $("#system-title").textContent = view.title;
  $("#system-note").textContent = view.note || "";
  drawTable($("#system"), view);
  drawTiles(view);
  $("#system-more").replaceChildren(...(view.more || []).flatMap((t) => {
    const table = el("table", { "data-table": t.id, "aria-labelledby": `more-${t.id}` }, el("thead"), el("tbody"));
    drawTable(table, t);
    return [el("h3", { id: `more-${t.id}` }, t.title), el("p", { class: "note" }, t.note || ""), table];
  }));
}

// Light tints, dark text on each (contrast above 7:1); an option is also named on its tiles.
const PALETTE = ["#9ecae1", "#fdae6b", "#a1d99b", "#fcbba1", "#bcbddc", "#fdd0a2", "#c7e9c0", "#d4b9da"];

// The election's tile map: a square per state at its place on the grid, filled from the
// bottom as its ballots are counted (the share of its voters on the roll), in the colour of
// the option leading there, with the state's code, the leading option's name and share, and
// the ballots counted written out (a tie at the top says "tied").
function drawTiles(view) {
  const wrap = $("#tiles-wrap");
  wrap.hidden = !view.tiles;
  if (!view.tiles) return;
  const options = view.options || [];
  const leads = options.map((_, o) => view.tiles.filter((t) => t.leader === o).length);
  $("#legend").replaceChildren(...options.map((name, o) => {
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.background = PALETTE[o % PALETTE.length];
    return el("li", {}, swatch, `${name}: leads in ${leads[o]} ${leads[o] === 1 ? "state" : "states"}`);
  }));
  $("#tiles").replaceChildren(...view.tiles.map((t) => {
    const lead = t.leader === null ? (t.counted ? "tied" : "") : options[t.leader];
    const filled = t.roll > 0 ? Math.min(100, (100 * t.counted) / t.roll) : 0;
    const fill = el("span", { class: "fill", "aria-hidden": "true" });
    fill.style.height = `${filled}%`;
    fill.style.background = t.leader === null ? "#d9d9d9" : PALETTE[t.leader % PALETTE.length];
    const said = t.counted === 0 ? `${t.name}: no ballot counted yet (${t.roll} on the roll)`
      : `${t.name}: ${t.leader === null ? "tied" : `${lead} leads`} with ${t.share}% of ${t.counted} ballots counted (${t.roll} on the roll)`;
    const tile = el("li", { class: "tile", "data-state": t.code, "data-leader": lead, "data-counted": t.counted,
      "data-share": t.share, "aria-label": said, title: said },
      fill, el("strong", {}, t.code), el("span", { class: "lead" }, lead || "–"),
      el("span", {}, t.counted ? `${t.share}%` : ""), el("span", {}, `${t.counted}/${t.roll}`));
    tile.style.gridColumn = String(t.col + 1);
    tile.style.gridRow = String(t.row + 1);
    return tile;
  }));
}

// The checker's verdicts, once the run has ended: every property judged (ok or violated,
// with the command that reproduces the run) and every one not judged, with why.
function drawVerdicts(s) {
  const section = $("#checker-section");
  section.hidden = !("verdicts" in s);
  if (section.hidden) return;
  const v = s.verdicts;
  const status = $("#checker-status");
  const list = $("#verdicts");
  if (!v) {
    status.textContent = "The checker judges the run when it ends.";
    list.replaceChildren();
    return;
  }
  const broken = v.properties.filter((p) => p.verdict === "violated").length;
  const judged = v.properties.filter((p) => p.verdict !== "not judged").length;
  const verdict = judged === 0
    ? "nothing judged here"
    : broken === 0 ? "no property violated" : `${broken} ${broken === 1 ? "property" : "properties"} violated`;
  status.textContent = v.so_far
    ? `So far, on the history the nodes' logs hold (judged ${v.judged_at}): ${verdict}.`
    : `Run ended (${v.end}): ${verdict}.`;
  status.className = broken ? "violated" : "";
  list.replaceChildren(...v.properties.map((p) => {
    const parts = [el("strong", {}, p.property), `: ${p.verdict}`];
    if (p.verdict === "violated") {
      const where = p.node === null || p.node === undefined ? "" : ` at node ${p.node}`;
      const when = typeof p.at_ms === "number" ? `, ${p.at_ms.toFixed(1)} ms` : "";
      parts.push(`${where}${when}: ${p.detail}`);
      parts.push(el("br"), "Reproduce: ", el("code", {}, p.reproduce));
    } else if (p.detail) {
      parts.push(` (${p.detail})`);
    }
    const cls = `verdict verdict-${p.verdict.replace(" ", "-")}`;
    return el("li", { class: cls, "data-property": p.property, "data-verdict": p.verdict }, ...parts);
  }));
  $("#reproduce").textContent = v.reproduce;
}

// The link controls (cut one way, partition, heal, let a held run end), for the runs that
// take them. The node pickers are rebuilt only when the number of nodes changes, so a choice
// in progress is kept.
function drawFaults(s) {
  const section = $("#faults-section");
  const verbs = s.verbs || [];
  const links = verbs.includes("cut");
  section.hidden = !(links || s.held || s.unavailable) || s.ended;
  if (section.hidden) return;
  // Controls a cluster cannot take are not shown; the page says why instead.
  $("#unavailable").textContent = s.unavailable || "";
  for (const id of ["#cut-form", "#partition-form", "#heal", "#cuts"]) $(id).hidden = !links;
  $("#release").hidden = !s.held;
  if (!links) return;
  const n = s.replicas.length;
  for (const id of ["#cut-from", "#cut-to"]) {
    const select = $(id);
    if (select.options.length !== n) {
      const keep = select.value;
      select.replaceChildren(...s.replicas.map((r) => el("option", { value: String(r.id) }, `${s.noun} ${r.id}`)));
      if (keep) select.value = keep;
      if (id === "#cut-to" && !keep && n > 1) select.value = "1";
    }
  }
  const cuts = s.cuts || [];
  const more = (s.cuts_total || 0) - cuts.length;
  $("#cuts").textContent = cuts.length === 0 ? "No link is cut."
    : `Cut: ${cuts.map(([a, b]) => `${a} → ${b}`).join(", ")}${more > 0 ? ` and ${more} more` : ""}.`;
  $("#heal").disabled = cuts.length === 0;
}

function setupFaults() {
  $("#cut-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(`cut/${$("#cut-from").value}/${$("#cut-to").value}`);
  });
  $("#partition-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const side = $("#partition-side").value.split(/[\s,]+/).filter((x) => x !== "").join(",");
    act(`partition/${side}`);
  });
  $("#heal").addEventListener("click", () => act("heal"));
  $("#release").addEventListener("click", () => act("release"));
}

function drawTimeline(events) {
  const items = events.slice().reverse().map((e) =>
    el("li", { class: `ev-${e.kind}` }, el("span", { class: "t" }, `${(e.t_ms / 1000).toFixed(1)} s`), e.text));
  $("#timeline").replaceChildren(...items);
}

function connect() {
  const status = $("#connection");
  const source = new EventSource("/events");
  source.onopen = () => { status.textContent = "live"; status.className = ""; };
  source.onerror = () => { status.textContent = "disconnected: retrying"; status.className = "down"; };
  source.onmessage = (m) => {
    const s = JSON.parse(m.data);
    const when = `${(s.t_ms / 1000).toFixed(1)} s since start`;
    status.textContent = s.ended ? `the run has ended, ${when}` : `live: sampled every ${s.sample_ms} ms, ${when}`;
    if (s.title) $("#nodes-title").textContent = s.title;
    drawReplicas(s);
    drawKinds(s.kinds);
    drawLinks(s);
    drawMessages(s);
    drawFaults(s);
    drawSystem(s.system);
    drawTimeline(s.events);
    $("#dropped").textContent = s.obs_dropped ? `${s.obs_dropped} observations not shown: the queue to the view was full` : "";
    drawVerdicts(s);
  };
}

setupFaults();
connect();
