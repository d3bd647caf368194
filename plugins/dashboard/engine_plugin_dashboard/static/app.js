// The dashboard's page: hash routes over the JSON API, live updates from the
// server-sent events of /api/stream. Every text from the engines is put in
// the page as text (never as HTML): symbols and messages come from a broker.
"use strict";

const TOKEN = document.querySelector('meta[name="engine-token"]').content;
const CHARTS = document.querySelector('meta[name="engine-charts"]').content === "true" && !!window.LightweightCharts;
const view = document.getElementById("view");

// ------------------------------------------------------------ small helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Engine-Token": TOKEN },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

const fmt = {
  num(v, digits = 2) {
    if (v === null || v === undefined || v === "") return "–";
    const n = Number(v);
    return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits }) : String(v);
  },
  // money (PnL, cash, equity): 2 decimals, 914.10 not 914.1, and never "-0.00"
  money(v) {
    if (v === null || v === undefined || v === "") return "–";
    const n = Math.round(Number(v) * 100) / 100;
    if (!Number.isFinite(n)) return String(v);
    return (n + 0).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  },
  // a price: at least 2 decimals (215.90), more when it has them (a coin at 0.00012345); the payloads
  // carry no instrument's tick size
  price(v) {
    if (v === null || v === undefined || v === "") return "–";
    const n = Number(v);
    return Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 8 }) : String(v);
  },
  // a study's cell (trials.csv text): integers as written, money at 2 decimals, other figures at 4
  figure(v, column) {
    if (v === null || v === undefined || v === "" || !/^-?[\d.]+(e[-+]?\d+)?$/i.test(String(v).trim())) return v ?? "";
    if (/^-?\d+$/.test(String(v).trim())) return String(v).trim();
    return /pnl|equity|commission/.test(column) ? fmt.money(v) : fmt.num(v, 4);
  },
  pct(v) { return v === null || v === undefined ? "–" : `${(Number(v) * 100).toFixed(2)}%`; },
  time(v) { return v ? String(v).replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "–"; },
  signed(v) {
    if (v === null || v === undefined) return "–";
    const n = Number(v);
    return el("span", { class: n > 0 ? "up" : n < 0 ? "down" : "" }, fmt.money(n));
  },
  uptime(since) {
    if (!since) return "–";
    let s = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
    const d = Math.floor(s / 86400); s %= 86400;
    const h = Math.floor(s / 3600); s %= 3600;
    const m = Math.floor(s / 60); s %= 60;
    return (d ? `${d}d ` : "") + `${h}h ${String(m).padStart(2, "0")}m ${String(s).padStart(2, "0")}s`;
  },
};

// The ids (engine:seq) of the items a list shows: the snapshot a page loads and the
// next push may both hold an event that was waiting in the server's 0.1 s batch.
function unlisted(items, ids, kept) {
  const out = [];
  for (const item of items) {
    if (item.id) {
      if (ids.has(item.id)) continue;
      ids.add(item.id);
    }
    out.push(item);
  }
  if (ids.size > 4 * kept) {  // forget the oldest: a list shows `kept` items at most
    const all = [...ids];
    ids.clear();
    for (const id of all.slice(-2 * kept)) ids.add(id);
  }
  return out;
}

function notice(text, ok) {
  const box = document.getElementById("replies");
  const item = el("div", { class: `reply ${ok ? "ok" : "bad"}` }, text,
    el("button", { class: "close", title: "dismiss", onclick: () => item.remove() }, "×"));
  box.prepend(item);
  while (box.children.length > 6) box.lastChild.remove();
}

// ------------------------------------------------------------ the live stream

const live = {
  source: null,
  query: null,
  listeners: new Set(),
  link: null,
  // One stream at a time: the whole fleet, or one symbol's (with its bars).
  // Each page loads its data when the stream opens, and again when it reopens.
  follow(engine, symbol) {
    const query = engine ? `?engine=${encodeURIComponent(engine)}&symbol=${encodeURIComponent(symbol)}` : "";
    if (this.source && this.query === query) { for (const fn of this.listeners) fn({ reopened: true }); return; }
    if (this.source) this.source.close();
    this.query = query;
    this.source = new EventSource(`/api/stream${query}`);
    this.source.onopen = () => {
      setServer(true);
      for (const fn of this.listeners) fn({ reopened: true });
    };
    this.source.onerror = () => setServer(false);
    this.source.onmessage = (msg) => {
      let changes;
      try { changes = JSON.parse(msg.data); } catch (e) { return; }
      if (changes.link) setLink(changes.link, changes.malformed, changes.problems);
      for (const fn of this.listeners) fn(changes);
    };
  },
};

function setServer(up) {
  const node = document.getElementById("server");
  node.dataset.state = up ? "up" : "down";
  node.textContent = up ? "" : "dashboard server unreachable, retrying…";
}

const LINK_TEXT = {
  connected: "live",
  connecting: "connecting…",
  reconnecting: "broker unreachable: reconnecting…",
  refused: "broker refused the login",
  journal: "journal (read-only)",
  missing: "journal missing",
  locked: "journal locked: retrying…",
  unreadable: "journal unreadable",
  none: "no live source",
};

function setLink(link, malformed, problems) {
  live.link = link;
  live.linkSeq = (live.linkSeq || 0) + 1; // a snapshot asked for before a pushed link is older than it (load)
  const node = document.getElementById("link");
  node.dataset.state = link.state;
  node.textContent = LINK_TEXT[link.state] || link.state;
  node.title = link.detail || "";
  const box = document.getElementById("problems");
  if (problems && problems.length) {
    box.hidden = false;
    box.replaceChildren(el("strong", {}, `${malformed} malformed message${malformed === 1 ? "" : "s"} ignored`),
      " — last: ", el("code", {}, problems[problems.length - 1].where), " ", problems[problems.length - 1].why);
  } else if (problems) {
    box.hidden = true;
  }
  const banner = document.getElementById("link-banner");
  if (banner) renderBanner(banner, link);
}

const BROKER_LOST = ["reconnecting", "refused"];  // link states in which the engines' statuses cannot be told

