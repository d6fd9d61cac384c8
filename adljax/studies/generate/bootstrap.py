"""Block bootstrap of a user's price history: paths made of the returns the markets really had.

Load a history with :func:`load_prices_csv`, then resample it::

    hist = load_prices_csv("prices.csv", markets=["BTC", "ETH"])
    oracle = bootstrap(key, hist.prices, n_scenarios=1000, n_steps=601, block=60)

Every market is resampled at the same time indices, so the paths keep the
history's cross-market correlation (and, within a block, its volatility
clustering and autocorrelation). The step length of the paths is the
history's sampling interval: resample 1-second prices for ``dt = 1``.
"""
from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import jax
import jax.numpy as jnp
from jax import Array

from ...model.errors import InputError, check_positive
from .prices import RESAMPLE, check_batch, check_key, prices_from_returns, scenario_keys


class PriceHistory(NamedTuple):
    """Prices read from a file.

    Attributes:
      prices: [T0, A] float64 prices, USD, > 0.
      markets: the A market names, in the column order of ``prices``.
      times: [T0] the time column's text, as written (None when the file
        has no time column, i.e. every column was a named market).
    """

    prices: np.ndarray
    markets: tuple[str, ...]
    times: np.ndarray | None


def default_block(n_returns: int) -> int:
    """``round(n_returns^(1/3))``, at least 1: the usual rate for a moving-block bootstrap."""
    return max(1, int(round(n_returns ** (1.0 / 3.0))))


def bootstrap(key, prices, *, n_scenarios: int, n_steps: int, block: int | None = None, first_scenario: int = 0,
              start=None, dtype=None) -> Array:
    """Moving-block bootstrap of historical log returns.

    The history's log returns ``R = diff(log prices)`` [T0 − 1, A] are cut
    into every window of ``block`` consecutive steps; a path is built from
    ``ceil((n_steps − 1) / block)`` windows drawn uniformly with replacement,
    laid end to end and cut to ``n_steps − 1`` returns. A path's step ``k``
    therefore repeats one historical step's returns in all markets at once.

    Args:
      key: ``jax.random.key``; scenario ``i`` draws from
        ``fold_in(key, first_scenario + i)`` (reproducible in any batch split).
      prices: [T0, A] historical prices (> 0), T0 ≥ 2, evenly spaced in time.
      n_scenarios, n_steps: S and T (T counts step 0, the start).
      block: steps per block, 1 ≤ block ≤ T0 − 1 (1: the i.i.d. bootstrap);
        default :func:`default_block` of the number of returns.
      first_scenario: number of the first scenario generated.
      start: [A] start prices (default: the last historical prices, ``prices[-1]``).
      dtype: float dtype (default: JAX's default float).
    Returns:
      [S, T, A] prices; ``[:, 0] == start``.
    """
    check_key(key)
    check_batch(n_scenarios, n_steps, first_scenario)
    if np.ndim(prices) != 2:
        raise InputError(f"prices: expected [T0 times, A markets], got shape {tuple(np.shape(prices))}")
    if np.shape(prices)[0] < 2 or np.shape(prices)[1] < 1:
        raise InputError(f"prices: need at least 2 times (one return) and one market, got shape "
                         f"{tuple(np.shape(prices))}")
    check_positive("prices", prices)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    hist = np.asarray(prices, dtype=np.float64)
    returns = np.diff(np.log(hist), axis=0)                       # [T0-1, A], in float64 on the host
    n_ret, a = returns.shape
    block = default_block(n_ret) if block is None else block
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block <= n_ret:
        raise InputError(f"block: must be an integer in [1, {n_ret}] (the history has {n_ret} returns), got {block!r}")
    if start is None:
        start = hist[-1]
    if np.shape(start) != (a,):
        raise InputError(f"start: expected [{a}] (one per market, like prices), got shape {tuple(np.shape(start))}")
    check_positive("start", start)
    keys = scenario_keys(key, n_scenarios, first_scenario)
    n_blocks = max(1, math.ceil((n_steps - 1) / block))
    return _bootstrap(keys, jnp.asarray(returns, dtype), jnp.asarray(start, dtype), block, n_blocks, n_steps)


