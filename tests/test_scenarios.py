"""Scenario files: every shipped study loads and runs small; bad files get errors that name the key."""
from pathlib import Path

import numpy as np
import pytest

import adljax
from adljax import scenario, venues
from adljax.study import default_study

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.toml"))


def test_the_shipped_studies_are_there():
    names = {p.stem for p in SCENARIOS}
    assert {"default", "calm_week", "oct10_cascade", "thin_altcoin", "venue_comparison",
            "hyperliquid_oct10_venue", "venue_scale"} <= names


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
    ("markets.BTC.margin_tiers", [[0, 0.01]], r"\[markets.BTC\] margin_tiers: give margin_tiers or max_leverage"),
    ("venue.margin_tiers", [[0, 0.01], [1e6, 0.005]], r"\[venue\] margin_tiers: rates must not fall"),
    ("markets.BTC.margin_tiers", "BTC's", r"\[markets.BTC\] margin_tiers: expected \"published\""),
    ("venue.margin_tiers", [[1, 0.01]], r"\[venue\] margin_tiers: the first tier's lower bound must be 0"),
    ("venue.tier_mode", "stairs", r"\[venue\] tier_mode: 'stairs' is not one of"),
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


# ---- bad files: each a small TOML text; the error is an InputError naming the file, the table and the key ----
_M = "[markets.BTC]\nstart = 100.0\ndepth = 1e6\nmax_leverage = 10\n"
_CAL = _M + '[calibrate]\nfields = ["maintenance_margin"]\n'