function renderBanner(node, link) {
  const quiet = ["connected", "journal"].includes(link.state);
  node.hidden = quiet;
  node.dataset.state = link.state;
  node.replaceChildren(el("strong", {}, LINK_TEXT[link.state] || link.state), link.detail ? ` — ${link.detail}` : "");
}

// ------------------------------------------------------------ charts (lightweight-charts from npm)

function chartBox(height = 320) {
  const box = el("div", { class: "chart", style: `height:${height}px` });
  if (!CHARTS) box.append(el("p", { class: "muted" }, "Charts are off: lightweight-charts is not installed (npm ci in plugins/dashboard)."));
  return box;
}

function makeChart(box, options = {}) {
  if (!CHARTS) return null;
  const LC = window.LightweightCharts;
  const chart = LC.createChart(box, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#333", fontFamily: "system-ui, sans-serif" },
    grid: { vertLines: { color: "#f0f0f0" }, horzLines: { color: "#f0f0f0" } },
    // minBarSpacing: the default (0.5 px) cannot fit a report's 2,000 points in half a page (the compare
    // view): fitContent then showed the run from about its sixth day on
    timeScale: { timeVisible: true, secondsVisible: true, minBarSpacing: 0.01 },
    ...options,
  });
  return chart;
}

function lineSeries(chart, color, title) {
  const LC = window.LightweightCharts;
  return chart.addSeries(LC.LineSeries, { color, lineWidth: 2, title, priceLineVisible: false });
}

function dedupe(points) {
  // lightweight-charts wants strictly increasing times
  const out = [];
  for (const p of points) {
    if (out.length && p.time <= out[out.length - 1].time) out[out.length - 1] = { ...p, time: out[out.length - 1].time };
    else out.push(p);
  }
  return out;
}

// ------------------------------------------------------------ control

async function control(engine, command, symbol, disabledWhy) {
  if (disabledWhy) { notice(disabledWhy, false); return; }
  const what = `${command} ${symbol || "every symbol"} on ${engine === "*" ? "every engine" : engine}`;
  if (!window.confirm(`${what[0].toUpperCase()}${what.slice(1)}?`)) return;
  try {
    const answer = await api("/api/control", { engine, command, symbol });
    for (const [name, reply] of Object.entries(answer.replies)) {
      const results = Object.entries(reply.results || {}).map(([s, r]) => `${s}: ${r}`).join("; ");
      notice(`${command} on ${name}: ${reply.ok ? "ok" : "refused"} — ${reply.ok ? results : reply.error}`, reply.ok);
    }
  } catch (err) {
    notice(`${what}: ${err.message}`, false);
  }
}

function controls(engine, symbol, disabledWhy) {
  const names = ["pause", "resume", "flatten", "reload"];
  return el("span", { class: "controls", title: disabledWhy || "" },
    names.map((name) => el("button", {
      class: `ctl ${name}`, dataset: { command: name }, disabled: !!disabledWhy,
      title: disabledWhy || `${name} ${symbol || "every symbol"}`,
      onclick: (e) => { e.stopPropagation(); control(engine, name, symbol, disabledWhy); },
    }, name)));
}

// ------------------------------------------------------------ the fleet page

const ROW_FIELDS = ["state", "position", "avg_price", "close", "unrealised", "realised", "pending", "stops", "last_bar", "feed", "paused", "halted"];

function rowKey(r) { return `${r.engine}/${r.symbol}`; }

const CURVE = { equity: "equity", pnl: "PnL seen" };
const PALETTE = ["#ff9800", "#9c27b0", "#00897b", "#3f51b5", "#795548", "#e91e63"];

function killSwitches(kills) {
  // each symbol's daily-loss and drawdown switches, as the engine's status gives them
  if (kills === null || kills === undefined) return el("div", { class: "kills muted" }, "kill switches: not published by this engine");
  const names = Object.keys(kills).sort();
  if (!names.length) return el("div", { class: "kills muted" }, "kill switches: none set ([risk] daily_loss_limit, max_drawdown)");
  return el("div", { class: "kills" }, el("b", {}, "kill switches "), ...names.map((symbol) => {
    const k = kills[symbol];
    const parts = [];
    if (k.max_drawdown !== null && k.max_drawdown !== undefined) {
      const dd = k.peak && k.last !== null ? (k.peak - k.last) / k.peak : null;
      parts.push(`drawdown ${fmt.pct(dd)} of ${fmt.pct(k.max_drawdown)}`);
    }
    if (k.daily_loss_limit !== null && k.daily_loss_limit !== undefined) {
      const loss = k.day_start !== null && k.last !== null ? k.day_start - k.last : null;
      parts.push(`today ${loss === null ? "–" : fmt.money(-loss)} (limit ${fmt.pct(k.daily_loss_limit)} of the cash)`);
    }
    return el("span", { class: `kill ${k.tripped ? "tripped" : ""}`, dataset: { symbol }, title: k.tripped || `${k.action} when tripped` },
      `${symbol}: ${parts.join(", ")}${k.tripped ? " TRIPPED" : ""}`);
  }));
}

function feedOf(row, engine) {
  const feed = engine && engine.feed ? engine.feed.state : null;
  if (feed && feed !== "connected") return feed;
  if (row.bar_seen && row.bar_interval) {
    const late = Date.now() / 1000 - row.bar_seen;
    if (late > Math.max(3 * row.bar_interval, 5)) return "stale";
  }
  return feed || (row.bar_seen ? "connected" : "–");
}

function cells(row, engine) {
  const p = row.pending;
  const stops = Object.entries(row.stops || {}).map(([k, v]) => `${{ stop_loss: "SL", take_profit: "TP", trailing_stop: "trail" }[k] || k} ${fmt.price(v)}`).join(" ");
  return {
    state: el("span", { class: `state ${row.state}` }, row.state || "–"),
    position: row.position ?? "–",
    avg_price: fmt.price(row.avg_price),
    close: fmt.price(row.close),
    unrealised: fmt.signed(row.unrealised),
    realised: fmt.signed(row.realised),
    pending: p ? `${p.side || ""} ${p.qty || ""} ${p.status}` : "–",
    stops: stops || "–",
    last_bar: fmt.time(row.last_bar),
    feed: feedOf(row, engine),
    paused: row.paused ? el("span", { class: "flag paused" }, "paused") : "",
    halted: row.halted ? el("span", { class: "flag halted", title: row.halted }, `halted: ${row.halted}`) : "",
  };
}

