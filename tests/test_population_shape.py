"""The shape of a generated venue: popularity, notional scale, markets per account, and the markets file.

``adljax.generate.population`` draws which markets each account trades with probability proportional to a
popularity weight (without replacement), scales each market's position notional, and may vary the number of
markets an account trades. The statistical tests use fixed keys and state their tolerances in standard
deviations of the quantity tested; none runs the engine. The second half checks the scenario loader's
``markets_file``, ``[paths] corr`` as one number, ``[[stress]]`` keys that name a column of the markets file,
and ``[book] scale_with_accounts``.
"""
from __future__ import annotations

import numpy as np
import jax
import pytest

import adljax
from adljax import scenario
from adljax.generate import population
from adljax.study import seed_keys

START = [100.0, 10.0, 1.0]
LEV = [20.0, 10.0, 5.0]


def _positions(book) -> np.ndarray:
    """[N, A] True where a trader row holds a position."""
    return np.asarray(book.size) != 0


def _long_oi(book, start) -> np.ndarray:
    """[A] USD: each market's long side at the start prices (the book is zero-sum: one side of the open interest)."""
    size = np.asarray(book.size, dtype=np.float64)
    return np.where(size > 0, size, 0.0).sum(axis=0) * np.asarray(start, dtype=np.float64)


# ---- without the new options the draws are those of the code before them, bit for bit ----

def test_the_uniform_choice_draws_the_same_book_as_before():
    """Numbers recorded (as float.hex) from population() as it was before popularity, notional_scale and
    max_markets_per_account existed, with the same key and arguments."""
    b = population(jax.random.key(7), 50, START, LEV, long_share=[0.6, 0.5, 0.3], markets_per_account=2,
                   isolated_share=0.2, dtype=np.float64)
    cash, size, entry = (np.asarray(x) for x in (b.all_cash, b.all_size, b.all_entry))
    assert b.n_accounts == 60
    assert float(cash.sum()).hex() == "0x1.370aaf519b26ep+20"
    assert [float(x).hex() for x in np.abs(size).sum(0)] == [
        "0x1.ba1d4744d0949p+13", "0x1.9be8c9897c0f4p+16", "0x1.0db26d26ce402p+19"]
    assert [float(x).hex() for x in entry.sum(0)] == [
        "0x1.851484cd939dep+11", "0x1.68dc6d088ce39p+8", "0x1.078c8c86242e8p+5"]
    assert [float(x).hex() for x in cash[:3]] == ["0x1.846e4eb643bcdp+14", "0x1.703ba7e35feccp+12",
                                                  "0x1.1f52b039ee190p+15"]
    assert [float(x).hex() for x in size[4]] == ["0x0.0p+0", "-0x1.bf87f1fe0d097p+12", "-0x1.73846f4dc9767p+13"]
    assert np.flatnonzero(np.asarray(b.isolated)).tolist() == [2, 3, 15, 16, 20, 21, 22, 23, 24, 25, 28, 29, 34,
                                                               35, 36, 37, 45, 46, 54, 55]
    # four markets, six accounts: the markets fewer than two accounts chose go to the first two accounts
    b = population(jax.random.key(8), 6, [50.0, 5.0, 2.0, 1.0], 10.0, dtype=np.float64)
    assert _positions(b).astype(int).tolist() == [[1, 0, 1, 1], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1],
                                                  [0, 0, 0, 1], [0, 1, 0, 0]]
    assert [float(x).hex() for x in np.asarray(b.cash)] == [
        "0x1.af1efa5ea54fap+13", "0x1.33923bbca8f69p+13", "0x1.497045bee15c4p+13", "0x1.d49ac9b449015p+11",
        "0x1.b92e1ade44937p+8", "0x1.1a30802fd8e3ap+12"]


# ---- popularity: the share of positions in each market ----

W = np.array([8.0, 4.0, 2.0, 1.0, 1.0])
START5 = [100.0, 50.0, 10.0, 5.0, 1.0]


def test_one_market_an_account_is_chosen_in_proportion_to_popularity():
    n = 20_000
    b = population(jax.random.key(11), n, START5, 10.0, popularity=W, dtype=np.float64)
    pos = _positions(b)
    assert np.all(pos.sum(axis=1) == 1)                  # one market each, no market forced on anyone
    p = W / W.sum()
    count = pos.sum(axis=0)
    sd = np.sqrt(n * p * (1 - p))                          # binomial count of each market
    assert np.all(np.abs(count - n * p) < 4 * sd), (count, n * p)


