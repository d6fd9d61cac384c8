"""Figures of a study's results folder (matplotlib, Agg backend: no display needed).

Each function takes the per-scenario metrics ``{name: [S] array}`` (and, for
:func:`price_paths`, per-step histories of a few sample scenarios), writes
one PNG and returns its path.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import metrics as results

DPI = 110
COLORS = {"liquidation": "#1f77b4", "backstop": "#ff7f0e", "adl": "#d62728", "residual": "#7f7f7f"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["text.parse_math"] = False          # "$" is money here, not TeX
    return plt


def _usd(x: float, digits: int = 3) -> str:
    """``x`` in USD with ``digits`` significant digits and a k/M/B unit: ``$1.25M``, ``−$300k``."""
    a = abs(x)
    sign = "−" if x < 0 else ""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}${a / div:,.{digits}g}{unit}"
    return f"{sign}${a:,.{max(digits - 3, 0)}f}" if a >= 1 or a == 0 else f"{sign}${a:.{digits}g}"


def _usd_exact(x: float) -> str:
    """:func:`_usd` with as many digits as ``x`` has (3 at least): ``$5.0012M``."""
    for digits in range(3, 16):
        if float(f"{x:.{digits}g}") == x:
            return _usd(x, digits)
    return _usd(x, 16)


def usd_labels(values) -> list[str]:
    """:func:`_usd` of each value, or whole dollars (``$5,000,136``) where that would not tell them apart."""
    v = [float(x) for x in values]
    formats = [_usd, lambda x: ("−" if x < 0 else "") + f"${abs(x):,.0f}"] + [partial(_usd, digits=d)
                                                                              for d in range(4, 13)]
    for fmt in formats:
        labels = [fmt(x) for x in v]
        if len(set(labels)) == len(set(v)):
            break
    return labels


def usd_formatter():
    """Tick labels in USD. Where the ticks are too close to tell apart at 3 digits (losses of $5,000,000 to
    $5,000,600), they are differences from a round amount shown at the axis' end (``+$100``, ``+$200``… and
    ``+ $5M``), as matplotlib's own offset."""
    from matplotlib.ticker import Formatter

    class UsdFormatter(Formatter):
        def __init__(self):
            self.labels, self.offset = {}, ""

        def set_locs(self, locs):
            super().set_locs(locs)
            a = np.asarray(locs, dtype=np.float64)
            shift, self.offset = 0.0, ""
            if a.size > 1 and len({_usd(x) for x in a}) < len(set(a.tolist())):
                unit = 10.0 ** (np.floor(np.log10(np.ptp(a))) + 1)
                shift = float(np.round(np.median(a) / unit) * unit)
                self.offset = f"+ {_usd_exact(shift)}" if shift else ""
            d = a - shift
            self.labels = {x: ("+" if shift and v > 0 else "") + lab for x, v, lab in zip(a, d, usd_labels(d))}

        def __call__(self, x, pos=None):
            return self.labels.get(x) or _usd(x)

        def get_offset(self):
            return self.offset

    return UsdFormatter()


def _count_axis(axis) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _usd_axis(axis) -> None:
    axis.set_major_formatter(usd_formatter())


def _empty(ax, text: str) -> None:
    """A panel with nothing to draw: the reason in its middle, and no axes' ticks that would read as data."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _edges(v: np.ndarray, max_bins: int = 60) -> tuple[np.ndarray, bool]:
    """Histogram bin edges for ``v``, and whether they are log-spaced (positive values spanning over 100×)."""
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 1e-3
    bins = int(np.clip(np.sqrt(v.size) * 2, 10, max_bins))
    if lo > 0 and hi / lo > 100:
        return np.geomspace(lo, hi * 1.0001, bins + 1), True
    return np.linspace(lo, hi, bins + 1), False


def _log_usd_axis(axis) -> None:
    from matplotlib.ticker import NullFormatter

    _usd_axis(axis)
    axis.set_minor_formatter(NullFormatter())


def _hist(ax, values: np.ndarray, color: str, *, label: str | None = None, log_ok: bool = False) -> bool:
    """A histogram with a sensible number of bins; with ``log_ok``, log-spaced on a log axis for values spanning
    over 100× (returns whether it did)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return False
    edges, log = _edges(v)
    log = log and log_ok
    if not log:
        edges = np.linspace(edges[0], edges[-1], edges.size)
    ax.hist(v, bins=edges, color=color, alpha=0.85, label=label, edgecolor="white", linewidth=0.3)
    if log:
        ax.set_xscale("log")
    return log