function fleetPage() {
  const state = { rows: new Map(), engines: new Map(), control: {}, charts: new Map() };
  const banner = el("div", { id: "link-banner", class: "banner", hidden: true });
  const enginesBox = el("section", { class: "engines" });
  const fleetsBox = el("section", { class: "fleets" });
  const filter = el("input", { type: "search", placeholder: "filter symbols", class: "filter" });
  const tbody = el("tbody");
  const table = el("table", { class: "grid rows" },
    el("thead", {}, el("tr", {}, ["engine", "symbol", ...ROW_FIELDS, ""].map((h) => el("th", {}, h.replace("_", " "))))),
    tbody);
  const recent = el("ul", { class: "events recent" });
  const recentIds = new Set();
  view.replaceChildren(banner, fleetsBox, enginesBox,
    el("section", {}, el("h2", {}, "Symbols ", filter), el("div", { class: "scroll" }, table)),
    el("section", {}, el("h2", {}, "Orders, fills and errors"), recent));
  filter.addEventListener("input", () => applyFilter());

  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    for (const tr of tbody.children) tr.hidden = q && !tr.dataset.key.toLowerCase().includes(q);
  }

  function renderRow(row) {
    const key = rowKey(row);
    let tr = tbody.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    const why = state.control[row.engine];
    const c = cells(row, state.engines.get(row.engine));
    const tds = [
      el("td", { class: "engine" }, row.engine),
      el("td", { class: "symbol" }, el("a", { href: `#/symbol/${encodeURIComponent(row.engine)}/${encodeURIComponent(row.symbol)}` }, row.symbol)),
      ...ROW_FIELDS.map((f) => el("td", { class: f }, c[f])),
      el("td", {}, controls(row.engine, row.symbol, why)),
    ];
    if (!tr) {
      tr = el("tr", { dataset: { key } });
      const after = [...tbody.children].find((other) => other.dataset.key > key);
      tbody.insertBefore(tr, after || null);
    }
    const moved = tr.dataset.state !== (row.state || "") || tr.dataset.paused !== String(!!row.paused) || tr.dataset.position !== String(row.position);
    tr.dataset.state = row.state || "";
    tr.dataset.paused = row.paused ? "true" : "false";
    tr.dataset.position = String(row.position);
    tr.replaceChildren(...tds);
    if (moved) {
      tr.classList.remove("flash");
      void tr.offsetWidth;
      tr.classList.add("flash");
    }
  }

  function renderEngine(e) {
    let card = enginesBox.querySelector(`[data-engine="${CSS.escape(e.engine)}"]`);
    const why = state.control[e.engine];
    // the broker away, the status (or the sink's last will) the dashboard holds is old news: the engine may run on
    const lost = live.link && BROKER_LOST.includes(live.link.state);
    const online = lost ? "unknown: the dashboard lost the MQTT broker"
      : e.online === true ? "online" : e.online === false ? `offline (${e.reason || "?"})` : e.reason || "–";
    const body = el("div", { class: "figures" },
      el("span", {}, el("b", {}, "status "), el("span", { class: `online ${lost ? "unknown" : e.online}`,
        title: lost ? `its last status said ${e.online ? "online" : `offline (${e.reason || "?"})`}` : null }, online)),
      el("span", {}, el("b", {}, "mode "), e.mode || "–", e.shard ? ` shard ${e.shard}` : ""),
      el("span", {}, el("b", {}, "uptime "), el("span", { class: "uptime", dataset: { since: e.since || "" } }, fmt.uptime(e.since))),
      el("span", {}, el("b", {}, "events/s "), fmt.num(e.rate, 1)),
      el("span", {}, el("b", {}, "events "), fmt.num(e.events, 0), e.dropped ? ` (${e.dropped} dropped)` : ""),
      el("span", {}, el("b", {}, "feed "), e.feed ? `${e.feed.state}${e.feed.detail ? `: ${e.feed.detail}` : ""}` : "–"),
      ...(e.equity !== null && e.equity !== undefined
        ? [el("span", { class: "cash" }, el("b", {}, "cash "), fmt.money(e.cash)),
           el("span", { class: "equity" }, el("b", {}, "equity "), fmt.money(e.equity))]
        : [el("span", { title: "the engine's status has no equity (an older mqtt sink): the PnL of the fills and positions seen here" },
             el("b", {}, "PnL seen "), fmt.signed(e.pnl))]),
      el("span", {}, el("b", {}, "control "), why ? el("span", { class: "muted" }, why) : "on"));
    const kills = killSwitches(e.kill_switches);
    const allControls = el("div", {}, el("b", {}, "every symbol: "), controls(e.engine, null, why));
    if (!card) {
      const chart = chartBox(90);
      card = el("article", { class: "engine-card", dataset: { engine: e.engine } },
        el("h3", {}, e.engine), el("div", { class: "body" }), chart);
      enginesBox.append(card);
      const c = makeChart(chart, { timeScale: { visible: false }, rightPriceScale: { visible: true } });
      if (c) state.charts.set(e.engine, { chart: c, series: lineSeries(c, "#2962ff", CURVE[e.curve] || "PnL seen"), curve: e.curve });
    }
    const c = state.charts.get(e.engine);
    if (c && c.curve !== e.curve) {  // the engine's status started (or stopped) carrying its equity
      c.curve = e.curve;
      c.series.applyOptions({ title: CURVE[e.curve] || "PnL seen" });
      c.series.setData([]);
    }
    card.dataset.curve = e.curve || "pnl";
    card.querySelector(".body").replaceChildren(body, kills, allControls);
    renderFleets();
  }

  function renderFleets() {
    // the engines of a sharded fleet (<id>-KofN, each with its status's shard) as one line above their cards
    const groups = new Map();
    for (const e of state.engines.values()) {
      const m = /^(.+)-(\d+)of(\d+)$/.exec(e.engine);
      if (!m || !e.shard) continue;
      const key = `${m[1]}/${m[3]}`;
      if (!groups.has(key)) groups.set(key, { base: m[1], n: Number(m[3]), shards: [] });
      groups.get(key).shards.push(e);
    }
    fleetsBox.replaceChildren(...[...groups.values()].map((g) => {
      const seen = new Set(g.shards.map((e) => Number(e.shard.split("/")[0])));
      const missing = [...Array(g.n).keys()].map((k) => k + 1).filter((k) => !seen.has(k));
      const online = g.shards.filter((e) => e.online === true).length;
      const sum = (key) => g.shards.every((e) => e[key] !== null && e[key] !== undefined) ? g.shards.reduce((a, e) => a + Number(e[key]), 0) : null;
      const symbols = g.shards.reduce((a, e) => a + (e.symbols || []).length, 0);
      return el("article", { class: "fleet-card", dataset: { fleet: g.base, online: String(online), shards: String(g.n) } },
        el("h3", {}, `${g.base} `, el("small", {}, `${g.n} shards`)),
        el("div", { class: "figures" },
          el("span", { class: "online-count" }, el("b", {}, "online "), `${online} of ${g.n}`,
            missing.length ? el("span", { class: "error" }, ` (shard ${missing.map((k) => `${k}/${g.n}`).join(", ")} not seen)`) : ""),
          el("span", {}, el("b", {}, "symbols "), String(symbols)),
          el("span", {}, el("b", {}, "events/s "), fmt.num(g.shards.reduce((a, e) => a + (e.rate || 0), 0), 1)),
          ...(sum("equity") !== null ? [el("span", { class: "cash" }, el("b", {}, "cash "), fmt.money(sum("cash"))),
            el("span", { class: "equity" }, el("b", {}, "equity "), fmt.money(sum("equity")))] : [])));
    }));
  }

  function pnlPoint(e) {
    const c = state.charts.get(e.engine);
    if (c && e.pnl !== null && e.pnl !== undefined) {
      try { c.series.update({ time: Math.floor(Date.now() / 1000), value: e.pnl }); } catch (err) { /* older point */ }
    }
  }

  function addRecent(items) {
    for (const item of unlisted(items, recentIds, 100)) {
      recent.prepend(el("li", { class: `ev ${item.event}`, dataset: { id: item.id || "" } }, el("time", {}, fmt.time(item.time)), " ",
        el("b", {}, `${item.engine}${item.symbol ? ` ${item.symbol}` : ""}`), " ", item.text));
    }
    while (recent.children.length > 100) recent.lastChild.remove();
  }

  let pushedWhileLoading = null; // what pushes brought while the snapshot was on its way

  async function load() {
    pushedWhileLoading = [];
    let snap;
    let pushed = [];
    const linkSeq = live.linkSeq;
    try {
      snap = await api("/api/fleet");
    } finally {
      pushed = pushedWhileLoading;
      pushedWhileLoading = null;
    }
    state.control = snap.control;
    if (live.linkSeq === linkSeq) { // else a push brought a newer link while the snapshot was on its way
      setLink(snap.link, snap.malformed, snap.problems);
      renderBanner(banner, snap.link);
    }
    for (const e of snap.engines) { state.engines.set(e.engine, e); renderEngine(e); }
    for (const [name, points] of Object.entries(snap.pnl || {})) {
      const c = state.charts.get(name);
      if (c) c.series.setData(dedupe(points.map(([t, v]) => ({ time: Math.floor(t), value: v }))));
    }
    tbody.replaceChildren();
    for (const r of snap.rows) { state.rows.set(rowKey(r), r); renderRow(r); }
    if (!snap.rows.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: ROW_FIELDS.length + 3 },
      snap.source === "none" ? "No live source: start the dashboard with --mqtt HOST[:PORT] or --journal PATH."
        : "No engine has published under this prefix yet.")));
    recent.replaceChildren();
    recentIds.clear();
    addRecent(snap.recent);
    addRecent(pushed); // newer than the snapshot, or in it too (listed once, by id)
    applyFilter();
  }

  const onChanges = async (changes) => {
    if (changes.reopened) { await load().catch((err) => notice(err.message, false)); return; }
    if (changes.link) {
      renderBanner(banner, changes.link);
      const snap = await api("/api/fleet").catch(() => null);
      if (snap) {
        // the link decides whether control is possible: grey the buttons out (or back in)
        state.control = snap.control;
        for (const e of snap.engines) { state.engines.set(e.engine, e); renderEngine(e); }
        for (const r of snap.rows) { state.rows.set(rowKey(r), r); renderRow(r); }
      }
    }
    const empty = tbody.querySelector("tr.empty");
    if (empty && changes.rows.length) empty.remove();
    for (const e of changes.engines || []) { state.engines.set(e.engine, e); renderEngine(e); pnlPoint(e); }
    for (const r of changes.rows || []) { state.rows.set(rowKey(r), r); renderRow(r); }
    if (pushedWhileLoading) pushedWhileLoading.push(...(changes.recent || []));
    addRecent(changes.recent || []);
    applyFilter();
  };
  live.listeners.add(onChanges);
  const clock = setInterval(() => {
    for (const node of enginesBox.querySelectorAll(".uptime")) node.textContent = fmt.uptime(node.dataset.since);
  }, 1000);
  live.follow(null);
  return () => { live.listeners.delete(onChanges); clearInterval(clock); for (const c of state.charts.values()) c.chart.remove(); };
}

