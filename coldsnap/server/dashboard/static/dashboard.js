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

// The app page's log tail (#log-tail) lists its newest line last. Each refresh swaps in
// a new box scrolled to its top, so keep the newest lines in view: scroll to the bottom
// on load and after each refresh, unless the reader had scrolled up to older lines;
// then keep their place.
(function () {
  const SLACK_PX = 24;  // this close to the bottom counts as "at the bottom"
  let kept = null;  // {follow, top} of the box the refresh replaces

  function box() { return document.getElementById("log-tail"); }

  function toBottom(tail) { tail.scrollTop = tail.scrollHeight; }

  document.addEventListener("DOMContentLoaded", () => {
    const tail = box();
    if (tail) toBottom(tail);
  });
  document.addEventListener("htmx:beforeSwap", () => {
    const tail = box();
    kept = tail && {follow: tail.scrollHeight - tail.clientHeight - tail.scrollTop <= SLACK_PX,
                    top: tail.scrollTop};
  });
  document.addEventListener("htmx:afterSwap", () => {
    const tail = box();
    if (!tail) return;
    if (kept === null || kept.follow) toBottom(tail);
    else tail.scrollTop = kept.top;
    kept = null;
  });
})();