BAD_FILES = [
    # top level: name and description are strings
    ("name = 5\n" + _M, "name", "expected a string, got 5"),
    ('description = ["a"]\n' + _M, "description", "expected a string"),
    ('name = ""\n' + _M, "name", "must not be empty"),
    ("seed = 4294967296\n" + _M, "seed", "must be <= 4294967295"),
    # [book] from a file: balance a TOML boolean, file a string naming a file that exists
    (_M + '[book]\nfile = "book.csv"\nbalance = "no"\n', "[book] balance", "expected true or false"),
    (_M + '[book]\nfile = "book.csv"\nbalance = 1\n', "[book] balance", "expected true or false"),
    (_M + "[book]\nfile = 5\n", "[book] file", "expected a string"),
    (_M + '[book]\nfile = "nobook.csv"\n', "[book] file", "no such file"),
    (_M + '[book]\nfile = "prices.txt"\n', "[book] file", "unknown extension"),
    # [venue] max_leverage and maintenance_margin: checked at load, lists one per market
    (_M + "[venue]\nmaintenance_margin = 2.0\n", "[venue] maintenance_margin", "must be in (0.0, 1.0)"),
    (_M + "[venue]\nmaintenance_margin = 0\n", "[venue] maintenance_margin", "must be in (0.0, 1.0)"),
    (_M + "[venue]\nmax_leverage = 0.5\n", "[venue] max_leverage", "must be in [1.0, 1000000.0]"),
    (_M + "[venue]\nmax_leverage = [10, 20]\n", "[venue] max_leverage", "one value per market (1), got 2"),
    (_M + '[venue]\nmaintenance_margin = [0.01, "x"]\n', "[venue] maintenance_margin", "expected a number or a list"),
    (_M + '[venue]\npreset = "dydx_v4"\nmaintenance_margin = 1.5\n', "[venue] maintenance_margin", "must be in"),
    # strings (and booleans) where a number is expected
    (_M + '[venue]\nslippage = "big"\n', "[venue] slippage", "expected a number, got 'big'"),
    (_M + "[venue]\npartial_fraction = true\n", "[venue] partial_fraction", "expected a number, got True"),
    (_M + "[venue]\nbackstop = 3\n", "[venue] backstop", "expected a string"),
    (_M + '[venue]\npreset = [["hyperliquid"]]\n', "[venue] preset", "unknown venue"),
    (_M + '[[stress]]\nkind = "gap"\ndrop = "x"\nover_s = 1\nat_s = 0\n', "[stress 1] drop", "expected a number"),
    (_M + '[[stress]]\nkind = "gap"\ndrop = [[0.1]]\nover_s = 1\nat_s = 0\n', "[stress 1] drop", "expected a number"),
    (_M + '[[stress]]\nkind = ["gap"]\n', "[stress 1] kind", "unknown"),
    ("stress = 3\n" + _M, "[stress]", "expected [[stress]] tables"),
    (_M + '[paths]\nmodel = ["gbm"]\n', "[paths] model", "unknown"),
    (_M + '[paths]\ncorr = [["a"]]\n', "[paths] corr", "expected a list of rows of numbers"),
    (_M + "[paths]\ncorr = []\n", "[paths] corr", "expected 1×1"),
    (_CAL + "constraints = 3\n", "[calibrate] constraints", "expected a table"),
    # path models: checked at load, not when the paths are made
    ("[markets.BTC]\nstart = 100.0\ndepth = 1e6\nvol = 0\n[paths]\nmodel = 'garch'\n", "[markets.BTC] vol",
     "must be > 0 with [paths] model = 'garch'"),
    (_M + '[paths]\nmodel = "bootstrap"\nfile = "prices.csv"\nblock = 10\n', "[paths] block",
     "must be at most 2 (the history in prices.csv has 2 returns)"),
    (_M + '[paths]\nmodel = "bootstrap"\nfile = 3\n', "[paths] file", "expected a string"),
    (_M + '[paths]\nmodel = "bootstrap"\nfile = "noprices.csv"\n', "[paths] file", "no such file"),
    # [calibrate]: fields, ranges, objectives, weights and bounds as adljax.calibrate accepts them
    (_M + '[calibrate]\nfields = ["bogus"]\n', "[calibrate] fields", "'bogus' is not a field calibrate can move"),
    (_M + "[calibrate]\nfields = []\n", "[calibrate] fields", "name at least one field"),
    (_M + "[calibrate]\nfields = 3\n", "[calibrate] fields", "expected a list of names or a table of ranges"),
    (_M + "[calibrate]\nfields = {maintenance_margin = [0.2, 0.9]}\n", "[calibrate] fields.maintenance_margin",
     "must be increasing and within [0.0001, 0.5]"),
    (_M + "[calibrate]\nfields = {maintenance_margin = [true, 0.1]}\n", "[calibrate] fields.maintenance_margin",
     "expected a range"),
    (_M + '[calibrate]\nfields = ["insurance_fund"]\n', "[calibrate] fields", "insurance_fund only matters"),
    (_M + '[venue]\nbackstop = "none"\n[calibrate]\nfields = ["vault_capital"]\n', "[calibrate] fields",
     "vault_capital only matters"),
    (_CAL + 'minimize = "profit"\n', "[calibrate] minimize", "'profit' is not an objective"),
    (_CAL + "minimize = {bad_debt = -1}\n", "[calibrate] minimize.bad_debt", "must be a positive number"),
    (_CAL + 'minimize = {bad_debt = "x"}\n', "[calibrate] minimize.bad_debt", "must be a positive number"),
    (_CAL + "[calibrate.constraints]\nprofit = 1\n", "[calibrate.constraints] 'profit'", "is not an objective"),
    (_CAL + '[calibrate.constraints]\np_adl = "low"\n', "[calibrate.constraints] p_adl", "must be a positive number"),
    (_CAL + "[calibrate.constraints]\np_adl = 0\n", "[calibrate.constraints] p_adl", "must be a positive number"),
    # what the generated book accepts, under the table and key that hold it
    ("[markets.BTC]\nstart = 100.0\ndepth = 1e6\nlong_share = 1.0\n", "[markets.BTC] long_share", "must be < 1.0"),
    (_M + "[book]\naccounts = 1\n", "[book] accounts", "must be >= 2"),
    ("[markets.BTC]\nstart = 100.0\ndepth = 1e6\nmax_leverage = 1e7\n", "[markets.BTC] max_leverage", "must be <="),
]


@pytest.mark.parametrize("text, key, words", BAD_FILES, ids=[f"{i}:{k}" for i, (_, k, _) in enumerate(BAD_FILES)])
def test_bad_files_name_the_file_and_the_key(tmp_path, text, key, words):
    (tmp_path / "book.csv").write_text("account,market,size,entry,cash\na,BTC,1,100,100\nb,BTC,-1,100,100\n")
    (tmp_path / "prices.csv").write_text("time,BTC\n0,100\n1,101\n2,100.5\n")
    (tmp_path / "prices.txt").write_text("account,market,size,entry,cash\n")
    f = tmp_path / "bad.toml"
    f.write_text(text)
    load = scenario.load_calibration if "[calibrate]" in text else scenario.load_studies
    with pytest.raises(adljax.InputError) as err:
        load(f)
    msg = str(err.value)
    assert type(err.value) is adljax.InputError
    assert msg.startswith(f"{f}: "), msg
    assert key in msg, msg
    assert words in msg, msg


