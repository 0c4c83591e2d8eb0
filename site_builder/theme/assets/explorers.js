/* The report's explorers (issue 15): <figure data-explorer="embedding|attention|sigreg">, each set up
   from its JSON config when it scrolls near. Data files are scripts calling explorerData(url, data)
   (browsers refuse fetch() from file://, where the site must also work). Loaded only by pages that
   have an explorer; the embedding map draws with Plotly's scattergl from the bundle the site ships. */
(function () {
  "use strict";

  /* ---------- shared helpers ---------- */
  var PLOTLY_URL = document.currentScript && document.currentScript.getAttribute("data-plotly");
  var plotlyLoading = null;
  function loadPlotly() {  // Plotly only when an embedding map is shown (site.js may have loaded it already)
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyLoading) plotlyLoading = new Promise(function (resolve, reject) {
      var s = document.querySelector('script[src="' + PLOTLY_URL + '"]');  // site.js's, still loading
      if (!s) { s = document.createElement("script"); s.src = PLOTLY_URL; document.head.appendChild(s); }
      s.addEventListener("load", function () { resolve(window.Plotly); });
      s.addEventListener("error", function () { reject(new Error("could not load Plotly")); });
    });
    return plotlyLoading;
  }
  var pending = {};  // url -> [resolve, ...]
  var loaded = {};   // url -> data
  window.explorerData = function (url, data) {
    loaded[url] = data;
    (pending[url] || []).forEach(function (resolve) { resolve(data); });
    delete pending[url];
  };
  function loadData(url) {
    if (loaded[url]) return Promise.resolve(loaded[url]);
    return new Promise(function (resolve, reject) {
      if (pending[url]) { pending[url].push(resolve); return; }
      pending[url] = [resolve];
      var s = document.createElement("script");
      s.src = url;
      s.onerror = function () { delete pending[url]; reject(new Error("could not load " + url)); };
      document.head.appendChild(s);
    });
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  var uid = 0;
  function labelled(text, control) {  // a visible <label> tied to its control (axe)
    control.id = control.id || "explorer-control-" + (++uid);
    return el("label", { "for": control.id, text: text + " " });
  }
  function select(options, value) {
    var s = el("select");
    options.forEach(function (o) {
      var opt = el("option", { value: String(o.value), text: o.label });
      if (o.disabled) opt.disabled = true;
      s.appendChild(opt);
    });
    if (value !== undefined) s.value = String(value);
    return s;
  }
  function range(min, max, step, value) {
    return el("input", { type: "range", min: min, max: max, step: step, value: value });
  }
  function cssVar(name, fallback) {
    return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
  }
  function textColor() { return getComputedStyle(document.body).color; }
  function fit(canvas, width, height) {  // crisp on high-density screens
    var r = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * r); canvas.height = Math.round(height * r);
    canvas.style.width = width + "px"; canvas.style.aspectRatio = width + " / " + height;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(r, 0, 0, r, 0, 0);
    return ctx;
  }

  /* 20 super-class colours (Glasbey-like, distinguishable on light and dark backgrounds) */
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e7ba52", "#7b4173", "#3182bd", "#e6550d",
    "#31a354", "#de9ed6", "#969696"];

  /* ---------- SIGReg: the Epps-Pulley statistic exactly as site_builder.train.objectives.sigreg ----------
     17 knots on [0, 3], trapezoid weights, doubled (the integrand is even), window exp(-t^2/2),
     times the sample size N. */
  var KNOTS = 17, T_MAX = 3;
  function knots() {
    var t = [];
    for (var k = 0; k < KNOTS; k++) t.push(T_MAX * k / (KNOTS - 1));
    return t;
  }
  function ecf(x) {  // empirical characteristic function at the knots: {re, im}
    var t = knots(), re = [], im = [], n = x.length;
    for (var k = 0; k < t.length; k++) {
      var c = 0, s = 0;
      for (var i = 0; i < n; i++) { c += Math.cos(t[k] * x[i]); s += Math.sin(t[k] * x[i]); }
      re.push(c / n); im.push(s / n);
    }
    return { t: t, re: re, im: im };
  }
  function eppsPulley(x) {
    var e = ecf(x), h = T_MAX / (KNOTS - 1), stat = 0, terms = [];
    for (var k = 0; k < KNOTS; k++) {
      var target = Math.exp(-0.5 * e.t[k] * e.t[k]);
      var err = (e.re[k] - target) * (e.re[k] - target) + e.im[k] * e.im[k];
      var w = (k === 0 || k === KNOTS - 1) ? h / 2 : h;
      terms.push(err * target);
      stat += 2 * w * target * err;
    }
    return { value: stat * x.length, ecf: e, integrand: terms };
  }

  function rng(seed) {  // mulberry32: the same samples for the same seed in every browser
    return function () {
      seed |= 0; seed = seed + 0x6D2B79F5 | 0;
      var t = Math.imul(seed ^ seed >>> 15, 1 | seed);
      t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t;
      return ((t ^ t >>> 14) >>> 0) / 4294967296;
    };
  }
  function gauss(rand) {
    var u = 1 - rand(), v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /* each family has a shape parameter (slider 0..1 mapped to its meaning); all but "collapsed" and
     "heavy" are scaled to unit variance so that what differs from N(0, 1) is the shape, not the scale */
  var FAMILIES = {
    gaussian: { label: "Gaussian N(0, s²)", shape: "standard deviation s", map: function (a) { return 0.25 + 1.75 * a; }, init: 0.4286,
      draw: function (r, s) { return s * gauss(r); } },
    uniform: { label: "Uniform (unit variance)", shape: "none", map: function () { return 0; }, init: 0.5,
      draw: function (r) { return Math.sqrt(3) * (2 * r() - 1); } },
    bimodal: { label: "Two modes ±m (unit variance)", shape: "mode distance m", map: function (a) { return 0.95 * a; }, init: 0.85,
      draw: function (r, m) { return (r() < 0.5 ? -m : m) + Math.sqrt(1 - m * m) * gauss(r); } },
    heavy: { label: "Heavy-tailed Student t(ν)", shape: "degrees of freedom ν", map: function (a) { return 1 + Math.round(29 * a); }, init: 0.07,
      draw: function (r, nu) { var c = 0; for (var i = 0; i < nu; i++) { var g = gauss(r); c += g * g; } return gauss(r) / Math.sqrt(c / nu); } },
    collapsed: { label: "Collapsed to a point c", shape: "location c", map: function (a) { return -2 + 4 * a; }, init: 0.5,
      draw: function (r, c) { return c; } }
  };
  function sample(family, n, a, seed) {
    var f = FAMILIES[family], r = rng(seed), p = f.map(a), x = new Array(n);
    for (var i = 0; i < n; i++) x[i] = f.draw(r, p);
    return x;
  }

  function axes(ctx, w, h, pad, xr, yr) {  // returns (x, y) -> canvas px
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = cssVar("--rule", "#ccc"); ctx.fillStyle = textColor(); ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    var sx = function (x) { return pad + (x - xr[0]) / (xr[1] - xr[0]) * (w - 2 * pad); };
    var sy = function (y) { return h - pad - (y - yr[0]) / (yr[1] - yr[0]) * (h - 2 * pad); };
    ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w - pad, h - pad); ctx.moveTo(pad, pad); ctx.lineTo(pad, h - pad); ctx.stroke();
    ctx.textAlign = "center"; ctx.fillText(String(xr[0]), sx(xr[0]), h - pad + 13); ctx.fillText(String(xr[1]), sx(xr[1]), h - pad + 13);
    ctx.textAlign = "right"; ctx.fillText(yr[1].toPrecision(2), pad - 3, pad + 4); ctx.fillText(String(yr[0]), pad - 3, h - pad);
    return { x: sx, y: sy };
  }
  function line(ctx, pts, color, width, dash) {
    ctx.strokeStyle = color; ctx.lineWidth = width || 2; ctx.setLineDash(dash || []);
    ctx.beginPath();
    pts.forEach(function (p, i) { if (i) ctx.lineTo(p[0], p[1]); else ctx.moveTo(p[0], p[1]); });
    ctx.stroke(); ctx.setLineDash([]);
  }
  function legend(ctx, items, x, y) {
    ctx.textAlign = "left"; ctx.font = "11px system-ui, sans-serif";
    items.forEach(function (it, i) {
      ctx.fillStyle = it[1]; ctx.fillRect(x, y + 14 * i - 8, 10, 3);
      ctx.fillStyle = textColor(); ctx.fillText(it[0], x + 14, y + 14 * i - 4);
    });
  }
  function pdf(x) { return Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI); }

  function drawHistogram(canvas, x) {
    var w = 300, h = 190, ctx = fit(canvas, w, h), lo = -4, hi = 4, bins = 40, counts = new Array(bins).fill(0);
    x.forEach(function (v) { var b = Math.floor((v - lo) / (hi - lo) * bins); if (b >= 0 && b < bins) counts[b]++; });
    var width = (hi - lo) / bins, dens = counts.map(function (c) { return c / (x.length * width); });
    var ymax = Math.min(Math.max(0.5, Math.max.apply(null, dens)), 4);
    var s = axes(ctx, w, h, 28, [lo, hi], [0, ymax]);
    ctx.fillStyle = COLORS[0] + "99";
    dens.forEach(function (d, b) {
      var x0 = s.x(lo + b * width), x1 = s.x(lo + (b + 1) * width);
      ctx.fillRect(x0, s.y(Math.min(d, ymax)), x1 - x0 - 1, s.y(0) - s.y(Math.min(d, ymax)));
    });
    var pts = [];
    for (var v = lo; v <= hi; v += 0.05) pts.push([s.x(v), s.y(pdf(v))]);
    line(ctx, pts, COLORS[3], 2);
    legend(ctx, [["sample", COLORS[0]], ["N(0, 1)", COLORS[3]]], w - 90, 16);
  }
  function drawEcf(canvas, e) {
    var w = 300, h = 190, ctx = fit(canvas, w, h), s = axes(ctx, w, h, 28, [0, 3], [-1, 1]);
    ctx.strokeStyle = cssVar("--rule", "#ccc"); ctx.beginPath(); ctx.moveTo(s.x(0), s.y(0)); ctx.lineTo(s.x(3), s.y(0)); ctx.stroke();
    var target = [];
    for (var t = 0; t <= 3.0001; t += 0.05) target.push([s.x(t), s.y(Math.exp(-t * t / 2))]);
    line(ctx, target, COLORS[3], 2, [4, 3]);
    line(ctx, e.t.map(function (t, k) { return [s.x(t), s.y(e.re[k])]; }), COLORS[0], 2);
    line(ctx, e.t.map(function (t, k) { return [s.x(t), s.y(e.im[k])]; }), COLORS[2], 2);
    legend(ctx, [["Re φ̂(t)", COLORS[0]], ["Im φ̂(t)", COLORS[2]], ["e^(−t²/2)", COLORS[3]]], w - 90, 16);
  }
  function drawIntegrand(canvas, r) {
    var w = 300, h = 190, ctx = fit(canvas, w, h), ymax = Math.max(1e-3, Math.max.apply(null, r.integrand)) * 1.1;
    var s = axes(ctx, w, h, 28, [0, 3], [0, ymax]);
    ctx.fillStyle = COLORS[4] + "55";
    ctx.beginPath(); ctx.moveTo(s.x(0), s.y(0));
    r.ecf.t.forEach(function (t, k) { ctx.lineTo(s.x(t), s.y(r.integrand[k])); });
    ctx.lineTo(s.x(3), s.y(0)); ctx.closePath(); ctx.fill();
    ctx.fillStyle = COLORS[4];
    r.ecf.t.forEach(function (t, k) { ctx.beginPath(); ctx.arc(s.x(t), s.y(r.integrand[k]), 2.5, 0, 7); ctx.fill(); });
    legend(ctx, [["|φ̂ − φ|² e^(−t²/2) at the 17 knots", COLORS[4]]], 40, 16);
  }

  function setupSigreg(fig, body) {
    var family = select(Object.keys(FAMILIES).map(function (k) { return { value: k, label: FAMILIES[k].label }; }), "gaussian");
    var n = range(4, 12, 1, 9);  // N = 2^k: 16 ... 4096
    var shape = range(0, 1, 0.01, FAMILIES.gaussian.init);
    var nOut = el("output"), shapeOut = el("output"), statOut = el("output", { class: "sigreg-statistic", "aria-live": "polite" });
    var seed = 1, resample = el("button", { type: "button", text: "New sample" });
    var hist = el("canvas", { role: "img" }), ecfCanvas = el("canvas", { role: "img" }), integrand = el("canvas", { role: "img" });
    var controls = el("div", { class: "explorer-controls" }, [
      el("span", {}, [labelled("Sample", family), family]),
      el("span", {}, [labelled("N", n), n, nOut]),
      el("span", { class: "js-shape" }, [labelled("Shape", shape), shape, shapeOut]),
      resample]);
    var result = el("p", { class: "explorer-result" }, [document.createTextNode("Epps–Pulley statistic × N: "), statOut]);
    body.appendChild(controls);
    body.appendChild(el("div", { class: "explorer-panels" }, [hist, ecfCanvas, integrand]));
    body.appendChild(result);
    function update() {
      var f = FAMILIES[family.value], N = Math.pow(2, +n.value), a = +shape.value;
      shape.disabled = f.shape === "none";
      shape.previousSibling.textContent = (f.shape === "none" ? "Shape" : f.shape) + " ";
      var x = sample(family.value, N, a, seed), r = eppsPulley(x);
      nOut.textContent = String(N);
      shapeOut.textContent = f.shape === "none" ? "–" : String(+f.map(a).toFixed(2));
      statOut.textContent = r.value.toPrecision(4);
      fig.dataset.statistic = String(r.value);
      drawHistogram(hist, x); drawEcf(ecfCanvas, r.ecf); drawIntegrand(integrand, r);
      hist.setAttribute("aria-label", "Histogram of " + N + " samples against the N(0, 1) density");
      ecfCanvas.setAttribute("aria-label", "Real and imaginary parts of the empirical characteristic function against exp(-t²/2)");
      integrand.setAttribute("aria-label", "Weighted integrand at the 17 quadrature knots; statistic " + r.value.toPrecision(4));
    }
    family.addEventListener("change", function () { shape.value = FAMILIES[family.value].init; update(); });
    n.addEventListener("input", update); shape.addEventListener("input", update);
    resample.addEventListener("click", function () { seed += 1; update(); });
    update();
    setupSlicing(fig, body);
  }

  /* second panel: a 2-D cloud, M random directions, each slice's statistic */
  var CLOUDS = {
    gaussian: { label: "Gaussian N(0, I)", draw: function (r) { return [gauss(r), gauss(r)]; } },
    stretched: { label: "Stretched Gaussian (sd 2 and 0.5)", draw: function (r) { return [2 * gauss(r), 0.5 * gauss(r)]; } },
    clusters: { label: "Two clusters", draw: function (r) { var s = r() < 0.5 ? -1 : 1; return [s * 0.9 + 0.44 * gauss(r), s * 0.0 + gauss(r)]; } },
    ring: { label: "Ring", draw: function (r) { var a = 2 * Math.PI * r(), d = Math.SQRT2 + 0.1 * gauss(r); return [d * Math.cos(a), d * Math.sin(a)]; } },
    cross: { label: "Cross (x, ±x): Gaussian along both axes", draw: function (r) { var g = gauss(r); return [g, r() < 0.5 ? g : -g]; } }
  };
  function setupSlicing(fig, body) {
    var cloud = select(Object.keys(CLOUDS).map(function (k) { return { value: k, label: CLOUDS[k].label }; }), "gaussian");
    var m = range(1, 16, 1, 4), mOut = el("output"), seed = 7, redraw = el("button", { type: "button", text: "New directions" });
    var axisAligned = el("input", { type: "checkbox" });
    var scatter = el("canvas", { role: "img" }), bars = el("canvas", { role: "img" });
    var verdict = el("p", { class: "explorer-result", "aria-live": "polite" });
    body.appendChild(el("h4", { text: "Slicing a 2-D cloud" }));
    body.appendChild(el("div", { class: "explorer-controls" }, [
      el("span", {}, [labelled("Cloud", cloud), cloud]),
      el("span", {}, [labelled("Directions M", m), m, mOut]),
      el("span", {}, [axisAligned, labelled("only the two axes", axisAligned)]),
      redraw]));
    body.appendChild(el("div", { class: "explorer-panels" }, [scatter, bars]));
    body.appendChild(verdict);
    var N = 512, nullCache = null;
    function threshold() {  // 95th percentile of the statistic for N(0, 1) samples of size N (Monte Carlo)
      if (nullCache) return nullCache;
      var r = rng(99), stats = [];
      for (var j = 0; j < 200; j++) { var x = []; for (var i = 0; i < N; i++) x.push(gauss(r)); stats.push(eppsPulley(x).value); }
      stats.sort(function (a, b) { return a - b; });
      return (nullCache = stats[Math.floor(0.95 * stats.length)]);
    }
    function update() {
      // seed 18: a cloud whose Gaussian parts are typical (each slice of the Gaussian cloud well under the
      // 95% level); any seed shows the same on average, but one in twenty slices of N(0, I) fails by chance
      var r = rng(18), pts = [];
      for (var i = 0; i < N; i++) pts.push(CLOUDS[cloud.value].draw(r));
      var M = +m.value, rd = rng(seed), dirs = [];
      if (axisAligned.checked) { dirs = [[1, 0], [0, 1]]; M = 2; }
      else for (var j = 0; j < M; j++) { var a = Math.PI * rd(); dirs.push([Math.cos(a), Math.sin(a)]); }
      m.disabled = axisAligned.checked;
      mOut.textContent = String(M);
      var stats = dirs.map(function (d) { return eppsPulley(pts.map(function (p) { return p[0] * d[0] + p[1] * d[1]; })).value; });
      var w = 300, h = 240, ctx = fit(scatter, w, h), s = axes(ctx, w, h, 20, [-4, 4], [-4, 4]);
      ctx.fillStyle = COLORS[0] + "88";
      pts.forEach(function (p) { ctx.fillRect(s.x(p[0]) - 1, s.y(p[1]) - 1, 2.5, 2.5); });
      var thr = threshold();
      dirs.forEach(function (d, j) {
        line(ctx, [[s.x(-4 * d[0]), s.y(-4 * d[1])], [s.x(4 * d[0]), s.y(4 * d[1])]], stats[j] > thr ? COLORS[3] : COLORS[2], 1.5);
      });
      var ctx2 = fit(bars, w, h), ymax = Math.max(thr * 2, Math.max.apply(null, stats)) * 1.1;
      var s2 = axes(ctx2, w, h, 28, [0, M], [0, ymax]);
      stats.forEach(function (v, j) {
        ctx2.fillStyle = v > thr ? COLORS[3] : COLORS[2];
        var x0 = s2.x(j + 0.15), x1 = s2.x(j + 0.85);
        ctx2.fillRect(x0, s2.y(v), x1 - x0, s2.y(0) - s2.y(v));
      });
      line(ctx2, [[s2.x(0), s2.y(thr)], [s2.x(M), s2.y(thr)]], textColor(), 1, [4, 3]);
      legend(ctx2, [["slice statistic × N", COLORS[2]], ["above the 95% level of N(0,1)", COLORS[3]]], 34, 16);
      var worst = Math.max.apply(null, stats), caught = stats.filter(function (v) { return v > thr; }).length;
      verdict.textContent = caught
        ? caught + " of " + M + " slices exceed the level a Gaussian sample of N = " + N + " passes 95% of the time (" + thr.toFixed(2) + "): SIGReg sees a non-Gaussian cloud."
        : "No slice exceeds the 95% level (" + thr.toFixed(2) + ", largest " + worst.toFixed(2) + "): SIGReg sees nothing wrong with this cloud" +
          (cloud.value === "gaussian" ? "." : ", although it is not Gaussian.");
      scatter.setAttribute("aria-label", "Point cloud (" + CLOUDS[cloud.value].label + ") with " + M + " slicing directions");
      bars.setAttribute("aria-label", "Statistic of each slice: " + stats.map(function (v) { return v.toFixed(2); }).join(", "));
    }
    cloud.addEventListener("change", update); m.addEventListener("input", update); axisAligned.addEventListener("change", update);
    redraw.addEventListener("click", function () { seed += 1; update(); });
    update();
  }

  /* ---------- thumbnails from the atlas (10 x 10 images of 32 px per tile) ---------- */
  function Atlas(urls) {
    this.urls = urls; this.images = {};
  }
  Atlas.prototype.tile = function (t) {
    var self = this;
    if (!this.images[t]) {
      this.images[t] = new Promise(function (resolve, reject) {
        var img = new Image();
        img.onload = function () { resolve(img); };
        img.onerror = function () { reject(new Error("could not load " + self.urls[t])); };
        img.src = self.urls[t];
      });
    }
    return this.images[t];
  };
  Atlas.prototype.draw = function (canvas, index, size) {
    var ctx = fit(canvas, size, size), cell = index % 100;
    ctx.imageSmoothingEnabled = false;
    return this.tile(Math.floor(index / 100)).then(function (img) {
      ctx.drawImage(img, (cell % 10) * 32, Math.floor(cell / 10) * 32, 32, 32, 0, 0, size, size);
    });
  };

  /* ---------- embedding map ---------- */
  function setupEmbedding(fig, body, config) {
    var models = config.models, atlas = config.atlas ? new Atlas(config.atlas) : null;
    var extent = config.extent || 1;  // the same square axes for every model (site_builder/site/explorers.py)
    var first = models.findIndex(function (m) { return m.url; });
    var picker = select(models.map(function (m, i) { return { value: i, label: m.name + (m.url ? "" : " (pending)"), disabled: !m.url }; }), first);
    var indexInput = el("input", { type: "number", min: 0, max: 9999, step: 1, placeholder: "0-9999", class: "js-index" });
    var plot = el("div", { class: "explorer-plot" });
    var preview = el("canvas", { class: "explorer-thumb", role: "img", "aria-label": "No image selected" });
    var previewText = el("p", { class: "explorer-caption", "aria-live": "polite", text: "Hover a point to see its image." });
    var neighbours = el("div", { class: "explorer-neighbours", "aria-live": "polite" });
    var info = el("p", { class: "explorer-note" });
    body.appendChild(el("div", { class: "explorer-controls" }, [
      el("span", {}, [labelled("Model", picker), picker]),
      el("span", {}, [labelled("Test image #", indexInput), indexInput])]));
    // The super-class key is ours, not Plotly's: 20 long names beside the map left it a fraction of the
    // width, and buttons are reachable from the keyboard.
    var key = el("div", { class: "explorer-legend", role: "group", "aria-label": "Super-classes: press one to hide or show it, Shift-press to show it alone" });
    body.appendChild(el("div", { class: "explorer-split" }, [plot, el("div", { class: "explorer-side" }, [preview, previewText, neighbours])]));
    body.appendChild(key);
    body.appendChild(info);
    var data = null, selected = null, shown = [];

    function buildKey() {
      if (key.childNodes.length) return;
      data.coarse_names.forEach(function (name, c) {
        shown[c] = true;
        var swatch = el("span", { class: "explorer-swatch", "aria-hidden": "true" });
        swatch.style.background = COLORS[c];
        var b = el("button", { type: "button", "aria-pressed": "true" }, [swatch]);
        b.appendChild(document.createTextNode(name.replace(/_/g, " ")));
        b.addEventListener("click", function (ev) {
          if (ev.shiftKey) shown = shown.map(function (_, k) { return k === c; });
          else shown[c] = !shown[c];
          applyKey();
        });
        key.appendChild(b);
      });
      var all = el("button", { type: "button", class: "explorer-legend-all", text: "Show all" });
      all.addEventListener("click", function () { shown = shown.map(function () { return true; }); applyKey(); });
      key.appendChild(all);
    }
    function applyKey() {
      key.querySelectorAll("button[aria-pressed]").forEach(function (b, c) { b.setAttribute("aria-pressed", String(shown[c])); });
      Plotly.restyle(plot, { visible: shown.slice() }, shown.map(function (_, c) { return c; }));
    }

    function describe(i) {
      return data.fine_names[data.fine[i]] + " (" + data.coarse_names[data.coarse[i]].replace(/_/g, " ") + ") · test #" + i;
    }
    function showImage(i) {
      previewText.textContent = describe(i);
      preview.setAttribute("aria-label", "Test image " + i + ": " + data.fine_names[data.fine[i]]);
      fig.dataset.hovered = String(i);
      if (atlas) atlas.draw(preview, i, 128);
    }
    function showNeighbours(i) {
      selected = i;
      fig.dataset.selected = String(i);
      neighbours.textContent = "";
      neighbours.appendChild(el("p", { class: "explorer-caption", text: "8 nearest neighbours of #" + i + " (cosine, full embedding):" }));
      var grid = el("div", { class: "explorer-grid" });
      for (var j = 0; j < data.k; j++) {
        var n = data.neighbours[i * data.k + j];
        var c = el("canvas", { role: "img", "aria-label": "Neighbour " + (j + 1) + ": test image " + n + ", " + data.fine_names[data.fine[n]] });
        var fig_ = el("figure", { class: "explorer-neighbour" }, [c, el("figcaption", { text: data.fine_names[data.fine[n]] + (data.coarse[n] === data.coarse[i] ? "" : " ✗") })]);
        grid.appendChild(fig_);
        if (atlas) atlas.draw(c, n, 64);
      }
      neighbours.appendChild(grid);
      var same = 0;
      for (j = 0; j < data.k; j++) if (data.coarse[data.neighbours[i * data.k + j]] === data.coarse[i]) same++;
      neighbours.appendChild(el("p", { class: "explorer-caption", text: same + " of " + data.k + " share its super-class (✗ marks the others)." }));
      Plotly.restyle(plot, { x: [[data.x[i]]], y: [[data.y[i]]], visible: true }, [20]);
      showImage(i);
    }
    function traces() {
      var out = [];
      for (var c = 0; c < 20; c++) out.push({ type: "scattergl", mode: "markers", name: data.coarse_names[c].replace(/_/g, " "),
        x: [], y: [], customdata: [], marker: { size: 4, color: COLORS[c], opacity: 0.7 }, hoverinfo: "none", visible: shown[c] !== false });
      for (var i = 0; i < data.count; i++) {
        var t = out[data.coarse[i]];
        t.x.push(data.x[i]); t.y.push(data.y[i]); t.customdata.push(i);
      }
      out.push({ type: "scattergl", mode: "markers", name: "selected", showlegend: false, hoverinfo: "none",
        x: [], y: [], visible: false, marker: { size: 14, color: "rgba(0,0,0,0)", line: { width: 2, color: textColor() } } });
      return out;
    }
    function show(i) {
      fig.setAttribute("aria-busy", "true");
      return Promise.all([loadData(models[i].url), loadPlotly()]).then(function (loaded) {
        var d = loaded[0];
        data = d;
        var layout = {
          paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: textColor(), size: 12 },
          margin: { l: 40, r: 10, t: 10, b: 40 }, hovermode: "closest", dragmode: "zoom",
          showlegend: false,  // the key below the map (buildKey)
          xaxis: { range: [-extent, extent], title: { text: "PC 1" }, zeroline: false, gridcolor: cssVar("--rule", "#ddd") },
          yaxis: { range: [-extent, extent], title: { text: "PC 2" }, zeroline: false, scaleanchor: "x", gridcolor: cssVar("--rule", "#ddd") }
        };
        buildKey();
        return Plotly.react(plot, traces(), layout, { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] });
      }).then(function () {
        if (!plot.dataset.bound) {
          plot.dataset.bound = "1";
          plot.on("plotly_hover", function (ev) { var p = ev.points[0]; if (p && p.customdata !== undefined) showImage(p.customdata); });
          plot.on("plotly_click", function (ev) { var p = ev.points[0]; if (p && p.customdata !== undefined) { indexInput.value = p.customdata; showNeighbours(p.customdata); } });
        }
        info.textContent = "PCA of the L2-normalised embeddings of all " + data.count + " test images at " + data.resolution +
          " px; the two components explain " + (100 * (data.explained[0] + data.explained[1])).toFixed(1) +
          "% of the variance; RMS distance to the centre " + data.spread.toFixed(3) + " (axes share one scale for every model).";
        if (selected !== null) showNeighbours(selected);
        fig.dataset.model = models[i].name;
        fig.removeAttribute("aria-busy");
        fig.dataset.ready = "1";
      });
    }
    picker.addEventListener("change", function () { show(+picker.value); });
    indexInput.addEventListener("change", function () {
      var i = parseInt(indexInput.value, 10);
      if (data && i >= 0 && i < data.count) showNeighbours(i);
    });
    if (first < 0) { body.appendChild(el("p", { text: "The data of every model is pending." })); return Promise.resolve(); }
    return show(first);
  }

  /* ---------- attention viewer ---------- */
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function viridis(v) {
    v = Math.max(0, Math.min(1, v)) * (VIRIDIS.length - 1);
    var i = Math.min(Math.floor(v), VIRIDIS.length - 2), f = v - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [0, 1, 2].map(function (c) { return Math.round(a[c] + f * (b[c] - a[c])); });
  }
  function attentionMetrics(maps, threshold) {  // as site_builder/analyze/metrics.py, for the map(s) shown
    function one(p) {
      var h = 0, mx = 0, sparse = 0;
      p.forEach(function (v) { if (v > 0) h -= v * Math.log(v); if (v > mx) mx = v; if (v < threshold) sparse++; });
      return { entropy: h, max: mx, sparsity: sparse / p.length };
    }
    var per = maps.map(one), mean = function (k) { return per.reduce(function (s, m) { return s + m[k]; }, 0) / per.length; };
    var out = { entropy: mean("entropy"), max: mean("max"), sparsity: mean("sparsity"), uniform: Math.log(maps[0].length) };
    if (maps.length > 1) {
      var sim = 0, pairs = 0;
      for (var a = 0; a < maps.length; a++) for (var b = a + 1; b < maps.length; b++) {
        var dot = 0, na = 0, nb = 0;
        for (var i = 0; i < maps[a].length; i++) { dot += maps[a][i] * maps[b][i]; na += maps[a][i] * maps[a][i]; nb += maps[b][i] * maps[b][i]; }
        sim += dot / Math.sqrt(na * nb); pairs++;
      }
      out.similarity = sim / pairs;
    }
    return out;
  }
  function setupAttention(fig, body, config) {
    var models = config.models, first = models.findIndex(function (m) { return m.url; });
    var modelPick = select(models.map(function (m, i) { return { value: i, label: m.name + (m.url ? "" : " (pending)"), disabled: !m.url }; }), first);
    var imagePick = el("select"), layerPick = el("select"), headPick = el("select");
    var overlay = el("input", { type: "checkbox", checked: "" });
    var canvas = el("canvas", { class: "explorer-attention", role: "img" });
    var table = el("table", { class: "explorer-metrics" });
    body.appendChild(el("div", { class: "explorer-controls" }, [
      el("span", {}, [labelled("Model", modelPick), modelPick]),
      el("span", {}, [labelled("Image", imagePick), imagePick]),
      el("span", {}, [labelled("Layer", layerPick), layerPick]),
      el("span", {}, [labelled("Head", headPick), headPick]),
      el("span", {}, [overlay, labelled("over the image", overlay)])]));
    body.appendChild(el("div", { class: "explorer-split" }, [canvas, table]));
    var data = null, pictures = {};
    function options(s, items, keep) {
      var old = s.value;
      s.textContent = "";
      items.forEach(function (o) { s.appendChild(el("option", { value: String(o.value), text: o.label })); });
      if (keep && items.some(function (o) { return String(o.value) === old; })) s.value = old;
    }
    function picture(img) {
      // only an embedded PNG: a URL in a foreign export must not make the page request another host
      if (!/^data:image\/png;base64,[A-Za-z0-9+\/=]+$/.test(img.png)) return Promise.reject(new Error("image " + img.index + " is not an embedded PNG"));
      if (!pictures[img.png]) pictures[img.png] = new Promise(function (resolve) { var im = new Image(); im.onload = function () { resolve(im); }; im.src = img.png; });
      return pictures[img.png];
    }
    function draw() {
      var img = data.images[+imagePick.value], layer = +layerPick.value, head = headPick.value, g = data.grid;
      var heads = img.attention[layer].map(function (row) { return row.map(function (v) { return v / data.scale; }); });
      var shown = head === "mean" ? heads[0].map(function (_, i) { return heads.reduce(function (s, h) { return s + h[i]; }, 0) / heads.length; }) : heads[+head];
      var size = Math.min(320, body.clientWidth - 20 || 320);
      return picture(img).then(function (im) {
        var ctx = fit(canvas, size, size), cell = size / g, mx = Math.max.apply(null, shown);
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(im, 0, 0, size, size);
        for (var r = 0; r < g; r++) for (var c = 0; c < g; c++) {
          var col = viridis(shown[r * g + c] / mx);
          ctx.fillStyle = "rgba(" + col.join(",") + "," + (overlay.checked ? 0.6 : 1) + ")";
          ctx.fillRect(c * cell, r * cell, Math.ceil(cell), Math.ceil(cell));
        }
        var m = attentionMetrics(head === "mean" ? heads : [shown], data.sparsity_threshold);
        var what = head === "mean" ? "mean over the " + heads.length + " heads' values" : "head " + (+head + 1);
        var rows = [["entropy (nats)", m.entropy.toFixed(3) + " of " + m.uniform.toFixed(2) + " (uniform)"],
          ["max attention", m.max.toFixed(3) + " (uniform " + (1 / shown.length).toFixed(4) + ")"],
          ["sparsity (< " + data.sparsity_threshold + ")", (100 * m.sparsity).toFixed(1) + "%"]];
        if (m.similarity !== undefined) rows.push(["head similarity", m.similarity.toFixed(3)]);
        table.innerHTML = "";
        table.appendChild(el("caption", { text: img.label + " · layer " + (layer + 1) + " · " + what }));
        var tb = el("tbody");
        rows.forEach(function (row) { tb.appendChild(el("tr", {}, [el("th", { scope: "row", text: row[0] }), el("td", { text: row[1] })])); });
        table.appendChild(tb);
        canvas.setAttribute("aria-label", "CLS attention of " + img.label + " (test #" + img.index + "), layer " + (layer + 1) + ", " + (head === "mean" ? "mean of the heads" : "head " + (+head + 1)) + ", over a " + g + "×" + g + " grid");
        fig.dataset.entropy = m.entropy.toFixed(6);
        fig.dataset.ready = "1";
      });
    }
    function show(i) {
      return loadData(models[i].url).then(function (d) {
        var prev = data, oldLayer = +layerPick.value;
        data = d;
        options(imagePick, d.images.map(function (im, k) { return { value: k, label: im.label + " (#" + im.index + ")" }; }), true);
        var layers = []; for (var l = 0; l < d.layers; l++) layers.push({ value: l, label: String(l + 1) });
        options(layerPick, layers, true);
        // the last layer (whose CLS output is the representation) stays the last across models of another depth
        if (!prev || oldLayer === prev.layers - 1 || oldLayer >= d.layers) layerPick.value = String(d.layers - 1);
        var heads = [{ value: "mean", label: "mean of heads" }];
        for (var h = 0; h < d.heads; h++) heads.push({ value: h, label: String(h + 1) });
        options(headPick, heads, true);
        fig.dataset.model = models[i].name;
        return draw();
      });
    }
    modelPick.addEventListener("change", function () { show(+modelPick.value); });
    [imagePick, layerPick, headPick, overlay].forEach(function (c) { c.addEventListener("change", draw); });
    if (first < 0) { body.appendChild(el("p", { text: "The data of every model is pending." })); return Promise.resolve(); }
    return show(first);
  }

  /* ---------- set-up when scrolled near ---------- */
  var SETUP = { sigreg: setupSigreg, embedding: setupEmbedding, attention: setupAttention };
  function start(fig) {
    if (fig.dataset.started) return;
    fig.dataset.started = "1";
    var body = fig.querySelector(".explorer-body");
    var config = JSON.parse(fig.querySelector(".explorer-config").textContent);
    body.textContent = "";
    var t0 = performance.now();
    Promise.resolve().then(function () { return SETUP[config.kind](fig, body, config); }).then(function () {
      fig.dataset.firstDrawMs = String(Math.round(performance.now() - t0));
    }).catch(function (err) {
      body.appendChild(el("p", { class: "explorer-error", text: "This explorer could not be drawn: " + err.message }));
      console.error(err);
    });
  }
  var figures = Array.prototype.slice.call(document.querySelectorAll("figure[data-explorer]"));
  if (!("IntersectionObserver" in window)) { figures.forEach(start); }
  else {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { observer.unobserve(e.target); start(e.target); } });
    }, { rootMargin: "400px 0px" });
    figures.forEach(function (f) { observer.observe(f); });
  }
  window.siteExplorers = { eppsPulley: eppsPulley, sample: sample, start: start };
})();
