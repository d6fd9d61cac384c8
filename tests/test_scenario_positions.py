"""A scenario file's generated book as a position book (``[book] positions = true``).

The same file with ``positions = true`` and ``= false`` draws the same accounts and positions, so its metrics on
the position engine equal the dense engine's up to the rounding of sums (float64). A smooth venue, a calibration
and a book read from a file refuse the key, naming it.
"""
import numpy as np
import pytest

import adljax
from adljax.model.position_book import PositionBook
from adljax.studies import runner

# Two markets, a crash in both into a thin book with no vault: liquidations and ADL in every scenario.
TINY = """
name = "tiny-positions"
seed = 5
scenarios = 8
steps = 40
dt = 1.0
dtype = "float64"

[venue]
preset = "{preset}"
{venue_extra}

[markets.BTC]
start = 100.0
max_leverage = 20
vol = 0.8
depth = 2e4
long_share = 0.6

[markets.ALT]
start = 2.0
max_leverage = 10
vol = 1.5
depth = 5e3
long_share = 0.7

[book]
accounts = 30
markets_per_account = 1.5
max_markets_per_account = 2
median_notional = 5000.0
leverage_mode = 8.0
isolated_share = 0.2
positions = {positions}

[paths]
model = "gbm"

[[stress]]
kind = "gap"
drop = 0.3
over_s = 10
at_s = 5
"""


def write(tmp_path, *, positions=True, preset="hyperliquid_builder", venue_extra="", name="tiny.toml"):
    path = tmp_path / name
    path.write_text(TINY.format(positions=str(positions).lower(), preset=preset, venue_extra=venue_extra))
    return path


def test_position_book_runs_to_the_dense_books_metrics(tmp_path):
    pos = adljax.scenario.load(write(tmp_path, positions=True, name="pos.toml"))
    dense = adljax.scenario.load(write(tmp_path, positions=False, name="dense.toml"))
    assert isinstance(pos.book, PositionBook) and not isinstance(dense.book, PositionBook)
    assert pos.book.n_accounts == dense.book.n_accounts and pos.book.n_markets == 2
    n = pos.n_scenarios
    chunk = runner.default_chunk(pos)
    book_p, m_p, _ = runner.run_chunk(pos, 0, n, chunk)
    _, m_d, _ = runner.run_chunk(dense, 0, n, chunk)
    assert isinstance(book_p, PositionBook) and np.shape(book_p.all_cash) == (n, pos.book.n_accounts + 2)
    assert np.shape(book_p.layout.row) == np.shape(pos.book.layout.row)   # the layout is kept, not cut per scenario
    assert float(np.sum(m_d["market_liquidation_notional"])) > 0       # the crash liquidates: a real comparison
    assert float(np.sum(m_d["adl_notional"])) > 0
    for k in m_d:
        scale = max(1.0, float(np.max(np.abs(m_d[k]))))
        np.testing.assert_allclose(m_p[k], m_d[k], rtol=1e-9, atol=1e-9 * scale, err_msg=k)


def test_money_check_reads_a_position_book_as_the_dense_one(tmp_path):
    """float32, a huge book and a BTC that can rise far: the study's money check refuses both books alike
    (per-market Σ|size| and the highest entry, from the positions list or from the dense arrays)."""
    errors = []
    for positions in (False, True):
        path = write(tmp_path, positions=positions, name=f"money_{positions}.toml")
        path.write_text(path.read_text().replace('dtype = "float64"', 'dtype = "float32"').replace(
            "median_notional = 5000.0", "median_notional = 1e13").replace("vol = 0.8", "vol = 500.0"))
        with pytest.raises(adljax.InputError, match="the book's money") as err:
            adljax.scenario.load(path)
        errors.append(str(err.value).partition(": ")[2])
    assert errors[0] == errors[1]


def test_a_smooth_venue_runs_a_position_book(tmp_path):
    """The smooth mode on a generated position book: the same metrics as on the dense book."""
    pos = adljax.scenario.load(write(tmp_path, venue_extra="temperature = 0.2", name="pos.toml"))
    dense = adljax.scenario.load(write(tmp_path, positions=False, venue_extra="temperature = 0.2", name="dense.toml"))
    assert isinstance(pos.book, PositionBook)
    assert pos.venue.rules.smooth
    n = pos.n_scenarios
    _, got, _ = runner.run_chunk(pos, 0, n, runner.default_chunk(pos))
    _, want, _ = runner.run_chunk(dense, 0, n, runner.default_chunk(dense))
    assert float(np.sum(want["adl_notional"])) > 0
    for k in want:
        scale = max(1.0, float(np.max(np.abs(want[k]))))
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-9 * scale, err_msg=k)


def test_a_file_book_loads_as_a_position_book():
    """``[book] positions = true`` with a book file: the same rows and positions as the dense book, and the
    same metrics (scenarios/book_from_file.toml, float64)."""
    from pathlib import Path
    import tomllib

    shipped = Path(__file__).parent.parent / "scenarios" / "book_from_file.toml"
    doc = tomllib.loads(shipped.read_text())
    dense = adljax.scenario.from_dict(doc, shipped, scenarios=4, steps=40)[0]
    doc["book"]["positions"] = True
    pos = adljax.scenario.from_dict(doc, shipped, scenarios=4, steps=40)[0]
    assert isinstance(pos.book, PositionBook) and not isinstance(dense.book, PositionBook)
    for f in ("all_cash", "size_am", "entry_am", "isolated"):
        np.testing.assert_array_equal(np.asarray(getattr(pos.book.to_book(), f)), np.asarray(getattr(dense.book, f)))
    got = adljax.simulate(pos.venue, pos.book, pos.paths, dt=pos.dt).metrics
    want = adljax.simulate(dense.venue, dense.book, dense.paths, dt=dense.dt).metrics
    for k in want:
        scale = max(1.0, float(np.max(np.abs(want[k]))))
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-9 * scale, err_msg=k)


def test_cli_runs_a_position_book(tmp_path, monkeypatch, capsys):
    from test_cli import in_process

    path = write(tmp_path)
    p = in_process("run", path, "--out", tmp_path / "out", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert (tmp_path / "out").is_dir()
