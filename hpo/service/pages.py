"""The dashboard's pages: studies, one study, a sweep across proxy sizes, scaling laws.

The server routes the pages and renders their tables; the charts are Plotly charts that the
page's script (``static/``) draws in the browser from the page's JSON document
(:mod:`hpo.service.dashboard_api`). A study or sweep page polls its document while visible
and, when the version changes, redraws its charts and swaps in the blocks marked
``data-live`` from a fresh copy of the page, so counts and tables follow the charts. No
template engine: the markup is built with escaping in one place (:func:`_e`).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from db.errors import StudyNotFoundError
from db.models import SORTABLE_TRIAL_COLUMNS, TrialState
from db.records import FrozenTrial
from db.store import STOPPED_TAG, StudySummary
from hpo.service.records import study_summary

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATE_COLORS = {
    "completed": "#2f7ed8",
    "pruned": "#f0a030",
    "failed": "#d9534f",
    "diverged": "#8e44ad",
    "running": "#5cb85c",
    "queued": "#999999",
}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe3ff;text-decoration:none;font-weight:500}header .brand{font-weight:700;color:#fff;font-size:18px}
main{padding:16px 24px;max-width:1400px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:16px;margin:18px 0 8px}
.card{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:12px 14px;margin-bottom:14px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
.chart{min-height:360px}.chart .plot{height:340px}.chart.wide .plot{height:420px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:5px 8px;border-bottom:1px solid #eceef1;text-align:left}
th{background:#fafbfc;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th a{color:#222;text-decoration:none}th a.on{color:#2f7ed8}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff;margin-right:4px}
.meta{color:#555;font-size:13px}.meta b{color:#222}
.empty{color:#777;font-style:italic;padding:24px;text-align:center}
.filters a{margin-right:10px;font-size:13px}.filters a.on{font-weight:700}
.pager{margin-top:8px;font-size:13px}.pager a{margin-right:12px}
form.inline input{width:120px;margin-right:8px}form.inline button{padding:3px 12px}
.warn{color:#9a6700;font-size:13px}.note{color:#777;font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.6g}"
    return _e(value)


def _page(title: str, body: str, status: int = 200, scripts: tuple[str, ...] = (), data: dict[str, Any] | None = None) -> HTMLResponse:
    sources = ("/static/plotly.min.js", "/static/hpo/common.js", *scripts) if scripts else ()
    tags = "".join(f'<script src="{src}"></script>' for src in sources)
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in (data or {}).items())
    # the page's document is fetched while plotly.js loads (common.js takes this first answer)
    early = (f"<script>window.hpoFirstFetch = fetch({json.dumps(data['document'])}, {{cache: 'no-store'}});</script>"
             if data and "document" in data else "")
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)} · hposcale</title>
<style>{CSS}</style>{early}</head><body>
<header><span class="brand">hposcale</span><a href="/">Studies</a><a href="/scaling">Scaling</a>
<a href="/docs">API</a></header>
<main{attrs}>{body}</main>{tags}</body></html>"""
    return HTMLResponse(doc, status_code=status)


def _not_found(message: str) -> HTMLResponse:
    return _page("Not found", f'<h1>Not found</h1><div class="card" id="not-found">{_e(message)}</div>', status=404)