def _headroom(ax, share: float = 0.08) -> None:
    """Room above the tallest bar (for labels and legends)."""
    lo, hi = ax.get_ylim()
    if hi > lo:
        ax.set_ylim(lo, hi + share * (hi - lo))


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


def vault_loss(metrics: Mapping[str, np.ndarray], path, title: str) -> Path:
    """Histogram of the vault's loss per scenario with VaR95, VaR99 and ES99 marked."""
    plt = _plt()
    loss = 0.0 - np.asarray(metrics["vault_pnl"], dtype=np.float64)
    s = results.vault_loss(metrics)
    fig, ax = plt.subplots(figsize=(8, 4.6), layout="constrained")
    if loss.max() > loss.min():
        _hist(ax, loss, COLORS["backstop"])
        marks = (("var95", ":", "VaR 95 %"), ("var99", "--", "VaR 99 %"), ("es99", "-", "ES 99 %"))
        for (key, style, lab), amount in zip(marks, usd_labels([s[k] for k, _, _ in marks])):
            ax.axvline(s[key], color="black", linestyle=style, linewidth=1.2, label=f"{lab} = {amount}")
        ax.set_yscale("log")
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_ylabel("scenarios (log scale)")
        _usd_axis(ax.xaxis)
        # Outside the axes: the marks and the tail are where a legend inside would sit.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        _empty(ax, f"the vault's loss was {_usd(loss[0])} in every scenario"
                   + (" (it took nothing over)" if loss[0] == 0 else ""))
    ax.set_xlabel("vault loss over the scenario (USD; negative = the vault gained)")
    ax.set_title(f"{title}\nvault loss per scenario · P(loss > 0) = {s['p_loss']:.1%} · mean {_usd(s['mean'])}",
                 fontsize=10)
    return _save(fig, Path(path))


def bad_debt(metrics: Mapping[str, np.ndarray], path, title: str) -> Path:
    """Histogram of bad debt among the scenarios that had any, coloured by who covered it (stacked)."""
    plt = _plt()
    bd = np.asarray(metrics["bad_debt"], dtype=np.float64)
    pos = bd > 0
    fig, ax = plt.subplots(figsize=(8, 4.6), layout="constrained")
    log = False
    if pos.any():
        parts = [np.asarray(metrics[n], dtype=np.float64)[pos] for n in results.BAD_DEBT_PARTS.values()]
        edges, log = _edges(bd[pos], 50)
        # each scenario falls in the bin of its total; the bar is split by the parts' share of the bin's total
        which = np.clip(np.digitize(bd[pos], edges) - 1, 0, edges.size - 2)
        count = np.bincount(which, minlength=edges.size - 1).astype(float)
        total = np.bincount(which, weights=bd[pos], minlength=edges.size - 1)
        bottom = np.zeros_like(count)
        for (part, _), v in zip(results.BAD_DEBT_PARTS.items(), parts):
            share = np.divide(np.bincount(which, weights=v, minlength=edges.size - 1), total,
                              out=np.zeros_like(total), where=total > 0)
            h = count * share
            ax.bar(edges[:-1], h, width=np.diff(edges), bottom=bottom, align="edge", color=COLORS[part],
                   label={"backstop": "covered by the backstop", "adl": "covered by ADL",
                          "residual": "left over"}[part], edgecolor="white", linewidth=0.3)
            bottom += h
        _headroom(ax, 0.35)
        ax.legend(fontsize=8, loc="upper right")
        if log:
            ax.set_xscale("log")
            _log_usd_axis(ax.xaxis)
        else:
            _usd_axis(ax.xaxis)
    else:
        _empty(ax, "no scenario had bad debt")
    ax.set_xlabel("bad debt in the scenario (USD; scenarios with bad debt only" + ("; log scale)" if pos.any() and log
                                                                                   else ")"))
    if pos.any():
        ax.set_ylabel("scenarios")
        _count_axis(ax.yaxis)
    split = results.bad_debt_split(metrics)
    ax.set_title(f"{title}\nbad debt · P(bad debt > 0) = {pos.mean():.1%} · mean {_usd(bd.mean())} a scenario "
                 f"(backstop {split['backstop']['share']:.0%}, ADL {split['adl']['share']:.0%}, "
                 f"left over {split['residual']['share']:.0%})", fontsize=10)
    return _save(fig, Path(path))


