/* Linked charts (issue 15): the charts of one `group:` share hover and x zoom. Hovering step s on one
   shows every series at s on the others (unified x hover); zooming or resetting x on one applies to
   all. site.js announces each chart it draws with a "chart:drawn" event. */
(function () {
  "use strict";
  var groups = {};  // name -> {plots: [], range: null | [a, b]}
  var syncing = false;

  function plotsOf(name, except) {
    return groups[name].plots.filter(function (p) { return p !== except; });
  }

  function link(el) {
    var name = el.dataset.group, plot = el.querySelector(".js-plotly-plot");
    if (!name || !plot || plot.dataset.linked) return;
    plot.dataset.linked = "1";
    var group = groups[name] = groups[name] || { plots: [], range: null };
    group.plots.push(plot);
    var update = { hovermode: "x unified" };
    if (group.range) update["xaxis.range"] = group.range.slice();
    Plotly.relayout(plot, update);
    // draw the group's other charts now (they may be below the fold): hover and zoom must reach them
    document.querySelectorAll('.chart[data-group="' + CSS.escape(name) + '"]').forEach(function (other) {
      if (window.siteCharts && !other.dataset.drawn) window.siteCharts.draw(other);
    });

    plot.on("plotly_hover", function (ev) {
      if (syncing || !ev.points.length) return;
      var x = ev.points[0].x;
      syncing = true;
      try { plotsOf(name, plot).forEach(function (p) { Plotly.Fx.hover(p, { xval: x }, "xy"); }); }
      finally { syncing = false; }
    });
    plot.on("plotly_unhover", function () {
      if (syncing) return;
      syncing = true;
      try { plotsOf(name, plot).forEach(function (p) { Plotly.Fx.unhover(p); }); }
      finally { syncing = false; }
    });
    plot.on("plotly_relayout", function (ev) {
      if (syncing) return;
      var update = null;
      if (ev["xaxis.autorange"]) { update = { "xaxis.autorange": true }; group.range = null; }
      else if (ev["xaxis.range[0]"] !== undefined) group.range = [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
      else if (ev["xaxis.range"]) group.range = ev["xaxis.range"].slice();
      else return;
      if (!update) update = { "xaxis.range": group.range.slice() };
      syncing = true;
      var done = plotsOf(name, plot).map(function (p) { return Plotly.relayout(p, Object.assign({}, update)); });
      Promise.all(done).then(function () { syncing = false; }, function () { syncing = false; });
    });
  }

  document.addEventListener("chart:drawn", function (ev) { link(ev.target); });
})();
