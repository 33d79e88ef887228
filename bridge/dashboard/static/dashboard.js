/*
 * lmsbridge dashboard: draws the charts a page describes in its JSON data block
 * (<script type="application/json" id="chart-data">) on the canvases that name them
 * (<canvas data-chart="...">), with the vendored Chart.js. No inline script is needed,
 * so the page keeps its Content-Security-Policy of script-src 'self'.
 */
(function () {
  "use strict";

  var COHORT_COLOURS = { completed: "#1b7f5f", not_completed: "#d9822b", holdout: "#7a869a" };
  var OTHER_COLOURS = ["#3867d6", "#8854d0", "#c0392b"];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function axis(title) {
    return { title: { display: Boolean(title), text: title || "" } };
  }

  function baseOptions() {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 14 } } }
    };
  }

  /* Each cohort's mean before and after, one line per cohort, with the target dashed. */
  function slope(spec) {
    var datasets = spec.series.map(function (series, i) {
      var colour = COHORT_COLOURS[series.key] || OTHER_COLOURS[i % OTHER_COLOURS.length];
      return {
        label: series.label,
        data: series.values,
        borderColor: colour,
        backgroundColor: colour,
        borderWidth: 3,
        pointRadius: 5
      };
    });
    if (spec.target !== null && spec.target !== undefined) {
      datasets.push({
        label: "Target",
        data: spec.labels.map(function () { return spec.target; }),
        borderColor: cssVar("--muted", "#666"),
        backgroundColor: cssVar("--muted", "#666"),
        borderDash: [6, 4],
        borderWidth: 1.5,
        pointRadius: 0
      });
    }
    var options = baseOptions();
    options.scales = { x: axis(""), y: axis(spec.yTitle) };
    return { type: "line", data: { labels: spec.labels, datasets: datasets }, options: options };
  }

  /* A step curve on a linear x axis: the share who completed, by day. */
  function steps(spec) {
    var colour = cssVar("--accent", "#1b5fa8");
    var options = baseOptions();
    options.plugins.legend.display = false;
    options.scales = {
      x: Object.assign(axis(spec.xTitle), { type: "linear", min: 0, grace: "5%" }),
      y: Object.assign(axis(spec.yTitle), { min: 0, max: 100 })
    };
    return {
      type: "line",
      data: {
        datasets: [{
          label: spec.label,
          data: spec.points,
          stepped: true,
          fill: "origin",
          borderColor: colour,
          backgroundColor: colour + "33",
          borderWidth: 2,
          pointRadius: 0
        }]
      },
      options: options
    };
  }

  var BUILDERS = { slope: slope, steps: steps };

  function draw() {
    var block = document.getElementById("chart-data");
    if (!block) {
      return;
    }
    var specs = JSON.parse(block.textContent);
    Chart.defaults.color = cssVar("--text", "#222");
    Chart.defaults.borderColor = cssVar("--grid", "rgba(0,0,0,0.1)");
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var spec = specs[canvas.dataset.chart];
      var build = spec && BUILDERS[spec.kind];
      if (build) {
        new Chart(canvas, build(spec));
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