def test_sizes_given_in_place_of_the_files_are_checked(tmp_path):
    f = tmp_path / "ok.toml"
    f.write_text(_M)
    with pytest.raises(adljax.InputError, match=r"accounts: must be an integer >= 2, got 1"):
        scenario.load_studies(f, accounts=1)
    with pytest.raises(adljax.InputError, match=r"scenarios: must be an integer >= 1, got 0"):
        scenario.load_studies(f, scenarios=0)


def test_good_values_of_the_checked_keys_load(tmp_path):
    (tmp_path / "book.csv").write_text("account,market,size,entry,cash\na,BTC,1,100,100\nb,BTC,-1,100,100\n")
    f = tmp_path / "ok.toml"
    f.write_text('name = "ok"\ndescription = "d"\n' + _M.replace("[markets.BTC]", "[markets.ETH]") + _M
                 + '[venue]\npreset = "bitmex"\nmaintenance_margin = [0.02, 0.01]\nmax_leverage = [10, 20]\n'
                 + 'slippage = 0.02\npartial_threshold = inf\n'
                 + '[book]\nfile = "book.csv"\nbalance = true\n'
                 + '[[stress]]\nkind = "gap"\ndrop = [0.1, 0.2]\nover_s = 1\nat_s = 0\n'
                 + "[calibrate]\nfields = {maintenance_margin = [0.001, 0.1], insurance_fund = [0, inf]}\n"
                 + "minimize = {margin_locked = 1.0, bad_debt = 0.5}\n[calibrate.constraints]\np_adl = 0.01\n")
    st, kw = scenario.load_calibration(f)
    np.testing.assert_array_equal(st.venue.maintenance(2), [0.02, 0.01])
    assert kw["fields"] == {"maintenance_margin": (0.001, 0.1), "insurance_fund": (0.0, float("inf"))}
    assert kw["minimize"] == {"margin_locked": 1.0, "bad_debt": 0.5} and kw["constraints"] == {"p_adl": 0.01}


def test_margin_tiers_per_market_in_a_scenario_file():
    """``[markets.X] margin_tiers``: a table, or ``"published"`` (each preset's own); other markets keep one
    tier at their ``max_leverage``."""
    doc = _doc()
    doc["markets"]["BTC"] = {"start": 100.0, "depth": 1e6, "margin_tiers": "published"}
    doc["markets"]["ETH"]["margin_tiers"] = [[0, 0.02], [5e6, 0.05]]
    del doc["markets"]["ETH"]["max_leverage"]
    doc["markets"]["SOL"] = {"start": 10.0, "depth": 1e6, "max_leverage": 5}
    doc["paths"] = {"model": "gbm"}
    doc["venue"] = {"preset": ["hyperliquid", "binance"]}
    hl, bn = scenario.from_dict(doc)
    assert hl.venue.margin_tiers == (((0.0, 0.0125), (150e6, 0.025)), ((0.0, 0.02), (5e6, 0.05)), ((0.0, 0.1),))
    assert bn.venue.margin_tiers[0] == venues.binance().margin_tiers and bn.venue.margin_tiers[2] == ((0.0, 0.1),)
    doc["venue"] = {"preset": "dydx_v4"}
    with pytest.raises(adljax.InputError, match=r"\[venue\] margin_tiers: the dydx_v4 preset carries no published"):
        scenario.from_dict(doc)
    doc["venue"] = {"preset": "bitmex", "margin_tiers": [[0, 0.01], [1e6, 0.02]], "tier_mode": "deduction"}
    del doc["markets"]["BTC"]["margin_tiers"], doc["markets"]["ETH"]["margin_tiers"]
    doc["markets"]["ETH"]["max_leverage"] = 10
    st = scenario.from_dict(doc)[0]
    assert st.venue.margin_tiers == ((0.0, 0.01), (1e6, 0.02)) and st.venue.rules.tier_mode == "deduction"