def test_two_markets_an_account_follow_the_exponential_race_without_replacement():
    """With two markets an account, market a is among them with probability
    p_a + sum_{b != a} p_b * p_a / (1 - p_b): first, or second after b came first (p = weight share)."""
    n = 20_000
    b = population(jax.random.key(12), n, START5, 10.0, popularity=W, markets_per_account=2, dtype=np.float64)
    pos = _positions(b)
    assert np.all(pos.sum(axis=1) == 2)
    p = W / W.sum()
    incl = np.array([p[a] + sum(p[c] * p[a] / (1 - p[c]) for c in range(5) if c != a) for a in range(5)])
    sd = np.sqrt(n * incl * (1 - incl))
    assert np.all(np.abs(pos.sum(axis=0) - n * incl) < 4 * sd), (pos.sum(axis=0), n * incl)


def test_a_market_of_popularity_zero_is_only_given_its_two_forced_traders():
    b = population(jax.random.key(13), 2_000, START, LEV, popularity=[1.0, 1.0, 0.0], dtype=np.float64)
    pos = _positions(b)
    assert pos[:, 2].sum() == 2                          # one long and one short, so the market exists
    assert (np.asarray(b.size)[:, 2] > 0).sum() == 1
    assert pos.sum() == 2_000 + 2


# ---- notional_scale: the share of open interest in each market ----

def test_notional_scale_sets_each_markets_share_of_open_interest():
    """Uniform popularity, one market an account, long_share 0.5, entries at the start price and a Pareto
    index of 3 (finite variance): market a's long side has about n/(2A) positions of mean notional
    median·1.5/2^(1/3)·scale_a, so its share of the open interest is scale_a / sum(scale). The long side is a
    sum of about 3,300 notionals with coefficient of variation 0.58 times a binomial count (relative sd
    1.6 %): a relative sd of about 2 % on each share; the test allows 8 %."""
    n, scale = 20_000, np.array([1.0, 2.0, 4.0])
    b = population(jax.random.key(14), n, START, 50.0, tail=3.0, entry_spread=0.0, notional_scale=scale,
                   markets_per_account=1, popularity=[1.0, 1.0, 1.0], dtype=np.float64)
    share = _long_oi(b, START) / _long_oi(b, START).sum()
    np.testing.assert_allclose(share, scale / scale.sum(), rtol=0.08)
    mean = _long_oi(b, START).sum() / (np.asarray(b.size) > 0).sum()       # USD a long position, over all
    expected = 20_000.0 * 1.5 / 2 ** (1 / 3) * scale.mean()      # equal counts: the mean of the scales
    assert abs(mean / expected - 1) < 0.08


def test_popularity_and_notional_scale_multiply_in_the_open_interest():
    """Open interest share of market a ∝ popularity_a · scale_a (one market an account): weights [8, 4, 2]
    and scales [1, 1, 4] give 8, 4 and 8 parts of 20 (tolerance as above)."""
    n = 30_000
    b = population(jax.random.key(15), n, START, 50.0, tail=3.0, entry_spread=0.0, popularity=[8.0, 4.0, 2.0],
                   notional_scale=[1.0, 1.0, 4.0], dtype=np.float64)
    share = _long_oi(b, START) / _long_oi(b, START).sum()
    np.testing.assert_allclose(share, np.array([8.0, 4.0, 8.0]) / 20.0, rtol=0.08)


# ---- markets per account from 1 to k ----

