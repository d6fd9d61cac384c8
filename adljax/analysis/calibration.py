"""Calibration: venue numbers chosen by gradient descent over scenarios.

"The smallest maintenance margins such that ADL fires in under 1 % of
scenarios and the vault's 99 % expected shortfall stays under $X" is

    adljax.calibrate(study, fields=["maintenance_margin"], minimize="margin_locked",
                     constraints={"p_adl": 0.01, "vault_loss_es": X})

The engine runs in its smooth mode (:mod:`adljax.engine.smooth`) at
``temperature``; each iteration draws fresh scenarios from the study's path
generator, takes the gradient of an augmented Lagrangian of the objectives
(:mod:`adljax.objectives`) with respect to the chosen fields, makes one optax
step, and puts the fields back in their ranges. :meth:`Calibration.check`
then runs the *hard* engine with the answer on scenarios never used in the
calibration.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import objectives
from ..model.book import Book
from ..model.position_book import PositionBook
from ..model.rows import VAULT
from ..engine.config import EngineConfig
from ..engine.waterfall import batch_book, prepare, run, scenario_keys
from ..model.errors import InputError
from ..parallel.sharding import scenario_map
from ..engine.simulation import position_engine, simulate
from ..studies.study import Study
from ..model import tiers
from ..model.venue import Params, Venue

#: Fields calibrate can move, and their default ranges [lo, hi].
FIELDS: dict[str, tuple[float, float]] = {
    "maintenance_margin": (1e-4, 0.5),   # per market, fraction of notional: the first tier's rate
    "margin_tier_rates": (1e-4, 0.5),    # [A, T] the rates of each market's further margin tiers
    "backstop_ratio": (0.0, 1.0),
    "partial_fraction": (0.01, 1.0),
    "vault_capital": (0.0, np.inf),      # USD, the vault row's start cash
    "insurance_fund": (0.0, np.inf),     # USD
}
_PARAM_FIELDS = ("maintenance_margin", "margin_tier_rates", "backstop_ratio", "partial_fraction")


@dataclasses.dataclass
class Calibration:
    """What :func:`calibrate` returns.

    Attributes:
      values: ``{field: value}`` of the answer (``maintenance_margin`` [A],
        the others scalars): the mean of the iterates over the last quarter
        of the iterations, which averages out the scenario noise.
      last: the last iterate, same form.
      venue: the study's venue (hard rules) with the answer's numbers.
      book: the study's start book with the answer's vault capital and fund.
      history: one dict per iteration: ``iteration``, ``loss``, each
        objective's and constraint's smooth value on that iteration's
        scenarios, ``multiplier.<name>`` per constraint, and the fields.
      minimize, constraints, level, temperature: as asked.
    """

    values: dict
    last: dict
    venue: Venue
    book: Book
    history: list
    minimize: dict
    constraints: dict
    level: float
    temperature: float

    def check(self, study: Study, n_scenarios: int | None = None, first: int = 0) -> dict:
        """The answer run with the *hard* engine on scenarios ``[first, first + n)`` of ``study``.

        Returns every objective of :data:`adljax.objectives.OBJECTIVES` on
        them, plus ``feasible.<name>`` (bool) per constraint. By default
        these are the study's own scenarios, which calibration never draws.
        """
        res = assess(study, self.venue, self.book, n_scenarios=n_scenarios, first=first, level=self.level)
        for name, target in self.constraints.items():
            res[f"feasible.{name}"] = bool(res[name] <= target)
        return res


def _engine(book: Book | PositionBook, rules):
    """The batched engine for ``book``'s form, its scenarios split over the local devices when there are
    several (:mod:`adljax.parallel.sharding`): the dense engine for a Book, the position engine for a
    PositionBook."""
    if isinstance(book, PositionBook):
        local = tuple(jax.local_devices())
        return position_engine(book.layout, rules, False, local if len(local) > 1 else None, EngineConfig())
    return scenario_map(partial(run, rules=rules, history=False))


def assess(study: Study, venue: Venue | None = None, book: Book | PositionBook | None = None, *,
           n_scenarios: int | None = None,
           first: int = 0, level: float = 0.99) -> dict[str, float]:
    """Every objective of :data:`adljax.objectives.OBJECTIVES` with the *hard* engine.

    Runs ``venue`` (default the study's; its temperature is set to 0) and
    ``book`` (default the study's) on scenarios ``[first, first + n)`` of
    ``study`` (default: all of the study's own scenarios). Use it to see
    the venue's numbers the way :meth:`Calibration.check` sees an answer.
    """
    venue = (study.venue if venue is None else venue).replace(temperature=0.0)
    book = study.book if book is None else book
    n = study.n_scenarios if n_scenarios is None else n_scenarios
    paths = study.make_paths(first, n)
    out = simulate(venue, book, paths, dt=study.dt, key=study.key, first_scenario=first)
    params, batched, _ = prepare(venue, book, paths, study.dt, batch=True)
    mark0 = jnp.asarray(paths.oracle)[:, 0]
    return {name: float(objectives.evaluate(name, out.metrics, params, batched, mark0, level))
            for name in objectives.OBJECTIVES}


def _as_fields(fields) -> dict[str, tuple[float, float]]:
    if isinstance(fields, str):
        fields = [fields]
    if isinstance(fields, Mapping):
        items = list(fields.items())
    else:
        items = [(f, None) for f in fields]
    if not items:
        raise InputError("fields: name at least one field to calibrate: " + ", ".join(FIELDS))
    out = {}
    for name, rng in items:
        if name not in FIELDS:
            raise InputError(f"fields: {name!r} is not a field calibrate can move; choose from {', '.join(FIELDS)}")
        lo, hi = FIELDS[name] if rng is None else rng
        lo, hi = float(lo), float(hi)
        if not (lo < hi) or lo < FIELDS[name][0] or hi > FIELDS[name][1]:
            raise InputError(f"fields.{name}: range [{lo}, {hi}] must be increasing and within {list(FIELDS[name])}")
        out[name] = (lo, hi)
    return out


def _as_weights(minimize) -> dict[str, float]:
    if isinstance(minimize, str):
        minimize = {minimize: 1.0}
    if not isinstance(minimize, Mapping) or not minimize:
        raise InputError("minimize: an objective name or {name: weight}; names: " + ", ".join(objectives.OBJECTIVES))
    for k, w in minimize.items():
        if k not in objectives.OBJECTIVES:
            raise InputError(f"minimize: {k!r} is not one of {', '.join(objectives.OBJECTIVES)}")
        if not np.isfinite(w) or w <= 0:
            raise InputError(f"minimize.{k}: weight must be a positive number, got {w!r}")
    return {k: float(w) for k, w in minimize.items()}


def _as_constraints(constraints) -> dict[str, float]:
    constraints = dict(constraints or {})
    for k, c in constraints.items():
        if k not in objectives.OBJECTIVES:
            raise InputError(f"constraints: {k!r} is not one of {', '.join(objectives.OBJECTIVES)}")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c) or c <= 0:
            raise InputError(f"constraints.{k}: the bound must be a positive number (objective <= bound), got {c!r}")
    return {k: float(c) for k, c in constraints.items()}


def start_values(venue: Venue, book: Book | PositionBook, n_markets: int, names) -> dict[str, np.ndarray]:
    """The current value of each field of ``names`` (from :data:`FIELDS`) in ``venue`` and ``book``, float64.

    ``maintenance_margin`` is per market [``n_markets``]; ``vault_capital`` is
    the vault row's cash, ``insurance_fund`` the fund's balance; the others
    are the venue's scalars. Calibration starts from these values.
    """
    out = {}
    for name in names:
        if name == "maintenance_margin":
            out[name] = np.asarray(venue.maintenance(n_markets), np.float64)
        elif name == "margin_tier_rates":
            rates = venue.tiers(n_markets)[1][:, 1:]
            if rates.shape[1] == 0:
                raise InputError("fields: margin_tier_rates: the venue's markets have one margin tier each; give "
                                 "the venue margin_tiers, or calibrate maintenance_margin")
            out[name] = rates
        elif name == "vault_capital":
            out[name] = np.asarray(float(book.vault_cash), np.float64)
        elif name == "insurance_fund":
            out[name] = np.asarray(float(book.insurance_fund), np.float64)
        else:
            out[name] = np.asarray(float(getattr(venue, name)), np.float64)
    return out




def apply(params: Params, book: Book | PositionBook,
          values: Mapping[str, jnp.ndarray]) -> tuple[Params, Book | PositionBook]:
    """``params`` and the (unbatched) ``book``, dense or position form, with the fields of ``values`` set
    (traceable)."""
    p = {k: values[k].astype(params.dt.dtype) for k in _PARAM_FIELDS if k in values}
    if "maintenance_margin" in p:
        p["maintenance_margin"] = jnp.broadcast_to(p["maintenance_margin"], params.maintenance_margin.shape)
    if "margin_tier_rates" in p:
        p["tier_rates"] = jnp.broadcast_to(p.pop("margin_tier_rates"), params.tier_rates.shape)
    params = dataclasses.replace(params, **p) if p else params
    if params.tier_rates.shape[-1] and ("maintenance_margin" in p or "tier_rates" in p):
        # A tier's rate is at least the one below it (a larger position never needs a smaller rate):
        # the running maximum over the tiers, through which the gradient reaches the rate that binds.
        rates = jnp.concatenate([params.maintenance_margin[:, None], params.tier_rates], axis=1)
        params = dataclasses.replace(params, tier_rates=jax.lax.cummax(rates, axis=1)[:, 1:])
    if "vault_capital" in values:
        capital = values["vault_capital"].astype(book.all_cash.dtype)
        book = book.replace(all_cash=book.all_cash.at[..., VAULT].set(capital))
    if "insurance_fund" in values:
        book = book.replace(insurance_fund=values["insurance_fund"].astype(book.insurance_fund.dtype))
    return params, book


def calibrate(study: Study, fields: Sequence[str] | Mapping[str, tuple[float, float]], *,
              minimize: str | Mapping[str, float] = "margin_locked",
              constraints: Mapping[str, float] | None = None, level: float = 0.99,
              temperature: float = 0.1, scenarios: int = 64, iterations: int = 150,
              learning_rate: float = 0.04, optimizer: optax.GradientTransformation | None = None,
              penalty: float = 5.0, fresh: bool = True,
              progress: bool | Callable[[dict], None] = False) -> Calibration:
    """Choose venue numbers by gradient descent over scenarios of ``study``.

    Minimises ``Σ weight·objective/objective₀`` subject to
    ``constraint ≤ bound`` for each constraint, by an augmented Lagrangian:
    the loss adds ``(ρ/2)·(max(0, λ/ρ + h)² − (λ/ρ)²)`` with
    ``h = value/bound − 1`` and ``ρ = penalty``, and after each step the
    multiplier moves to ``λ ← max(0, λ + ρ·h)``.

    Args:
      study: the venue, start book and scenario generator (:class:`adljax.study.Study`,
        e.g. from :func:`adljax.scenario.load`). A dense :class:`adljax.Book` runs on the dense
        engine, a :class:`adljax.PositionBook` on the position engine (the same answer; work and
        memory grow with its positions).
      fields: what to move: names from :data:`FIELDS` (``maintenance_margin``
        per market [A]; ``backstop_ratio``, ``partial_fraction`` fractions;
        ``vault_capital``, ``insurance_fund`` USD), or ``{name: (lo, hi)}``
        to narrow a range. Each is kept in its range by projection after
        every step.
      minimize: an objective name of :data:`adljax.objectives.OBJECTIVES`,
        or ``{name: weight}``; each is divided by its value at the start.
      constraints: ``{name: bound}``: keep the objective at or below the bound
        (e.g. ``{"p_adl": 0.01, "vault_loss_es": 5e6}``).
      level: the expected-shortfall level of ``vault_loss_es``.
      temperature: the smooth mode's temperature (see :class:`adljax.Rules`).
      scenarios: scenarios per iteration.
      iterations: optimiser steps.
      learning_rate: Adam's step, in units of each field's start value (0.04:
        about 4 % per step). Ignored when ``optimizer`` is given.
      optimizer: an optax transformation of the fields in those units.
      penalty: ``ρ`` of the augmented Lagrangian.
      fresh: draw new scenarios every iteration (iteration ``i`` uses
        scenarios ``[S₀ + i·n, S₀ + (i+1)·n)`` of the study's generator, with
        ``S₀`` the study's own ``n_scenarios``, which :meth:`Calibration.check`
        keeps for checking); ``False`` reuses the first batch every time.
      progress: ``True`` for a progress bar, or a callable given each
        iteration's history entry.
    Returns:
      :class:`Calibration`.
    Raises:
      InputError: naming the argument, for bad fields, objectives, bounds or sizes.
    """
    if not isinstance(study, Study):
        raise InputError("study: expected an adljax.study.Study (e.g. adljax.scenario.load(path)), "
                         f"got {type(study).__name__}")
    rng = _as_fields(fields)
    weights = _as_weights(minimize)
    bounds = _as_constraints(constraints)
    for name, v, lo in (("scenarios", scenarios, 1), ("iterations", iterations, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{name}: must be a whole number >= {lo}, got {v!r}")
    if not 0 < temperature <= 1:
        raise InputError("temperature: calibration needs the smooth mode, a temperature in (0, 1], "
                         f"got {temperature!r}")
    if penalty <= 0 or not np.isfinite(penalty):
        raise InputError(f"penalty: must be a positive number, got {penalty!r}")
    if "insurance_fund" in rng and study.venue.rules.backstop != "insurance":
        raise InputError("fields: insurance_fund only matters with an insurance-fund backstop "
                         f"(the venue's backstop is {study.venue.rules.backstop!r})")
    if ("vault_capital" in rng or "backstop_ratio" in rng) and study.venue.rules.backstop != "vault":
        bad = "vault_capital" if "vault_capital" in rng else "backstop_ratio"
        raise InputError(f"fields: {bad} only matters with a vault backstop "
                         f"(the venue's is {study.venue.rules.backstop!r})")

    venue = study.venue.replace(temperature=temperature)
    n_markets = study.book.n_markets
    start = start_values(study.venue, study.book, n_markets, rng)
    # The optimiser works in units of each field's start value (or of its range's width).
    scale = {k: np.where(np.abs(v) > 0, np.abs(v), min(rng[k][1] - rng[k][0], 1.0) if np.isfinite(rng[k][1]) else 1.0)
             for k, v in start.items()}
    lo = {k: jnp.asarray(rng[k][0] / scale[k]) for k in rng}
    hi = {k: jnp.asarray(rng[k][1] / scale[k]) for k in rng}
    u = {k: jnp.asarray(start[k] / scale[k]) for k in rng}
    # Adam with the step decaying (cosine) to a tenth over the run, and the multipliers' steps with it:
    # the primal-dual iteration on noisy scenarios otherwise keeps orbiting the answer.
    decay = optax.cosine_decay_schedule(1.0, iterations, alpha=0.1)
    opt = optimizer if optimizer is not None else optax.adam(lambda i: learning_rate * decay(i))
    opt_state = opt.init(u)
    lam = {k: jnp.zeros((), study.book.all_cash.dtype) for k in bounds}
    names = sorted(set(weights) | set(bounds))
    dtype = study.book.all_cash.dtype
    scale_j = {k: jnp.asarray(v, dtype) for k, v in scale.items()}

    def values_of(u_):
        return {k: u_[k].astype(dtype) * scale_j[k] for k in u_}

    def batch_for(i: int):
        first = study.n_scenarios + i * scenarios
        paths = study.make_paths(first, scenarios).astype(dtype)
        return paths, (paths.oracle, paths.depth, paths.funding, scenario_keys(study.key, scenarios, first))

    paths0, batch0 = batch_for(0)
    params0, _, _ = prepare(venue, study.book, paths0, study.dt, batch=False)
    rules = venue.rules.compiled()          # the temperature's value travels in the params
    engine = _engine(study.book, rules)

    def measure(u_, oracle, depth, funding, keys):
        p, b = apply(params0, study.book, values_of(u_))
        bb = batch_book(b, oracle.shape[0])
        _, metrics, _ = engine(p, bb, oracle, depth, keys, funding)
        return {n: objectives.evaluate(n, metrics, p, bb, oracle[:, 0], level) for n in names}

    f0 = None

    def loss(u_, lam_, f0_, batch):
        vals = measure(u_, *batch)
        total = sum(w * vals[k] / f0_[k] for k, w in weights.items())
        for k, c in bounds.items():
            h = vals[k] / c - 1.0
            total = total + 0.5 * penalty * (jnp.maximum(0.0, lam_[k] / penalty + h) ** 2 - (lam_[k] / penalty) ** 2)
        # Divided by 1 + Σλ (a constant for the step): the same minimiser, but gradients of one size
        # whatever the multipliers, so Adam's memory of a heavily violated start does not leave its
        # later steps tiny (measured: a calibration stalled at 1.9x the answer without this).
        return total / (1.0 + sum(lam_.values(), 0.0)), vals

    jitted = jax.jit(jax.value_and_grad(loss, has_aux=True))

    def grad_fn(u_, lam_, f0_, batch):
        # The small state goes in as host values: split over several devices, the outputs it comes from
        # carry the scenario mesh in their type, and fed back as they are they would retrace and
        # compile the gradient program twice more (measured: 3 compiles instead of 1 on 2 CPU devices).
        return jitted(*jax.device_get((u_, lam_, f0_)), batch)

    history = []
    bar = _progress(progress, iterations)
    for i in range(iterations):
        batch = batch_for(i)[1] if (fresh and i) else batch0
        if f0 is None:   # the start values, through the same compiled function
            ones = {k: jnp.ones((), dtype) for k in weights}
            v0 = grad_fn(u, lam, ones, batch)[0][1]
            f0 = {k: jnp.where(jnp.abs(v0[k]) > 0, jnp.abs(v0[k]), 1.0).astype(dtype) for k in weights}
        (total, vals), g = grad_fn(u, lam, f0, batch)
        updates, opt_state = opt.update(g, opt_state, u)
        u = optax.apply_updates(u, updates)
        u = {k: jnp.clip(u[k], lo[k], hi[k]) for k in u}
        for k, c in bounds.items():
            lam[k] = jnp.maximum(0.0, lam[k] + decay(i) * penalty * (vals[k] / c - 1.0)).astype(dtype)
        entry = {"iteration": i, "loss": float(total), **{k: float(v) for k, v in vals.items()},
                 **{f"multiplier.{k}": float(v) for k, v in lam.items()},
                 **{k: _host(v) for k, v in values_of(u).items()}}
        history.append(entry)
        bar(entry)
    tail = history[-max(1, iterations // 4):]
    answer = {k: np.mean([np.asarray(h[k]) for h in tail], axis=0) for k in rng}
    last = {k: np.asarray(history[-1][k]) for k in rng}
    hard_venue, hard_book = _apply_to_venue(study.venue, study.book, answer)
    return Calibration(values=answer, last=last, venue=hard_venue, book=hard_book, history=history,
                       minimize=weights, constraints=bounds, level=level, temperature=temperature)


def _host(v):
    a = np.asarray(v, np.float64)
    return a.tolist() if a.ndim else float(a)


def _apply_to_venue(venue: Venue, book: Book | PositionBook,
                    values: Mapping[str, np.ndarray]) -> tuple[Venue, Book | PositionBook]:
    """The venue (hard rules) and start book carrying calibrated values."""
    changes = {}
    for k in ("backstop_ratio", "partial_fraction"):
        if k in values:
            changes[k] = float(np.asarray(values[k], np.float64))
    if venue.margin_tiers is not None and ("maintenance_margin" in values or "margin_tier_rates" in values):
        changes["margin_tiers"] = _tables(venue, values, book.n_markets)
    elif "maintenance_margin" in values:
        changes["maintenance_margin"] = tuple(float(x) for x in np.asarray(values["maintenance_margin"], np.float64))
    venue = venue.replace(**changes) if changes else venue
    if "vault_capital" in values:
        book = book.replace(all_cash=book.all_cash.at[..., VAULT].set(float(values["vault_capital"])))
    if "insurance_fund" in values:
        book = book.replace(insurance_fund=jnp.asarray(float(values["insurance_fund"]), book.insurance_fund.dtype))
    return venue, book


def _tables(venue: Venue, values: Mapping[str, np.ndarray], n_markets: int) -> tuple:
    """The venue's margin tables with calibrated rates, as the engine ran them (:func:`apply`).

    Each rate is at least the one below it; a market keeps its own tiers (the padding tiers share its last
    bound, so the last of them gives its last tier's rate).
    """
    own = tiers.per_market(venue.margin_tiers, n_markets)
    bounds, rates = tiers.padded(own)
    if "maintenance_margin" in values:
        rates[:, 0] = np.broadcast_to(np.asarray(values["maintenance_margin"], np.float64), rates[:, 0].shape)
    if "margin_tier_rates" in values:
        rates[:, 1:] = np.asarray(values["margin_tier_rates"], np.float64)
    rates = np.maximum.accumulate(rates, axis=1)
    return tuple(tuple((float(b), float(rates[a, -1] if k == len(t) - 1 else rates[a, k]))
                       for k, (b, _) in enumerate(t)) for a, t in enumerate(own))


def _progress(progress, total: int):
    if callable(progress):
        return progress
    if not progress:
        return lambda entry: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("calibrating"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("loss {task.fields[loss]:.4g}"), TimeRemainingColumn())
    bar.start()
    task = bar.add_task("calibrate", total=total, loss=float("nan"))

    def update(entry):
        bar.update(task, advance=1, loss=entry["loss"])
        if entry["iteration"] == total - 1:
            bar.stop()
    return update