def adl(metrics: Mapping[str, np.ndarray], path, title: str) -> Path:
    """ADL frequency (how many steps of ADL per scenario) and ADL notional among scenarios with ADL.

    A scenario has ADL when ADL acted in it (:func:`adljax.analysis.metrics.adl_acted`). Under a socialized loss
    (Drift) ADL closes no notional: the right panel shows the loss charged instead.
    """
    plt = _plt()
    steps = np.asarray(metrics["adl_steps"], dtype=np.float64)
    acted = results.adl_acted(metrics)
    p = results.p_adl(metrics)
    ntl = np.asarray(metrics["adl_notional"], dtype=np.float64)
    soc = np.asarray(metrics.get("socialized_loss", np.zeros_like(ntl)), dtype=np.float64)
    amount, what = (soc, "socialized loss") if (soc > 0).any() and not (ntl > 0).any() else (ntl, "ADL notional")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    if acted.any():
        k = steps[acted].astype(int)
        vals, counts = np.unique(k, return_counts=True)
        if vals.size > 25:                               # many distinct counts: bin them
            _hist(a1, k, COLORS["adl"])
        else:
            a1.bar(vals, counts, color=COLORS["adl"], width=0.8)
        _count_axis(a1.xaxis)                            # a few whole numbers, not one label a bar
        _count_axis(a1.yaxis)
        a1.set_ylabel("scenarios")
    else:
        _empty(a1, "ADL never acted")
    a1.set_xlabel("steps with ADL in the scenario (scenarios with ADL only)")
    a1.set_title(f"ADL frequency · P(ADL) = {p:.1%} of {steps.size} scenarios", fontsize=10)
    shown = amount[acted & (amount > 0)]
    if shown.size:
        if _hist(a2, shown, COLORS["adl"], log_ok=True):
            _log_usd_axis(a2.xaxis)
        else:
            _usd_axis(a2.xaxis)
        _count_axis(a2.yaxis)
        a2.tick_params(axis="x", labelrotation=20)
        a2.set_ylabel("scenarios")
    else:
        _empty(a2, "ADL never acted" if not acted.any() else f"no {what}")
    unit = "USD at mark" if what == "ADL notional" else "USD"
    a2.set_xlabel(f"{what} ({unit}; scenarios with ADL" + ("; log scale)" if a2.get_xscale() == "log" else ")"))
    a2.set_title(f"{what} · mean {_usd(amount.mean())} a scenario, {_usd(amount[acted].mean())} with ADL"
                 if acted.any() else what, fontsize=10)
    fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


