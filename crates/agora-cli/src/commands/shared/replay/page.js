// The replay page: the run's recorded events (the JSON in #run-data) replayed up to the
// position the slider chooses. Position k means "the first k events have happened"; its time
// is the k-th event's. Each node's state is recomputed from the start (a run has at most a
// few thousand events); the diagram's marks after that time are faded and a cursor stands at it.
"use strict";

const run = JSON.parse(document.getElementById("run-data").textContent);
// [type, t_ns, ...], in the order they happened (times never decrease):
//   ["send", t, id, from, to, kind]  ["deliver", t, id]  ["drop", t, id]
//   ["life", t, node, crashed|restarted|paused|resumed|wiped]  ["observe", t, node, text]
//   ["cut", t, id, label, healed]
const events = run.events;
const slider = document.getElementById("slider");
const svg = document.querySelector("#diagram svg");
const geom = {
  left: Number(svg.dataset.left), width: Number(svg.dataset.width), end: Number(svg.dataset.endNs),
  top: Number(svg.dataset.top), bottom: Number(svg.dataset.bottom),
};
let pos = 0;

const ms = (t) => `${(t / 1e6).toFixed(3)} ms`;
const timeAt = (k) => (k === 0 ? 0 : events[k - 1][1]);
// An observation's kind: the name its Debug text starts with (`Leader { .. }` is a Leader).
const kindOf = (text) => (text.match(/^[A-Za-z_]\w*/) || [text])[0];

function make(tag, props, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children || []) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// Everything known after the first k events.
function stateAt(k) {
  const nodes = [];
  for (let i = 0; i < run.nodes; i++) {
    nodes.push({ state: "up", restarts: 0, wiped: false, sent: 0, received: 0, lost: 0, obs: new Map(), seen: 0 });
  }
  const sends = new Map();
  const cuts = new Map();
  let inFlight = 0;
  for (let i = 0; i < k; i++) {
    const e = events[i];
    if (e[0] === "send") {
      sends.set(e[2], e);
      nodes[e[3]].sent++;
      inFlight++;
    } else if (e[0] === "deliver" || e[0] === "drop") {
      const s = sends.get(e[2]);
      if (s) {
        if (e[0] === "deliver") nodes[s[4]].received++;
        else nodes[s[3]].lost++;
      }
      inFlight--;
    } else if (e[0] === "life") {
      const n = nodes[e[2]];
      if (e[3] === "crashed" || e[3] === "paused") n.state = e[3];
      else if (e[3] === "wiped") n.wiped = true;
      else n.state = "up";
      if (e[3] === "restarted") n.restarts++;
    } else if (e[0] === "observe") {
      const n = nodes[e[2]];
      const kind = kindOf(e[3]);
      n.obs.delete(kind);
      n.obs.set(kind, { t: e[1], text: e[3] });
      n.seen++;
    } else if (e[0] === "cut") {
      if (e[4]) cuts.delete(e[2]);
      else cuts.set(e[2], e[3]);
    }
  }
  return { nodes, cuts, inFlight };
}

function describe(e) {
  switch (e[0]) {
    case "send": return `node ${e[3]} sent ${e[5]} #${e[2]} to node ${e[4]}`;
    case "deliver": return `message #${e[2]} arrived`;
    case "drop": return `message #${e[2]} was lost`;
    case "life": return e[3] === "wiped" ? `node ${e[2]} lost its storage` : `node ${e[2]} ${e[3]}`;
    case "observe": return `node ${e[2]} observed ${e[3]}`;
    case "cut": return `${e[3]} ${e[4] ? "healed" : "began"}`;
    default: return e[0];
  }
}

function drawNodes(state) {
  const rows = state.nodes.map((n, i) => {
    const notes = [];
    if (n.restarts) notes.push(`restarted ${n.restarts}×`);
    if (n.wiped) notes.push("storage lost");
    const latest = [...n.obs.entries()].reverse().slice(0, 8).map(([kind, o]) =>
      make("li", { "data-kind": kind }, [make("span", { class: "t" }, [ms(o.t)]), o.text]));
    const obs = latest.length
      ? [make("ul", { class: "obs", "aria-label": `${n.seen} observations so far` }, latest)]
      : [make("span", { class: "note" }, ["none yet"])];
    return make("tr", { "data-node": i, "data-state": n.state }, [
      make("th", { scope: "row" }, [`node ${i}`]),
      make("td", {}, [make("span", { class: `state state-${n.state}` }, [n.state]),
        notes.length ? make("span", { class: "note" }, [` ${notes.join(", ")}`]) : ""]),
      make("td", { class: "num" }, [n.sent]),
      make("td", { class: "num" }, [n.received]),
      make("td", { class: "num" }, [n.lost]),
      make("td", {}, obs),
    ]);
  });
  document.querySelector("#nodes tbody").replaceChildren(...rows);
  const cuts = [...state.cuts.values()];
  document.getElementById("network").textContent =
    `Network: ${cuts.length ? `${cuts.join("; ")} in force` : "no partition"}; ` +
    `${state.inFlight} message${state.inFlight === 1 ? "" : "s"} in flight.`;
}

