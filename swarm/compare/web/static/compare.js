// swarm compare --web: the run from /events (server-sent events, one JSON object each),
// drawn with DOM calls, textContent and <canvas> only: nothing from the stream is ever HTML.
"use strict";
(function () {
  var COLOURS = ["#e8590c", "#1c7ed6", "#2f9e44"]; // a piece from: the seed, a peer, a web seed
  var EMPTY = "#e9ecef";
  var QUIET = 5000; // ms without a message mid-run: the stream is dead
  var phases = {};
  var group = null;
  var over = false; // the run ended (or the stream did): nothing more is drawn
  var last = Date.now();
  var source = new EventSource("/events");

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function status(text, cls) {
    var s = document.getElementById("status");
    s.textContent = text;
    s.className = cls;
  }
  function rate(bytes) {
    var units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function size(bytes) { return rate(bytes).replace("/s", ""); }
  function seconds(s) { return Number(s).toFixed(1) + " s"; }

  function runHead(m) {
    var what = m.file + ", " + size(m.size) + " to N = " + m.peers.join(", ") + " downloaders; " +
      "server and seed upload " + rate(m.upload_rate) + ", each peer " + rate(m.peer_upload_rate) +
      ", download " + (m.download_rate ? rate(m.download_rate) : "no cap") + "; modes " +
      m.modes.join(", ");
    document.getElementById("what").textContent = what;
  }

  function newPhase(m) {
    if (!group || group.n !== m.n || group.modes[m.mode]) {
      var section = el("section", null, "run");
      section.setAttribute("data-n", m.n);
      section.appendChild(el("h2", "N = " + m.n));
      var row = el("div", null, "modes");
      section.appendChild(row);
      document.getElementById("runs").appendChild(section);
      group = { n: m.n, modes: {}, row: row };
    }
    group.modes[m.mode] = true;
    var card = el("article", null, "phase");
    card.setAttribute("data-mode", m.mode);
    card.setAttribute("data-id", m.id);
    card.appendChild(el("h3", m.mode));
    var meta = el("p", null, "meta");
    var clock = el("span", "0.0 s", "clock");
    var state = el("span", "starting", "state");
    meta.appendChild(el("span", "bound " + seconds(m.bound) + " · "));
    meta.appendChild(clock);
    meta.appendChild(el("span", " · "));
    meta.appendChild(state);
    card.appendChild(meta);
    var rates = el("canvas", null, "rates");
    rates.width = 350;
    rates.height = 110;
    card.appendChild(rates);
    var p = { m: m, card: card, clock: clock, state: state, rates: rates, series: [], bars: [] };
    if (m.num_pieces > 0) {
      var map = el("canvas", null, "pieces");
      p.cw = Math.max(1, Math.floor(350 / m.num_pieces));
      p.ch = Math.max(2, Math.min(10, Math.floor(240 / m.n)));
      map.width = p.cw * m.num_pieces;
      map.height = p.ch * m.n;
      map.setAttribute("data-cells", "0");
      var ctx = map.getContext("2d");
      ctx.fillStyle = EMPTY;
      ctx.fillRect(0, 0, map.width, map.height);
      card.appendChild(map);
      p.map = map;
      p.cells = 0;
    }
    var bars = el("div", null, "bars");
    for (var i = 0; i < m.n; i++) {
      var row2 = el("div", null, "dl");
      row2.setAttribute("data-i", i);
      row2.appendChild(el("span", "#" + i, "label"));
      var bar = el("progress");
      bar.max = 1;
      bar.value = 0;
      row2.appendChild(bar);
      var r = el("span", "", "rate");
      var f = el("span", "", "fin");
      row2.appendChild(r);
      row2.appendChild(f);
      bars.appendChild(row2);
      p.bars.push({ bar: bar, rate: r, fin: f });
    }
    card.appendChild(bars);
    group.row.appendChild(card);
    phases[m.id] = p;
  }

  function tick(m) {
    var p = phases[m.id];
    if (!p) return;
    p.clock.textContent = seconds(m.t);
    p.state.textContent = m.state === "done" ? "done" : m.state;
    p.card.className = "phase " + m.state;
    m.downloaders.forEach(function (d, i) {
      var b = p.bars[i];
      if (!b) return;
      b.bar.value = d[0];
      b.bar.setAttribute("data-progress", d[0]);
      b.rate.textContent = d[2] === null && d[1] > 0 ? rate(d[1]) : "";
      b.fin.textContent = d[2] === null ? "" : "done " + seconds(d[2]);
    });
    if (p.map && m.pieces.length) {
      var ctx = p.map.getContext("2d");
      m.pieces.forEach(function (c) {
        if (c[0] >= p.m.n || c[1] >= p.m.num_pieces) return;
        ctx.fillStyle = COLOURS[c[2]] || "#000";
        ctx.fillRect(c[1] * p.cw, c[0] * p.ch, p.cw, Math.max(1, p.ch - 1));
        p.cells++;
      });
      p.map.setAttribute("data-cells", p.cells);
    }
    p.series = p.series.concat(m.series);
    drawRates(p);
  }

  function drawRates(p) {
    var c = p.rates, ctx = c.getContext("2d"), w = c.width, h = c.height, pad = 4;
    var caps = p.m.caps;
    var last = p.series.length ? p.series[p.series.length - 1][0] : 0;
    var tmax = Math.max(p.m.bound * 1.15, last, 1);
    var ymax = Math.max(caps.total || 0, caps.server || 0, 1);
    p.series.forEach(function (s) { ymax = Math.max(ymax, s[1]); });
    ymax *= 1.1;
    function x(t) { return pad + (w - 2 * pad) * t / tmax; }
    function y(v) { return h - pad - (h - 2 * pad) * v / ymax; }
    ctx.clearRect(0, 0, w, h);
    ctx.lineWidth = 1;
    ctx.setLineDash([4, 3]);
    [[caps.server, COLOURS[0]], [caps.total, "#868e96"]].forEach(function (cap) {
      if (!cap[0]) return;
      ctx.strokeStyle = cap[1];
      ctx.beginPath(); ctx.moveTo(x(0), y(cap[0])); ctx.lineTo(x(tmax), y(cap[0])); ctx.stroke();
    });
    ctx.strokeStyle = "#adb5bd";
    ctx.beginPath(); ctx.moveTo(x(p.m.bound), 0); ctx.lineTo(x(p.m.bound), h); ctx.stroke();
    ctx.setLineDash([]);
    ctx.lineWidth = 1.5;
    [[1, "#212529"], [2, COLOURS[0]], [3, COLOURS[1]]].forEach(function (line) {
      ctx.strokeStyle = line[1];
      ctx.beginPath();
      p.series.forEach(function (s, i) {
        if (i === 0) ctx.moveTo(x(s[0]), y(s[line[0]]));
        else ctx.lineTo(x(s[0]), y(s[line[0]]));
      });
      ctx.stroke();
    });
  }

  function final(m) {
    var box = document.getElementById("final");
    document.getElementById("final-title").textContent = m.title;
    var head = document.createElement("tr");
    m.columns.forEach(function (c) { head.appendChild(el("th", c)); });
    var thead = box.querySelector("thead");
    thead.textContent = "";
    thead.appendChild(head);
    var body = box.querySelector("tbody");
    body.textContent = "";
    m.rows.forEach(function (r) {
      var tr = document.createElement("tr");
      r.forEach(function (c) { tr.appendChild(el("td", c)); });
      body.appendChild(tr);
    });
    document.getElementById("final-caption").textContent = m.caption;
    var lines = document.getElementById("final-lines");
    lines.textContent = "";
    m.lines.forEach(function (l) { lines.appendChild(el("li", l)); });
    box.hidden = false;
    // Kept as blobs: they stay on the page once compare has exited.
    if (m.json) {
      keep("/result.json", function (url) {
        var a = document.getElementById("json-link");
        a.href = url;
        a.hidden = false;
      });
    }
    if (m.chart) {
      keep("/chart.png", function (url) {
        var img = document.getElementById("chart");
        img.src = url;
        img.hidden = false;
      });
    }
  }
  function keep(path, use) {
    fetch(path, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.blob(); })
      .then(function (b) { use(URL.createObjectURL(b)); })
      .catch(function () { /* the run's table is there; the extra is not */ });
  }

  function stop(text, cls) {
    if (over) return;
    over = true;
    source.close();
    status(text, cls);
  }
  source.onopen = function () { if (!over) status("live", "live"); };
  source.onmessage = function (e) {
    if (over) return;
    last = Date.now();
    var m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    if (m.type === "run") runHead(m);
    else if (m.type === "phase") newPhase(m);
    else if (m.type === "tick") tick(m);
    else if (m.type === "final") { final(m); status("finished", "live"); }
    else if (m.type === "end") stop("finished: compare has ended; the page keeps the final state", "ended");
  };
  source.onerror = function () {
    stop("disconnected: the stream from compare closed; the figures are as they were then", "lost");
  };
  setInterval(function () {
    if (!over && Date.now() - last > QUIET) {
      stop("disconnected: no word from compare for " + QUIET / 1000 + " s", "lost");
    }
  }, 1000);
})();