def _pills(counts: dict[TrialState, int]) -> str:
    return "".join(
        f'<span class="pill" style="background:{STATE_COLORS[s.value]}" title="{s.value}">{s.value} {n}</span>'
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
        f'<td><span class="pill" style="background:{STATE_COLORS[t.state.value]}">{t.state.value}</span></td>'
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


def _chart(name: str, title: str, extra: str = "", wide: bool = False) -> str:
    return (f'<div class="card chart{" wide" if wide else ""}" id="chart-{name}"><h2>{title}</h2>{extra}'
            f'<div class="note" id="note-{name}"></div><div class="plot"></div></div>')


@router.get("/studies/{name}", response_class=HTMLResponse)
def study_page(
    request: Request, name: str, sort: str = "number", order: str = "desc", state: str = "", page: int = 1
) -> HTMLResponse:
    store = request.app.state.store
    try:
        summary = study_summary(store, name)
    except StudyNotFoundError as exc:
        return _not_found(str(exc))
    record = summary.study
    sort = sort if sort in SORTABLE_TRIAL_COLUMNS else "number"
    order = order if order in ("asc", "desc") else "desc"
    state = state if state in {s.value for s in TrialState} else ""
    page = max(1, page)
    total, shown = store.trial_page(
        record.id, states=[TrialState(state)] if state else None, sort=sort, descending=order == "desc",
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
    )
    space = record.search_space or {}
    params = list(space.get("parameters") or {})[:6] or sorted({k for t in shown for k in t.params})[:6]
    stopped = f' <span class="pill" style="background:#d9534f">stopped {_e(record.tags[STOPPED_TAG])}</span>' if STOPPED_TAG in record.tags else ""
    fidelity = space.get("fidelity")
    pick = '<label>x <select id="contour-x"></select></label> <label>y <select id="contour-y"></select></label>'
    body = f"""<h1>{_e(record.name)}{stopped}</h1>
<div class="card meta">algorithm <b>{_e(record.algorithm)}</b> · {_e(record.direction.value)} · objective <b>{_e(record.objective or '-')}</b>
 · sweep <b>{_e(record.sweep or '-')}</b> · {len(space.get('parameters') or {})} parameters
 {f"· fidelity <b>{_e(fidelity.get('name'))}</b> {_fmt(fidelity.get('min'))}..{_fmt(fidelity.get('max'))}" if fidelity else ''}
<div id="summary" data-live>{_pills(summary.counts)} · best value at any budget <b class="best">{_fmt(summary.best_value)}</b></div>
best at the largest budget: <span id="best-trial">no completed trial yet</span></div>
<div class="grid">{_chart("history", "Optimization history")}{_chart("intermediate", "Intermediate values")}
{_chart("contour", "Contour", pick)}{_chart("importance", "Parameter importance")}</div>
{_chart("slice", "Slice", wide=True)}{_chart("parallel", "Parallel coordinates", wide=True)}
<h2>Trials</h2><div class="card" id="trials-card" data-live>{_trials_table(name, shown, total, params, {"sort": sort, "order": order, "state": state, "page": page})}</div>"""
    url = f"/api/studies/{quote(name, safe='')}/dashboard"
    return _page(record.name, body, scripts=("/static/hpo/study.js",), data={"document": url})


@router.get("/sweeps/{name}", response_class=HTMLResponse)
async def sweep_page(request: Request, name: str) -> HTMLResponse:
    """The muTransfer picture (drawn by ``sweep.js``) and each study's best and optimum."""
    from hpo.service.dashboard_api import sweep_document

    found = await sweep_document(request.app.state, name)
    if found is None:
        return _not_found(f"no sweep named {name!r} with studies")
    doc = json.loads(found[1])
    rows = "".join(
        f"<tr><td>{_study_link(c['study'])}</td><td class=num>{_fmt(c['size'])}</td><td class=num>{len(c['trials']['number'])}</td>"
        f"<td class=num>{_fmt(c['budget'])}</td><td class='num opt-lr'>{_fmt(c['best']['learning_rate'])}</td>"
        f"<td class=num>{_fmt(c['best']['value'])}</td>"
        + (f"<td class='num optimum'>{_fmt(c['optimum']['learning_rate'])}</td>"
           f"<td class=num>{_fmt(c['optimum']['interval'][0])} .. {_fmt(c['optimum']['interval'][1])}</td>"
           if c["optimum"] else "<td class=num>-</td><td class=num>-</td>")
        + "</tr>"
        for c in doc["curves"]
    )
    table = ("<table id=sweep-optima><thead><tr><th>study</th><th class=num>size</th><th class=num>trials</th>"
             "<th class=num>budget</th><th class=num>best learning rate</th><th class=num>its loss</th>"
             "<th class=num>optimum (quadratic)</th><th class=num>within 0.25% of best</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>") if rows else "<div class=empty>no completed trial with a learning rate yet</div>"
    body = f"""<h1>Sweep {_e(name)}</h1>{_chart("mutransfer", "Loss against learning rate by size", wide=True)}
<div class="card" id="sweep-table" data-live>{table}</div>"""
    url = f"/api/sweeps/{quote(name, safe='')}/dashboard"
    return _page(f"sweep {name}", body, scripts=("/static/hpo/sweep.js",), data={"document": url})


@router.get("/scaling", response_class=HTMLResponse)
def scaling_page(request: Request) -> HTMLResponse:
    """The stored fits' laws (drawn by ``scaling.js``) and a form for a target: its
    recommendation comes from ``GET /api/recommend`` and it is plotted on every law."""
    from scaling.report import FitReport, TargetReport

    form = """<form class="inline" id="target-form">N (non-embedding parameters) <input name="params" placeholder="7e9">
D (tokens) <input name="tokens" placeholder="2e12"> sequence length <input name="seq_len" value="4096">
<button type="submit">Recommend</button></form><div id="recommendation"></div>"""
    sections = []
    for record in request.app.state.store.list_fits():
        report = FitReport.from_dict(record.report)

        def err(t: TargetReport) -> str:
            return "-" if t.held_out_error is None else f"{100 * t.held_out_error:.1f}%"

        lr, batch = report.learning_rate, report.batch_size
        sections.append(
            f"""<div class="card fit" id="fit-{_e(record.name)}" data-fit="{_e(record.name)}"><h2>{_e(record.name)} <span class="meta">{_e(record.form)} form · {_e(record.source)}</span></h2>
<div class="meta">learning rate <b>{_e(lr.formula)}</b> (held-out error {err(lr)}) ·
batch size <b>{_e(batch.formula)}</b> tokens{_e(batch.origin_note)} (held-out error {err(batch)})</div>
<div class="note">band: 90% bootstrap · points: the fitted cells' optima · dashed: extrapolation · star: the target</div>
<div class="fit-charts"></div></div>"""
        )
    body = f"""<h1>Scaling laws</h1><div class="card">{form}</div>
{''.join(sections) or '<div class="card empty">No fitted law yet: hpo scaling fit --sweep NAME (published laws are always in the recommendations)</div>'}"""
    return _page("Scaling", body, scripts=("/static/hpo/scaling.js",))