def waterfall(metrics: Mapping[str, np.ndarray], path, title: str) -> Path:
    """The waterfall's split: notional handled per stage, and who covered the bad debt (all vs the worst 1 %)."""
    plt = _plt()
    m = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    names = ["market\nliquidation", "backstop\ntakeover", "ADL"]
    keys = ["market_liquidation_notional", "backstop_notional", "adl_notional"]
    colors = [COLORS["liquidation"], COLORS["backstop"], COLORS["adl"]]
    means = [m[k].mean() for k in keys]
    stages = results.stage_stats(m)                       # "fired" as the summary table counts it
    fired = [stages[s]["fired"] for s in ("market_liquidation", "backstop", "adl")]
    bars = a1.bar(names, means, color=colors)
    # A stage can act without moving notional: an insurance fund pays deficits in cash, a socialized loss charges
    # open positions. Its bar is then $0, and the label says what it paid instead.
    paid = ["", f"\ncovered {_usd(m['bad_debt_backstop'].mean())}",
            f"\ncharged {_usd(m['socialized_loss'].mean())}" if "socialized_loss" in m else ""]
    for b, v, f, extra in zip(bars, means, fired, paid):
        note = extra if v == 0 and f > 0 else ""
        a1.annotate(f"{_usd(v)}{note}\nfired in {f:.0%}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8)
    a1.set_ylabel("mean notional a scenario (USD at mark)")
    _usd_axis(a1.yaxis)
    a1.margins(y=0.25)
    a1.set_title("notional handled by each stage", fontsize=10)

    bd = m["bad_debt"]
    cut = results.quantile(bd, 0.99)
    tail = bd >= cut if cut > 0 else bd > 0
    groups = [("all scenarios", np.ones_like(bd, bool)), (f"worst 1 %\n(bad debt ≥ {_usd(cut)})", tail)]
    labels = {"backstop": "backstop", "adl": "ADL", "residual": "left over"}
    x = np.arange(len(groups))
    bottom = np.zeros(len(groups))
    for part, name in results.BAD_DEBT_PARTS.items():
        h = np.array([m[name][g].mean() if g.any() else 0.0 for _, g in groups])
        a2.bar(x, h, bottom=bottom, color=COLORS[part], label=labels[part], width=0.55)
        bottom += h
    a2.set_xticks(x, [g for g, _ in groups])
    a2.set_ylabel("mean bad debt a scenario (USD)")
    _usd_axis(a2.yaxis)
    a2.legend(fontsize=8, title="covered by", title_fontsize=8)
    _headroom(a2, 0.1)
    a2.set_title("who covers the bad debt", fontsize=10)
    fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


#: The most markets :func:`price_paths` draws (the first ones, in the study's order): more lines are unreadable.
PLOTTED_MARKETS = 10


def price_paths(histories: Mapping[int, Mapping[str, np.ndarray]], markets: Sequence[str], dt: float, path,
                title: str, reasons: Mapping[int, str] | None = None) -> Path:
    """Sample scenarios: each market's price (% from its start) with the steps of liquidation, backstop and ADL marked.

    ``reasons``: why each scenario was picked (shown next to its number).
    """
    plt = _plt()
    idx = list(histories)
    n = len(idx)
    fig = plt.figure(figsize=(10, 2.6 * max(n, 1) + 0.6), layout="constrained")
    gs = fig.add_gridspec(2 * max(n, 1), 1, height_ratios=[3, 1] * max(n, 1))
    for r, i in enumerate(idx):
        h = histories[i]
        mark = np.asarray(h["mark"], dtype=np.float64)
        t = np.arange(mark.shape[0]) * dt
        ax = fig.add_subplot(gs[2 * r])
        for a, name in enumerate(markets[:PLOTTED_MARKETS]):
            ax.plot(t, (mark[:, a] / mark[0, a] - 1.0) * 100, linewidth=1.0, label=name)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_ylabel("mark vs start (%)")
        why = f" — {reasons[i]}" if reasons and i in reasons else ""
        ax.set_title(f"scenario {i}{why}", fontsize=9, loc="left")
        ax.tick_params(labelbottom=False)
        ev = fig.add_subplot(gs[2 * r + 1], sharex=ax)
        rows = [("liquidation", "market_liquidation_notional"), ("backstop", "backstop_notional"),
                ("ADL", "adl_notional")]
        for y, (lab, key) in enumerate(rows):
            v = np.asarray(h[key], dtype=np.float64)
            steps = np.flatnonzero(v > 0)
            ev.scatter(t[steps], np.full(steps.size, y), marker="|", s=60,
                       color=COLORS[{"liquidation": "liquidation", "backstop": "backstop", "ADL": "adl"}[lab]])
            ev.text(1.003, y, f"{_usd(v.sum())}", transform=ev.get_yaxis_transform(), fontsize=7, va="center")
        ev.set_yticks(range(len(rows)), [r_[0] for r_ in rows], fontsize=7)
        ev.set_ylim(len(rows) - 0.4, -0.6)                 # top to bottom in the waterfall's order
        ev.grid(axis="x", linewidth=0.3)
        if r == n - 1:
            ev.set_xlabel("time (s)")
        else:
            ev.tick_params(labelbottom=False)
    if idx:   # one legend for every panel (the same markets), below them: a legend inside would sit on a path
        more = len(markets) - PLOTTED_MARKETS
        fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center",
                   ncol=min(len(markets), 8), fontsize=8, frameon=False,
                   title=f"the first {PLOTTED_MARKETS} of {len(markets)} markets" if more > 0 else None,
                   title_fontsize=8)
    fig.suptitle(f"{title}\nsample scenarios: prices, and the steps in which each stage acted "
                 "(right: USD notional over the scenario)", fontsize=10)
    return _save(fig, Path(path))


