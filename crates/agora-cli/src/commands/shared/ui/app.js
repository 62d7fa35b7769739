// The live view: follows the server's snapshots (Server-Sent Events, at most a few a second)
// and redraws from each one; the buttons post actions and the server's answer is announced.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "aria-label") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const fmt = (v) => (v === undefined || v === null ? "–" : String(v));

async function act(verb, node) {
  const out = $("#action-result");
  out.textContent = `${verb} replica ${node}…`;
  try {
    const r = await fetch(`/action/${verb}/${node}`, { method: "POST", headers: { "X-Agora-Action": "1" } });
    out.textContent = (await r.text()).trim();
  } catch (e) {
    out.textContent = `${verb} replica ${node}: ${e}`;
  }
}

// The replicas' rows are rebuilt from each snapshot; the control of the replica that had the
// focus gets it back (Crash becomes Restart), so a keyboard user stays where they were.
function drawReplicas(replicas) {
  const focused = document.activeElement && document.activeElement.dataset.key;
  const body = $("#nodes tbody");
  body.replaceChildren();
  let leader = null;
  for (const r of replicas) {
    if (r.role === "leader" && (leader === null || r.term > leader.term)) leader = r;
    const crashed = r.role === "crashed";
    const button = crashed
      ? el("button", { type: "button", "data-restart": r.id, "data-key": `control-${r.id}`,
          "aria-label": `Restart replica ${r.id}` }, "Restart")
      : el("button", { type: "button", class: "danger", "data-crash": r.id, "data-key": `control-${r.id}`,
          "aria-label": `Crash replica ${r.id}` }, "Crash");
    button.addEventListener("click", () => act(crashed ? "restart" : "crash", r.id));
    body.append(el("tr", { class: crashed ? "crashed" : "", "data-replica": r.id, "data-role": r.role },
      el("th", { scope: "row" }, `replica ${r.id}`),
      el("td", {}, el("span", { class: `role role-${r.role}` }, r.role)),
      el("td", { class: "num" }, fmt(r.term)),
      el("td", { class: "num" }, fmt(r.commit)),
      el("td", { class: "num" }, fmt(r.applied)),
      el("td", { class: "num" }, fmt(r.keys)),
      el("td", {}, r.health),
      el("td", { class: "num" }, fmt(r.sent_per_s)),
      el("td", { class: "num" }, fmt(r.delivered_per_s)),
      el("td", {}, r.resp),
      el("td", {}, button)));
    if (focused && button.dataset.key === focused) button.focus();
  }
  const l = $("#leader");
  l.textContent = leader ? `replica ${leader.id} (term ${leader.term})` : "none";
  l.dataset.id = leader ? String(leader.id) : "";
}

function drawKinds(kinds) {
  const max = Math.max(1, ...kinds.map((k) => k.per_s));
  $("#kinds").replaceChildren(...kinds.map((k) =>
    el("li", {}, el("span", {}, k.kind),
      el("span", { class: "bar", style: "", "aria-hidden": "true" }),
      el("span", { class: "num" }, fmt(k.per_s)))));
  // Widths after creation: a style attribute per bar.
  [...$("#kinds").children].forEach((li, i) => {
    li.children[1].style.width = `${(100 * kinds[i].per_s) / max}%`;
  });
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
    status.textContent = `live: sampled every ${s.sample_ms} ms, ${(s.t_ms / 1000).toFixed(1)} s since start`;
    drawReplicas(s.replicas);
    drawKinds(s.kinds);
    drawTimeline(s.events);
  };
}

connect();
