// regstat console: draws every element with a data-chart attribute
// ({"x": [unix seconds], "series": [{"name", "values"}]}) with uPlot. Loaded from /static
// (the Content-Security-Policy allows no inline script); tables work without it.
(function () {
  "use strict";
  var palette = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4"];

  function draw(element) {
    if (element.dataset.drawn || typeof uPlot === "undefined") { return; }
    var data;
    try { data = JSON.parse(element.dataset.chart); } catch (e) { return; }
    if (!data.x || data.x.length === 0) {
      element.textContent = "No pulls in this window.";
      return;
    }
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var axisColor = dark ? "#97a3ae" : "#5f6b76";
    var grid = { stroke: dark ? "#2b343d" : "#e4e8ec" };
    var series = [{}].concat(data.series.map(function (s, i) {
      return { label: s.name, stroke: palette[i % palette.length], width: 2, points: { show: data.x.length < 60 } };
    }));
    var options = {
      width: Math.max(element.clientWidth, 300),
      height: 240,
      series: series,
      axes: [
        { stroke: axisColor, grid: grid },
        { stroke: axisColor, grid: grid, values: function (u, values) { return values.map(function (v) { return Number.isInteger(v) ? v : ""; }); } }
      ],
      scales: { x: { time: true } }
    };
    element.dataset.drawn = "1";
    new uPlot(options, [data.x].concat(data.series.map(function (s) { return s.values; })), element);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
