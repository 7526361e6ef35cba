"""Report forms of impact results: terminal table, JSON, timeline plot, docs markdown.

* ``table(results)``: a rich ``Table``, one row per operation x traffic class;
  ``print_table`` prints it.
* ``to_json(results)`` / ``from_json(obj)``: the machine form (``{"version": 1,
  "results": [...]}``), read back by every other function here.
* ``plot_timeline(results, path)``: a PNG, one panel per operation, one lane per
  traffic class: arrivals as ticks, disrupted periods in red, failures as crosses,
  the operation's phases shaded and labelled; x is seconds from the operation start.
* ``blips_markdown(results, explanations)``: the text of ``docs/blips.md``.
* ``rich_progress()``: a context manager giving a ``progress(message, fraction)``
  callback for ``measure`` that draws a progress bar.

Must not import the switch layers; matplotlib is imported only by ``plot_timeline``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from hitless.impact.analysis import ClassStats, ImpactResult

__all__ = [
    "blips_markdown",
    "from_json",
    "plot_timeline",
    "print_table",
    "rich_progress",
    "table",
    "to_json",
]

JSON_VERSION = 1
Results = Sequence[ImpactResult]


# ---------------------------------------------------------------- formatting


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x * 1000:.0f} ms"
    return f"{x * 1000:.1f} ms"


def _unit(kind: str) -> str:
    return {
        "udp": "datagrams",
        "udp-cross": "datagrams",
        "openflow": "datagrams",
        "broadcast": "datagrams",
        "ct-udp": "datagrams",
        "tcp-stream": "messages",
        "ct-tcp-stream": "messages",
        "tcp-connect": "connections",
        "ct-tcp-connect": "connections",
        "arp": "resolutions",
        "nd": "resolutions",
        "controller": "echo requests",
    }.get(kind, "units")


def _lost_label(kind: str) -> str:
    return {
        "tcp-connect": "failed",
        "ct-tcp-connect": "failed",
        "arp": "failed",
        "nd": "failed",
        "tcp-stream": "unechoed",
        "controller": "echoes unanswered",
    }.get(kind, "lost")


def _outcome_text(c: ClassStats) -> str | None:
    """The outcome as a reader says it: a controller that survived stayed connected."""
    if c.kind == "controller" and c.outcome == "survived":
        return "connected throughout"
    return c.outcome


def _outcome(c: ClassStats) -> str:
    parts: list[str] = []
    outcome = _outcome_text(c)
    if outcome is not None:
        parts.append(outcome)
    if c.kind == "controller" and c.sent:
        parts.append(f"longest echo stall {_ms(c.longest_gap)}")
    for k, v in sorted(c.failures.items()):
        if c.kind == "controller" or k != c.outcome:  # controller: disconnects by kind
            parts.append(f"{v} {k}")
    if c.duplicates:
        parts.append(f"{c.duplicates} dup")
    if c.reordered:
        parts.append(f"{c.reordered} reordered")
    if c.late:
        parts.append(f"{c.late} late")
    if c.before_op:
        parts.append(f"{c.before_op} before op (noise)")
    return ", ".join(parts) or "clean"


# ---------------------------------------------------------------- table


def table(results: Results, title: str = "Traffic impact") -> Table:
    """One row per operation and traffic class; red where something was lost or
    failed, yellow where it was only late or out of order, green when clean."""
    t = Table(title=title, show_lines=False, header_style="bold")
    t.add_column("operation")
    t.add_column("class")
    t.add_column("sent", justify="right")
    t.add_column("lost / failed", justify="right")
    t.add_column("longest gap", justify="right")
    t.add_column("disrupted", justify="right")
    t.add_column("worst latency", justify="right")
    t.add_column("notes")
    for res in results:
        for i, c in enumerate(res.classes):
            style = "green"
            if c.lost or c.outcome not in (None, "survived"):
                style = "red"
            elif not c.clean:
                style = "yellow"
            t.add_row(
                res.operation if i == 0 else "",
                c.name,
                str(c.sent),
                Text(str(c.lost), style=style),
                _gap(c),
                Text(_ms(c.disrupted) if c.disrupted else "0", style=style),
                _ms(c.worst_latency),
                Text(_outcome(c), style=style),
                end_section=i == len(res.classes) - 1 and not res.notes,
            )
        notes = list(res.notes)
        if res.cpu_stalls:
            notes.append(
                f"the machine stalled {len(res.cpu_stalls)} times (a CPU ran nothing; "
                f"longest {_ms(max(b - a for a, b in res.cpu_stalls))}): "
                "gaps net of that in brackets"
            )
        for j, note in enumerate(notes):
            t.add_row(
                "",
                Text(note, style="dim"),
                *[""] * 6,
                end_section=j == len(notes) - 1,
            )
    return t


def _gap(c: ClassStats) -> str:
    """The longest gap, and what is left of it without the machine's stalls (when that
    is at least a millisecond less)."""
    if c.gap_net is None or c.longest_gap - c.gap_net < 0.001:
        return _ms(c.longest_gap)
    return f"{_ms(c.longest_gap)} ({_ms(c.gap_net)})"


def print_table(results: Results, console: Console | None = None) -> None:
    (console or Console()).print(table(results))


# ---------------------------------------------------------------- JSON


def to_json(results: Results, series: bool = False) -> dict[str, Any]:
    """The JSON form; with ``series`` it also carries what the timeline plot needs."""
    return {"version": JSON_VERSION, "results": [r.to_json(series=series) for r in results]}


def from_json(obj: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[ImpactResult]:
    """Results from ``to_json``'s form (or a bare list of results)."""
    if isinstance(obj, Mapping):
        version = obj.get("version")
        if version != JSON_VERSION:
            raise ValueError(
                f"impact results have format version {version!r}; this hitless reads {JSON_VERSION}"
            )
        items = obj["results"]
    else:
        items = obj
    return [ImpactResult.from_json(d) for d in items]


