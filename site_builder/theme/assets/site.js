/* Draws the pages' charts with Plotly when they near the viewport: only then are Plotly (the URL in this
   script's data-plotly) and the chart's figure (data/charts/<id>.js, which calls siteChartData) loaded,
   each by a <script> element, so it works from file:// too. Line charts get wandb's EMA smoothing
   (debiased, as in TensorBoard), a log-y toggle and a hover listing every series at that x; panels charts
   get a frame slider. Loaded only by pages that have charts. */
(function () {
  "use strict";
  var PLOTLY_URL = document.currentScript && document.currentScript.getAttribute("data-plotly");
  /* Plotly's mode bar without anything that uploads (plotly.js 4 shows "send to cloud" by default). */
  var CONFIG = { responsive: true, displaylogo: false, showSendToCloud: false, showLink: false,
    modeBarButtonsToRemove: ["sendChartToCloud", "sendDataToCloud"] };
  var loaded = {};
  var figures = {};  // chart id -> [resolve, promise]

  function loadScript(url) {
    if (!loaded[url]) {
      loaded[url] = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = url;
        script.onload = resolve;
        script.onerror = function () { reject(new Error("could not load " + url)); };
        document.head.appendChild(script);
      });
    }
    return loaded[url];
  }

  function waiting(id) {
    if (!figures[id]) {
      var entry = [];
      entry[1] = new Promise(function (resolve) { entry[0] = resolve; });
      figures[id] = entry;
    }
    return figures[id];
  }

  /* called by data/charts/<id>.js */
  window.siteChartData = function (id, fig) { waiting(id)[0](fig); };

  function figureOf(el) {
    var id = el.getAttribute("data-chart");
    return loadScript(el.getAttribute("data-src")).then(function () { return waiting(id)[1]; });
  }
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

  /* wandb's "Exponential moving average" smoothing: last = w*last + (1-w)*y, divided by the
     debias term 1 - w^n so early points are not pulled towards zero. Non-finite values pass through. */
  function ema(ys, weight) {
    if (!(weight > 0)) return ys.slice();
    var last = 0, n = 0, out = new Array(ys.length);
    for (var i = 0; i < ys.length; i++) {
      var y = ys[i];
      if (y === null || !isFinite(y)) { out[i] = y; continue; }
      last = last * weight + (1 - weight) * y;
      n += 1;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function theme() {
    var style = getComputedStyle(document.body);
    var fg = style.color, rule = style.getPropertyValue("--rule").trim() || "#ddd";
    return { fg: fg, rule: rule };
  }

  function baseLayout(fig, t) {
    var layout = {
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: t.fg, family: "system-ui, sans-serif", size: 13 },
      margin: { l: 60, r: 20, t: 30, b: 50 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      hovermode: "x unified"  // every series' value at the x under the pointer, in legend order
    };
    var given = fig.layout || {};
    for (var k in given) layout[k] = JSON.parse(JSON.stringify(given[k]));
    ["xaxis", "yaxis"].forEach(function (axis) {
      layout[axis] = layout[axis] || {};
      layout[axis].gridcolor = t.rule;
      layout[axis].zerolinecolor = t.rule;
    });
    return layout;
  }

  /* A series' band (`band` in the chart block: e.g. min to max over seeds): one filled polygon along the
     high bound and back along the low one, in the series' colour, behind every line, out of legend and
     hover (a legend click on the series hides it too). Not smoothed. */
  function bandTraces(fig) {
    var bands = [];
    fig.traces.forEach(function (tr, i) {
      if (!tr.band) return;
      bands.push({ type: "scatter", mode: "lines", name: tr.name, legendgroup: tr.name, showlegend: false,
        hoverinfo: "skip", x: tr.band.x.concat(tr.band.x.slice().reverse()),
        y: tr.band.hi.concat(tr.band.lo.slice().reverse()), fill: "toself",
        fillcolor: PALETTE[i % PALETTE.length], opacity: 0.2, line: { width: 0 } });
    });
    return bands;
  }

  var FEW_POINTS = 30;

  function seriesTraces(fig, smoothing) {
    var traces = bandTraces(fig);
    fig.traces.forEach(function (tr, i) {
      var color = PALETTE[i % PALETTE.length];
      // a short line (a sweep's few points, a run's epochs) marks its points: a one-point line draws nothing
      var mode = fig.type === "scatter" ? "markers" : tr.x.length <= FEW_POINTS ? "lines+markers" : "lines";
      if (fig.type === "bar") {
        traces.push({ type: "bar", name: tr.name, x: tr.x, y: tr.y, marker: { color: color } });
        return;
      }
      // the raw series, faint behind the smoothed one (as wandb draws it); hidden at smoothing 0
      traces.push({ type: "scatter", mode: mode, x: tr.x, y: tr.y, name: tr.name, legendgroup: tr.name,
        showlegend: false, hoverinfo: "skip", opacity: smoothing > 0 ? 0.25 : 0,
        line: { color: color, width: 1 }, marker: { color: color } });
      traces.push({ type: "scatter", mode: mode, x: tr.x, y: ema(tr.y, smoothing), name: tr.name,
        legendgroup: tr.name, line: { color: color, width: 2 }, marker: { color: color } });
    });
    return traces;
  }

  function drawSeries(el, plot, fig) {
    var t = theme();
    var slider = el.querySelector(".js-smoothing"), logY = el.querySelector(".js-log-y");
    var smoothing = slider ? parseFloat(slider.value) : fig.smoothing;
    var layout = baseLayout(fig, t);
    layout.yaxis.type = (logY ? logY.checked : fig.log_y) ? "log" : "linear";
    Plotly.newPlot(plot, seriesTraces(fig, smoothing), layout, CONFIG);
    var first = fig.traces.filter(function (tr) { return tr.band; }).length;  // bands first: series i is first + 2i, + 2i + 1
    if (slider) {
      slider.addEventListener("input", function () {
        var w = parseFloat(slider.value);
        el.querySelector(".js-smoothing-value").textContent = w.toFixed(2);
        var ys = [], opacity = [], idx = [];
        fig.traces.forEach(function (tr, i) {
          idx.push(first + 2 * i, first + 2 * i + 1);
          ys.push(tr.y, ema(tr.y, w));
          opacity.push(w > 0 ? 0.25 : 0, 1);
        });
        Plotly.restyle(plot, { y: ys, opacity: opacity }, idx);
      });
    }
    if (logY) {
      logY.addEventListener("change", function () {
        Plotly.relayout(plot, { "yaxis.type": logY.checked ? "log" : "linear" });
      });
    }
  }

  /* Panels: a comparison grid, one row per model and one column per image, drawn on canvases with
     nearest-neighbour scaling so that every patch stays a square. Heat maps (8-bit grey sprites, each
     cell scaled to its own range) are coloured with viridis and, where the figure has the input
     pictures, laid translucently over them. A frame slider (layer), a view choice (head) and an
     opacity slider switch what is drawn; a click or tap on a cell shows it enlarged. */
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

  function viridis(v) {
    var x = Math.max(0, Math.min(1, v)) * (VIRIDIS.length - 1), i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
    return VIRIDIS[i].map(function (c, k) { return Math.round(c + f * (VIRIDIS[i + 1][k] - c)); });
  }

  function loadImage(src) {
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () { resolve(img); };
      img.onerror = function () { reject(new Error("a panel image could not be decoded")); };
      img.src = src;
    });
  }

  /* grey sprite -> RGBA canvas: viridis, and (over a picture) transparent where attention is lowest */
  function colourSprite(img, overlay) {
    var c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    var ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    var data = ctx.getImageData(0, 0, c.width, c.height), px = data.data;
    for (var i = 0; i < px.length; i += 4) {
      var v = px[i] / 255, rgb = viridis(overlay ? 0.3 + 0.7 * v : v);
      px[i] = rgb[0]; px[i + 1] = rgb[1]; px[i + 2] = rgb[2];
      px[i + 3] = overlay ? Math.round(255 * Math.min(1, 1.3 * v)) : 255;
    }
    ctx.putImageData(data, 0, 0);
    return c;
  }

  function label(text) { return String(text).replace(/_/g, " "); }

  function drawPanels(el, plot, fig) {
    var sources = [];
    if (fig.inputs) sources.push(fig.inputs.png);
    fig.rows.forEach(function (row) { Object.keys(row.views).forEach(function (v) { sources.push(row.views[v].png); }); });
    return Promise.all(sources.map(loadImage)).then(function (images) {
      var k = 0, inputs = fig.inputs ? images[k++] : null;
      fig.rows.forEach(function (row) {
        Object.keys(row.views).forEach(function (v) {
          var view = row.views[v], img = images[k++];
          view.sprite = view.kind === "z" ? colourSprite(img, !!inputs) : img;
        });
      });
      buildGrid(el, plot, fig, inputs);
    });
  }

  function buildGrid(el, plot, fig, inputs) {
    var state = { frame: 0, view: fig.views.indexOf("mean") >= 0 ? "mean" : fig.views[0], opacity: 0.7 };
    var controls = el.querySelector(".chart-controls");
    if (!controls) { controls = document.createElement("div"); controls.className = "chart-controls"; el.appendChild(controls); }
    if (fig.views.length > 1) {
      var pick = document.createElement("label");
      pick.textContent = "view ";
      var select = document.createElement("select");
      select.className = "js-view";
      fig.views.forEach(function (v) {
        var o = document.createElement("option");
        o.value = v; o.textContent = v; o.selected = v === state.view;
        select.appendChild(o);
      });
      select.addEventListener("change", function () { state.view = select.value; redraw(); });
      pick.appendChild(select);
      controls.appendChild(pick);
    }
    var hasHeat = fig.rows.some(function (r) { return Object.keys(r.views).some(function (v) { return r.views[v].kind === "z"; }); });
    if (inputs && hasHeat) {
      var op = document.createElement("label");
      op.innerHTML = 'heat-map opacity <input class="js-opacity" type="range" min="0" max="1" step="0.05" value="0.7">';
      var range = op.querySelector("input");
      range.addEventListener("input", function () { state.opacity = parseFloat(range.value); redraw(); });
      controls.appendChild(op);
    }
    plot.style.height = "auto";
    plot.textContent = "";
    var grid = document.createElement("div");
    grid.className = "panel-grid";
    grid.style.gridTemplateColumns = "max-content repeat(" + fig.images.length + ", minmax(96px, 1fr))";
    grid.appendChild(document.createElement("span"));
    fig.images.forEach(function (name) {
      var h = document.createElement("span");
      h.className = "panel-col"; h.textContent = label(name);
      grid.appendChild(h);
    });
    var cells = [];
    var rows = (inputs ? [{ label: "input", input: true }] : []).concat(fig.rows);
    rows.forEach(function (row) {
      var head = document.createElement("span");
      head.className = "panel-row"; head.textContent = row.label;
      grid.appendChild(head);
      fig.images.forEach(function (name, i) {
        var button = document.createElement("button");
        button.type = "button"; button.className = "panel-cell";
        var canvas = document.createElement("canvas");
        button.appendChild(canvas);
        button.addEventListener("click", function () { enlarge(cell); });
        grid.appendChild(button);
        var cell = { row: row, image: i, canvas: canvas, button: button };
        cells.push(cell);
      });
    });
    plot.appendChild(grid);
    var uniform = fig.rows.some(function (r) { return Object.keys(r.views).some(function (v) { return r.views[v].scale === "uniform"; }); });
    if (uniform) {
      var legend = document.createElement("div");
      legend.className = "panel-legend";
      legend.innerHTML = '<span>uniform (1/N) or less</span><span class="panel-ramp"></span><span>' + fig.uniform_cap + ' × uniform or more (log scale)</span>';
      legend.querySelector(".panel-ramp").style.background = "linear-gradient(to right, " +
        [0, 0.25, 0.5, 0.75, 1].map(function (v) { var c = viridis(0.3 + 0.7 * v); return "rgba(" + c.join(",") + "," + Math.min(1, 1.3 * v) + ")"; }).join(", ") + ")";
      plot.appendChild(legend);
    }

    function caption(cell) {
      var parts = [cell.row.label, label(fig.images[cell.image])].filter(Boolean);
      if (cell.row.input) return parts.join(" · ");
      if (fig.frames.length > 1) parts.push(fig.frame_label + " " + fig.frames[state.frame].label);
      if (state.view) parts.push(state.view);
      var view = cell.row.views[state.view];
      var range = view && view.kind === "z" ? view.range[state.frame][cell.image] : null;
      var text = parts.join(" · ");
      if (range === "nan") return text + ": no values (NaN in the data file)";
      if (!range) return text;
      if (view.scale === "uniform") {
        var n = view.cell[0] * view.cell[1];
        return text + ": largest weight " + range[1].toPrecision(3) + ", " + (range[1] * n).toPrecision(3) + " times uniform (1/" + n + ")";
      }
      return text + " (colour scale " + range[0].toPrecision(3) + " to " + range[1].toPrecision(3) + ")";
    }

    function paint(cell, canvas, size) {
      var dpr = window.devicePixelRatio || 1, w = Math.round(size * dpr);
      if (canvas.width !== w) { canvas.width = w; canvas.height = w; }
      var ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, w, w);
      var i = cell.image, drew = false;
      if (inputs && fig.inputs.present[i]) {
        var ic = fig.inputs.cell;
        ctx.globalAlpha = 1;
        ctx.drawImage(inputs, i * ic[1], 0, ic[1], ic[0], 0, 0, w, w);
        drew = true;
      }
      if (!cell.row.input) {
        var view = cell.row.views[state.view];
        var present = view && view.range[state.frame][i] !== null;
        if (present && view.range[state.frame][i] === "nan") {
          ctx.fillStyle = "rgba(128, 128, 128, 0.75)";  // no values: a grey veil over the picture
          ctx.fillRect(0, 0, w, w);
          drew = true;
        } else if (present) {
          var c = view.cell;
          if (view.kind === "z" && drew) {  // dim the picture a little so that the heat map stands out
            ctx.fillStyle = "rgba(0, 0, 0, " + (0.45 * state.opacity) + ")";
            ctx.fillRect(0, 0, w, w);
          }
          ctx.globalAlpha = view.kind === "z" && drew ? state.opacity : 1;
          ctx.drawImage(view.sprite, i * c[1], state.frame * c[0], c[1], c[0], 0, 0, w, w);
          drew = true;
        } else {
          drew = false;
          ctx.clearRect(0, 0, w, w);
        }
      }
      ctx.globalAlpha = 1;
      return drew;
    }

    function redraw() {
      cells.forEach(function (cell) {
        var drew = paint(cell, cell.canvas, cell.canvas.clientWidth || 96);
        cell.button.disabled = !drew;
        cell.button.setAttribute("aria-label", "Enlarge " + caption(cell));
        cell.button.title = caption(cell);
      });
    }

    function enlarge(cell) {
      var dialog = document.createElement("dialog");
      dialog.className = "panel-dialog";
      var big = document.createElement("canvas");
      var text = document.createElement("p");
      var close = document.createElement("button");
      close.type = "button"; close.textContent = "Close"; close.className = "panel-close";
      dialog.appendChild(big); dialog.appendChild(text); dialog.appendChild(close);
      document.body.appendChild(dialog);
      var size = Math.floor(Math.min(window.innerWidth - 64, window.innerHeight * 0.7, 640));  // inside the dialog's padding
      big.style.width = size + "px"; big.style.height = size + "px";
      paint(cell, big, size);
      text.textContent = caption(cell);
      function done() { dialog.close(); }
      close.addEventListener("click", done);
      dialog.addEventListener("click", function (e) { if (e.target === dialog || e.target === big) done(); });
      dialog.addEventListener("close", function () { dialog.remove(); cell.button.focus(); });
      dialog.showModal();
      close.focus();
    }

    var slider = el.querySelector(".js-frame");
    if (slider) {
      slider.addEventListener("input", function () {
        state.frame = parseInt(slider.value, 10);
        (el.querySelector(".js-frame-value") || slider.nextElementSibling).textContent = fig.frames[state.frame].label;
        redraw();
      });
    }
    redraw();
    if (window.ResizeObserver) new ResizeObserver(redraw).observe(grid);
    plot.dataset.panels = "drawn";
  }

  function draw(el) {
    if (el.dataset.drawn) return;
    el.dataset.drawn = "1";
    var plot = el.querySelector(".chart-plot");
    return Promise.all([loadScript(PLOTLY_URL), figureOf(el)]).then(function (loaded) {
      var fig = loaded[1];
      if (fig.type === "panels") return drawPanels(el, plot, fig);  // an image grid: no Plotly figure to resize
      drawSeries(el, plot, fig);
      if (window.ResizeObserver) new ResizeObserver(function () { Plotly.Plots.resize(plot); }).observe(plot);
      el.dispatchEvent(new CustomEvent("chart:drawn", { bubbles: true }));  // linked-charts.js listens
    }).catch(function (err) {
      plot.textContent = "This chart could not be drawn: " + err.message;
      console.error(err);
    });
  }

  // follow the reader's light/dark switch: recolour the text and grid of charts already drawn
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    var recolour = function () {
      var t = theme();
      document.querySelectorAll(".chart .js-plotly-plot").forEach(function (plot) {
        var update = { "font.color": t.fg };
        Object.keys(plot.layout).forEach(function (key) {
          if (/^[xy]axis\d*$/.test(key)) { update[key + ".gridcolor"] = t.rule; update[key + ".zerolinecolor"] = t.rule; }
        });
        Plotly.relayout(plot, update);
      });
    };
    if (scheme.addEventListener) scheme.addEventListener("change", recolour);
  }

  var charts = Array.prototype.slice.call(document.querySelectorAll(".chart"));
  window.addEventListener("beforeprint", function () { charts.forEach(draw); });  // print every chart
  if (!("IntersectionObserver" in window)) { charts.forEach(draw); return; }
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (entry.isIntersecting) { observer.unobserve(entry.target); draw(entry.target); }
    });
  }, { rootMargin: "300px 0px" });
  charts.forEach(function (el) { observer.observe(el); });
  window.siteCharts = { ema: ema, draw: draw };
})();
