// What every dashboard page shares: drawing into a chart card, the "no data" state, number
// formats, hover text, and live updates (polling the page's JSON document while the tab is
// visible; a changed version redraws the charts and swaps in the page's [data-live] blocks).
"use strict";

const HPO = (() => {
  const POLL_MS = 2000;
  const GL_POINTS = 2000;
  const STATE_COLORS = {
    completed: "#2f7ed8", pruned: "#f0a030", failed: "#d9534f",
    diverged: "#8e44ad", running: "#5cb85c", queued: "#999999",
  };
  const CONFIG = { responsive: true, displaylogo: false };
  const BASE_LAYOUT = {
    margin: { l: 60, r: 20, t: 10, b: 50 }, hovermode: "closest",
    legend: { orientation: "h", y: -0.25 }, font: { size: 11 },
  };

  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+(e|$)/, "$1");
    return String(v);
  }

  // Markers: WebGL for many (SVG slows with a node per point), SVG for few, since each WebGL
  // chart costs a context and its shaders, much of a second where the GPU is software. Lines
  // are always SVG: one path however many points, while WebGL lines broken into thousands of
  // segments take seconds to paint in software.
  function scatterType(points) {
    return points > GL_POINTS ? "scattergl" : "scatter";
  }

  function card(id) {
    const el = document.getElementById(id);
    if (!el) throw new Error(`no chart card #${id}`);
    return el;
  }

  // Draw (or redraw: Plotly.react keeps zoom state through uirevision) into a card's plot.
  function plot(id, traces, layout) {
    const box = card(id).querySelector(".plot");
    if (box.dataset.empty) { box.innerHTML = ""; delete box.dataset.empty; }
    const full = Object.assign({ uirevision: id }, BASE_LAYOUT, layout || {});
    return Plotly.react(box, traces, full, CONFIG);
  }

  // A chart with nothing to draw says why, instead of showing empty axes.
  function empty(id, message) {
    const box = card(id).querySelector(".plot");
    if (box.data) Plotly.purge(box);
    box.dataset.empty = "1";
    box.innerHTML = `<div class="empty">${escape(message)}</div>`;
  }

  function note(id, text) {
    const el = document.getElementById(`note-${id.replace(/^chart-/, "")}`);
    if (el) el.textContent = text || "";
  }

  function escape(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // "trial 7<br>x1=0.5<br>x2=3": what hovering any trial's point shows.
  function trialText(number, params) {
    const lines = [`trial ${number}`];
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) lines.push(`${escape(k)}=${escape(fmt(v))}`);
    return lines.join("<br>");
  }

  async function swapLive() {
    const r = await fetch(location.href, { cache: "no-store" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    for (const el of document.querySelectorAll("[data-live]")) {
      const fresh = doc.getElementById(el.id);
      if (fresh) el.innerHTML = fresh.innerHTML;
    }
  }

  // Fetch the page's document (the first fetch already started by the page's head, while
  // plotly.js loads), draw it, then poll it with its version: the server answers 204 while
  // nothing changed. Polling pauses while the tab is hidden and resumes when shown.
  function live(url, draw) {
    let version = null;
    let timer = null;
    let busy = false;
    async function tick(first) {
      timer = null;
      busy = true;
      try {
        const r = await (first && window.hpoFirstFetch
          ? window.hpoFirstFetch
          : fetch(version ? `${url}?since=${encodeURIComponent(version)}` : url, { cache: "no-store" }));
        if (r.status === 200) {
          const doc = await r.json();
          version = doc.version;
          await draw(doc);
          if (!first) await swapLive();
          document.body.dataset.version = version;
          if (first) {  // drawn means painted: the frame after the charts' has begun
            await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
            window.hpoDrawnAt = performance.now();
          }
        } else if (r.status !== 204 && first) {
          const body = await r.json().catch(() => ({}));
          document.querySelector("main").insertAdjacentHTML("afterbegin",
            `<div class="card warn" id="load-error">${escape(body.error || r.statusText)}</div>`);
        }
      } catch (e) {
        console.error(e);
      }
      busy = false;
      schedule();
    }
    function schedule() {
      if (!busy && timer === null && document.visibilityState === "visible") timer = setTimeout(() => tick(false), POLL_MS);
    }
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") schedule();
      else if (timer !== null) { clearTimeout(timer); timer = null; }
    });
    tick(true);
  }

  return { STATE_COLORS, GL_POINTS, fmt, scatterType, plot, empty, note, escape, trialText, live };
})();