// ------------------------------------------------------------ a symbol's page

function symbolPage(engine, symbol) {
  const header = el("div", { class: "symbol-head" });
  const chartEl = chartBox(380);
  const kinds = ["signal", "transition", "order", "fill", "error", "log"];
  const shown = new Set(kinds);
  const search = el("input", { type: "search", placeholder: "filter events", class: "filter" });
  const boxes = kinds.map((k) => el("label", {}, el("input", {
    type: "checkbox", checked: true, onchange: (e) => { e.target.checked ? shown.add(k) : shown.delete(k); refilter(); },
  }), k));
  const list = el("ul", { class: "events" });
  const listedIds = new Set();
  const banner = el("div", { id: "link-banner", class: "banner", hidden: true });
  view.replaceChildren(banner, el("p", {}, el("a", { href: "#/" }, "← all symbols")), header, chartEl,
    el("section", {}, el("h2", {}, "Events ", search, ...boxes), list));
  search.addEventListener("input", () => refilter());
  let chart = makeChart(chartEl), candles = null, markersApi = null, markers = [], lines = [], why = null, last = null;
  const indicators = new Map();  // "sma(10)" -> its line series
  if (chart) {
    const LC = window.LightweightCharts;
    candles = chart.addSeries(LC.CandlestickSeries, { upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350" });
    markersApi = LC.createSeriesMarkers(candles, []);
  }

  function refilter() {
    const q = search.value.trim().toLowerCase();
    for (const li of list.children) li.hidden = !shown.has(li.dataset.kind) || (q && !li.textContent.toLowerCase().includes(q));
  }

  function addEvents(items) {
    for (const item of unlisted(items, listedIds, 300)) {
      list.prepend(el("li", { class: `ev ${item.event}`, dataset: { kind: item.event, id: item.id || "" } },
        el("time", {}, fmt.time(item.time)), " ", el("b", {}, item.event), " ", item.text));
    }
    while (list.children.length > 300) list.lastChild.remove();
    refilter();
  }

  function renderHead(row, engineSummary) {
    last = row;
    const c = cells(row, engineSummary);
    header.replaceChildren(
      el("h2", {}, `${symbol} `, el("small", {}, engine)),
      el("div", { class: "figures", dataset: { state: row.state || "", paused: row.paused ? "true" : "false" } },
        ...ROW_FIELDS.map((f) => el("span", { class: f }, el("b", {}, `${f.replace("_", " ")} `), c[f]))),
      el("div", {}, controls(engine, symbol, why)));
    if (candles) {
      for (const line of lines) candles.removePriceLine(line);
      lines = [];
      const add = (price, title, color) => {
        const n = Number(price);
        if (Number.isFinite(n)) lines.push(candles.createPriceLine({ price: n, color, lineStyle: 2, title }));
      };
      if (row.avg_price && Number(row.position)) add(row.avg_price, "entry", "#555");
      add(row.stops && row.stops.stop_loss, "stop loss", "#ef5350");
      add(row.stops && row.stops.take_profit, "take profit", "#26a69a");
      if (row.state === "in_trade") add(row.stops && row.stops.trailing_stop, "trailing stop", "#ffa726");
    }
  }

  function indicatorSeries(name, value, close) {
    // a line over the candles when it reads as a price (an average, a band), else in a pane below (an oscillator)
    let series = indicators.get(name);
    if (!series && chart) {
      const LC = window.LightweightCharts;
      const overlay = close && Math.abs(value - close) <= 0.5 * Math.abs(close);
      series = chart.addSeries(LC.LineSeries, { color: PALETTE[indicators.size % PALETTE.length], lineWidth: 1, title: name,
        priceLineVisible: false, lastValueVisible: true }, overlay ? 0 : 1);
      indicators.set(name, series);
      chartEl.dataset.indicators = [...indicators.keys()].join(" ");
    }
    return series;
  }

  function indicatorPoints(bars) {
    const points = new Map();
    for (const [t, , , , c, values] of bars) {
      for (const [name, v] of Object.entries(values || {})) {
        if (v === null || v === undefined) continue;
        if (!points.has(name)) points.set(name, { close: c, data: [] });
        points.get(name).data.push({ time: Math.floor(t), value: v });
      }
    }
    for (const [name, { close, data }] of points) {
      const series = indicatorSeries(name, data[0].value, close);
      if (series) series.setData(dedupe(data));
    }
  }

  function toMarker(m) {
    const buy = m.side === "buy";
    return { time: Math.floor(m.time), position: buy ? "belowBar" : "aboveBar", color: buy ? "#2962ff" : "#e91e63",
      shape: buy ? "arrowUp" : "arrowDown" };
  }

  let pushedWhileLoading = null; // the events pushes brought while the snapshot was on its way

  async function load() {
    let detail;
    let pushed = [];
    pushedWhileLoading = [];
    try {
      detail = await api(`/api/symbol?engine=${encodeURIComponent(engine)}&symbol=${encodeURIComponent(symbol)}`);
    } catch (err) {
      header.replaceChildren(el("p", { class: "error" }, err.message));
      return;
    } finally {
      pushed = pushedWhileLoading;
      pushedWhileLoading = null;
    }
    why = detail.control;
    setLink(detail.link);
    renderBanner(banner, detail.link);
    renderHead(detail.row, detail.engine);
    if (candles) {
      candles.setData(dedupe(detail.bars.map(([t, o, h, l, c]) => ({ time: Math.floor(t), open: o, high: h, low: l, close: c }))));
      indicatorPoints(detail.bars);
      markers = detail.markers.map(toMarker);
      markersApi.setMarkers(markers);
      if (!detail.bars.length) chartEl.dataset.empty = "no bars yet: set bars = true in the engine's mqtt sink for live candles";
    }
    list.replaceChildren();
    listedIds.clear();
    addEvents(detail.events);
    addEvents(pushed); // newer than the snapshot, or in it too (listed once, by id)
  }

  const onChanges = async (changes) => {
    if (changes.reopened) { await load(); return; }
    if (changes.link) renderBanner(banner, changes.link);
    for (const r of changes.rows || []) renderHead(r);
    if (pushedWhileLoading) pushedWhileLoading.push(...(changes.events || []));
    addEvents(changes.events || []);
    for (const b of changes.bars || []) {
      if (!candles) continue;
      if (b.bar) {
        const [t, o, h, l, c, values] = b.bar;
        try { candles.update({ time: Math.floor(t), open: o, high: h, low: l, close: c }); } catch (err) { /* an older bar */ }
        for (const [name, v] of Object.entries(values || {})) {
          if (v === null || v === undefined) continue;
          const series = indicatorSeries(name, v, c);
          try { if (series) series.update({ time: Math.floor(t), value: v }); } catch (err) { /* an older bar */ }
        }
        delete chartEl.dataset.empty;
      } else if (b.marker) {
        markers.push(toMarker(b.marker));
        markersApi.setMarkers(markers);
      }
    }
    if (changes.link && last) {
      const d = await api(`/api/symbol?engine=${encodeURIComponent(engine)}&symbol=${encodeURIComponent(symbol)}`).catch(() => null);
      if (d) { why = d.control; renderHead(d.row, d.engine); }
    }
  };
  live.listeners.add(onChanges);
  live.follow(engine, symbol);
  return () => { live.listeners.delete(onChanges); if (chart) chart.remove(); };
}

// ------------------------------------------------------------ reports

const REPORT_COLUMNS = [
  ["id", "report", (r) => el("a", { href: `#/report/${encodeURIComponent(r.id)}` }, r.id)],
  ["strategy", "strategy", (r) => r.strategy || "–"],
  ["symbols", "symbols", (r) => (r.symbols || []).join(", ")],
  ["total_return", "return", (r) => fmt.pct(r.total_return)],
  ["sharpe", "Sharpe", (r) => fmt.num(r.sharpe)],
  ["max_drawdown", "drawdown", (r) => fmt.pct(r.max_drawdown)],
  ["trades", "trades", (r) => fmt.num(r.trades, 0)],
  ["date", "date", (r) => fmt.time(r.date)],
];

function sortable(columns, rows, initial, rowAttrs) {
  let key = initial, down = true;
  const tbody = el("tbody");
  const head = el("tr", {}, columns.map(([k, label]) => el("th", {
    class: "sort", dataset: { key: k }, onclick: () => { down = key === k ? !down : true; key = k; draw(); },
  }, label)));
  function value(r) { const v = r[key]; return v === null || v === undefined || v === "" ? null : (isNaN(Number(v)) ? String(v) : Number(v)); }
  function draw() {
    const sorted = rows.slice().sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
    });
    for (const th of head.children) th.dataset.sorted = th.dataset.key === key ? (down ? "desc" : "asc") : "";
    tbody.replaceChildren(...sorted.map((r) => el("tr", rowAttrs ? rowAttrs(r) : {}, columns.map(([k, , show]) => el("td", { class: k }, show(r))))));
  }
  draw();
  return el("table", { class: "grid sortable" }, el("thead", {}, head), tbody);
}