@partial(jax.jit, static_argnames=("block", "n_blocks", "n_steps"))
def _bootstrap(keys, returns, start, block, n_blocks, n_steps):
    n_windows = returns.shape[0] - block + 1

    def one(k):
        first = jax.random.randint(jax.random.fold_in(k, RESAMPLE), (n_blocks,), 0, n_windows)
        idx = (first[:, None] + jnp.arange(block)[None, :]).reshape(-1)[: n_steps - 1]
        return returns[idx]

    return prices_from_returns(start, jax.vmap(one)(keys))


def load_prices_csv(path, markets: Sequence[str] | None = None) -> PriceHistory:
    """Read a price history from a CSV file with a header row.

    Layout: without ``markets``, the first column is the time (any text; kept
    as written) and every other column is a market named by its header. With
    ``markets``, exactly those columns are read, in that order, wherever they
    are (other columns, the time included, are kept out of the prices; a
    column named ``time``, ``timestamp``, ``date`` or ``datetime`` is returned
    as ``times``). Rows are in time order, evenly spaced.

    Returns:
      :class:`PriceHistory` with ``prices`` [T0, A].
    Raises:
      InputError: naming the file and the problem: no header, a missing
        market column (listing the columns there are), an empty, non-numeric,
        NaN or non-positive price (with its market and row; row 1 is the first
        data row, on line 2 of the file), fewer than 2 rows.
    """
    path = Path(path)
    where = f"{path.name}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f)]
    except OSError as e:
        raise InputError(f"{where}: cannot read the price file ({e.strerror or e})") from None
    lines = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]  # (line number, cells)
    if not lines:
        raise InputError(f"{where}: the file is empty; expected a header row (time, then one column per market)")
    header = [c.strip() for c in lines[0][1]]
    body = lines[1:]
    if markets is None:
        if len(header) < 2:
            raise InputError(f"{where}: expected a time column then one column per market, found the header {header}")
        cols = list(range(1, len(header)))
        names = tuple(header[1:])
        tcol: int | None = 0
    else:
        names = tuple(str(m) for m in markets)
        if not names:
            raise InputError("markets: give at least one market name (or None to read every column)")
        if len(set(names)) != len(names):
            raise InputError(f"markets: names repeat: {list(names)}")
        missing = [m for m in names if m not in header]
        if missing:
            raise InputError(f"{where}: missing column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)}; the header has {header}")
        cols = [header.index(m) for m in names]
        tcol = next((i for i, h in enumerate(header) if h.lower() in ("time", "timestamp", "date", "datetime")), None)
    dup = sorted({h for h in (header[c] for c in cols) if header.count(h) > 1})
    if dup:
        raise InputError(f"{where}: column name{'s' if len(dup) > 1 else ''} {dup} "
                         f"appear{'' if len(dup) > 1 else 's'} more than once in the header")
    if len(body) < 2:
        raise InputError(f"{where}: needs at least 2 rows of prices (one return), found {len(body)}")

    out = np.empty((len(body), len(cols)), dtype=np.float64)
    for r, (line, cells) in enumerate(body):
        at = f"row {r + 1} (line {line})"
        for j, c in enumerate(cols):
            name = header[c]
            text = cells[c].strip() if c < len(cells) else ""
            if text == "":
                raise InputError(f"{where}: column {name!r}: empty price at {at}")
            try:
                v = float(text)
            except ValueError:
                raise InputError(f"{where}: column {name!r}: {text!r} is not a number at {at}") from None
            if math.isnan(v):
                raise InputError(f"{where}: column {name!r}: NaN price at {at}")
            if not math.isfinite(v) or v <= 0:
                raise InputError(f"{where}: column {name!r}: price must be finite and > 0, got {text} at {at}")
            out[r, j] = v
    times = None if tcol is None else np.array([cells[tcol].strip() if tcol < len(cells) else "" for _, cells in body])
    return PriceHistory(out, names, times)