def comparison(rows: list[dict], path, title: str) -> Path:
    """Venue comparison: P(ADL), mean bad debt by who covers it, and what ADL did (mean notional closed, or mean loss
    socialized) per venue."""
    plt = _plt()
    venues = [r["venue"] for r in rows]
    x = np.arange(len(venues))
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(12, 4.2), layout="constrained")
    a1.bar(x, [r["p_adl"] * 100 for r in rows], color=COLORS["adl"])
    a1.set_ylabel("scenarios with ADL (%)")
    a1.set_title("P(ADL)", fontsize=10)
    bottom = np.zeros(len(rows))
    for part, label in (("backstop", "backstop"), ("adl", "ADL"), ("residual", "left over")):
        h = np.array([r[f"bad_debt_{part}"] for r in rows])
        a2.bar(x, h, bottom=bottom, color=COLORS[part], label=label)
        bottom += h
    a2.set_ylabel("mean bad debt a scenario (USD)")
    _usd_axis(a2.yaxis)
    a2.set_title("bad debt, by who covers it", fontsize=10)
    adl_ = np.array([r["adl_notional"] for r in rows])
    soc = np.array([r["socialized_loss"] for r in rows])
    # Two different amounts, one a venue: a queue or pro-rata ADL closes positions (their notional), a socialized
    # loss closes none and charges the deficit to open positions (the charge). What ADL paid is panel 2's red.
    a3.bar(x, adl_, color=COLORS["adl"], label="notional closed against counterparties")
    a3.bar(x, soc, bottom=adl_, color="#9467bd", label="loss charged to open positions (socialized)")
    a3.set_ylabel("mean a scenario (USD)")
    _usd_axis(a3.yaxis)
    a3.set_title("what ADL did", fontsize=10)
    for ax in (a1, a2, a3):
        ax.set_xticks(x, venues, rotation=30, ha="right", fontsize=8)
    _headroom(a1, 0.15)
    for ax, kw in ((a2, dict(title="covered by", title_fontsize=8)), (a3, {})):
        _headroom(ax, 0.35)                       # room for the legend, which goes where no bar is
        ax.legend(fontsize=8, loc="best", **kw)
    fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


def all_figures(metrics, histories, markets, dt, folder, title: str, reasons=None) -> list[Path]:
    """Every figure of a results folder; returns their paths."""
    folder = Path(folder)
    return [
        vault_loss(metrics, folder / "vault_loss.png", title),
        bad_debt(metrics, folder / "bad_debt.png", title),
        adl(metrics, folder / "adl.png", title),
        waterfall(metrics, folder / "waterfall.png", title),
        price_paths(histories, markets, dt, folder / "price_paths.png", title, reasons),
    ]


def calibration(history: Sequence[Mapping], constraints: Mapping[str, float], minimize: Sequence[str],
                fields: Sequence[str], path, title: str) -> Path:
    """The calibration's path: each objective and constraint (with its bound) and each field, per iteration."""
    plt = _plt()
    it = np.array([h["iteration"] for h in history])
    names = list(dict.fromkeys(list(minimize) + list(constraints)))
    panels = names + list(fields)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, name in zip(axes[0], panels):
        v = np.array([np.atleast_1d(h[name]) for h in history], dtype=float)
        for j in range(v.shape[1]):
            ax.plot(it, v[:, j], lw=1.2, label=f"market {j}" if v.shape[1] > 1 else None)
        if name in constraints:
            ax.axhline(constraints[name], color=COLORS["adl"], ls="--", lw=1, label="bound")
        kind = "field" if name in fields else ("constraint" if name in constraints else "objective")
        ax.set_title(f"{name} ({kind})", fontsize=10)
        ax.set_xlabel("iteration")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{title}: smooth-mode values on each iteration's fresh scenarios", fontsize=10)
    return _save(fig, Path(path))
