"""The report as one self-contained HTML page: `ReportData` and its pictures in, text out.

Self-contained: every picture is a `data:` URI (PNG from matplotlib, SVG from `dot`), the
style sheet is inline, and there is no script, web font or external reference at all; the
page's Content-Security-Policy (`default-src 'none'`) says so to the browser too, so even a
mistake in escaping could not load or run anything.

Escaping: the page is a Jinja2 template with autoescaping on, so every value — a company
name, a lead source, an objection class, a ticket reason, a policy name — is HTML-escaped
where it is inserted, without anyone having to remember to. Nothing is marked safe except
the base64 `data:` URIs this module builds itself.

Deterministic: the same data and pictures give the same bytes (no generation time: the
header says the window and the time of the latest event counted instead).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.report_charts import Picture
from domain.analytics import _duration
from domain.report_data import ReportData

SECTIONS: tuple[tuple[str, str], ...] = (
    ("metrics", "Funnel, conversion and time to qualify"),
    ("scores", "Lead scores by band"),
    ("drivers", "What drives scores"),
    ("objections", "Objections and escalations"),
    ("tickets", "Tickets by reason and time to claim; the CRM sync"),
    ("narrative", "Narrative resonance and penalized urgency"),
    ("fairness", "The fairness penalty's effect"),
    ("flow", "The conversation flow and its traffic"),
)
"""Every section's id and heading, in page order (the browser test checks each is there)."""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{{ data.generator_version }}">
<title>Sales report — {{ window }}</title>
<style>
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #1f3a5f; padding-bottom: 0.2rem;
       margin-top: 2.5rem; } h3 { margin-bottom: 0.3rem; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dl.header dt { font-weight: bold; } dl.header dd { margin: 0; font-family: monospace; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: bold; padding: 0.3rem 0; }
.note { background: #fff8e1; border-left: 4px solid #ef6c00; padding: 0.4rem 0.8rem; }
.flag { color: #b71c1c; font-weight: bold; }
nav ol { columns: 2; }
</style>
</head>
<body>
<header id="header">
<h1>Sales report</h1>
<p class="note">Contains prospects' company names and figures derived from credit scores:
for auditors only. Whoever can run <code>salesbot report</code> on the store can read it
(the operator's shell access is the boundary); keep the file where only they can.</p>
<dl class="header">
<dt>Window</dt><dd>{{ window }}</dd>
<dt>Latest event counted</dt><dd>{{ data.as_of_ms | iso }}</dd>
<dt>Store</dt><dd>{{ data.store }}</dd>
<dt>Policy</dt><dd>{{ data.policy_name }} ({{ data.policy_version }})</dd>
<dt>Generator</dt><dd>{{ data.generator_version }}</dd>
<dt>Report schema</dt><dd>{{ data.schema_version }}</dd>
<dt>Conversations</dt><dd>{{ data.conversations }} ({{ data.leads }} leads)</dd>
</dl>
<nav><ol>{% for id, title in sections %}<li><a href="#{{ id }}">{{ title }}</a></li>{% endfor %}</ol></nav>
</header>

<section id="metrics">
<h2>{{ titles.metrics }}</h2>
<p>The same chart as <code>/metrics</code> in chat, over the conversations started in the window.</p>
{{ img(pictures.metrics) }}
{% set m = data.metrics %}
<table><caption>Funnel</caption>
<tr><th>stage</th><th class="n">conversations</th></tr>
{% for bar in data.chart.funnel %}<tr><td>{{ bar.label }}</td><td class="n">{{ bar.value }}</td></tr>{% endfor %}
</table>
<table><caption>Engaged outcomes</caption>
<tr><th>outcome</th><th class="n">conversations</th></tr>
{% for bar in data.chart.outcomes %}<tr><td>{{ bar.label }}</td><td class="n">{{ bar.value }}</td></tr>{% endfor %}
{% for bar in data.chart.lost_reasons %}<tr><td>lost: {{ bar.label }}</td><td class="n">{{ bar.value }}</td></tr>{% endfor %}
</table>
<table><caption>Conversion and time to qualify</caption>
<tr><th>figure</th><th class="n">value</th><th>95% interval</th></tr>
<tr><td>conversion (won / engaged)</td><td class="n">{{ m.won }} / {{ m.engaged }} = {{ m.conversion_rate | pct }}</td>
<td>Wilson {{ m.wilson_95 | interval }}; Jeffreys {{ m.jeffreys_95 | interval }}</td></tr>
{% for d in data.chart.time_to_qualify %}<tr><td>time to qualify {{ d.label }} (n={{ data.chart.qualified }})</td>
<td class="n">{{ d.ms | duration }}</td><td>{% if d.interval_ms %}bootstrap {{ d.interval_ms[0] | duration }} – {{ d.interval_ms[1] | duration }}{% else %}too few times for an interval{% endif %}</td></tr>{% endfor %}
<tr><td>abandonment</td><td class="n">{{ m.abandonment_rate | pct }}</td><td></td></tr>
</table>
{% if data.chart.warning %}<p class="note">{{ data.chart.warning }}</p>{% endif %}
<table><caption>Conversion by persona and by lead source</caption>
<tr><th>by</th><th>group</th><th class="n">won</th><th class="n">engaged</th><th class="n">rate</th><th>Wilson 95%</th><th>Jeffreys 95%</th></tr>
{% for s in data.chart.segments %}<tr><td>{{ s.dimension }}</td><td>{{ s.label }}</td><td class="n">{{ s.won }}</td><td class="n">{{ s.engaged }}</td>
<td class="n">{{ s.rate | pct }}</td><td>{{ s.wilson_95 | interval }}</td><td>{{ s.jeffreys_95 | interval }}</td></tr>
{% else %}<tr><td colspan="7">No engaged conversations in the window.</td></tr>{% endfor %}
</table>
</section>

<section id="scores">
<h2>{{ titles.scores }}</h2>
<p>Each conversation's latest lead score, by band, and the scores binned by value.</p>
{{ img(pictures.scores) }}
<table><caption>Leads by band</caption>
<tr><th>band</th><th class="n">leads</th><th class="n">share</th></tr>
{% for b in data.bands %}<tr><td>{{ b.band }}</td><td class="n">{{ b.leads }}</td><td class="n">{{ b.share | pct }}</td></tr>{% endfor %}
</table>
{% if data.score_bins %}<table><caption>Score distribution</caption>
<tr><th>score from</th><th>below</th><th class="n">hot</th><th class="n">warm</th><th class="n">cold</th></tr>
{% for b in data.score_bins %}<tr><td>{{ b.low }}</td><td>{{ b.high }}{% if loop.last %} (inclusive){% endif %}</td><td class="n">{{ b.hot }}</td><td class="n">{{ b.warm }}</td><td class="n">{{ b.cold }}</td></tr>{% endfor %}
</table>{% endif %}
</section>

<section id="drivers">
<h2>{{ titles.drivers }}</h2>
{% set c = data.contributions %}
<p>Σ w×x of each named feature over the latest scores of {{ c.leads }} conversations
({{ c.features }} features contributed; the intercept, the same for every lead, adds {{ c.intercept_total }} in all).</p>
{{ img(pictures.drivers) }}
<table><caption>Features that raise scores most</caption>
<tr><th>feature</th><th>in words</th><th class="n">Σ w×x</th><th class="n">leads</th></tr>
{% for r in c.positive %}<tr><td><code>{{ r.feature }}</code></td><td>{{ r.words }}</td><td class="n">{{ r.total }}</td><td class="n">{{ r.leads }}</td></tr>
{% else %}<tr><td colspan="4">None.</td></tr>{% endfor %}
</table>
<table><caption>Features that lower scores most</caption>
<tr><th>feature</th><th>in words</th><th class="n">Σ w×x</th><th class="n">leads</th></tr>
{% for r in c.negative %}<tr><td><code>{{ r.feature }}</code></td><td>{{ r.words }}</td><td class="n">{{ r.total }}</td><td class="n">{{ r.leads }}</td></tr>
{% else %}<tr><td colspan="4">None.</td></tr>{% endfor %}
</table>
</section>

<section id="objections">
<h2>{{ titles.objections }}</h2>
<p>Messages read as an objection class, and how many of them escalated to a person.</p>
{{ img(pictures.objections) }}
<table><caption>Objection classes</caption>
<tr><th>class</th><th class="n">messages</th><th class="n">conversations</th><th class="n">escalated</th><th class="n">escalation rate</th></tr>
{% for r in data.objections %}<tr><td>{{ r.objection }}</td><td class="n">{{ r.messages }}</td><td class="n">{{ r.conversations }}</td><td class="n">{{ r.escalated }}</td><td class="n">{{ r.escalation_rate | pct }}</td></tr>
{% else %}<tr><td colspan="5">No objections in the window.</td></tr>{% endfor %}
</table>
</section>

<section id="tickets">
<h2>{{ titles.tickets }}</h2>
<p>Tickets opened in the window's conversations, by reason, and the time from opening to the first claim.</p>
{{ img(pictures.tickets) }}
<table><caption>Tickets by reason</caption>
<tr><th>reason</th><th class="n">opened</th><th class="n">claimed</th><th class="n">time to claim p50</th><th class="n">p90</th></tr>
{% for r in data.tickets %}<tr><td>{{ r.words }} (<code>{{ r.reason }}</code>)</td><td class="n">{{ r.opened }}</td><td class="n">{{ r.claimed }}</td><td class="n">{{ r.claim_p50_ms | duration }}</td><td class="n">{{ r.claim_p90_ms | duration }}</td></tr>
{% else %}<tr><td colspan="5">No tickets in the window.</td></tr>{% endfor %}
</table>
{% if data.crm %}
<p>The CRM writes the window's decisions requested (<code>[crm]</code>): sent, with the time
from the decision to the send; waiting in the outbox (parked while no CRM is configured,
or being retried){% if data.crm.oldest_waiting_ms is not none %}, the oldest for
{{ data.crm.oldest_waiting_ms | duration }}{% endif %}; failed (dead-lettered, with an alert
in the handoff channel).</p>
<table><caption>CRM sync</caption>
<tr><th>record</th><th class="n">requested</th><th class="n">sent</th><th class="n">waiting</th><th class="n">failed</th><th class="n">lag p50</th><th class="n">p90</th></tr>
{% for r in data.crm.artifacts %}<tr><td>{{ r.artifact }}</td><td class="n">{{ r.requested }}</td><td class="n">{{ r.sent }}</td><td class="n">{{ r.waiting }}</td><td class="n">{{ r.failed }}</td><td class="n">{{ r.lag_p50_ms | duration }}</td><td class="n">{{ r.lag_p90_ms | duration }}</td></tr>
{% endfor %}
</table>
{% endif %}
</section>

<section id="narrative">
<h2>{{ titles.narrative }}</h2>
<p>As the notebook's §12: each conversation's latest narrative assessment, resonance against
urgency after the fairness penalty; where the penalty applied, an arrow runs from the raw
urgency down to the penalized one. Points high and right remain actionable after the
penalty; a long arrow merits policy review.</p>
{{ img(pictures.narrative) }}
<table><caption>Narrative assessments</caption>
<tr><th>point</th><th>company</th><th>conversation</th><th class="n">resonance</th><th class="n">raw urgency</th><th class="n">penalized urgency</th><th class="n">credit</th><th>reason code</th></tr>
{% for p in data.narrative %}<tr><td>{{ p.key }}</td><td>{{ p.company }}</td><td><code>{{ p.conversation_id }}</code></td><td class="n">{{ p.resonance }}</td><td class="n">{{ p.raw_urgency }}</td><td class="n">{{ p.penalized_urgency }}</td><td class="n">{{ p.credit if p.credit is not none else "unknown" }}</td><td>{{ p.reason_code }}</td></tr>
{% else %}<tr><td colspan="8">No narrative assessments in the window.</td></tr>{% endfor %}
</table>
</section>

<section id="fairness">
<h2>{{ titles.fairness }}</h2>
{% set f = data.fairness %}
{% if f is none %}<p class="note">{{ data.fairness_note }}</p>{% else %}
<p>The window's {{ f.leads }} leads decided with and without the penalty under c0 = {{ f.knobs.c0 }},
λ = {{ f.knobs.lambda_ }}, minimum urgency {{ f.knobs.min_urgency }} (as <code>salesbot fairness</code>).</p>
{{ img(pictures.fairness) }}
{% set g = f.credit_groups %}
<p>Pursued-now rate below c0: {{ g.rate_below | dpct }} ({{ g.below }} leads); at or above: {{ g.rate_at_or_above | dpct }} ({{ g.at_or_above }} leads); {{ g.unknown }} with unknown credit.
Ratio {{ g.ratio if g.ratio is not none else "n/a" }} (without the penalty: {{ g.ratio_without_penalty if g.ratio_without_penalty is not none else "n/a" }}).
{% if g.flagged %}<span class="flag">Flagged: below the four-fifths rule (0.8).</span>{% else %}Not flagged by the four-fifths rule (0.8).{% endif %}</p>
{% for caption, rows in (("All leads", [f.overall]), ("By band", f.by_band), ("By lead source", f.by_source), ("By company size", f.by_company_size)) %}
<table><caption>{{ caption }}</caption>
<tr><th>group</th><th class="n">leads</th><th class="n">pursued now without</th><th class="n">with the penalty</th><th class="n">moved out</th><th class="n">mean urgency change</th></tr>
{% for r in rows %}<tr><td>{{ r.group }}</td><td class="n">{{ r.leads }}</td><td class="n">{{ r.pursued_without_penalty }}</td><td class="n">{{ r.pursued_with_penalty }}</td><td class="n">{{ r.moved_out }}</td><td class="n">{{ r.mean_urgency_change }}</td></tr>{% endfor %}
</table>{% endfor %}
{% endif %}
</section>

<section id="flow">
<h2>{{ titles.flow }}</h2>
<p>The policy's flow; each transition labelled with the conversations that took it in the window
(grey and dashed: nobody did; red: taken under another policy, not in this one).</p>
{% if flow_problem %}<p class="note">{{ flow_problem }}</p>{% endif %}
{{ img(pictures.flow) }}
<table><caption>Transitions and their traffic</caption>
<tr><th>from</th><th>to</th><th>on</th><th class="n">conversations</th><th class="n">times taken</th></tr>
<tr><td>(start)</td><td>{{ data.flow.start }}</td><td></td><td class="n">{{ data.flow.started }}</td><td class="n">{{ data.flow.started }}</td></tr>
{% for e in data.flow.edges %}<tr><td>{{ e.source }}</td><td>{{ e.to }}</td><td>{{ e.label }}{% if not e.in_policy %} (not in this policy){% endif %}</td><td class="n">{{ e.conversations }}</td><td class="n">{{ e.taken }}</td></tr>{% endfor %}
</table>
</section>
</body>
</html>
"""


def iso(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def window_text(data: ReportData) -> str:
    if data.since_ms is None and data.until_ms is None:
        return "all conversations"
    since = iso(data.since_ms) if data.since_ms is not None else "the beginning"
    until = iso(data.until_ms) if data.until_ms is not None else "now"
    return f"conversations started from {since} until {until}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _dpct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _interval(value: Any) -> str:
    return "—" if value is None else f"{value.low:.1%} – {value.high:.1%}"


def _duration_text(ms: int | None) -> str:
    return "—" if ms is None else _duration(ms)


def render_html(
    data: ReportData,
    pictures: dict[str, Picture | None],
    flow_svg: bytes | None,
    flow_problem: str | None,
) -> str:
    """The page. `pictures` by section id (None: nothing to draw); the flow as SVG."""
    import jinja2
    from markupsafe import Markup, escape

    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    environment.filters.update(
        iso=iso, pct=_pct, dpct=_dpct, interval=_interval, duration=_duration_text
    )

    def img(picture: tuple[str, str, str] | None) -> Markup:
        if picture is None:
            return Markup('<p class="empty">Nothing to draw in this window.</p>')
        media_type, payload, alt = picture
        return Markup('<figure><img src="{}" alt="{}"></figure>').format(
            Markup(f"data:{media_type};base64,{payload}"), escape(alt)
        )

    encoded: dict[str, tuple[str, str, str] | None] = {}
    for key, picture in pictures.items():
        encoded[key] = (
            None
            if picture is None
            else ("image/png", base64.b64encode(picture.png).decode("ascii"), picture.alt)
        )
    encoded["flow"] = (
        None
        if flow_svg is None
        else (
            "image/svg+xml",
            base64.b64encode(flow_svg).decode("ascii"),
            "Flow diagram of policy "
            + data.policy_name
            + ": "
            + "; ".join(
                f"{e.source} to {e.to} on {e.label}: {e.conversations} conversations"
                for e in data.flow.edges
                if e.conversations
            ),
        )
    )
    template = environment.from_string(_TEMPLATE)
    return template.render(
        data=data,
        window=window_text(data),
        sections=SECTIONS,
        titles=dict(SECTIONS),
        pictures=encoded,
        img=img,
        flow_problem=flow_problem,
    )