function reportsPage() {
  view.replaceChildren(el("p", { class: "muted" }, "Reading the reports…"));
  api("/api/reports").then((data) => {
    if (data.missing || (!data.reports.length && !data.studies.length)) {
      view.replaceChildren(el("section", { class: "empty-state" }, el("h2", {}, "No reports yet"),
        el("p", {}, `Nothing under ${data.root}. A backtest writes one: `, el("code", {}, "engine run -c examples/sma_cross.toml"),
          "; a study: ", el("code", {}, "engine optimize -c examples/optimize_sma_cross.toml"), ".")));
      return;
    }
    const picked = [];
    const compare = el("button", { disabled: true, onclick: () => { location.hash = `#/compare/${picked.map(encodeURIComponent).join("/")}`; } }, "compare the two picked");
    const pick = ["pick", "pick", (r) => el("input", { type: "checkbox", title: "pick to compare", onchange: (e) => {
      if (e.target.checked) picked.push(r.id); else picked.splice(picked.indexOf(r.id), 1);
      while (picked.length > 2) picked.shift();
      for (const box of view.querySelectorAll("td.pick input")) box.checked = picked.includes(box.closest("tr").dataset.id);
      compare.disabled = picked.length !== 2;
    } })];
    const problems = data.reports.filter((r) => r.problem);
    const studyCols = [
      ["id", "study", (s) => el("a", { href: `#/study/${encodeURIComponent(s.id)}` }, s.id)],
      ["trials", "trials", (s) => fmt.num(s.trials, 0)],
      ["best", "best value", (s) => fmt.num(s.best, 4)],
      ["date", "date", (s) => fmt.time(s.date)],
    ];
    const runs = data.runs || [];
    const runsBox = runs.length ? el("section", { class: "runs" }, el("h2", {}, "Sharded runs"),
      el("table", { class: "grid runs" }, el("thead", {}, el("tr", {}, ["run", "shards", "together", "merged report"].map((h) => el("th", {}, h)))),
        el("tbody", {}, runs.map((r) => el("tr", { dataset: { run: r.run } },
          el("td", {}, r.run),
          el("td", {}, r.shards.map((id, i) => [i ? ", " : "", el("a", { href: `#/report/${encodeURIComponent(id)}` }, id)]).flat(),
            r.missing.length ? el("span", { class: "error" }, ` (shard ${r.missing.map((k) => `${k}/${r.n}`).join(", ")} not found)`) : ""),
          el("td", {}, el("a", { class: "together", href: `#/shards/${encodeURIComponent(r.run)}` }, `the ${r.shards.length} shards as one run`)),
          el("td", {}, r.merged ? el("a", { href: `#/report/${encodeURIComponent(r.merged)}` }, r.merged)
            : el("span", { class: "muted", title: "engine report merge writes one report of the shards" }, "–"))))))) : "";
    view.replaceChildren(runsBox,
      el("section", {}, el("h2", {}, `Reports `, el("small", {}, data.root), " ", compare),
        data.reports.length ? sortable([pick, ...REPORT_COLUMNS], data.reports, "date", (r) => ({ dataset: { id: r.id } })) : el("p", { class: "muted" }, "No backtest reports yet."),
        el("ul", { class: "error" }, problems.map((r) => el("li", {}, `${r.id}: ${r.problem}`)))),
      el("section", {}, el("h2", {}, "Optimisation studies"),
        data.studies.length ? sortable(studyCols, data.studies, "date") : el("p", { class: "muted" }, "No studies yet.")));
  }).catch((err) => view.replaceChildren(el("p", { class: "error" }, err.message)));
}

