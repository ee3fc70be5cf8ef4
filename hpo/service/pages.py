"""The dashboard: server-rendered pages (studies, one study, a sweep across proxy sizes,
scaling laws) with matplotlib SVG charts, refreshed in place every few seconds while open.

No template engine and no JavaScript framework: the pages are small, the markup is built
with escaping in one place (:func:`_e`), and the only script swaps ``<main>`` for a fresh copy.
"""

from __future__ import annotations

import html
import math
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from db.errors import StudyNotFoundError
from db.models import SORTABLE_TRIAL_COLUMNS, TrialState
from db.records import FrozenTrial
from db.store import STOPPED_TAG, StudySummary
from hpo.service import charts
from hpo.service.records import study_summary

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
REFRESH_MS = 5000
_CACHE_SIZE = 32

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe3ff;text-decoration:none;font-weight:500}header .brand{font-weight:700;color:#fff;font-size:18px}
main{padding:16px 24px;max-width:1400px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:16px;margin:18px 0 8px}
.card{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:12px 14px;margin-bottom:14px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:14px}
.grid .card svg{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:5px 8px;border-bottom:1px solid #eceef1;text-align:left}
th{background:#fafbfc;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th a{color:#222;text-decoration:none}th a.on{color:#2f7ed8}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff;margin-right:4px}
.meta{color:#555;font-size:13px}.meta b{color:#222}
.empty{color:#777;font-style:italic;padding:24px;text-align:center}
.filters a{margin-right:10px;font-size:13px}.filters a.on{font-weight:700}
.pager{margin-top:8px;font-size:13px}.pager a{margin-right:12px}
form.inline input{width:120px;margin-right:8px}form.inline button{padding:3px 12px}
.warn{color:#9a6700;font-size:13px}
"""

SCRIPT = f"""
setInterval(async () => {{
  if (document.visibilityState !== 'visible') return;
  try {{
    const r = await fetch(location.href, {{headers: {{'X-Refresh': '1'}}}});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    const fresh = doc.querySelector('main');
    if (fresh) {{ document.querySelector('main').innerHTML = fresh.innerHTML; }}
  }} catch (e) {{}}
}}, {REFRESH_MS});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    return _e(value)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)} · hposcale</title>
<style>{CSS}</style></head><body>
<header><span class="brand">hposcale</span><a href="/">Studies</a><a href="/scaling">Scaling</a>
<a href="/docs">API</a></header>
<main>{body}</main><script>{SCRIPT}</script></body></html>"""
    return HTMLResponse(doc, status_code=status)


def _pills(counts: dict[TrialState, int]) -> str:
    return "".join(
        f'<span class="pill" style="background:{charts.STATE_COLORS[s.value]}" title="{s.value}">{s.value} {n}</span>'
        for s, n in counts.items()
        if n
    ) or '<span class="meta">no trials</span>'


def _study_link(name: str) -> str:
    return f'<a href="/studies/{quote(name, safe="")}">{_e(name)}</a>'


@router.get("/", response_class=HTMLResponse)
def studies_page(request: Request) -> HTMLResponse:
    summaries: list[StudySummary] = request.app.state.store.list_studies()
    if not summaries:
        return _page("Studies", '<h1>Studies</h1><div class="card empty">No study yet: hpo study create NAME --space ...</div>')
    rows = "".join(
        f"<tr><td>{_study_link(s.study.name)}{' <span class=meta>(stopped)</span>' if STOPPED_TAG in s.study.tags else ''}</td>"
        f"<td>{_e(s.study.algorithm)}</td><td>{_e(s.study.sweep or '-')}</td><td>{_pills(s.counts)}</td>"
        f'<td class="num">{s.n_trials}</td><td class="num best">{_fmt(s.best_value)}</td>'
        f"<td>{_fmt(s.last_activity.strftime('%Y-%m-%d %H:%M:%S') if s.last_activity else None)}</td></tr>"
        for s in summaries
    )
    sweeps = sorted({s.study.sweep for s in summaries if s.study.sweep})
    sweep_links = " ".join(f'<a href="/sweeps/{quote(name, safe="")}">{_e(name)}</a>' for name in sweeps)
    body = f"""<h1>Studies</h1>
<div class="card"><table id="studies"><thead><tr><th>study</th><th>algorithm</th><th>sweep</th><th>trials by state</th>
<th class="num">trials</th><th class="num">best value</th><th>last activity (UTC)</th></tr></thead><tbody>{rows}</tbody></table></div>
{f'<div class="card meta">Sweeps across proxy sizes: {sweep_links}</div>' if sweeps else ''}"""
    return _page("Studies", body)


def _charts(request: Request, summary: StudySummary, trials: list[FrozenTrial]) -> dict[str, str]:
    """The study's charts, cached until its trials change."""
    from hpo.service.importance import importances
    from search_spaces import SearchSpace

    cache: OrderedDict[Any, dict[str, str]] = request.app.state.__dict__.setdefault("chart_cache", OrderedDict())
    key = (summary.study.id, summary.n_trials, tuple(summary.counts.values()), summary.last_activity, summary.best_value)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    maximize = summary.study.direction.maximize
    space_dict = summary.study.search_space
    space = SearchSpace.from_dict(space_dict) if space_dict else None
    scores, why = importances(trials, space, maximize)
    drawn = {
        "best": charts.best_over_time(trials, maximize),
        "curves": charts.learning_curves(trials),
        "rungs": charts.rungs(trials),
        "scatter": charts.param_scatter(trials, space_dict),
        "parallel": charts.parallel_coordinates(trials, space_dict, maximize),
        "importance": charts.importances(scores, why),
    }
    cache[key] = drawn
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return drawn


def _trials_table(name: str, trials: list[FrozenTrial], total: int, params: list[str], query: dict[str, Any]) -> str:
    def link(**changes: Any) -> str:
        merged = {**query, **changes}
        return f"/studies/{quote(name, safe='')}?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})

    sort, order = query["sort"], query["order"]

    def header(key: str, label: str, numeric: bool = False) -> str:
        on = sort == key
        flip = "desc" if on and order == "asc" else "asc"
        arrow = (" ▲" if order == "asc" else " ▼") if on else ""
        return f'<th class="{"num" if numeric else ""}"><a class="{"on" if on else ""}" href="{_e(link(sort=key, order=flip, page=1))}">{label}{arrow}</a></th>'

    states = ["", *(s.value for s in TrialState)]
    filters = "".join(
        f'<a class="{"on" if query["state"] == s else ""}" href="{_e(link(state=s, page=1))}">{s or "all"}</a>' for s in states
    )
    rows = "".join(
        f'<tr data-state="{t.state.value}"><td class="num">{t.number}</td>'
        f'<td><span class="pill" style="background:{charts.STATE_COLORS[t.state.value]}">{t.state.value}</span></td>'
        f'<td class="num value">{_fmt(t.value)}</td><td class="num">{_fmt(t.budget)}</td>'
        + "".join(f'<td class="num">{_fmt(t.params.get(p))}</td>' for p in params)
        + f'<td>{_e(t.worker_id or "-")}</td><td class="num">{_fmt(t.duration_s)}</td></tr>'
        for t in trials
    )
    page = query["page"]
    pages = max(1, math.ceil(total / PAGE_SIZE))
    pager = (
        (f'<a href="{_e(link(page=page - 1))}">← previous</a>' if page > 1 else "")
        + f"page {page} of {pages} ({total} trials)"
        + (f' <a href="{_e(link(page=page + 1))}">next →</a>' if page < pages else "")
    )
    head = (
        header("number", "#", True) + header("state", "state") + header("value", "value", True) + header("budget", "budget", True)
        + "".join(f'<th class="num">{_e(p)}</th>' for p in params) + "<th>worker</th><th class=num>seconds</th>"
    )
    return f"""<div class="filters">filter: {filters}</div>
<table id="trials"><thead><tr>{head}</tr></thead><tbody>{rows or '<tr><td colspan=9 class=empty>no trials match</td></tr>'}</tbody></table>
<div class="pager">{pager}</div>"""


@router.get("/studies/{name}", response_class=HTMLResponse)
def study_page(
    request: Request, name: str, sort: str = "number", order: str = "desc", state: str = "", page: int = 1
) -> HTMLResponse:
    store = request.app.state.store
    try:
        summary = study_summary(store, name)
    except StudyNotFoundError as exc:
        return _page("Not found", f'<h1>Not found</h1><div class="card">{_e(exc)}</div>', status=404)
    record = summary.study
    sort = sort if sort in SORTABLE_TRIAL_COLUMNS else "number"
    order = order if order in ("asc", "desc") else "desc"
    state = state if state in {s.value for s in TrialState} else ""
    page = max(1, page)
    trials = store.trials(record.id)
    total, shown = store.trial_page(
        record.id, states=[TrialState(state)] if state else None, sort=sort, descending=order == "desc",
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
    )
    drawn = _charts(request, summary, trials)
    best = summary.best_value
    completed = [t for t in trials if t.state is TrialState.COMPLETED and t.value is not None]
    best_trial = None
    if completed:
        top = max(t.budget or 0 for t in completed)
        at_top = [t for t in completed if (t.budget or 0) == top]
        best_trial = record.direction.best_of(at_top, key=lambda t: float(t.value or 0.0))
    params = charts.numeric_params(trials)[:6] or sorted({k for t in trials for k in t.params})[:6]
    stopped = f' <span class="pill" style="background:#d9534f">stopped {_e(record.tags[STOPPED_TAG])}</span>' if STOPPED_TAG in record.tags else ""
    space = record.search_space or {}
    fidelity = space.get("fidelity")
    best_line = "no completed trial yet"
    if best_trial is not None:
        shown_params = ", ".join(f"{k}={_fmt(v)}" for k, v in best_trial.params.items())
        best_line = f"trial {best_trial.number} at budget {_fmt(best_trial.budget)}: <b id=best-value>{_fmt(best_trial.value)}</b> ({shown_params})"
    body = f"""<h1>{_e(record.name)}{stopped}</h1>
<div class="card meta">algorithm <b>{_e(record.algorithm)}</b> · {_e(record.direction.value)} · objective <b>{_e(record.objective or '-')}</b>
 · sweep <b>{_e(record.sweep or '-')}</b> · {len(space.get('parameters') or {})} parameters
 {f"· fidelity <b>{_e(fidelity.get('name'))}</b> {_fmt(fidelity.get('min'))}..{_fmt(fidelity.get('max'))}" if fidelity else ''}
<br>{_pills(summary.counts)} · best value at any budget <b class="best">{_fmt(best)}</b><br>best at the largest budget: {best_line}</div>
<div class="grid">
<div class="card chart" id="chart-best">{drawn['best']}</div><div class="card chart" id="chart-curves">{drawn['curves']}</div>
<div class="card chart" id="chart-rungs">{drawn['rungs']}</div><div class="card chart" id="chart-importance">{drawn['importance']}</div>
</div>
<div class="card chart" id="chart-scatter">{drawn['scatter']}</div>
<div class="card chart" id="chart-parallel">{drawn['parallel']}</div>
<h2>Trials</h2><div class="card">{_trials_table(name, shown, total, params, {"sort": sort, "order": order, "state": state, "page": page})}</div>"""
    return _page(record.name, body)


@router.get("/sweeps/{name}", response_class=HTMLResponse)
def sweep_page(request: Request, name: str) -> HTMLResponse:
    """The muTransfer picture: each study of the sweep (a proxy size) as loss against learning
    rate at its largest budget, with its best marked."""
    store = request.app.state.store
    summaries = store.list_studies(sweep=name)
    if not summaries:
        return _page("Not found", f'<h1>Not found</h1><div class="card">no sweep named {_e(name)!s} with studies</div>', status=404)
    curves: dict[str, list[tuple[float, float]]] = {}
    optima: dict[str, tuple[float, float]] = {}
    rows = []
    for s in summaries:
        done = [t for t in store.trials(s.study.id, states=[TrialState.COMPLETED]) if t.value is not None and "learning_rate" in t.params]
        if not done:
            continue
        top = max((t.budget or 0) for t in done)
        points = [(float(t.params["learning_rate"]), float(t.value)) for t in done if (t.budget or 0) == top]
        size = s.study.tags.get("width") or next((t.attrs.get("n_params") for t in done if "n_params" in t.attrs), None)
        label = f"{s.study.name} ({'width ' + str(size) if 'width' in s.study.tags else f'N={size:.3g}' if size else 'size ?'})"
        curves[label] = points
        best = s.study.direction.best_of(points, key=lambda p: p[1])
        optima[label] = best
        rows.append(f"<tr><td>{_study_link(s.study.name)}</td><td class=num>{_fmt(size)}</td><td class=num>{len(points)}</td>"
                    f"<td class=num>{_fmt(top or None)}</td><td class='num opt-lr'>{_fmt(best[0])}</td><td class=num>{_fmt(best[1])}</td></tr>")
    table = ("<table id=sweep-optima><thead><tr><th>study</th><th class=num>size</th><th class=num>trials</th>"
             "<th class=num>budget</th><th class=num>best learning rate</th><th class=num>its loss</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>") if rows else ""
    body = f"""<h1>Sweep {_e(name)}</h1><div class="card chart" id="chart-mutransfer">{charts.mutransfer(curves, optima)}</div>
<div class="card">{table or '<div class=empty>no completed trial with a learning rate yet</div>'}</div>"""
    return _page(f"sweep {name}", body)


@router.get("/scaling", response_class=HTMLResponse)
def scaling_page(
    request: Request, params: str = "", tokens: str = "", seq_len: str = "4096", law: str = ""
) -> HTMLResponse:
    from scaling.fitting import fit_from_report, origin_note
    from scaling.plot import plot_fit

    store = request.app.state.store
    form = f"""<form class="inline" method="get" action="/scaling">N (non-embedding parameters) <input name="params" value="{_e(params)}" placeholder="7e9">
D (tokens) <input name="tokens" value="{_e(tokens)}" placeholder="2e12"> sequence length <input name="seq_len" value="{_e(seq_len)}">
<button type="submit">Recommend</button></form>"""
    result = ""
    target = None
    if params or tokens:
        result, target = _recommendation(request.app.state, params, tokens, seq_len, law)
    fits = store.list_fits()
    sections = []
    for record in fits:
        picture = plot_fit(fit_from_report(record.name, record.report), None, target=target)
        report = record.report
        lr_v, b_v = report["learning_rate"]["validation"], report["batch_size"]["validation"]
        def err(v: dict[str, Any]) -> str:
            return "-" if v.get("error") is None else f"{100 * v['error']:.1f}%"
        sections.append(
            f"""<div class="card fit" id="fit-{_e(record.name)}"><h2>{_e(record.name)} <span class="meta">{_e(record.form)} form · {_e(record.source)}</span></h2>
<div class="meta">learning rate <b>{_e(report['learning_rate']['formula'])}</b> (held-out error {err(lr_v)}) ·
batch size <b>{_e(report['batch_size']['formula'])}</b> tokens{_e(origin_note(report['batch_size']))} (held-out error {err(b_v)})</div>{picture}</div>"""
        )
    body = f"""<h1>Scaling laws</h1><div class="card">{form}{result}</div>
{''.join(sections) or '<div class="card empty">No fitted law yet: hpo scaling fit --sweep NAME (published laws are always in the table above)</div>'}"""
    return _page("Scaling", body)


def _recommendation(state: Any, params: str, tokens: str, seq_len: str, law: str) -> tuple[str, tuple[float, float] | None]:
    from scaling.published import PUBLISHED_LAWS
    from scaling.recommend import recommend_with

    try:
        n, d, s = float(params), float(tokens), int(seq_len)
        if not (n > 0 and d > 0 and s > 0 and math.isfinite(n) and math.isfinite(d)):
            raise ValueError
    except ValueError:
        return '<p class="warn" id="recommend-error">N, D and the sequence length must be positive numbers, e.g. 7e9 and 2e12.</p>', None
    laws = list(PUBLISHED_LAWS.values()) + list(state.recommender.laws().values())
    if law:
        laws = [item for item in laws if item.name == law] or laws
    recs = [recommend_with(item, n, d, seq_len=s) for item in laws]

    def interval(pair: Any, fmt: str) -> str:
        return "-" if pair is None else f"{pair[0]:{fmt}} .. {pair[1]:{fmt}}"

    rows = "".join(
        f"<tr><td>{_e(r.law)}</td><td class='num lr'>{r.learning_rate:.3g}</td><td class=num>{interval(r.learning_rate_interval, '.3g')}</td>"
        f"<td class=num>{r.batch_size_tokens:,}</td><td class='num seqs'>{r.batch_size_sequences:,}</td>"
        f"<td class=num>{interval(r.batch_size_sequences_interval, ',')}</td></tr>"
        for r in recs
    )
    warnings = "".join(f'<div class="warn">{_e(r.law)}: {_e(w)}</div>' for r in recs for w in r.warnings)
    table = f"""<h2>N = {n:.3g}, D = {d:.3g}, sequences of {s}</h2><table id="recommendations"><thead><tr><th>law</th>
<th class=num>learning rate</th><th class=num>interval</th><th class=num>batch (tokens)</th><th class=num>batch (sequences)</th>
<th class=num>interval (sequences)</th></tr></thead><tbody>{rows}</tbody></table>{warnings}"""
    return table, (n, d)