# ---------------------------------------------------------------- progress


@contextlib.contextmanager
def rich_progress(console: Console | None = None) -> Iterator[Any]:
    """``with rich_progress() as cb: measure(..., progress=cb)`` shows a bar."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as prog:
        task = prog.add_task("impact", total=1.0)

        def update(message: str, fraction: float) -> None:
            prog.update(task, description=message, completed=fraction)

        yield update


# ---------------------------------------------------------------- timeline plot

_PHASE_COLOURS = ("#fdd9a0", "#c6dbef", "#d9f0d3", "#e5d8ec", "#fcd5e5")
_MAX_CROSSES = 60  # beyond that, the red disrupted span already says it


def plot_timeline(results: Results, path: str | Path, title: str | None = None) -> Path:
    """Write the timeline PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_timeline needs at least one result")
    lanes = [len(r.classes) for r in results]
    fig, axes = plt.subplots(
        len(results),
        1,
        figsize=(13, 1.2 + sum(0.48 * n + 0.9 for n in lanes)),
        gridspec_kw={"height_ratios": [max(1, n) for n in lanes]},
        squeeze=False,
    )
    for ax, res in zip(axes[:, 0], results, strict=True):
        _panel(ax, res)
    axes[-1, 0].set_xlabel("seconds from the start of the operation")
    _legend(fig)
    if title:
        fig.suptitle(title, fontsize=13, fontweight="bold")
    fig.tight_layout(rect=(0, 0.03, 1, 0.985 if title else 1))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _panel(ax: Any, res: ImpactResult) -> None:
    n = len(res.classes)
    x0 = res.traffic_start
    x1 = res.traffic_start + res.duration
    for c in res.classes:
        x1 = max(x1, *(c.arrivals[-1:] or [x1]))
    pad = 0.02 * (x1 - x0 or 1.0)
    ax.set_xlim(x0 - pad, x1 + pad)
    rows = min(3, len(res.window.phases)) or 1
    ax.set_ylim(-0.6, n - 0.4 + 0.42 * rows + 0.2)
    # the operation and its phases, shaded across all lanes and labelled on top
    w = res.window
    ax.axvspan(w.start, w.end, color="#eeeeee", zorder=0)
    top = n - 0.4
    for i, ph in enumerate(w.phases):
        colour = _PHASE_COLOURS[i % len(_PHASE_COLOURS)]
        ax.axvspan(ph.start, max(ph.end, ph.start + 1e-4), color=colour, alpha=0.8, zorder=0)
        # labels start at their phase, on staggered rows so short phases do not collide
        ax.text(
            ph.start,
            top + 0.3 + 0.42 * (i % 3),
            f" {ph.name} ({_ms(ph.end - ph.start)})",
            ha="left",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.2", "fc": colour, "ec": "#888888", "lw": 0.5},
            zorder=5,
        )
    ax.axvline(0.0, color="#555555", lw=0.8, ls="--", zorder=1)
    names = []
    for lane, c in enumerate(reversed(res.classes)):
        y = lane
        names.append(c.name)
        if c.arrivals:
            ax.eventplot(
                [list(c.arrivals)],
                lineoffsets=y,
                linelengths=0.55,
                linewidths=0.6,
                colors="#3b6ea8",
                zorder=2,
            )
        for a, b in c.disruptions:
            ax.add_patch(
                _rect(a, y - 0.38, max(b - a, 0.004), 0.76, "#d62728", alpha=0.35, zorder=3)
            )
        if c.failed_at and len(c.failed_at) <= _MAX_CROSSES:
            ax.plot(
                list(c.failed_at),
                [y] * len(c.failed_at),
                ls="none",
                marker="x",
                ms=4,
                mew=0.9,
                color="#b00000",
                zorder=4,
            )
        ax.text(
            1.005,
            y,
            _lane_summary(c),
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=8,
            color="#b00000" if not c.clean else "#2a7a2a",
        )
    ax.set_yticks(range(n))
    ax.set_yticklabels(names, fontsize=9)
    ax.set_title(
        f"{res.operation}: {'no disruption' if res.clean else 'disrupted'}",
        loc="left",
        fontsize=11,
        fontweight="bold",
        color="#2a7a2a" if res.clean else "#b00000",
    )
    ax.grid(axis="x", color="#dddddd", lw=0.5, zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend(fig: Any) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="#3b6ea8", marker="|", ls="none", ms=10, mew=1.2),
        Patch(facecolor="#d62728", alpha=0.35),
        Line2D([], [], color="#b00000", marker="x", ls="none", ms=6),
        Patch(facecolor="#eeeeee"),
    ]
    labels = [
        "arrival / success",
        "disrupted (lost, failed or late)",
        "failed (send time)",
        "operation (phases shaded)",
    ]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)