const FIGURE_NAMES = [
  ["total_return", "return", fmt.pct], ["pnl", "PnL", fmt.money], ["sharpe", "Sharpe", fmt.num], ["sortino", "Sortino", fmt.num],
  ["max_drawdown", "max drawdown", fmt.pct], ["trades", "trades", (v) => fmt.num(v, 0)], ["win_rate", "win rate", fmt.pct],
  ["profit_factor", "profit factor", fmt.num], ["exposure", "exposure", fmt.pct],
];

function figures(summary) {
  const t = summary.total || {};
  return el("div", { class: "figures" }, FIGURE_NAMES.map(([k, label, show]) => el("span", { class: k }, el("b", {}, `${label} `), show(t[k]))),
    el("span", {}, el("b", {}, "bars "), `${fmt.time(summary.first_bar)} → ${fmt.time(summary.last_bar)}`));
}

// Trade markers drawn on the equity curve, at most: a run with more has none there (its candles
// below carry them), never the first few hundred, which would read as no trades after them.
const EQUITY_MARKERS = 400;

function shownRange(chart, box) {
  // the times the chart shows, on its box (data-from, data-to): what a trader sees without scrolling
  chart.timeScale().subscribeVisibleTimeRangeChange((r) => { if (r) { box.dataset.from = r.from; box.dataset.to = r.to; } });
}