def test_the_number_of_markets_is_a_geometric_law_cut_at_the_max_with_the_given_mean():
    """P(n) ∝ q^(n-1) on 1..4 with mean 1.5: (1 + 2q + 3q² + 4q³) = 1.5 (1 + q + q² + q³), i.e.
    2.5 q³ + 1.5 q² + 0.5 q - 0.5 = 0, solved here by numpy's polynomial roots."""
    roots = np.roots([2.5, 1.5, 0.5, -0.5])
    q = float(roots[np.isreal(roots) & (roots.real > 0)].real[0])
    law = q ** np.arange(4)
    law /= law.sum()
    assert abs(law @ np.arange(1, 5) - 1.5) < 1e-12
    n = 20_000
    b = population(jax.random.key(16), n, [100.0, 50.0, 10.0, 5.0, 2.0, 1.0], 10.0, markets_per_account=1.5,
                   max_markets_per_account=4, dtype=np.float64)
    k = _positions(b).sum(axis=1)
    assert k.min() >= 1 and k.max() <= 4
    freq = np.bincount(k, minlength=5)[1:]
    sd = np.sqrt(n * law * (1 - law))
    assert np.all(np.abs(freq - n * law) < 4 * sd), (freq, n * law)


@pytest.mark.parametrize("mean, expected", [(1.0, [1.0, 0.0, 0.0]), (2.0, [1 / 3, 1 / 3, 1 / 3]),
                                            (3.0, [0.0, 0.0, 1.0])])
def test_the_ends_of_the_count_law(mean, expected):
    """Mean 1: one market each; (k + 1)/2: uniform on 1..k (q = 1); k: all k."""
    n = 6_000
    b = population(jax.random.key(17), n, START, LEV, markets_per_account=mean, max_markets_per_account=3,
                   dtype=np.float64)
    freq = np.bincount(_positions(b).sum(axis=1), minlength=4)[1:] / n
    np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.25 / n))


def test_a_small_book_of_many_markets_spreads_its_forced_traders():
    """Ten accounts, thirty markets, one market each: most markets need forced traders; with popularity
    given they are drawn at random, so no account ends up in every market (the uniform choice gives them all
    to the first two accounts)."""
    start = list(np.geomspace(1.0, 1000.0, 30))
    shaped = population(jax.random.key(18), 10, start, 10.0, popularity=np.ones(30), dtype=np.float64)
    pos = _positions(shaped)
    assert np.all(pos.sum(axis=0) >= 2)
    size = np.asarray(shaped.size)
    assert np.all((size > 0).sum(axis=0) >= 1) and np.all((size < 0).sum(axis=0) >= 1)
    assert pos.sum(axis=1).max() < 15
    plain = population(jax.random.key(18), 10, start, 10.0, dtype=np.float64)
    assert _positions(plain)[:2].sum(axis=1).min() >= 25   # ten choices reach at most 5 markets twice


@pytest.mark.parametrize("kw, match", [
    (dict(popularity=[1.0, -1.0, 1.0]), r"popularity: must be finite and >= 0"),
    (dict(popularity=[1.0, 1.0]), r"popularity: expected one number per market \(3\)"),
    (dict(popularity=[0.0, 0.0, 0.0]), r"popularity: at least one market needs a weight > 0"),
    (dict(popularity=[1.0, 0.0, 0.0], markets_per_account=2), r"only 1 markets have a popularity > 0"),
    (dict(notional_scale=[1.0, 0.0, 1.0]), r"notional_scale: must be finite and > 0"),
    (dict(popularity="BTC"), r"popularity: expected numbers, got text"),
    (dict(markets_per_account=1.5), r"markets_per_account: must be an integer between 1 and 3"),
    (dict(max_markets_per_account=4), r"max_markets_per_account: must be an integer between 1 and 3"),
    (dict(markets_per_account=2.5, max_markets_per_account=2), r"markets_per_account: .* a number from 1 to 2"),
])
def test_bad_shape_options_are_named(kw, match):
    with pytest.raises(adljax.InputError, match=match):
        population(jax.random.key(0), 10, START, LEV, **kw)


# ---- the scenario loader: markets_file, corr as one number, stress columns, scale_with_accounts ----

CSV = """# a comment line, then the header
name,start,depth,max_leverage,margin_tiers,vol,long_share,popularity,notional_scale,drop,lag_s
BTC,100000,2e6,40,published,0.8,0.6,5,3,0.1,0
ETH,4000,1e6,25,published,1.0,,3,2,0.2,30
ALT,1.5,4e4,5,,2.0,0.7,1,,0.5,20
"""
TABLES = {"BTC": {"start": 100000.0, "depth": 2e6, "max_leverage": 40, "margin_tiers": "published", "vol": 0.8,
                  "long_share": 0.6, "popularity": 5.0, "notional_scale": 3.0},
          "ETH": {"start": 4000.0, "depth": 1e6, "max_leverage": 25, "margin_tiers": "published", "vol": 1.0,
                  "popularity": 3.0, "notional_scale": 2.0},
          "ALT": {"start": 1.5, "depth": 4e4, "max_leverage": 5, "vol": 2.0, "long_share": 0.7, "popularity": 1.0}}


