// The sweep page's chart, drawn from GET /api/sweeps/{name}/dashboard (hpo/service/sweep_data.py):
// loss against learning rate, one line per study (proxy size) at its largest budget, each with
// its optimum (a star; a bar at its loss spans the learning rates within 0.25% of its best
// loss) and its best trial (a ring).
"use strict";

(() => {
  const COLORS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#c8a400", "#e35932", "#9c179e", "#0d0887"];

  function label(c) {
    if (c.size === null) return `${c.study} (size ?)`;
    return `${c.study} (${c.size_kind === "width" ? `width ${HPO.fmt(c.size)}` : `N=${c.size.toPrecision(3)}`})`;
  }

  function draw(doc) {
    if (!doc.curves.length) return HPO.empty("chart-mutransfer", "no completed trials yet");
    const traces = [];
    doc.curves.forEach((c, k) => {
      const color = COLORS[k % COLORS.length], name = label(c), t = c.trials;
      traces.push({ type: "scatter", mode: "lines+markers", name, legendgroup: name, x: t.learning_rate, y: t.value,
        text: t.number.map((n, i) => HPO.trialText(n, t.params[i])), line: { color, width: 1.5 }, marker: { size: 6, color },
        hovertemplate: `${HPO.escape(name)}<br>%{text}<br>loss %{y:.6g}<extra></extra>` });
      traces.push({ type: "scatter", mode: "markers", name: `best trial of ${name}`, legendgroup: name, showlegend: false,
        x: [c.best.learning_rate], y: [c.best.value], marker: { size: 14, color: "rgba(0,0,0,0)", line: { color, width: 2 } },
        hovertemplate: `best trial ${c.best.number} of ${HPO.escape(name)}<br>learning_rate=%{x:.4g}<br>loss %{y:.6g}<extra></extra>` });
      const o = c.optimum;
      if (o) {
        traces.push({ type: "scatter", mode: "lines", name: `interval of ${name}`, legendgroup: name, showlegend: false,
          x: o.interval, y: [o.loss, o.loss], line: { color, width: 4 }, opacity: 0.5,
          hovertemplate: `${HPO.escape(name)}: within 0.25% of the best loss from ${HPO.fmt(o.interval[0])} to ${HPO.fmt(o.interval[1])}<extra></extra>` });
        traces.push({ type: "scatter", mode: "markers", name: `optimum of ${name}`, legendgroup: name, showlegend: false,
          x: [o.learning_rate], y: [o.loss], marker: { symbol: "star", size: 16, color, line: { color: "#000", width: 1 } },
          hovertemplate: `optimum of ${HPO.escape(name)}: learning_rate=%{x:.4g}, loss %{y:.6g}${o.flag ? `<br>${HPO.escape(o.flag)}` : ""}<extra></extra>` });
      }
    });
    HPO.note("chart-mutransfer", "star: each size's optimum (quadratic vertex) with the learning rates within 0.25% of its best loss; ring: its best trial");
    return HPO.plot("chart-mutransfer", traces, { xaxis: { title: { text: "learning rate" }, type: "log" },
      yaxis: { title: { text: "loss at the largest budget" } } });
  }

  HPO.live(document.querySelector("main").dataset.document, draw);
})();