function equityCharts(report, box, markersToo) {
  const eqBox = chartBox(260), ddBox = chartBox(140);
  const marked = markersToo && report.markers.length <= EQUITY_MARKERS;
  eqBox.dataset.markers = marked ? report.markers.length : 0;
  const title = markersToo && !marked ? `Equity (${report.markers.length} trade markers: too many for this chart; each symbol's candles below have them)` : "Equity";
  box.append(el("h3", {}, title), eqBox, el("h3", {}, "Drawdown (%)"), ddBox);
  const charts = [];
  const eq = makeChart(eqBox), dd = makeChart(ddBox);
  if (eq) {
    const series = lineSeries(eq, "#2962ff", "equity");
    series.setData(dedupe(report.equity.map(([t, v]) => ({ time: Math.floor(t), value: v }))));
    if (marked) {
      const times = report.equity.map(([t]) => Math.floor(t));
      const snap = (t) => { let lo = 0, hi = times.length - 1; while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t) lo = mid; else hi = mid - 1; } return times[lo]; };
      const marks = report.markers.map((m) => ({ time: snap(Math.floor(m.time)), position: m.kind === "entry" ? "belowBar" : "aboveBar",
        color: m.kind === "entry" ? "#2962ff" : (Number(m.pnl) >= 0 ? "#26a69a" : "#ef5350"), shape: m.kind === "entry" ? "arrowUp" : "arrowDown" }));
      marks.sort((a, b) => a.time - b.time);
      window.LightweightCharts.createSeriesMarkers(series, marks);
    }
    eq.timeScale().fitContent();
    shownRange(eq, eqBox);
    charts.push(eq);
  }
  if (dd) {
    const area = dd.addSeries(window.LightweightCharts.AreaSeries, { lineColor: "#ef5350", topColor: "rgba(239,83,80,0.05)", bottomColor: "rgba(239,83,80,0.4)", priceLineVisible: false });
    area.setData(dedupe(report.drawdown.map(([t, v]) => ({ time: Math.floor(t), value: v }))));
    dd.timeScale().fitContent();
    charts.push(dd);
  }
  if (eq && dd) {
    eq.timeScale().subscribeVisibleLogicalRangeChange((r) => r && dd.timeScale().setVisibleLogicalRange(r));
  }
  return charts;
}

function tradeChart(report, box) {
  // Each symbol's candlesticks (candles.csv: the bars, a few thousand candles at most) with its
  // trades as markers; a report written before the engine kept candles has its trade prices as a line.
  const candles = report.candles || {};
  const symbols = [...new Set([...Object.keys(candles), ...report.markers.map((m) => m.symbol)])];
  const charts = [];
  for (const symbol of symbols.slice(0, 4)) {
    const b = chartBox(240);
    const bars = candles[symbol];
    const per = (report.bars_per_candle || {})[symbol];
    b.dataset.kind = bars ? "candles" : "prices";
    box.append(el("h3", {}, bars ? `${symbol}: ${per > 1 ? `candles of ${per} bars` : "bars"}, with the trades`
      : `${symbol}: trade prices (this report has no candles.csv)`), b);
    const c = makeChart(b);
    if (!c) continue;
    const LC = window.LightweightCharts;
    const mine = report.markers.filter((m) => m.symbol === symbol).sort((a, b2) => a.time - b2.time);
    let series, times;
    if (bars) {
      series = c.addSeries(LC.CandlestickSeries, { upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
        wickUpColor: "#26a69a", wickDownColor: "#ef5350", priceLineVisible: false });
      const data = dedupe(bars.map(([t, o, h, l, cl]) => ({ time: Math.floor(t), open: o, high: h, low: l, close: cl })));
      series.setData(data);
      times = data.map((p) => p.time);
    } else {
      series = lineSeries(c, "#999", symbol);
      const points = dedupe(mine.map((m) => ({ time: Math.floor(m.time), value: m.price })));
      series.setData(points);
      times = points.map((p) => p.time);
    }
    // a marker sits on the candle its trade happened in
    const snap = (t) => { let lo = 0, hi = times.length - 1; while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t) lo = mid; else hi = mid - 1; } return times[lo]; };
    if (times.length) {
      b.dataset.markers = mine.length;  // every trade shown (the first TRADES_SHOWN of the report)
      LC.createSeriesMarkers(series, mine.map((m) => ({
        time: snap(Math.floor(m.time)), position: m.kind === "entry" ? "belowBar" : "aboveBar",
        color: m.kind === "entry" ? "#2962ff" : (Number(m.pnl) >= 0 ? "#26a69a" : "#ef5350"),
        shape: m.kind === "entry" ? "arrowUp" : "arrowDown", text: m.kind === "exit" && bars === undefined ? m.pnl : "" })).sort((x, y) => x.time - y.time));
    }
    c.timeScale().fitContent();
    charts.push(c);
  }
  return charts;
}

