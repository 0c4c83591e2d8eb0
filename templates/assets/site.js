/* Draws the pages' charts (figure JSON embedded by the build) with Plotly, when they scroll into view.
   Line charts get wandb's EMA smoothing (debiased, as in TensorBoard) and a log-y toggle;
   panels charts get a frame slider. Loaded only by pages that have charts. */
(function () {
  "use strict";
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
      hovermode: "closest"
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

  function seriesTraces(fig, smoothing) {
    var traces = [];
    var mode = fig.type === "scatter" ? "markers" : "lines";
    fig.traces.forEach(function (tr, i) {
      var color = PALETTE[i % PALETTE.length];
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
    var config = { responsive: true, displaylogo: false };
    Plotly.newPlot(plot, seriesTraces(fig, smoothing), layout, config);
    if (slider) {
      slider.addEventListener("input", function () {
        var w = parseFloat(slider.value);
        slider.nextElementSibling.textContent = w.toFixed(2);
        var ys = [], opacity = [], idx = [];
        fig.traces.forEach(function (tr, i) {
          idx.push(2 * i, 2 * i + 1);
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

  function drawPanels(el, plot, fig) {
    var t = theme();
    var config = { responsive: true, displaylogo: false };
    function show(i) {
      var frame = fig.frames[i];
      var layout = baseLayout({ layout: frame.layout }, t);
      layout.margin = { l: 10, r: 10, t: 40, b: 10 };
      Plotly.react(plot, frame.traces, layout, config);
    }
    show(0);
    var slider = el.querySelector(".js-frame");
    if (slider) {
      slider.addEventListener("input", function () {
        var i = parseInt(slider.value, 10);
        slider.nextElementSibling.textContent = fig.frames[i].label;
        show(i);
      });
    }
  }

  function draw(el) {
    if (el.dataset.drawn) return;
    el.dataset.drawn = "1";
    var plot = el.querySelector(".chart-plot");
    try {
      var fig = JSON.parse(el.querySelector(".chart-data").textContent);
      if (fig.type === "panels") drawPanels(el, plot, fig); else drawSeries(el, plot, fig);
      if (window.ResizeObserver) new ResizeObserver(function () { Plotly.Plots.resize(plot); }).observe(plot);
      el.dispatchEvent(new CustomEvent("chart:drawn", { bubbles: true }));  // linked-charts.js listens
    } catch (err) {
      plot.textContent = "This chart could not be drawn: " + err.message;
      console.error(err);
    }
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
