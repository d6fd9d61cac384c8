"""The book's rows: the N traders, then the two system rows every venue has.

Every book, dense (:class:`adljax.Book`) or a list of positions (:class:`adljax.PositionBook`), orders
its rows the same way: the trader rows ``0 .. N−1``, then the backstop vault (:data:`VAULT`, row ``N``:
Hyperliquid's HLP, or the positions an insurance fund's venue takes over), then the liquidity providers
who take the market liquidation's fills (:data:`LP`, row ``N + 1``). Code names these rows; an index
counted from the end (``x[..., VAULT]``) reads the same for every N.
"""
from __future__ import annotations

#: The backstop vault's row, counted from the end: ``all_cash[..., VAULT]``.
VAULT = -2
#: The liquidity providers' row, counted from the end: ``all_cash[..., LP]``.
LP = -1
#: The number of system rows after the traders.
SYSTEM = 2
#: The trader rows: ``all_cash[..., TRADERS]`` is ``[..., N]``.
TRADERS = slice(None, VAULT)
#: The vault's row kept as an axis of length 1: ``size[:, VAULT_AXIS]`` is ``[A, 1]``.
VAULT_AXIS = slice(VAULT, LP)
#: Every row but the liquidity providers' (the traders and the vault).
BUT_LP = slice(None, LP)


def vault_row(n_rows: int) -> int:
    """The vault's row counted from the front, in a book of ``n_rows`` rows (N + 2)."""
    return n_rows + VAULT


def lp_row(n_rows: int) -> int:
    """The liquidity providers' row counted from the front, in a book of ``n_rows`` rows."""
    return n_rows + LP
