// Glue between htmx and Chart.js: the boots page's fragment carries the plot's data
// as JSON (#boot-points); each time htmx swaps a new fragment in, the chart takes it.
(function () {
  const COLORS = {"cold": "#d9480f", "restored": "#1c7ed6", "snapshot-creating": "#868e96"};

  function plot(canvas) {
    return Chart.getChart(canvas) || new Chart(canvas, {
      type: "scatter",
      data: {datasets: []},
      options: {
        animation: false,
        scales: {
          x: {type: "linear", title: {display: true, text: "time"},
              ticks: {callback: (value) => new Date(value).toLocaleTimeString()}},
          y: {beginAtZero: true, title: {display: true, text: "boot seconds"}},
        },
      },
    });
  }

  function update() {
    const canvas = document.getElementById("boot-plot");
    const source = document.getElementById("boot-points");
    if (!canvas || !source || typeof Chart === "undefined") return;
    const points = JSON.parse(source.textContent);
    const chart = plot(canvas);
    chart.data.datasets = Object.entries(points).map(([series, data]) => ({
      label: series, data: data, backgroundColor: COLORS[series], showLine: false,
    }));
    chart.update();
    canvas.dataset.points = Object.values(points).reduce((n, data) => n + data.length, 0);
  }

  document.addEventListener("DOMContentLoaded", update);
  document.addEventListener("htmx:afterSettle", update);
})();