def _rect(x: float, y: float, w: float, h: float, colour: str, **kw: Any) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="none", **kw)


def _lane_summary(c: ClassStats) -> str:
    if c.clean:
        done = "connected throughout" if c.kind == "controller" else "clean"
        return f"{c.sent} {_unit(c.kind)}, {done}"
    bits = []
    if c.lost:
        bits.append(f"{c.lost} {_lost_label(c.kind)}")
    if c.outcome not in (None, "survived"):
        bits.append(str(c.outcome))
    bits.append(f"{'echo stall' if c.kind == 'controller' else 'gap'} {_ms(c.longest_gap)}")
    if c.late and not c.lost:
        bits.append(f"{c.late} late")
    return ", ".join(bits)


# ---------------------------------------------------------------- docs/blips.md


def blips_markdown(
    results: Results,
    explanations: Mapping[str, str] | None = None,
    preamble: str | None = None,
    operation_notes: Mapping[str, str] | None = None,
) -> str:
    """The markdown of docs/blips.md: per operation a table of its traffic classes,
    then one line per remaining disruption with its explanation.

    ``explanations`` keys are ``"<operation>/<class name>"`` or, for every class of
    a kind, ``"<operation>/<kind>"``; a disruption with no explanation gets a
    visible *unexplained* marker, so a regenerated page shows what needs a reason.
    ``operation_notes`` (by operation) is printed under a disrupted operation's table:
    why it disrupts at all, said once rather than per class."""
    explanations = explanations or {}
    out = ["# Blips: what each way of restarting the switch does to traffic", ""]
    out.append(
        preamble
        or (
            "Generated from the JSON output of `hitless impact`; do not edit the tables by "
            "hand, regenerate them. Each row is one traffic class measured across the "
            "operation; *disrupted* is the total time during which traffic that should have "
            "arrived did not (lost, or more than the lateness threshold late)."
        )
    )
    out.append("")
    for res in results:
        rates = res.settings.get("rates", {})
        out.append(f"## {res.operation}")
        out.append("")
        facts = [f"{res.duration:g} s of traffic", f"operation took {_ms(res.window.end)}"]
        if rates:
            facts.append(f"UDP at {rates.get('udp_pps', 0):g} packets/s each way")
        if res.window.phases and len(res.window.phases) > 1:
            facts.append(
                "phases: "
                + ", ".join(f"{p.name} {_ms(p.end - p.start)}" for p in res.window.phases)
            )
        out.append("; ".join(facts) + ".")
        out.append("")
        out.append(
            "| class | sent | lost / failed | longest gap | disrupted | worst latency | notes |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---|")
        for c in res.classes:
            out.append(
                f"| {c.name} | {c.sent} | {c.lost} | {_ms(c.longest_gap)} | "
                f"{_ms(c.disrupted) if c.disrupted else '0'} | {_ms(c.worst_latency)} | "
                f"{_outcome(c)} |"
            )
        out.append("")
        blips = [c for c in res.classes if not c.clean]
        if not blips:
            out.append("No disruption in any traffic class.")
        else:
            cause = (operation_notes or {}).get(res.operation)
            if cause:
                out.append(f"Why: {cause}")
                out.append("")
            out.append("Remaining disruptions:")
            out.append("")
            for c in blips:
                why = explanations.get(f"{res.operation}/{c.name}") or explanations.get(
                    f"{res.operation}/{c.kind}"
                )
                what = _lane_summary(c)
                if c.disrupted:
                    what += f", {_ms(c.disrupted)} disrupted"
                out.append(f"- **{c.name}** ({what}): {why or '*unexplained*'}")
        for note in res.notes:
            out.append(f"- note: {note}")
        out.append("")
    return "\n".join(out)
