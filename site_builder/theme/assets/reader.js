/* On every page: the dark-mode toggle (remembered in localStorage), sortable data tables, and hover /
   focus previews of citations, footnotes, equation, figure and table references (as Quarto and MyST do).
   A preview shows the target itself: the reference entry, the footnote, the formula, the caption.
   Targets on other pages are fetched once (over HTTP only; from file:// those links just navigate). */
(function () {
  "use strict";

  /* -- dark mode -------------------------------------------------------------------------------- */
  var root = document.documentElement;
  var toggle = document.querySelector(".theme-toggle");
  function isDark() {
    return root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  }
  function label() {
    if (!toggle) return;
    var dark = isDark();
    toggle.textContent = dark ? "Light" : "Dark";
    toggle.setAttribute("aria-pressed", String(dark));
    toggle.setAttribute("aria-label", dark ? "Switch to light mode" : "Switch to dark mode");
  }
  /* Charts drawn before a switch take the new text and grid colours (site.js reads them when it draws). */
  function recolourCharts() {
    if (!window.Plotly) return;
    var style = getComputedStyle(document.body);
    var fg = style.color, rule = style.getPropertyValue("--rule").trim() || "#ddd";
    document.querySelectorAll(".js-plotly-plot").forEach(function (plot) {
      var update = { "font.color": fg };
      Object.keys(plot.layout || {}).forEach(function (key) {
        if (/^[xy]axis\d*$/.test(key)) { update[key + ".gridcolor"] = rule; update[key + ".zerolinecolor"] = rule; }
      });
      window.Plotly.relayout(plot, update);
    });
  }
  document.addEventListener("themechange", recolourCharts);
  if (toggle) {
    toggle.addEventListener("click", function () {
      root.dataset.theme = isDark() ? "light" : "dark";
      try { localStorage.setItem("theme", root.dataset.theme); } catch (e) { /* private mode: not remembered */ }
      label();
      document.dispatchEvent(new CustomEvent("themechange"));
    });
    label();
  }

  /* -- sortable tables ---------------------------------------------------------------------------- */
  function cellValue(cell, numeric) {
    var text = cell.textContent.trim();
    if (!numeric) return text.toLowerCase();
    var n = parseFloat(text.replace(/[\u2212]/g, "-").replace(/[,%\s]/g, ""));
    return isNaN(n) ? -Infinity : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var body = table.tBodies[0];
    if (!body) return;
    table.querySelectorAll("thead th").forEach(function (th, col) {
      var button = document.createElement("button");
      button.type = "button";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.classList.contains("num");
        var rows = Array.prototype.slice.call(body.rows);
        rows.forEach(function (row, i) { row.dataset.order = row.dataset.order || String(i); });
        rows.sort(function (a, b) {
          var x = cellValue(a.cells[col], numeric), y = cellValue(b.cells[col], numeric);
          var c = x < y ? -1 : x > y ? 1 : Number(a.dataset.order) - Number(b.dataset.order);
          return ascending ? c : -c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });

  /* -- previews ----------------------------------------------------------------------------------- */
  var SELECTOR = "a.citation, a.xref, .footnote-ref a";
  var box = null, owner = null, hideTimer = null, pages = {};

  function extract(target) {
    if (!target) return null;
    var out = document.createElement("div");
    if (target.tagName === "FIGURE") {  // a chart or table: its caption (the plot itself needs its script)
      var caption = target.querySelector("figcaption");
      if (caption) out.appendChild(caption.cloneNode(true));
    } else {
      out.appendChild(target.cloneNode(true));
    }
    out.querySelectorAll("[id]").forEach(function (el) { el.removeAttribute("id"); });
    out.querySelectorAll(".footnote-backref, .download").forEach(function (el) { el.remove(); });
    if (out.firstChild && out.firstChild.removeAttribute) out.firstChild.removeAttribute("id");
    return out.innerHTML;
  }

  function content(link) {
    if (link.dataset.preview) return Promise.resolve(escapeText(link.dataset.preview));
    var url = new URL(link.getAttribute("href"), location.href);
    var id = decodeURIComponent(url.hash.slice(1));
    if (!id) return Promise.resolve(null);
    if (url.pathname === location.pathname) return Promise.resolve(extract(document.getElementById(id)));
    if (!/^https?:$/.test(location.protocol)) return Promise.resolve(null);
    var page = url.href.split("#")[0];
    if (!pages[page]) {
      pages[page] = fetch(page).then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) { return new DOMParser().parseFromString(html, "text/html"); });
    }
    return pages[page].then(function (doc) { return extract(doc.getElementById(id)); });
  }

  function escapeText(text) {
    var div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  function show(link) {
    clearTimeout(hideTimer);
    owner = link;
    content(link).then(function (html) {
      if (owner !== link || !html) return;
      if (!box) {
        box = document.createElement("div");
        box.className = "preview";
        box.id = "reference-preview";
        box.setAttribute("role", "tooltip");
        box.addEventListener("mouseenter", function () { clearTimeout(hideTimer); });
        box.addEventListener("mouseleave", hideSoon);
        document.body.appendChild(box);
      }
      box.innerHTML = html;
      box.hidden = false;
      link.setAttribute("aria-describedby", box.id);
      var r = link.getBoundingClientRect();
      var left = Math.max(8, Math.min(r.left + scrollX, scrollX + document.documentElement.clientWidth - box.offsetWidth - 8));
      var below = r.bottom + 6 + box.offsetHeight < innerHeight;
      box.style.left = left + "px";
      box.style.top = (below ? r.bottom + scrollY + 6 : r.top + scrollY - box.offsetHeight - 6) + "px";
    });
  }
  function hide() {
    if (box) box.hidden = true;
    if (owner) owner.removeAttribute("aria-describedby");
    owner = null;
  }
  function hideSoon() { clearTimeout(hideTimer); hideTimer = setTimeout(hide, 200); }

  document.addEventListener("mouseover", function (e) {
    var link = e.target.closest && e.target.closest(SELECTOR);
    if (link) show(link);
  });
  document.addEventListener("mouseout", function (e) {
    var link = e.target.closest && e.target.closest(SELECTOR);
    if (link && !link.contains(e.relatedTarget)) hideSoon();
  });
  document.addEventListener("focusin", function (e) {
    var link = e.target.closest && e.target.closest(SELECTOR);
    if (link) show(link); else if (box && !box.contains(e.target)) hide();
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") hide(); });
})();
