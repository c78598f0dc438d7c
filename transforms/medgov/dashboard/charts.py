"""Plotly figures for the dashboard views, as HTML fragments (plotly.js is shipped once as an
asset from the plotly package, so pages work offline)."""

from __future__ import annotations

from typing import Any, Callable

import plotly.graph_objects as go
from plotly.subplots import make_subplots

STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#ef8f00", "fail": "#c62828", None: "#90a4ae"}
CONFIG = {"displaylogo": False, "responsive": True}


def _html(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(margin=dict(l=40, r=20, t=40, b=40), template="plotly_white", font=dict(size=12))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=CONFIG)


def overview_trend(cells: list[dict[str, Any]], layers: tuple[str, ...], t: Callable[[str], str]) -> str:
    """Share of checks passing per batch, one panel per layer, one line per institution."""
    shown = [layer for layer in layers if any(c["layer"] == layer for c in cells)]
    fig = make_subplots(rows=1, cols=max(len(shown), 1), shared_yaxes=True, subplot_titles=[t(x) for x in shown])
    orgs = sorted({c["org_code"] for c in cells})
    palette = ["#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593", "#f9a825"]
    for col, layer in enumerate(shown, start=1):
        for i, org in enumerate(orgs):
            cell = next((c for c in cells if c["layer"] == layer and c["org_code"] == org), None)
            if not cell:
                continue
            fig.add_trace(go.Scatter(
                x=[p["batch_key"].split("/", 1)[1] for p in cell["trend"]], y=[p["share"] for p in cell["trend"]],
                mode="lines+markers", name=org, legendgroup=org, showlegend=col == 1,
                line=dict(color=palette[i % len(palette)]),
                marker=dict(color=[STATUS_COLOURS[p["status"]] for p in cell["trend"]], size=9)), row=1, col=col)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_layout(height=320, legend=dict(orientation="h", y=-0.25))
    return _html(fig, "overview-trend")


def check_per_batch(per_batch: list[dict[str, Any]], threshold: float, t: Callable[[str], str]) -> str:
    """Unexpected % per batch and institution, with the most the threshold allows."""
    fig = go.Figure()
    for org in sorted({r["org_code"] for r in per_batch}):
        rows = [r for r in per_batch if r["org_code"] == org]
        fig.add_trace(go.Bar(x=[r["batch_key"] for r in rows], y=[r["unexpected_percent"] or 0 for r in rows],
                             name=org, marker_color=[STATUS_COLOURS["pass" if r["success"] else "fail"] for r in rows]))
    fig.add_hline(y=(1 - threshold) * 100, line_dash="dash", line_color="#555")
    fig.update_layout(height=300, yaxis_title=t("unexpected_percent"), showlegend=False)
    return _html(fig, "check-per-batch")


def quarantine_over_time(per_batch: list[dict[str, Any]], t: Callable[[str], str]) -> str:
    """Quarantined rows per batch, stacked by reason kind."""
    fig = go.Figure()
    batches = sorted({r["batch_key"] for r in per_batch}, key=lambda k: (k.split("/", 1)[1], k))
    for reason in sorted({r["reason"] for r in per_batch}):
        counts = {r["batch_key"]: r["rows"] for r in per_batch if r["reason"] == reason}
        fig.add_trace(go.Bar(x=batches, y=[counts.get(b, 0) for b in batches], name=reason))
    fig.update_layout(barmode="stack", height=360, yaxis_title=t("rows"), legend=dict(orientation="h", y=-0.4))
    return _html(fig, "quarantine-over-time")


def lineage_sankey(lineage: dict[str, Any], t: Callable[[str], str]) -> str:
    """Sources -> bronze -> silver -> gold as a Sankey diagram, nodes coloured by quality."""
    names = [n["name"] for n in lineage["nodes"]]
    index = {n: i for i, n in enumerate(names)}
    labels = [f"{n['name']} · {n['share']:.0%}" if n["share"] is not None else n["name"] for n in lineage["nodes"]]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node=dict(label=labels, pad=14, thickness=14, color=[STATUS_COLOURS[n["status"]] for n in lineage["nodes"]]),
        link=dict(source=[index[e["source"]] for e in lineage["edges"]],
                  target=[index[e["target"]] for e in lineage["edges"]], value=[1] * len(lineage["edges"]),
                  label=[e["job"] for e in lineage["edges"]], color="rgba(120,144,156,0.35)")))
    fig.update_layout(height=max(420, 28 * len(names)))
    return _html(fig, "lineage-sankey")


def institution_grid(inst: dict[str, Any], t: Callable[[str], str]) -> str:
    """Share of checks passing per table (rows) and batch (columns): where a feed got worse."""
    fig = go.Figure(go.Heatmap(
        z=inst["grid"], x=[k.split("/", 1)[1] for k in inst["batches"]], y=inst["tables"], zmin=0, zmax=1,
        colorscale=[[0, STATUS_COLOURS["fail"]], [0.9, STATUS_COLOURS["warn"]], [1, STATUS_COLOURS["pass"]]],
        text=[["" if v is None else f"{v:.0%}" for v in row] for row in inst["grid"]], texttemplate="%{text}",
        colorbar=dict(tickformat=".0%"), hovertemplate="%{y} · %{x}: %{z:.1%}<extra></extra>"))
    fig.update_layout(height=120 + 34 * len(inst["tables"]), xaxis=dict(type="category"), yaxis=dict(autorange="reversed"))
    return _html(fig, "institution-grid")
