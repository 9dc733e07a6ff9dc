// profileledger ui: the investigator's pages. Every string from the store
// (keys, event data, metadata) is attacker-controlled: it only ever goes
// into the page as text (textContent) or as an attribute, never as HTML.
"use strict";

(function () {
  const app = document.getElementById("app");
  if (!app) return;

  // ---- helpers ----------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else e.setAttribute(k, String(v));
    }
    for (const k of kids) if (k !== undefined && k !== null) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  const q = (o) => new URLSearchParams(o).toString();
  const profileURL = (key) => "/p?" + q({ key });
  const eventURL = (key, seq, index) => "/p?" + q(index ? { key, seq, index } : { key, seq });
  const itemURL = (value, path) => "/item?" + q(path ? { value, path } : { value });
  const tradeURL = (key, trade) => "/p?" + q({ key, trade });
  const link = (href, text, cls) => el("a", { href, class: cls }, text);
  function fmtTime(s) {
    if (!s || s.startsWith("0001-")) return "-";
    const d = new Date(s);
    return d.toISOString().replace("T", " ").replace("Z", "");
  }
  function shortTime(ms) { return new Date(ms).toISOString().substring(11, 23); }
  const short = (s) => (s || "").substring(0, 8);
  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  function whoWhy(meta) {
    meta = meta || {};
    const parts = [];
    for (const k of ["actor", "reason"]) if (meta[k]) parts.push(k + "=" + meta[k]);
    for (const k of Object.keys(meta).sort()) {
      if (k === "actor" || k === "reason" || k.startsWith("pl.") || ["node", "prev", "reconcile", "trade", "with"].includes(k)) continue;
      parts.push(k + "=" + meta[k]);
    }
    return parts.join(" ") || "-";
  }
  function kindOf(e) {
    const m = e.Meta || {};
    if (e.bad) return "bad";
    if (m.trade) return "trade";
    if (e.Type === "pl.message") return "message";
    if (e.Type === "pl.rollback") return "rollback";
    if (e.Type === "session.started" || e.Type === "session.ended") return "session";
    return "mutation";
  }
  function errorBox(where, err) {
    clear(where);
    where.append(el("p", { class: "error" }, String(err.message || err)));
  }
  // A JSON value for people: strings that look like items link to their trace.
  function valueNode(raw) {
    if (raw === undefined || raw === null) return el("span", { class: "dim" }, "(absent)");
    const text = JSON.stringify(raw);
    if (typeof raw === "string") return link(itemURL(raw), text, "val");
    return el("span", { class: "val" }, text);
  }

  const page = app.dataset.page;
  if (page === "store") storePage();
  if (page === "profile") profilePage();
  if (page === "item") itemPage();

  // ---- store page ---------------------------------------------------------
  function storePage() {
    const btn = document.getElementById("run-audit");
    const status = document.getElementById("audit-status");
    const token = document.querySelector('meta[name="csrf"]').content;
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      status.textContent = "auditing…";
      try {
        const r = await fetch("/api/audit", { method: "POST", credentials: "same-origin", headers: { "X-Profileledger-CSRF": token } });
        const body = await r.json();
        if (!r.ok) throw new Error(body.error || r.statusText);
        location.reload();
      } catch (err) {
        status.textContent = "audit failed: " + err.message;
        btn.disabled = false;
      }
    });
  }

  // ---- profile page ---------------------------------------------------------
  function profilePage() {
    const key = app.dataset.key;
    const params = new URLSearchParams(location.search);
    const LIMIT = 500;
    let cur = null; // the page: {entries, prev, next}
    let selected = null; // {seq, index}
    let live = null; // EventSource
    const tl = document.getElementById("timeline");
    const tbody = document.querySelector("#events tbody");
    const slider = document.getElementById("slider");

    function setURL(extra) {
      const p = { key };
      Object.assign(p, extra);
      history.replaceState(null, "", "/p?" + q(p));
    }

    async function load(query, keepURL) {
      const u = Object.assign({ key, limit: LIMIT }, query);
      try {
        cur = await getJSON("/api/events?" + q(u));
      } catch (err) {
        errorBox(document.getElementById("event"), err);
        return;
      }
      if (!keepURL) setURL(query);
      draw();
    }

    function draw() {
      drawTimeline();
      drawTable();
      const n = cur.entries.length;
      document.getElementById("range").textContent = n
        ? "versions " + cur.entries[0].Seq + "–" + cur.entries[n - 1].Seq + " (" + n + " events on this page)"
        : "no events";
      for (const [id, ok] of [["first", cur.prev], ["prev", cur.prev], ["next", cur.next], ["last", cur.next]]) document.getElementById(id).disabled = !ok;
      markSelected();
    }

    function drawTimeline() {
      clear(tl);
      const es = cur.entries;
      const W = tl.clientWidth || 1000, L = 50, R = 20;
      const times = es.map((e) => Date.parse(e.Stored));
      const t0 = Math.min(...times), t1 = Math.max(...times);
      const span = t1 > t0 ? t1 - t0 : 1;
      const x = (t) => L + ((t - t0) / span) * (W - L - R);
      const lanes = { trade: 34, message: 52, rollback: 70, session: 88, mutation: 106, bad: 106 };
      for (const [name, y] of [["trades", 34], ["messages", 52], ["rollbacks", 70], ["sessions", 88], ["changes", 106]]) {
        tl.append(svg("text", { x: 2, y: y + 4, class: "lane" }, name));
      }
      // Sessions as coloured bands, one per run of events of a session.
      let i = 0;
      while (i < es.length) {
        let j = i;
        while (j + 1 < es.length && es[j + 1].Session === es[i].Session) j++;
        const x0 = x(times[i]), x1 = x(times[j]);
        const band = svg("rect", { x: x0 - 2, y: 22, width: Math.max(x1 - x0 + 4, 4), height: 94, rx: 3, class: "band", fill: "hsl(" + ((es[i].Epoch * 67) % 360) + ",70%,88%)" });
        band.append(svg("title", {}, "session " + es[i].Session + ", epoch " + es[i].Epoch + ": versions " + es[i].Seq + "–" + es[j].Seq));
        tl.append(band);
        if (x1 - x0 > 44) tl.append(svg("text", { x: x0, y: 18, class: "band-label" }, "epoch " + es[i].Epoch));
        i = j + 1;
      }
      es.forEach((e, k) => {
        const kind = kindOf(e), cx = x(times[k]), cy = lanes[kind];
        let m;
        if (kind === "trade") m = svg("rect", { x: cx - 5, y: cy - 5, width: 10, height: 10, transform: "rotate(45 " + cx + " " + cy + ")" });
        else if (kind === "rollback") m = svg("path", { d: "M" + cx + " " + (cy - 6) + " L" + (cx + 6) + " " + (cy + 5) + " L" + (cx - 6) + " " + (cy + 5) + " Z" });
        else if (kind === "session") m = svg("rect", { x: cx - 1.5, y: cy - 8, width: 3, height: 16 });
        else m = svg("circle", { cx, cy, r: kind === "message" ? 5 : 3.5 });
        m.setAttribute("class", "ev " + kind);
        m.setAttribute("data-seq", e.Seq);
        m.setAttribute("data-index", e.Index || 0);
        m.append(svg("title", {}, e.Seq + (e.Index ? "." + e.Index : "") + " " + (e.Type || "(not an event)") + ": " + e.how + " " + e.summary));
        m.addEventListener("click", () => select(e.Seq, e.Index || 0, true));
        tl.append(m);
      });
      // The time axis.
      tl.append(svg("line", { x1: L, x2: W - R, y1: 124, y2: 124, class: "axis" }));
      for (let k = 0; k <= 4; k++) {
        const t = t0 + (span * k) / 4, tx = x(t);
        tl.append(svg("line", { x1: tx, x2: tx, y1: 121, y2: 127, class: "axis" }));
        if (es.length) tl.append(svg("text", { x: tx, y: 141, class: "tick", "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, shortTime(t)));
      }
      tl.setAttribute("data-drawn", String(es.length));
      requestAnimationFrame(() => {
        if (!performance.getEntriesByName("timeline-painted").length) performance.mark("timeline-painted");
      });
    }

    function drawTable() {
      clear(tbody);
      for (const e of cur.entries) {
        const m = e.Meta || {};
        const seqText = e.Seq + (e.Index ? "." + e.Index : "");
        const seqLink = link(eventURL(key, e.Seq, e.Index), seqText);
        seqLink.addEventListener("click", (ev) => { ev.preventDefault(); select(e.Seq, e.Index || 0, true); });
        const what = el("td", {});
        if (m.trade) {
          what.append("trade ", link(tradeURL(m.with, m.trade), short(m.trade), "mono"), " with ", link(profileURL(m.with), m.with), ": ");
        } else if (e.Type === "pl.rollback") {
          what.append("rollback to ", link(eventURL(key, m["pl.to"]), m["pl.to"]), ": ");
        } else if (!(e.how || "").startsWith("mutation ")) {
          what.append(e.how + ": ");
        }
        what.append(e.bad ? e.bad : e.summary);
        const tr = el("tr", { class: "row " + kindOf(e), "data-seq": e.Seq, "data-index": e.Index || 0 },
          el("td", {}, seqLink), el("td", {}, fmtTime(e.Stored)), el("td", {}, e.Type || "(not an event)"),
          el("td", { class: "mono" }, short(e.Session) + "/" + e.Epoch), el("td", {}, whoWhy(m)), what);
        tbody.append(tr);
      }
    }

    function markSelected() {
      for (const n of document.querySelectorAll(".selected")) n.classList.remove("selected");
      if (!selected) return;
      for (const n of document.querySelectorAll('[data-seq="' + selected.seq + '"][data-index="' + selected.index + '"]')) n.classList.add("selected");
    }

    async function select(seq, index, updateURL) {
      selected = { seq: Number(seq), index: Number(index) };
      markSelected();
      if (updateURL) setURL(index ? { seq, index } : { seq });
      const box = document.getElementById("event");
      clear(box);
      box.append(el("p", { class: "dim" }, "loading event " + seq + "…"));
      let d;
      try {
        d = await getJSON("/api/event?" + q({ key, seq, index }));
      } catch (err) {
        errorBox(box, err);
        return;
      }
      renderEvent(box, d);
      slider.value = d.Seq;
      showState(String(d.Seq));
    }

    function renderEvent(box, d) {
      clear(box);
      const m = d.Meta || {};
      box.append(el("h2", {}, "Event " + d.Seq + (d.Index ? "." + d.Index : "") + " ", el("span", { class: "mono" }, d.Type || "(not an event)")));
      if (d.skipped) box.append(el("p", { class: "error" }, "not folded: " + d.skipped));
      if (d.suspect) box.append(el("p", { class: "warn" }, "suspect: " + d.suspect));
      const rows = [
        ["how", d.how], ["who", m.actor || "-"], ["why", m.reason || "-"], ["id", d.ID], ["session", d.Session + " (epoch " + d.Epoch + ")"],
        ["stored", fmtTime(d.Stored)], ["writer's clock", fmtTime(d.Time)],
      ];
      const t = el("table", { class: "kv", id: "event-fields" });
      for (const [k, v] of rows) t.append(el("tr", {}, el("th", {}, k), el("td", {}, v)));
      for (const k of Object.keys(m).sort()) {
        let v = m[k];
        if (k === "with") v = link(profileURL(m[k]), m[k]);
        else if (k === "trade" && m.with) v = el("span", {}, m[k] + " ", link(tradeURL(m.with, m[k]), "other side"));
        else if (k === "pl.to") v = link(eventURL(app.dataset.key, m[k]), m[k]);
        t.append(el("tr", {}, el("th", {}, "meta " + k), el("td", {}, v)));
      }
      box.append(t);
      box.append(el("h3", {}, "Ops"));
      const ops = el("ul", { class: "ops" });
      for (const o of d.Ops || []) {
        ops.append(el("li", {}, el("b", {}, o.op), " ", el("span", { class: "mono" }, o.path || "/"), o.from ? " from " + o.from : "", " ", o.value !== undefined ? valueNode(o.value) : ""));
      }
      if (!(d.Ops || []).length) ops.append(el("li", { class: "dim" }, "none"));
      box.append(ops);
      box.append(el("h3", {}, "Changes"));
      const ch = el("table", { class: "changes" });
      for (const c of d.changes || []) {
        const b = link("#", "blame", "blame-link");
        b.addEventListener("click", (ev) => { ev.preventDefault(); blame(c.path); });
        ch.append(el("tr", {}, el("td", { class: "mono" }, c.path || "/"), el("td", { class: "del" }, valueNode(c.before)), el("td", {}, "→"), el("td", { class: "add" }, valueNode(c.after)), el("td", {}, b)));
      }
      if (!(d.changes || []).length) ch.append(el("tr", {}, el("td", { class: "dim" }, "no change to the data")));
      box.append(ch);
      box.append(el("h3", {}, "Data before → after"));
      const pre = el("pre", { class: "diff", id: "diff" });
      for (const l of d.lines || []) {
        pre.append(el("span", { class: l.op === "+" ? "add" : l.op === "-" ? "del" : "same" }, l.op + " " + l.text + "\n"));
      }
      box.append(pre);
    }

    let stateAsked = 0;
    async function showState(v) {
      const label = document.getElementById("state-label");
      const data = document.getElementById("data");
      const asked = ++stateAsked;
      try {
        const st = await getJSON("/api/state?" + q({ key, v }));
        if (asked !== stateAsked) return; // a later request is on its way
        label.textContent = "as of version " + st.version + " (" + fmtTime(st.stored) + ")";
        clear(data);
        tree(data, st.data, "", null, 0);
      } catch (err) {
        errorBox(data, err);
      }
    }

    // The data as a tree: every field a row that blames its path.
    function tree(into, v, path, name, depth) {
      const row = el("div", { class: "field", "data-path": path });
      row.style.paddingLeft = depth * 14 + "px";
      row.addEventListener("click", (ev) => { ev.stopPropagation(); blame(path); });
      if (name !== null) row.append(el("span", { class: "name" }, name + ": "));
      if (v !== null && typeof v === "object") {
        const isArr = Array.isArray(v);
        row.append(el("span", { class: "dim" }, isArr ? "[" + v.length + "]" : "{" + Object.keys(v).length + "}"));
        into.append(row);
        const entries = isArr ? v.map((x, i) => [String(i), x]) : Object.keys(v).sort().map((k) => [k, v[k]]);
        for (const [k, x] of entries) tree(into, x, path + "/" + k.replace(/~/g, "~0").replace(/\//g, "~1"), k, depth + 1);
      } else {
        row.append(valueNode(v));
        into.append(row);
      }
    }

    async function blame(path) {
      const box = document.getElementById("blame");
      clear(box);
      box.append(el("h2", {}, "Blame ", el("span", { class: "mono", id: "blame-path" }, path || "/")));
      let b;
      try {
        b = await getJSON("/api/blame?" + q({ key, path }));
      } catch (err) {
        box.append(el("p", { class: "error" }, err.message));
        return;
      }
      const t = el("table", { id: "blame-changes" }, el("tr", {}, el("th", {}, "seq"), el("th", {}, "stored"), el("th", {}, "how"), el("th", {}, "who/why"), el("th", {}, "before"), el("th", {}, "after")));
      for (const c of b.changes) {
        const s = link(eventURL(key, c.seq, c.index), c.seq + (c.index ? "." + c.index : ""));
        s.addEventListener("click", (ev) => { ev.preventDefault(); select(c.seq, c.index || 0, true); });
        t.append(el("tr", {}, el("td", {}, s), el("td", {}, fmtTime(c.stored)), el("td", {}, c.how), el("td", {}, whoWhy(c.meta)), el("td", { class: "del" }, valueNode(c.before)), el("td", { class: "add" }, valueNode(c.after))));
      }
      box.append(el("p", { class: "dim", id: "blame-count" }, (b.changes.length + b.omitted) + " event(s) changed this path" +
        (b.omitted ? "; the newest " + b.changes.length + " are listed" : "")));
      box.append(t);
      if (b.elements && b.elements.length) {
        box.append(el("h3", {}, "Each element, and the event that put it there"));
        const u = el("ul", {});
        for (const x of b.elements) {
          u.append(el("li", {}, "[" + x.index + "] ", valueNode(x.value), " ← ", link(eventURL(key, x.seq), String(x.seq)), " " + x.how));
        }
        box.append(u);
      }
    }

    // The slider spans the whole history; the data is read once it rests.
    let slide = null;
    slider.addEventListener("input", () => {
      clearTimeout(slide);
      document.getElementById("state-label").textContent = "as of version " + slider.value + "…";
      slide = setTimeout(() => showState(slider.value), 150);
    });
    document.getElementById("first").addEventListener("click", () => load({ from: 1 }));
    document.getElementById("prev").addEventListener("click", () => cur.prev && load({ before: cur.prev }));
    document.getElementById("next").addEventListener("click", () => cur.next && load({ from: cur.next }));
    document.getElementById("last").addEventListener("click", () => load({ before: "last" }));
    document.getElementById("live").addEventListener("change", (ev) => {
      if (!ev.target.checked) {
        if (live) live.close();
        live = null;
        return;
      }
      const last = cur && cur.entries.length ? cur.entries[cur.entries.length - 1].Seq : 0;
      live = new EventSource("/api/live?" + q({ key, from: last + 1 }));
      live.addEventListener("entry", (m) => {
        const e = JSON.parse(m.data);
        if (cur.next) return; // not on the last page: the newest are on later pages
        if (cur.entries.some((x) => x.Seq === e.Seq && (x.Index || 0) === (e.Index || 0))) return;
        cur.entries.push(e);
        if (cur.entries.length > 2 * LIMIT) {
          cur.entries.splice(0, cur.entries.length - LIMIT);
          cur.prev = cur.entries[0].Seq;
        }
        draw();
      });
    });

    // The page's stable URL says what to show: an event, a page, or the last page.
    const seq = params.get("seq");
    if (seq) {
      load({ from: seq }, true).then(() => select(seq, params.get("index") || 0, false));
    } else if (params.get("from")) {
      load({ from: params.get("from") }, true);
    } else if (params.get("before")) {
      load({ before: params.get("before") }, true);
    } else {
      load({ before: "last" }, true).then(() => cur && cur.entries.length && showState(String(cur.entries[cur.entries.length - 1].Seq)));
    }
  }

  // ---- item page -----------------------------------------------------------
  async function itemPage() {
    const value = app.dataset.value, path = app.dataset.path;
    const verdict = document.getElementById("verdict");
    let t;
    try {
      t = await getJSON("/api/trace?" + q(path ? { value, path } : { value }));
    } catch (err) {
      errorBox(verdict, err);
      return;
    }
    clear(verdict);
    verdict.className = t.dupe ? "bad" : "ok";
    verdict.append(
      (t.dupe ? "DUPE: " : "") + "live " + t.live + " time(s); " + t.holders.length + " profile(s) hold or held it. ",
    );
    drawGraph(t);
    const tbody = document.querySelector("#moves tbody");
    t.timeline.forEach((m, i) => {
      const ev = link(eventURL(m.key, m.seq, m.index), m.seq + (m.index ? "." + m.index : ""));
      const how = el("td", {});
      if (m.meta && m.meta.trade) how.append("trade ", link(tradeURL(m.key, m.meta.trade), short(m.meta.trade), "mono"), " with ", link(profileURL(m.with), m.with));
      else how.append(m.how);
      if (m.duplicated) how.append(el("div", { class: "bad" }, "DUPLICATED here: also held by " + m.duped_from.join(", ")));
      tbody.append(el("tr", { class: m.duplicated ? "dupe" : "" }, el("td", {}, String(i + 1)), el("td", {}, fmtTime(m.stored)), el("td", {}, link(profileURL(m.key), m.key)),
        el("td", {}, m.kind + " (holds " + m.count + ")"), how, el("td", {}, ev), el("td", {}, whoWhy(m.meta))));
    });
  }

  // The trace as a graph: a lane per profile (and one for the world
  // outside), an arrow per move in time order; a dupe is red.
  function drawGraph(t) {
    const g = document.getElementById("graph");
    clear(g);
    const lanes = ["(outside)"].concat(t.holders.map((h) => h.key));
    const laneW = 170, top = 70, rowH = 30;
    const X = (k) => 90 + lanes.indexOf(k) * laneW;
    const H = top + t.timeline.length * rowH + 30;
    g.setAttribute("height", H);
    g.setAttribute("width", Math.max(90 + lanes.length * laneW, 400));
    const defs = svg("defs", {});
    for (const [id, cls] of [["arrow", "arrowhead"], ["arrow-red", "arrowhead red"]]) {
      const mk = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      mk.append(svg("path", { d: "M0 0 L10 5 L0 10 z", class: cls }));
      defs.append(mk);
    }
    g.append(defs);
    lanes.forEach((k, i) => {
      const h = t.holders[i - 1];
      const live = h && h.count > 0;
      const cls = "node" + (i === 0 ? " outside" : "") + (live && t.dupe ? " red" : live ? " live" : "");
      const x = X(k);
      g.append(svg("line", { x1: x, x2: x, y1: 50, y2: H - 10, class: "lifeline" }));
      const a = i === 0 ? svg("g", {}) : svg("a", { href: profileURL(k) });
      a.append(svg("rect", { x: x - 75, y: 8, width: 150, height: 40, rx: 8, class: cls, "data-key": k }));
      a.append(svg("text", { x, y: 26, "text-anchor": "middle", class: "node-label" }, k.length > 22 ? k.substring(0, 21) + "…" : k));
      a.append(svg("text", { x, y: 41, "text-anchor": "middle", class: "node-sub" }, i === 0 ? "created, messages, gone" : live ? "holds it ×" + h.count : "gave it up"));
      g.append(a);
    });
    t.timeline.forEach((m, i) => {
      const y = top + i * rowH + 10;
      let from = "(outside)", to = m.key;
      const trade = m.meta && m.meta.trade;
      if (m.kind === "left") { from = m.key; to = trade ? null : "(outside)"; }
      else if (trade && m.with && lanes.includes(m.with)) from = m.with;
      const red = m.duplicated;
      if (to === null) {
        g.append(svg("circle", { cx: X(m.key), cy: y, r: 4, class: "dot" }));
      } else {
        g.append(svg("line", { x1: X(from), x2: X(to) + (X(to) > X(from) ? -6 : 6), y1: y, y2: y, class: "edge" + (red ? " red" : ""), "marker-end": red ? "url(#arrow-red)" : "url(#arrow)", "data-move": i + 1 }));
      }
      const label = "#" + (i + 1) + " " + (trade ? "trade" : m.how) + (red ? " — DUPLICATED" : "");
      g.append(svg("text", { x: Math.min(X(from), to ? X(to) : X(from)) + 8, y: y - 5, class: "edge-label" + (red ? " red" : "") }, label));
    });
  }
})();