def _file_doc(tmp_path, text=CSV, **top):
    (tmp_path / "m.csv").write_text(text)
    doc = {"scenarios": 2, "steps": 40, "dtype": "float64", "markets_file": "m.csv",
           "book": {"accounts": 300, "markets_per_account": 1.5, "max_markets_per_account": 3, "vault_cash": 1e6},
           "paths": {"model": "flat"},
           "stress": [{"kind": "cascade", "drops": "drop", "lags_s": "lag_s", "over_s": 5, "at_s": 1}]}
    doc.update(top)
    return doc


def test_a_markets_file_gives_the_study_its_tables_would(tmp_path):
    from_file = scenario.from_dict(_file_doc(tmp_path), tmp_path / "s.toml")[0]
    doc = _file_doc(tmp_path)
    del doc["markets_file"]
    doc["markets"] = TABLES
    doc["stress"] = [{"kind": "cascade", "drops": [0.1, 0.2, 0.5], "lags_s": [0, 30, 20], "over_s": 5, "at_s": 1}]
    from_tables = scenario.from_dict(doc, tmp_path / "s.toml")[0]
    assert from_file.markets == from_tables.markets == ("BTC", "ETH", "ALT")
    for f in ("all_cash", "all_size", "all_entry", "isolated"):
        np.testing.assert_array_equal(np.asarray(getattr(from_file.book, f)), np.asarray(getattr(from_tables.book, f)))
    # the book is population()'s with the markets' popularity and notional_scale and the [book] counts
    direct = population(seed_keys(0)[0], 300, [100000.0, 4000.0, 1.5], [40.0, 25.0, 5.0], long_share=[0.6, 0.5, 0.7],
                        popularity=[5.0, 3.0, 1.0], notional_scale=[3.0, 2.0, 1.0], markets_per_account=1.5,
                        max_markets_per_account=3, vault_cash=1e6, dtype=np.float64)
    np.testing.assert_array_equal(np.asarray(from_file.book.all_size), np.asarray(direct.all_size))
    assert from_file.venue.margin_tiers == from_tables.venue.margin_tiers
    assert from_file.venue.margin_tiers[2] == ((0.0, 0.1),)              # one tier at 5x: 1/(2·5)
    np.testing.assert_array_equal(np.asarray(from_file.paths.oracle), np.asarray(from_tables.paths.oracle))


def test_stress_columns_of_the_markets_file_shape_each_market(tmp_path):
    """Flat paths: after its fall each market is exactly start·(1 − drop), from at_s + lag_s + over_s on."""
    st = scenario.from_dict(_file_doc(tmp_path), tmp_path / "s.toml")[0]
    oracle = np.asarray(st.paths.oracle)
    np.testing.assert_array_equal(oracle[0, -1], [100000.0 * 0.9, 4000.0 * 0.8, 1.5 * 0.5])
    assert oracle[0, 6, 1] == 4000.0 and oracle[0, 36, 1] == 4000.0 * 0.8      # ETH falls from 31 s to 36 s


def test_one_number_for_corr_is_every_pairs_correlation(tmp_path):
    doc = _file_doc(tmp_path, paths={"model": "gbm", "corr": 0.6})
    one = scenario.from_dict(doc, tmp_path / "s.toml")[0].paths.oracle
    doc["paths"]["corr"] = [[1.0, 0.6, 0.6], [0.6, 1.0, 0.6], [0.6, 0.6, 1.0]]
    np.testing.assert_array_equal(np.asarray(one), np.asarray(scenario.from_dict(doc, tmp_path / "s.toml")[0]
                                                              .paths.oracle))
    for rho in (1.0, -0.5):                          # three markets: positive definite for -1/2 < rho < 1
        doc["paths"]["corr"] = rho
        with pytest.raises(adljax.InputError, match=r"\[paths\] corr: one number is every pair's correlation"):
            scenario.from_dict(doc, tmp_path / "s.toml")


