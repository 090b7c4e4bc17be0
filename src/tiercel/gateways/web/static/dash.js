/* Tiercel dashboard: keeps server-rendered pages live from the manager's job events.
 * One WebSocket per page (/ui/live), reconnecting by itself; every text goes in as textContent,
 * never as markup; what the page keeps is bounded (MAX_POINTS of throughput, one row per job shown). */
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var STATES = ["done", "failed", "cancelled", "running", "queued"];
  var ENDED = { done: 1, failed: 1, cancelled: 1 };
  var MAX_POINTS = 720;
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function throttle(fn, ms) {
    var timer = null, again = false;
    return function run() {
      if (timer) { again = true; return; }
      fn();
      timer = setTimeout(function () { timer = null; if (again) { again = false; run(); } }, ms);
    };
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401) { location.href = "/ui/signin"; throw new Error("signed out"); }
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r.json();
    });
  }

  /* A state bar: the rects after the background, redrawn from a job's counts. */
  function drawBar(svg, j) {
    if (!svg) return;
    var h = svg.getAttribute("height") || "12";
    Array.prototype.slice.call(svg.querySelectorAll("rect:not(.bg)")).forEach(function (r) { r.remove(); });
    var x = 0, total = Math.max(1, j.total), label = [];
    STATES.forEach(function (s) {
      var n = j[s] || 0;
      if (!n) return;
      var w = 100 * n / total, r = document.createElementNS(SVG, "rect"), t = document.createElementNS(SVG, "title");
      r.setAttribute("class", "s-" + s); r.setAttribute("x", x.toFixed(3)); r.setAttribute("y", "0");
      r.setAttribute("width", w.toFixed(3)); r.setAttribute("height", h);
      t.textContent = n + " " + s; r.appendChild(t); svg.appendChild(r);
      x += w; label.push(n + " " + s);
    });
    svg.setAttribute("aria-label", label.join(", "));
  }

  function rateText(j) {
    var settled = j.done + j.failed, span = (j.ended || Date.now() / 1000) - j.submitted;
    if (!settled || span <= 0) return "";
    var r = settled / span;
    return (r >= 10 ? Math.round(r).toLocaleString("en") : r.toPrecision(2)) + "/s";
  }

  /* ---- the jobs page ---------------------------------------------------------------- */

  function jobsPage() {
    var table = document.getElementById("jobs"), body = table.tBodies[0];
    var query = table.dataset.query;

    function cell(tr, text, cls) { var td = el("td", cls, text); tr.appendChild(td); return td; }

    function row(j) {
      var tr = el("tr", "st-" + j.state);
      tr.dataset.id = j.id;
      var a = el("a", null, j.id); a.href = "/ui/jobs/" + j.id; cell(tr).appendChild(a);
      var b = el("a", null, j.title); b.href = "/ui/jobs/" + j.id; cell(tr, null, "name").appendChild(b);
      cell(tr, j.state, "state");
      var svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "bar"); svg.setAttribute("viewBox", "0 0 100 12");
      svg.setAttribute("preserveAspectRatio", "none"); svg.setAttribute("height", "12");
      var bg = document.createElementNS(SVG, "rect");
      bg.setAttribute("class", "bg"); bg.setAttribute("width", "100"); bg.setAttribute("height", "12");
      svg.appendChild(bg); cell(tr, null, "barcol").appendChild(svg); drawBar(svg, j);
      cell(tr, j.done, "num done"); cell(tr, j.total, "num");
      cell(tr, j.owner); cell(tr, j.queue_name); cell(tr, (j.places || []).join(", "), "places");
      var age = el("span", "age", j.age); age.dataset.since = j.submitted; cell(tr, null, "num").appendChild(age);
      cell(tr, j.rate, "num rate");
      return tr;
    }

    var reload = throttle(function () {
      getJSON("/ui/data/jobs" + (query ? "?" + query : "")).then(function (d) {
        var rows = d.rows.map(row);
        while (body.firstChild) body.removeChild(body.firstChild);
        rows.forEach(function (tr) { body.appendChild(tr); });
        if (!rows.length) { var tr = el("tr", "empty"); var td = el("td", null, "No jobs."); td.colSpan = 11; tr.appendChild(td); body.appendChild(tr); }
      }).catch(function () {});
    }, 1000);

    function update(j, kind) {
      var tr = body.querySelector('tr[data-id="' + j.id + '"]');
      if (!tr) {
        // a job this page does not show: a new one, or one that ended into its filter; the progress
        // of a job on another page is none of its business
        if (kind === "job_submitted" || kind === "job_finished") reload();
        return;
      }
      tr.className = "st-" + j.state;
      tr.querySelector(".state").textContent = j.state;
      tr.querySelector(".done").textContent = j.done;
      tr.querySelector(".rate").textContent = rateText(j);
      drawBar(tr.querySelector("svg.bar"), j);
    }

    return { event: function (ev) { if (ev.job) update(ev.job, ev.event); }, resync: reload };
  }

  /* ---- a job's page ------------------------------------------------------------------- */

  function jobPage() {
    var box = document.getElementById("job"), id = box.dataset.job, state = box.dataset.state;
    var series = [[], []], plot = null, last = null, failedNext = -1, failedSeen = -1;
    var plotEl = document.getElementById("plot"), more = document.getElementById("more-failed");
    var failedBox = document.getElementById("failed");

    function drawPlot() {
      if (!window.uPlot || !plotEl) return;
      if (!plot) {
        plot = new window.uPlot({
          width: Math.max(240, plotEl.clientWidth), height: 180, legend: { show: false },
          scales: { x: { time: true } },
          series: [{}, { label: "tasks/s", stroke: "#2b7a4b", fill: "rgba(43,122,75,0.15)", width: 1.5 }],
          axes: [{}, { size: 60 }]
        }, series, plotEl);
      } else {
        plot.setData(series);
      }
    }

    function loadPlot() {
      getJSON("/ui/data/jobs/" + id + "/throughput").then(function (d) {
        series = [d.t.slice(-MAX_POINTS), d.rate.slice(-MAX_POINTS)];
        drawPlot();
      }).catch(function () {});
    }

    function addPoint(j) {
      var now = Date.now() / 1000, settled = j.done + j.failed;
      if (last && now > last.t) {
        series[0].push(now); series[1].push((settled - last.settled) / (now - last.t));
        if (series[0].length > MAX_POINTS) { series[0].shift(); series[1].shift(); }
        drawPlot();
      }
      last = { t: now, settled: settled };
    }

    function show(j) {
      if (ENDED[state] && !ENDED[j.state]) return;  // an answer read before the job ended, come late
      state = j.state; box.dataset.state = j.state;
      var badge = document.getElementById("state");
      badge.textContent = j.state; badge.className = "state badge st-" + j.state;
      document.getElementById("rate").textContent = rateText(j);
      drawBar(document.querySelector("#bar svg"), j);
      var p = document.getElementById("progress");
      p.querySelector(".n-settled").textContent = j.done + j.failed + j.cancelled;
      STATES.forEach(function (s) { var n = p.querySelector(".n-" + s); if (n) n.textContent = j[s]; });
      var top = Math.max(1, Math.max.apply(null, STATES.map(function (s) { return j[s]; })));
      STATES.forEach(function (s) {
        var tr = document.querySelector('#histogram tr[data-state="' + s + '"]');
        if (!tr) return;
        tr.querySelector("td.num").textContent = j[s];
        tr.querySelector("rect").setAttribute("width", (100 * j[s] / top).toFixed(3));
      });
      if (ENDED[j.state]) {
        var c = document.getElementById("cancel"); if (c) c.remove();
        document.getElementById("waiting").hidden = true;
        if (j.reason && !document.getElementById("reason")) {
          var r = el("p", "reason", "ended early: " + j.reason); r.id = "reason";
          box.insertBefore(r, box.querySelector(".progress"));
        }
      }
      if (j.failed !== failedSeen) { failedSeen = j.failed; reloadFailed(); }
      if (!ENDED[j.state] && box.dataset.peers) refreshForwarded();  // a manager with peers may forward it
      if (!ENDED[j.state] && j.queued && !j.running) refreshExplain();
      else if (j.running || ENDED[j.state]) { document.getElementById("waiting").hidden = true; renderData(null); }
    }

    function renderData(d) {  // the data panel's waiting part: explain's data costs (views.data_panel)
      var w = document.getElementById("data-wait");
      if (!w) return;
      while (w.firstChild) w.removeChild(w.firstChild);
      var x = d && d.data;
      if (!x || !d.explain || ENDED[d.job.state] || !d.job.queued || d.job.running) return;
      if (x.reason) { var r = el("p", "why", x.reason); r.id = "data-reason"; w.appendChild(r); }
      if (!x.places.length) return;
      var t = el("table", "places"), head = el("tr"), body = el("tbody");
      t.id = "data-places";
      t.appendChild(el("caption", "hint", "where its first waiting task could run" + (x.copies ? " (" + x.copies + ")" : "")));
      ["worker", "node", "holds its inputs", "bytes to copy", "copy time"].forEach(function (h, i) { head.appendChild(el("th", i > 2 ? "num" : null, h)); });
      var thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
      x.places.forEach(function (p) {
        var tr = el("tr");
        [p.worker, p.node, p.holds, p.bytes, p.seconds].forEach(function (v, i) { tr.appendChild(el("td", i > 2 ? "num" : null, v)); });
        body.appendChild(tr);
      });
      t.appendChild(body);
      w.appendChild(t);
    }

    /* Its ranges at peers (views.forwarded_rows): kept as last seen once the job ended, when the manager
     * forgets them. */
    function renderForwarded(d) {
      var sec = document.getElementById("forwarded"), rows = d.forwarded || [];
      if (!sec || (ENDED[d.job.state] && !rows.length)) return;
      var body = sec.querySelector("tbody");
      while (body.firstChild) body.removeChild(body.firstChild);
      rows.forEach(function (x) {
        var tr = el("tr");
        tr.dataset.lease = x.lease;
        [[x.indexes, "indexes"], [x.peer, null], [x.why, "why"], [x.state, "state"], [x.epoch, "num"],
         [x.settled, "num settled"]].forEach(function (c) { tr.appendChild(el("td", c[1], c[0])); });
        body.appendChild(tr);
      });
      sec.hidden = !rows.length;
    }

    var refreshForwarded = throttle(function () {
      getJSON("/ui/data/jobs/" + id).then(renderForwarded).catch(function () {});
    }, 2000);

    function renderExplain(d) {
      var x = d.explain, box2 = document.getElementById("explain"), sec = document.getElementById("waiting");
      while (box2.firstChild) box2.removeChild(box2.firstChild);
      renderForwarded(d);
      renderData(d);
      if (!x || ENDED[d.job.state] || !d.job.queued) { sec.hidden = true; return; }
      if (d.job.waiting) box2.appendChild(el("p", "why", d.job.waiting));
      if (x.verdict) box2.appendChild(el("p", null, "queue " + x.queue + " — " + x.verdict.policy + ": " + x.verdict.reason));
      if (x.site_reason) box2.appendChild(el("p", null, "site " + (x.site || "") + ": " + x.site_reason));
      if (x.workers && x.workers.length) {
        var ul = el("ul", "workers");
        x.workers.forEach(function (w) { ul.appendChild(el("li", null, w.worker + " — " + w.policy + ": " + w.reason)); });
        box2.appendChild(ul);
      }
      sec.hidden = !box2.firstChild;
    }

    var refreshExplain = throttle(function () {
      getJSON("/ui/data/jobs/" + id).then(renderExplain).catch(function () {});
    }, 2000);

    function loadFailed(after, replace) {
      return getJSON("/ui/data/jobs/" + id + "/failed?after=" + after).then(function (d) {
        if (replace) while (failedBox.firstChild) failedBox.removeChild(failedBox.firstChild);
        d.tasks.forEach(function (t) {
          var det = el("details", "task"), sum = el("summary");
          sum.appendChild(el("b", null, "task " + t.index));
          sum.appendChild(document.createTextNode(" · " + t.outcome + (t.exit_code === null ? "" : ", exit " + t.exit_code) +
            " · attempt " + t.attempt + " on " + (t.worker_name && t.worker_name !== t.worker ? t.worker_name + " (" + t.worker + ")" : t.worker)));
          det.appendChild(sum);
          det.dataset.index = t.index;
          var pre = el("pre", "stderr", t.stderr || "(no stderr)");
          det.appendChild(pre);
          if (t.more_bytes) det.appendChild(el("p", "hint", "… " + t.more_bytes + " more bytes: tiercel logs " + id + " --task " + t.index + " --stderr"));
          failedBox.appendChild(det);
        });
        if (!failedBox.firstChild) failedBox.appendChild(el("p", "hint", "none"));
        failedNext = d.next;
        more.hidden = d.next === null;
      });
    }

    var reloadFailed = throttle(function () { loadFailed(-1, true).catch(function () {}); }, 2000);
    more.addEventListener("click", function () { if (failedNext !== null) loadFailed(failedNext, false).catch(function () {}); });

    var synced = false, moves = 0;
    function resync() {
      var at = moves;  // an event that came while this was read is newer than its answer
      getJSON("/ui/data/jobs/" + id).then(function (d) { if (at === moves) { show(d.job); renderExplain(d); } })
        .catch(function () {});
      if (synced) loadPlot();  // the first time, the plot was just read with the page
      synced = true;
    }

    loadPlot();
    failedSeen = +box.dataset.failed;
    loadFailed(-1, true).catch(function () {});
    return {
      event: function (ev) {
        if (!ev.job || String(ev.job.id) !== id) return;
        moves += 1;
        show(ev.job);
        addPoint(ev.job);
      },
      resync: resync
    };
  }

  /* ---- pages of the pool: their table read again when the pool changed ------------------ */

  function poolPage() {
    var box = document.getElementById("pool");
    var reload = throttle(function () {
      fetch(location.pathname + "?part=1", { credentials: "same-origin" }).then(function (r) {
        if (r.status !== 200) return null;
        return r.text();
      }).then(function (html) { if (html !== null) box.innerHTML = html; }).catch(function () {});
    }, 1000);
    return { event: function (ev) { if (ev.event === "pool") reload(); }, resync: reload, watch: true };
  }

  /* ---- workflows: the page's live part read again when one of its jobs moved ------------- */

  function partPage(listing) {
    var box = document.getElementById("part");
    function shows(id) { return box.querySelector('[data-job="' + Number(id) + '"]') !== null; }
    var reload = throttle(function () {
      fetch(location.pathname + "?part=1", { credentials: "same-origin" }).then(function (r) {
        if (r.redirected) { location.href = "/ui/signin"; return null; }
        return r.status === 200 ? r.text() : null;
      }).then(function (html) { if (html !== null) { box.innerHTML = html; tick(); } }).catch(function () {});
    }, 1000);
    return {
      event: function (ev) {
        // a new workflow's jobs are jobs the listing does not show yet
        if (ev.job && (shows(ev.job.id) || (listing && ev.event === "job_submitted"))) reload();
      },
      resync: reload
    };
  }

  /* ---- ages ("submitted 3m ago") kept current while the page is open -------------------- */

  // the server's clock less this browser's, from when the page was rendered
  var skew = (Number(document.body.dataset.now) || Date.now() / 1000) - Date.now() / 1000;

  function ageText(seconds) {  // as views.age: 42s, 7m, 3h, 12d
    var s = Math.max(0, Math.floor(seconds));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.floor(s / 60) + "m";
    if (s < 172800) return Math.floor(s / 3600) + "h";
    return Math.floor(s / 86400) + "d";
  }

  function tick() {
    var now = Date.now() / 1000 + skew;
    Array.prototype.forEach.call(document.querySelectorAll(".age[data-since]"), function (e) {
      var since = Number(e.dataset.since);
      if (since) e.textContent = ageText(now - since);
    });
  }

  setInterval(tick, 1000);

  var view = page === "jobs" ? jobsPage() : page === "job" ? jobPage() : page === "pool" ? poolPage() :
    page === "workflows" ? partPage(true) : page === "workflow" ? partPage(false) : null;

  /* ---- the live socket ------------------------------------------------------------------- */

  var indicator = document.getElementById("live"), retry = 500;

  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ui/live");
    ws.onopen = function () {
      retry = 500;
      if (indicator) { indicator.className = "live on"; indicator.title = "live"; }
      if (view && view.watch) ws.send('{"watch": "pool"}');
    };
    ws.onmessage = function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      if (ev.event === "hello") {
        // What changed between the page's rendering (or the last socket) and this one came as no
        // event: read the page's data once again, then follow events.
        if (view) view.resync();
        return;
      }
      if (ev.event === "token_revoked") { location.href = "/ui/signin"; return; }
      if (view) view.event(ev);
    };
    ws.onclose = function (e) {
      if (indicator) { indicator.className = "live off"; indicator.title = "reconnecting"; }
      if (e.code === 4401) { location.href = "/ui/signin"; return; }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  }

  if (indicator) connect();
})();
