// The study page's charts, drawn from GET /api/studies/{name}/dashboard (hpo/service/study_data.py):
// optimization history, intermediate values, contour, slice, parallel coordinates, importance.
// Values are compared through the document's `sign` (+1 minimise, -1 maximise: the study's
// Direction), so best-so-far and the contour's best per cell never read a maximised study
// the wrong way round.
"use strict";

(() => {
  const NO_TRIALS = "no completed trials yet";
  const BINS = 24;
  const BANDS = 5;
  const THIN_TO = 2000, THIN_BEST = 500;
  const BAND_NAMES = ["worst", "worse", "middle", "better", "best"];
  const BAND_COLORS = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"];
  let current = null;

  // Completed trials with a finite value: the ones every chart but the curves draws.
  function completed(doc) {
    const t = doc.trials, done = doc.states.indexOf("completed"), out = [];
    for (let i = 0; i < t.number.length; i++) if (t.state[i] === done && t.value[i] !== null) out.push(i);
    return out;
  }

  function paramsOf(doc, i) {
    const out = {};
    for (const p of doc.params) out[p.name] = doc.trials.params[p.name][i];
    return out;
  }

  function history(doc, rows, text) {
    const t = doc.trials;
    if (!rows.length) return HPO.empty("chart-history", NO_TRIALS);
    const top = Math.max(...rows.map((i) => t.budget[i] ?? 0));
    const atTop = rows.filter((i) => (t.budget[i] ?? 0) === top), below = rows.filter((i) => (t.budget[i] ?? 0) !== top);
    const best = { x: [], y: [] };
    let run = null;
    for (const i of atTop) {
      if (run === null || doc.sign * t.value[i] < doc.sign * run) run = t.value[i];
      best.x.push(t.number[i]); best.y.push(run);
    }
    const points = (idx, name, color) => ({
      type: HPO.scatterType(idx.length), mode: "markers", name, x: idx.map((i) => t.number[i]), y: idx.map((i) => t.value[i]),
      text: idx.map((i) => text[i]), marker: { color, size: 6 }, hovertemplate: "%{text}<br>value %{y:.6g}<extra></extra>",
    });
    const traces = [points(atTop, top ? `value at budget ${HPO.fmt(top)}` : "value", HPO.STATE_COLORS.completed)];
    if (below.length) traces.push(points(below, "value at a lower budget", "#bbbbbb"));
    traces.push({ type: "scatter", mode: "lines", name: "best so far", x: best.x, y: best.y,
      line: { shape: "hv", color: "#d62728" }, hoverinfo: "skip" });
    return HPO.plot("chart-history", traces, { xaxis: { title: { text: "trial" } }, yaxis: { title: { text: "value" } } });
  }

  function intermediate(doc, text) {
    const c = doc.curves, byState = {};
    const where = new Map(doc.trials.number.map((n, i) => [n, i]));
    if (!c.number.length) return HPO.empty("chart-intermediate", "no intermediate values reported yet");
    const points = c.budget.reduce((n, b) => n + b.length + 1, 0);
    c.number.forEach((n, k) => {
      const i = where.get(n), state = doc.states[doc.trials.state[i]];
      const tr = byState[state] ||= { type: "scatter", mode: points > HPO.GL_POINTS ? "lines" : "lines+markers", name: state, x: [], y: [], text: [],
        line: { color: HPO.STATE_COLORS[state], width: 1 }, marker: { size: 3, color: HPO.STATE_COLORS[state] },
        hovertemplate: "%{text}<br>budget %{x:.6g}<br>value %{y:.6g}<extra></extra>" };
      c.budget[k].forEach((b, j) => { tr.x.push(b); tr.y.push(c.value[k][j]); tr.text.push(text[i]); });
      tr.x.push(null); tr.y.push(null); tr.text.push("");
    });
    const left = [];
    if (c.total > c.number.length) left.push(`the latest ${c.number.length} of ${c.total} trials' curves`);
    if (c.thinned) left.push(`${c.thinned} curves thinned to ${c.max_points} points`);
    HPO.note("chart-intermediate", left.length ? `showing ${left.join("; ")}` : "");
    return HPO.plot("chart-intermediate", Object.values(byState),
      { xaxis: { title: { text: "budget" }, type: "log" }, yaxis: { title: { text: "value" } } });
  }

  // A parameter's axis: numbers as they are (log10 where the space says log), categories as
  // their index, with the tick labels to read them back.
  function axis(doc, p, rows) {
    const col = doc.trials.params[p.name];
    if (p.kind === "categorical" || rows.some((i) => typeof col[i] === "string" || typeof col[i] === "boolean")) {
      const labels = [...new Set(rows.map((i) => String(col[i])))];
      return { label: p.name, values: rows.map((i) => labels.indexOf(String(col[i]))), ticks: labels, log: false };
    }
    const log = p.log && rows.every((i) => col[i] > 0);
    return { label: log ? `log10(${p.name})` : p.name, values: rows.map((i) => (log ? Math.log10(col[i]) : col[i])), ticks: null, log };
  }

  // Parallel coordinates as lines over normalised axes (log10 where the space says log,
  // categories by index), not Plotly's parcoords: that one cannot show a trial on hover, and
  // its WebGL layers take seconds to start where the GPU is software. Colour: the value's
  // rank in BANDS bands, the best drawn last, on top. Lines are SVG paths whatever their
  // number (see HPO.scatterType).
  // At most THIN_TO of the ranked trials (best first): the best THIN_BEST, then every k-th
  // of the rest, so the spread of values is kept. For the charts whose marks overlap past
  // reading in the thousands (parallel lines, the contour's points), where each mark costs
  // paint time (and a WebGL chart its context); each says when it thinned.
  function thin(ranked) {
    if (ranked.length <= THIN_TO) return ranked;
    const rest = ranked.slice(THIN_BEST), step = rest.length / (THIN_TO - THIN_BEST);
    return ranked.slice(0, THIN_BEST).concat(Array.from({ length: THIN_TO - THIN_BEST }, (_, k) => rest[Math.floor(k * step)]));
  }

  function parallel(doc, rows, text) {
    if (!rows.length) return HPO.empty("chart-parallel", NO_TRIALS);
    const t = doc.trials, axes = doc.params.map((p) => axis(doc, p, rows));
    axes.push({ label: "value", values: rows.map((i) => t.value[i]), ticks: null });
    const scaled = axes.map((a) => {
      const lo = Math.min(...a.values), hi = Math.max(...a.values);
      return { lo, hi, at: a.values.map((v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5)) };
    });
    const ranked = rows.map((_, k) => k).sort((a, b) => doc.sign * (t.value[rows[a]] - t.value[rows[b]]));
    const order = thin(ranked).reverse();
    const bands = Array.from({ length: BANDS }, () => ({ x: [], y: [], text: [] }));
    order.forEach((k, r) => {
      const band = bands[Math.min(BANDS - 1, Math.floor((r * BANDS) / order.length))], label = `${text[rows[k]]}<br>value ${HPO.fmt(t.value[rows[k]])}`;
      scaled.forEach((s, j) => { band.x.push(j); band.y.push(s.at[k]); band.text.push(label); });
      band.x.push(null); band.y.push(null); band.text.push("");
    });
    HPO.note("chart-parallel", order.length < ranked.length
      ? `showing the best ${THIN_BEST} of ${ranked.length} trials and an even sample by rank of the rest, ${order.length} in all` : "");
    const traces = bands.map((b, j) => ({ type: "scatter", mode: "lines", x: b.x, y: b.y, text: b.text, name: `${BAND_NAMES[j]} values`,
      line: { color: BAND_COLORS[j], width: 1 }, opacity: 0.6, hovertemplate: "%{text}<extra></extra>" }));
    const ends = scaled.flatMap((s, j) => [
      { x: j, y: 1, yanchor: "bottom", text: axes[j].ticks ? axes[j].ticks[axes[j].ticks.length - 1] : HPO.fmt(s.hi) },
      { x: j, y: 0, yanchor: "top", text: axes[j].ticks ? axes[j].ticks[0] : HPO.fmt(s.lo) }]);
    return HPO.plot("chart-parallel", traces, {
      xaxis: { tickvals: axes.map((_, j) => j), ticktext: axes.map((a) => a.label), side: "top", zeroline: false, showgrid: true, gridwidth: 2 },
      yaxis: { visible: false, range: [-0.08, 1.08] }, margin: { l: 40, r: 40, t: 40, b: 40 },
      annotations: ends.map((e) => ({ ...e, showarrow: false, font: { size: 10, color: "#555" } })) });
  }

  function contour(doc, rows, text) {
    const xs = document.getElementById("contour-x"), ys = document.getElementById("contour-y");
    if (doc.params.length < 2) return HPO.empty("chart-contour", "needs two parameters");
    if (!rows.length) return HPO.empty("chart-contour", NO_TRIALS);
    const names = doc.params.map((p) => p.name);
    if (xs.options.length !== names.length || [...xs.options].some((o, k) => o.value !== names[k])) {
      for (const [sel, pick] of [[xs, 0], [ys, 1]]) {
        sel.innerHTML = names.map((n) => `<option>${HPO.escape(n)}</option>`).join("");
        sel.selectedIndex = pick;
        sel.onchange = () => current && contour(current, completed(current), hoverTexts(current));
      }
    }
    const px = doc.params[xs.selectedIndex], py = doc.params[ys.selectedIndex];
    const ax = axis(doc, px, rows), ay = axis(doc, py, rows);
    const bins = (vals) => { const lo = Math.min(...vals), hi = Math.max(...vals); return { lo, w: (hi - lo) / BINS || 1 }; };
    const bx = bins(ax.values), by = bins(ay.values);
    const z = Array.from({ length: BINS }, () => new Array(BINS).fill(null));
    rows.forEach((i, k) => {
      const cx = Math.min(BINS - 1, Math.floor((ax.values[k] - bx.lo) / bx.w)), cy = Math.min(BINS - 1, Math.floor((ay.values[k] - by.lo) / by.w));
      const v = doc.trials.value[i];
      if (z[cy][cx] === null || doc.sign * v < doc.sign * z[cy][cx]) z[cy][cx] = v;
    });
    const centres = (b) => Array.from({ length: BINS }, (_, k) => b.lo + (k + 0.5) * b.w);
    const shown = thin(rows.map((_, k) => k).sort((a, b) => doc.sign * (doc.trials.value[rows[a]] - doc.trials.value[rows[b]])));
    const ticks = (a) => (a.ticks ? { tickvals: a.ticks.map((_, k) => k), ticktext: a.ticks } : {});
    HPO.note("chart-contour", `the best value in each of ${BINS}x${BINS} cells, interpolated where a cell has no trial`
      + (shown.length < rows.length ? `; points: the best ${THIN_BEST} and an even sample by rank of the rest, ${shown.length} of ${rows.length} trials` : ""));
    return HPO.plot("chart-contour", [
      { type: "contour", x: centres(bx), y: centres(by), z, connectgaps: true, colorscale: "Viridis",
        reversescale: doc.sign > 0, hoverinfo: "skip", name: "best value per cell", contours: { coloring: "heatmap" } },
      { type: HPO.scatterType(shown.length), mode: "markers", name: "trials", x: shown.map((k) => ax.values[k]),
        y: shown.map((k) => ay.values[k]), text: shown.map((k) => text[rows[k]]), marker: { color: "#222", size: 4, opacity: 0.6 },
        hovertemplate: "%{text}<br>value %{customdata:.6g}<extra></extra>", customdata: shown.map((k) => doc.trials.value[rows[k]]) },
    ], { xaxis: { title: { text: ax.label }, ...ticks(ax) }, yaxis: { title: { text: ay.label }, ...ticks(ay) }, showlegend: false });
  }

  function slice(doc, rows, text) {
    if (!doc.params.length) return HPO.empty("chart-slice", "the study has no parameters");
    if (!rows.length) return HPO.empty("chart-slice", NO_TRIALS);
    const n = doc.params.length, layout = { grid: { rows: 1, columns: n, pattern: "independent" }, showlegend: false };
    const traces = doc.params.map((p, k) => {
      const suffix = k ? String(k + 1) : "", col = doc.trials.params[p.name];
      const numeric = rows.every((i) => typeof col[i] === "number");
      layout[`xaxis${suffix}`] = { title: { text: p.name }, type: numeric ? (p.log ? "log" : "linear") : "category" };
      layout[`yaxis${suffix}`] = k ? { matches: "y", showticklabels: false } : { title: { text: "value" } };
      return { type: HPO.scatterType(rows.length * n), mode: "markers", name: p.name, xaxis: `x${suffix}`, yaxis: `y${suffix}`,
        x: rows.map((i) => col[i]), y: rows.map((i) => doc.trials.value[i]), text: rows.map((i) => text[i]),
        marker: { size: 5, color: HPO.STATE_COLORS.completed, opacity: 0.6 },
        hovertemplate: "%{text}<br>value %{y:.6g}<extra></extra>" };
    });
    return HPO.plot("chart-slice", traces, layout);
  }

  function importance(doc) {
    const imp = doc.importance;
    HPO.note("chart-importance", imp.method);
    if (!imp.scores) return HPO.empty("chart-importance", imp.method);
    const names = Object.keys(imp.scores).sort((a, b) => imp.scores[a] - imp.scores[b]);
    return HPO.plot("chart-importance", [{ type: "bar", orientation: "h", y: names, x: names.map((k) => imp.scores[k]),
      marker: { color: HPO.STATE_COLORS.completed }, text: names.map((k) => imp.scores[k].toFixed(2)), textposition: "auto",
      hovertemplate: "%{y}: %{x:.3f}<extra></extra>" }],
    { xaxis: { title: { text: "importance" } }, margin: { l: 120, r: 20, t: 10, b: 50 } });
  }

  function hoverTexts(doc) {
    return doc.trials.number.map((n, i) => HPO.trialText(n, paramsOf(doc, i)));
  }

  function bestLine(doc) {
    const b = doc.best, el = document.getElementById("best-trial");
    if (!b) { el.textContent = "no completed trial yet"; return; }
    const params = Object.entries(b.params).map(([k, v]) => `${HPO.escape(k)}=${HPO.escape(HPO.fmt(v))}`).join(", ");
    el.innerHTML = `trial ${b.number} at budget ${HPO.fmt(b.budget)}: <b id="best-value">${HPO.fmt(b.value)}</b> (${params})`;
  }

  async function draw(doc) {
    current = doc;
    const rows = completed(doc), text = hoverTexts(doc);
    bestLine(doc);
    await Promise.all([history(doc, rows, text), intermediate(doc, text), contour(doc, rows, text), importance(doc),
      slice(doc, rows, text), parallel(doc, rows, text)]);
  }

  HPO.live(document.querySelector("main").dataset.document, draw);
})();