def test_scale_with_accounts_shrinks_the_vault_fund_and_depth_with_the_accounts(tmp_path):
    doc = _file_doc(tmp_path)
    doc["book"].update(scale_with_accounts=True, insurance_fund=4e5, accounts=400)
    st = scenario.from_dict(doc, tmp_path / "s.toml", accounts=100)[0]      # a quarter of the file's accounts
    assert float(st.book.vault_cash) == 2.5e5 and float(st.book.insurance_fund) == 1e5
    np.testing.assert_array_equal(np.asarray(st.paths.depth)[0, 0], [5e5, 2.5e5, 1e4])
    full = scenario.from_dict(doc, tmp_path / "s.toml")[0]
    assert float(full.book.vault_cash) == 1e6
    np.testing.assert_array_equal(np.asarray(full.paths.depth)[0, 0], [2e6, 1e6, 4e4])
    doc["book"]["scale_with_accounts"] = False
    assert float(scenario.from_dict(doc, tmp_path / "s.toml", accounts=100)[0].book.vault_cash) == 1e6


def _bad(text_from, text_to):
    return CSV.replace(text_from, text_to)


@pytest.mark.parametrize("text, match", [
    (_bad("ETH,4000,1e6,25", "ETH,4000,1e6,x25"), r"column 'max_leverage': 'x25' is not a number at row 2, "
                                                   r"market 'ETH'"),
    (_bad("ALT,1.5,4e4,5,,2.0", "ALT,1.5,4e4,5,,-2.0"), r"column 'vol': must be >= 0.0, got -2.0 \(row 3, "
                                                         r"market 'ALT'\)"),
    (_bad("ETH,4000,", "ETH,,"), r"column 'start': empty at row 2, market 'ETH'"),
    (_bad("ALT,1.5,4e4,5,,", "ALT,1.5,4e4,5,tiered,"), r"column 'margin_tiers': 'tiered' at row 3"),
    (_bad("ALT,1.5,4e4,5,,", "ALT,1.5,4e4,5,published,"), r"column 'margin_tiers': row 3, market 'ALT': .*"
                                                           r"no published Hyperliquid margin table for 'ALT'"),
    (_bad("ALT,", "BTC,"), r"column 'name': market 'BTC' at row 3 is also at row 1"),
    (_bad("lag_s\n", "lag_s,colour\n"), r"unknown column 'colour'"),
    (_bad("name,", "coin,"), r"missing column 'name'"),
    (_bad("0.5,20\n", "0.5\n"), r"row 3 has 10 cells, the header 11"),
    (_bad("ALT,1.5,4e4,5,,2.0,0.7", "ALT,1.5,4e4,5,,2.0,1.5"), r"column 'long_share': must be < 1.0"),
])
def test_markets_file_errors_name_the_file_row_and_column(tmp_path, text, match):
    with pytest.raises(adljax.InputError, match=r"s.toml: \[markets_file\] m.csv: .*" + match):
        scenario.from_dict(_file_doc(tmp_path, text), tmp_path / "s.toml")


def test_markets_file_errors_outside_the_file(tmp_path):
    doc = _file_doc(tmp_path, markets={"BTC": {"start": 1.0, "depth": 1.0}})
    with pytest.raises(adljax.InputError, match=r"markets_file: give the markets as \[markets.NAME\] tables or"):
        scenario.from_dict(doc, tmp_path / "s.toml")
    doc = _file_doc(tmp_path)
    doc["stress"][0]["drops"] = "fall"
    with pytest.raises(adljax.InputError, match=r"\[stress 1\] drops: names column 'fall', which is not an extra "
                                                r"column of m.csv \(its extra columns: drop, lag_s\)"):
        scenario.from_dict(doc, tmp_path / "s.toml")
    doc = _file_doc(tmp_path, markets_file="none.csv")
    with pytest.raises(adljax.InputError, match=r"markets_file: no such file"):
        scenario.from_dict(doc, tmp_path / "s.toml")
    doc = _file_doc(tmp_path)
    doc["book"]["markets_per_account"] = 3.5
    with pytest.raises(adljax.InputError, match=r"\[book\] markets_per_account: must be <= 3"):
        scenario.from_dict(doc, tmp_path / "s.toml")