function tradesTable(report) {
  const cols = ["symbol", "side", "entry_time", "entry_price", "exit_time", "exit_price", "qty", "pnl", "commission", "exit_reason"];
  return el("section", {}, el("h3", {}, `Trades (${report.trade_count}${report.trade_count > report.trades.length ? `, first ${report.trades.length} shown` : ""})`),
    report.trades.length ? el("div", { class: "scroll tall" }, el("table", { class: "grid trades" },
      el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c.replace("_", " "))))),
      el("tbody", {}, report.trades.map((t) => el("tr", {}, cols.map((c) => el("td", { class: c },
        c === "pnl" ? fmt.signed(t[c]) : c.endsWith("time") ? fmt.time(t[c]) : c.endsWith("price") ? fmt.price(t[c])
          : c === "commission" ? fmt.price(t[c]) : t[c]))))))) : el("p", { class: "muted" }, "No trades."));
}

function shardsTable(report) {
  // a sharded run's page: each shard's own figures, and the shards not found
  if (!report.shards) return "";
  const cols = ["id", "symbols", "total_return", "pnl", "trades", "max_drawdown"];
  return el("section", { class: "shards" }, el("h3", {}, `${report.shards.length} of ${report.n} shards`,
      report.missing.length ? el("span", { class: "error" }, ` (shard ${report.missing.map((k) => `${k}/${report.n}`).join(", ")} not found: its figures are not in these)`) : ""),
    el("table", { class: "grid" }, el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c.replace("_", " "))))),
      el("tbody", {}, report.shards.map((s) => el("tr", { dataset: { id: s.id } },
        el("td", {}, el("a", { href: `#/report/${encodeURIComponent(s.id)}` }, s.id)), el("td", {}, s.symbols.join(", ")),
        el("td", {}, fmt.pct(s.total_return)), el("td", {}, fmt.signed(s.pnl)), el("td", {}, fmt.num(s.trades, 0)),
        el("td", {}, fmt.pct(s.max_drawdown)))))));
}

function reportPage(id, kind = "report") {
  view.replaceChildren(el("p", { class: "muted" }, kind === "shards" ? "Putting the shards together…" : "Loading the report…"));
  let charts = [];
  api(`/api/${kind}?id=${encodeURIComponent(id)}`).then((report) => {
    const box = el("section", { class: "report" });
    view.replaceChildren(el("p", {}, el("a", { href: "#/reports" }, "← all reports")),
      el("h2", {}, report.id, " ", el("small", {}, kind === "shards" ? `${report.summary.strategy || ""}: the shards as one run` : report.summary.strategy || "")),
      figures(report.summary), shardsTable(report),
      el("ul", { class: "error" }, report.problems.map((p) => el("li", {}, p))), box);
    charts = equityCharts(report, box, true);
    charts.push(...tradeChart(report, box));
    box.append(tradesTable(report));
  }).catch((err) => view.replaceChildren(el("p", {}, el("a", { href: "#/reports" }, "← all reports")), el("p", { class: "error" }, err.message)));
  return () => charts.forEach((c) => c.remove());
}

function comparePage(a, b) {
  let charts = [];
  view.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  Promise.all([a, b].map((id) => api(`/api/report?id=${encodeURIComponent(id)}`))).then((both) => {
    const cols = both.map((report) => {
      const box = el("div", { class: "report" });
      const col = el("div", { class: "column" }, el("h2", {}, el("a", { href: `#/report/${encodeURIComponent(report.id)}` }, report.id)), figures(report.summary), box);
      return [col, box, report];
    });
    const table = el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, ""), both.map((r) => el("th", {}, r.id)))),
      el("tbody", {}, FIGURE_NAMES.map(([k, label, show]) => el("tr", {}, el("th", {}, label), both.map((r) => el("td", {}, show((r.summary.total || {})[k])))))));
    view.replaceChildren(el("p", {}, el("a", { href: "#/reports" }, "← all reports")), table, el("div", { class: "side-by-side" }, cols.map(([col]) => col)));
    for (const [, box, report] of cols) charts.push(...equityCharts(report, box, false));
  }).catch((err) => view.replaceChildren(el("p", { class: "error" }, err.message)));
  return () => charts.forEach((c) => c.remove());
}

function studyPage(id) {
  view.replaceChildren(el("p", { class: "muted" }, "Loading the study…"));
  api(`/api/study?id=${encodeURIComponent(id)}`).then((s) => {
    const out = el("div", { class: "command" });
    const run = ["run", "", (t) => el("button", { disabled: !s.config, title: s.config ? "write this trial's config and show its command" : "the study has no best.toml",
      onclick: async () => {
        try {
          const answer = await api("/api/trial", { study: s.id, number: t.number });
          out.replaceChildren(el("b", {}, `trial ${t.number}: `), el("code", {}, answer.command));
        } catch (err) { out.replaceChildren(el("span", { class: "error" }, err.message)); }
      } }, "run this one")];
    const shownCols = s.columns.filter((c) => c !== "note");
    const cols = [...shownCols.map((c) => [c, c, (t) => fmt.figure(t[c], c)]), run];
    view.replaceChildren(el("p", {}, el("a", { href: "#/reports" }, "← all reports")), el("h2", {}, `Study ${s.id}`),
      el("p", {}, `parameters: ${s.params.join(", ") || "–"}`), out,
      s.trials.length ? el("div", { class: "scroll tall" }, sortable(cols, s.trials, "value")) : el("p", { class: "muted" }, "No trials yet."));
  }).catch((err) => view.replaceChildren(el("p", { class: "error" }, err.message)));
}

// ------------------------------------------------------------ routes

let leave = null;
function route() {
  if (leave) { leave(); leave = null; }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === (parts[0] && parts[0] !== "symbol" ? "reports" : "fleet"));
  if (parts[0] === "symbol" && parts.length >= 3) leave = symbolPage(parts[1], parts.slice(2).join("/"));
  else if (parts[0] === "reports") leave = reportsPage();
  else if (parts[0] === "report") leave = reportPage(parts.slice(1).join("/"));
  else if (parts[0] === "shards") leave = reportPage(parts.slice(1).join("/"), "shards");
  else if (parts[0] === "compare") leave = comparePage(parts[1], parts[2]);
  else if (parts[0] === "study") leave = studyPage(parts.slice(1).join("/"));
  else leave = fleetPage();
}

window.addEventListener("hashchange", route);
route();