function drawVerdicts(t) {
  const s = run.summary;
  const items = [];
  const broken = new Set();
  for (const v of s.violations) {
    broken.add(v.property);
    const at = Math.round(v.at_ms * 1e6);
    const where = v.node === null ? "" : ` on node ${v.node}`;
    const seen = t >= at;
    items.push(make("li", { "data-property": v.property, "data-verdict": seen ? "violated" : "pending" }, [
      make("span", { class: `verdict ${seen ? "v-violated" : "v-pending"}` },
        [seen ? `${v.property}: violated` : `${v.property}: not yet violated`]),
      seen ? ` at ${v.at_ms.toFixed(3)} ms${where}: ${v.detail}. Reproduce: `
        : ` (it is at ${v.at_ms.toFixed(3)} ms${where}). Reproduce: `,
      make("code", {}, [v.reproduce]),
    ]));
  }
  for (const p of s.properties.filter((p) => !broken.has(p))) {
    items.push(make("li", { "data-property": p, "data-verdict": "holds" }, [
      make("span", { class: "verdict v-holds" }, [`${p}: holds`]), " over the whole run"]));
  }
  for (const nj of s.not_judged) {
    items.push(make("li", { "data-property": nj.property, "data-verdict": "not-judged" }, [
      make("span", { class: "verdict v-unjudged" }, [`${nj.property}: not judged`]), ` (${nj.reason})`]));
  }
  for (const why of s.outside_model || []) {
    items.push(make("li", {}, [`Outside the protocol's fault model: ${why}`]));
  }
  document.getElementById("verdicts").replaceChildren(...items);
}

// The diagram's marks by time; those before `shown` are at or before the cursor.
const marks = [...svg.querySelectorAll("[data-t]")].map((e) => [Number(e.dataset.t), e]).sort((a, b) => a[0] - b[0]);
let shown = marks.length;
const cursor = document.createElementNS(svg.namespaceURI, "line");
cursor.setAttribute("stroke", "#0b57d0");
cursor.setAttribute("stroke-width", "2");
cursor.setAttribute("y1", geom.top);
cursor.setAttribute("y2", geom.bottom);
cursor.setAttribute("aria-hidden", "true");
svg.append(cursor);

// `t` below 0: before the first event, everything faded.
function drawCursor(t) {
  while (shown > 0 && marks[shown - 1][0] > t) marks[--shown][1].classList.add("future");
  while (shown < marks.length && marks[shown][0] <= t) marks[shown++][1].classList.remove("future");
  const x = geom.left + (Math.max(0, t) / geom.end) * geom.width;
  cursor.setAttribute("x1", x);
  cursor.setAttribute("x2", x);
}

function setPos(k) {
  pos = Math.max(0, Math.min(events.length, k));
  const t = timeAt(pos);
  slider.value = String(pos);
  const where = pos === 0 ? "start of the run, no event yet"
    : `event ${pos} of ${events.length}, ${ms(t)}: ${describe(events[pos - 1])}`;
  slider.setAttribute("aria-valuetext", where);
  document.getElementById("now").textContent = where;
  drawNodes(stateAt(pos));
  drawVerdicts(t);
  drawCursor(pos === 0 ? -1 : t);
}

// Play: the whole run in about ten seconds, from where the slider is.
let playing = null;
const playButton = document.getElementById("play");
function stop() {
  if (playing !== null) cancelAnimationFrame(playing);
  playing = null;
  playButton.textContent = "Play";
  playButton.setAttribute("aria-pressed", "false");
}
function play() {
  if (playing !== null) return stop();
  if (pos === events.length) setPos(0);
  playButton.textContent = "Pause";
  playButton.setAttribute("aria-pressed", "true");
  const speed = Math.max(1, timeAt(events.length)) / 10000;
  let t = timeAt(pos);
  let last = performance.now();
  const frame = (now) => {
    t += (now - last) * speed;
    last = now;
    let k = pos;
    while (k < events.length && events[k][1] <= t) k++;
    setPos(k);
    if (k >= events.length) stop();
    else playing = requestAnimationFrame(frame);
  };
  playing = requestAnimationFrame(frame);
}

slider.max = String(events.length);
slider.addEventListener("input", () => { stop(); setPos(Number(slider.value)); });
document.getElementById("back").addEventListener("click", () => { stop(); setPos(pos - 1); });
document.getElementById("forward").addEventListener("click", () => { stop(); setPos(pos + 1); });
playButton.addEventListener("click", play);
// The arrows, Home and End anywhere on the page (the slider, when focused, has them already).
document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (document.activeElement && document.activeElement.matches("input, textarea, select")) return;
  const to = { ArrowLeft: pos - 1, ArrowRight: pos + 1, Home: 0, End: events.length }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  stop();
  setPos(to);
});
// A click on the diagram: the position after every event up to that time.
svg.addEventListener("click", (e) => {
  const p = svg.createSVGPoint();
  p.x = e.clientX;
  p.y = e.clientY;
  const x = p.matrixTransform(svg.getScreenCTM().inverse()).x;
  const t = ((x - geom.left) / geom.width) * geom.end;
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid][1] <= t) lo = mid + 1;
    else hi = mid;
  }
  stop();
  setPos(lo);
});

const s = run.summary;
document.getElementById("reproduce").textContent = run.reproduce;
document.getElementById("totals").textContent =
  `${s.protocol}, ${s.nodes} nodes, seed ${s.seed}: the run ended (${s.end}) at ${s.virtual_time_ms.toFixed(3)} ms; ` +
  `${s.messages_sent} messages sent, ${s.messages_delivered} delivered, ${s.messages_dropped} lost; ` +
  `${events.length} events recorded.`;
setPos(0);
