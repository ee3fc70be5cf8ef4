// The scaling page: each stored fit's laws drawn from GET /api/fits/{name}/curves
// (hpo/service/scaling_data.py), one chart per law and variable, with the bootstrap band and
// the fitted cells; and the target form: its recommendation from GET /api/recommend, the
// target drawn on every chart. The target is kept in the URL (?params=&tokens=&seq_len=).
"use strict";

(() => {
  const COLORS = ["#440154", "#31688e", "#35b779", "#c8a400", "#e35932"];
  const TITLES = { learning_rate: "optimal learning rate", batch_size: "optimal batch size (tokens)" };
  const AXES = { N: "N (non-embedding parameters)", D: "D (tokens)", C: "C = 6ND (FLOPs)" };

  function split(line, range) {
    const inside = { x: [], y: [] }, outside = { x: [], y: [] };
    line.x.forEach((x, i) => {
      const within = x >= range[0] * (1 - 1e-9) && x <= range[1] * (1 + 1e-9);
      (within ? inside : outside).x.push(x); (within ? inside : outside).y.push(line.y[i]);
      if (!within) { inside.x.push(null); inside.y.push(null); } else { outside.x.push(null); outside.y.push(null); }
    });
    return [inside, outside];
  }

  function panelTraces(panel) {
    const traces = [];
    panel.lines.forEach((line, k) => {
      const color = COLORS[k % COLORS.length], name = line.label || "law";
      if (line.low) {
        traces.push({ type: "scatter", mode: "lines", x: line.x, y: line.high, line: { width: 0 }, hoverinfo: "skip",
          showlegend: false, legendgroup: name });
        traces.push({ type: "scatter", mode: "lines", x: line.x, y: line.low, fill: "tonexty", line: { width: 0 },
          fillcolor: `${color}30`, name: `90% band (${name})`, legendgroup: name, showlegend: false,
          hovertemplate: "band %{y:.4g}<extra></extra>" });
      }
      const [inside, outside] = split(line, panel.fitted_range);
      traces.push({ type: "scatter", mode: "lines", x: inside.x, y: inside.y, name, legendgroup: name, line: { color },
        hovertemplate: `${HPO.escape(name)}<br>%{x:.3g}: %{y:.4g}<extra></extra>` });
      traces.push({ type: "scatter", mode: "lines", x: outside.x, y: outside.y, name: `${name} (extrapolated)`, legendgroup: name,
        showlegend: false, line: { color, dash: "dash" }, hovertemplate: `extrapolated<br>%{x:.3g}: %{y:.4g}<extra></extra>` });
      const p = line.points;
      traces.push({ type: "scatter", mode: "markers", name: `fitted cells (${name})`, legendgroup: name, showlegend: false,
        x: p.x, y: p.y, marker: { color, size: 8 }, text: p.cells.map(([n, d]) => `cell N=${n.toPrecision(3)}, D=${d.toPrecision(3)}`),
        hovertemplate: "%{text}<br>optimum %{y:.4g}<extra></extra>" });
    });
    const t = panel.at_target;
    if (t) {
      if (t.through) traces.push({ type: "scatter", mode: "lines", x: t.through.x, y: t.through.y, name: "through the target",
        line: { color: "#d62728", dash: "dot", width: 1 }, hoverinfo: "skip" });
      traces.push({ type: "scatter", mode: "markers", name: "target", x: [t.x], y: [t.y],
        marker: { symbol: "star", size: 18, color: "#d62728" }, hovertemplate: "target: %{y:.4g}<extra></extra>" });
    }
    return traces;
  }

  async function drawFit(card, target) {
    const name = card.dataset.fit, q = target ? `?params=${target.params}&tokens=${target.tokens}` : "";
    const r = await fetch(`/api/fits/${encodeURIComponent(name)}/curves${q}`);
    if (!r.ok) return;
    const doc = await r.json(), box = card.querySelector(".fit-charts");
    const ids = doc.panels.map((p) => `chart-fit-${name}-${p.target}-${p.var}`);
    if (box.children.length !== ids.length) {
      box.innerHTML = ids.map((id) => `<div class="chart" id="${HPO.escape(id)}"><div class="plot"></div></div>`).join("");
      box.className = "fit-charts grid";
    }
    await Promise.all(doc.panels.map((panel, k) => {
      const origin = panel.borrowed_from ? (panel.calibrated ? ` (${panel.borrowed_from} exponent, calibrated)` : ` (from ${panel.borrowed_from})`) : "";
      return HPO.plot(ids[k], panelTraces(panel), {
        title: { text: `${TITLES[panel.target]}: ${panel.formula}${origin}`, font: { size: 12 } }, margin: { l: 60, r: 20, t: 40, b: 50 },
        xaxis: { title: { text: AXES[panel.var] }, type: "log" }, yaxis: { title: { text: TITLES[panel.target] }, type: "log" } });
    }));
  }

  function interval(pair, f) { return pair ? `${f(pair[0])} .. ${f(pair[1])}` : "-"; }

  function table(recs, n, d, s) {
    const g = (v) => Number(v).toPrecision(3), i = (v) => Math.round(v).toLocaleString("en-US");
    const rows = recs.map((r) => `<tr><td>${HPO.escape(r.law)}</td><td class="num lr">${g(r.learning_rate)}</td>`
      + `<td class="num">${interval(r.learning_rate_interval, g)}</td><td class="num">${i(r.batch_size_tokens)}</td>`
      + `<td class="num seqs">${i(r.batch_size_sequences)}</td><td class="num">${interval(r.batch_size_sequences_interval, i)}</td></tr>`).join("");
    const warnings = recs.flatMap((r) => r.warnings.map((w) => `<div class="warn">${HPO.escape(r.law)}: ${HPO.escape(w)}</div>`)).join("");
    return `<h2>N = ${g(n)}, D = ${g(d)}, sequences of ${s}</h2><table id="recommendations"><thead><tr><th>law</th>
<th class=num>learning rate</th><th class=num>interval</th><th class=num>batch (tokens)</th><th class=num>batch (sequences)</th>
<th class=num>interval (sequences)</th></tr></thead><tbody>${rows}</tbody></table>${warnings}`;
  }

  async function recommend(form) {
    const out = document.getElementById("recommendation");
    const n = Number(form.params.value), d = Number(form.tokens.value), s = Number(form.seq_len.value);
    if (!(n >= 1 && d >= 1 && Number.isInteger(s) && s >= 1 && Number.isFinite(n) && Number.isFinite(d))) {
      out.innerHTML = '<p class="warn" id="recommend-error">N and D must be positive numbers of at least 1 (e.g. 7e9 and 2e12), and the sequence length a positive integer.</p>';
      return;
    }
    const r = await fetch(`/api/recommend?params=${n}&tokens=${d}&seq_len=${s}`);
    const body = await r.json();
    if (!r.ok) { out.innerHTML = `<p class="warn" id="recommend-error">${HPO.escape(body.error)}</p>`; return; }
    out.innerHTML = table(body, n, d, s);
    history.replaceState(null, "", `/scaling?params=${form.params.value}&tokens=${form.tokens.value}&seq_len=${s}`);
    await Promise.all([...document.querySelectorAll(".fit[data-fit]")].map((c) => drawFit(c, { params: n, tokens: d })));
    document.body.dataset.target = `${n},${d}`;
  }

  async function start() {
    const form = document.getElementById("target-form"), q = new URLSearchParams(location.search);
    form.addEventListener("submit", (e) => { e.preventDefault(); recommend(form); });
    if (q.get("params") && q.get("tokens")) {
      form.params.value = q.get("params"); form.tokens.value = q.get("tokens");
      if (q.get("seq_len")) form.seq_len.value = q.get("seq_len");
      await recommend(form);
    } else {
      await Promise.all([...document.querySelectorAll(".fit[data-fit]")].map((c) => drawFit(c, null)));
    }
    window.hpoDrawnAt = performance.now();
  }

  start();
})();
