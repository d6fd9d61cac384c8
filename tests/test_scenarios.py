"""Scenario files: every shipped study loads and runs small; bad files get errors that name the key."""
from pathlib import Path

import numpy as np
import pytest

import adljax
from adljax import scenario
from adljax.study import default_study

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.toml"))


def test_the_shipped_studies_are_there():
    names = {p.stem for p in SCENARIOS}
    assert {"default", "calm_week", "oct10_cascade", "thin_altcoin", "venue_comparison"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_runs_small(path):
    if "[calibrate]" in path.read_text():          # a calibration study (tests/test_calibration.py runs it)
        studies = [scenario.load_calibration(path, scenarios=2, steps=30, accounts=40)[0]]
    else:
        studies = scenario.load_studies(path, scenarios=2, steps=30, accounts=40)
    for st in studies[:2]:                         # a comparison: two venues are enough here
        assert st.description
        p = st.paths
        assert p.oracle.shape == (2, 30, len(st.markets))
        out = adljax.simulate(st.venue, st.book, p, dt=st.dt, key=st.key)
        m = {k: np.asarray(v, dtype=np.float64) for k, v in out.metrics.items()}
        assert all(np.all(np.isfinite(v)) for v in m.values())
        scale = float(np.sum(np.abs(np.asarray(st.book.all_cash, dtype=np.float64))))
        assert np.all(m["conservation_error"] <= 1e-5 * scale)


def test_default_file_is_the_default_study():
    st = scenario.load(SCENARIOS[[p.stem for p in SCENARIOS].index("default")])
    ref = default_study(dtype=np.float32)   # the file says float32 (the tests run with x64 on)
    assert (st.n_scenarios, st.n_steps, st.dt, st.markets) == (ref.n_scenarios, ref.n_steps, ref.dt, ref.markets)
    np.testing.assert_array_equal(np.asarray(st.book.all_cash), np.asarray(ref.book.all_cash))
    np.testing.assert_array_equal(np.asarray(st.book.size_am), np.asarray(ref.book.size_am))
    a, b = st.paths_for(5, 3), ref.paths_for(5, 3)
    np.testing.assert_allclose(np.asarray(a.oracle), np.asarray(b.oracle), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a.depth), np.asarray(b.depth), rtol=1e-6)
    assert st.venue.rules == ref.venue.rules
    np.testing.assert_array_equal(st.venue.maintenance(3), ref.venue.maintenance(3))


def test_venue_comparison_gives_one_study_per_venue_on_the_same_book_and_paths():
    path = SCENARIOS[[p.stem for p in SCENARIOS].index("venue_comparison")]
    studies = scenario.load_studies(path, scenarios=2, steps=20, accounts=30)
    assert [s.venue.name for s in studies] == ["hyperliquid", "bitmex", "binance", "bybit", "dydx_v4", "drift"]
    np.testing.assert_array_equal(np.asarray(studies[0].paths.oracle), np.asarray(studies[-1].paths.oracle))
    assert float(studies[1].book.insurance_fund) == 5e6


def test_funding_per_hour_becomes_a_rate_per_step():
    doc = _doc()
    doc["dt"] = 60.0
    doc["markets"]["BTC"]["funding_per_hour"] = 1.2e-5
    st = scenario.from_dict(doc)[0]
    f = np.asarray(st.paths.funding)
    np.testing.assert_allclose(f[..., 0], 1.2e-5 * 60.0 / 3600.0, rtol=1e-12)   # a minute of an hourly rate
    assert np.all(f[..., 1] == 0.0)


def _doc():
    return {
        "scenarios": 2, "steps": 10, "dt": 1.0, "dtype": "float64",
        "markets": {"BTC": {"start": 100.0, "depth": 1e6, "max_leverage": 10},
                    "ETH": {"start": 10.0, "depth": 1e6, "max_leverage": 10}},
        "book": {"accounts": 10},
        "paths": {"model": "gbm", "corr": [[1.0, 0.5], [0.5, 1.0]]},
    }


def _set(doc, dotted, value):
    *head, last = dotted.split(".")
    d = doc
    for k in head:
        d = d.setdefault(k, {})
    d[last] = value
    return doc


@pytest.mark.parametrize("dotted, value, match", [
    ("sceanrios", 3, r"unknown key 'sceanrios'"),
    ("paths.volatility", 0.5, r"\[paths\] unknown key 'volatility'"),
    ("markets.BTC.vol_annual", 0.5, r"\[markets.BTC\] unknown key 'vol_annual'"),
    ("markets.BTC.start", float("nan"), r"\[markets.BTC\] start: must be finite"),
    ("markets.ETH.start", -5.0, r"\[markets.ETH\] start: must be > 0"),
    ("markets.BTC.depth", -1.0, r"\[markets.BTC\] depth: must be >= 0"),
    ("paths.corr", [[1.0, 1.2], [1.2, 1.0]], r"\[paths\] corr: not positive definite"),
    ("paths.corr", [[1.0, 0.5, 0.1], [0.5, 1.0, 0.1], [0.1, 0.1, 1.0]], r"corr: expected 2×2"),
    ("paths.model", "heston", r"model: unknown 'heston'"),
    ("venue.preset", "ftx", r"unknown venue 'ftx'"),
    ("venue.partial_fraction", 2.0, r"\[venue\] partial_fraction"),
    ("venue.liquidation_speed", 2.0, r"\[venue\] liquidation_speed: not a venue setting"),
    ("steps", 1, r"steps: must be >= 2"),
    ("dtype", "float16", r"dtype: must be 'float32' or 'float64'"),
    ("stress", [{"kind": "gap", "drop": 1.5, "over_s": 10, "at_s": 0}], r"\[stress 1\] drop"),
    ("stress", [{"kind": "crater"}], r"\[stress 1\] kind: unknown 'crater'"),
])
def test_bad_scenario_entries_are_named(dotted, value, match):
    with pytest.raises(adljax.InputError, match=match):
        st = scenario.from_dict(_set(_doc(), dotted, value))[0]
        st.paths  # some checks run when the paths are made


def test_book_file_errors_name_the_problem(tmp_path):
    f = tmp_path / "book.csv"
    f.write_text("account,market,size,entry,cash\na,BTC,5,100,100\nb,BTC,-4,100,1000\n")
    doc = _doc()
    doc["book"] = {"file": str(f)}
    with pytest.raises(adljax.InputError, match=r"not zero-sum.*BTC.*1"):
        scenario.from_dict(doc)
    doc["book"]["balance"] = True        # asked: the remainder goes to the liquidity-provider row
    st = scenario.from_dict(doc)[0]
    np.testing.assert_allclose(np.asarray(st.book.lp_size)[0], -1.0)
    f.write_text("account,market,size,entry,cash\na,BTC,50,100,100\nb,BTC,-50,100,10000\n")  # 50x > 10x
    doc["book"]["balance"] = False
    with pytest.raises(adljax.InputError, match=r"lever"):
        scenario.from_dict(doc)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(adljax.InputError, match="no such scenario file"):
        scenario.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("scenarios = [\n")
    with pytest.raises(adljax.InputError, match="not valid TOML"):
        scenario.load(bad)
