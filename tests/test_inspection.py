"""``adljax inspect``'s price moves with tiered maintenance margin, against hand-worked numbers.

Every answer is also checked against the published formula (:func:`adljax.model.tiers.requirement`):
``g(x) = AV(x) − c·MR(x)`` stays ≥ 0 from 0 up to the move ``x*`` and is < 0 just past it. NumPy only: no
engine compiles (the one :func:`inspect_book` test jits the small ADL-queue ranking).

The BTC table of most cases is Hyperliquid's: ``(0, 1.25 %)``, ``($150M, 2.5 %)``, so ``d₁ = 150M·1.25 % =
1.875M``. Amounts in the comments are in $M.
"""
from pathlib import Path

import numpy as np
import pytest

from adljax import InputError
from adljax.analysis.inspection import inspect_book, moves
from adljax.cli.inspect import margin_text
from adljax.model import venues
from adljax.model.tiers import requirement

BTC = [[0.0, 150e6]], [[0.0125, 0.025]]          # (bounds, rates) [1, 2]
RATIO = 2.0 / 3.0
C = {"liquidation": 1.0, "backstop": RATIO, "bankruptcy": 0.0}


def gap(row, x, c, bounds, rates, tier_mode, moving=None):
    """``AV − c·MR`` of one row (x a number or an array of moves) with the moving markets' prices scaled by
    ``(1 + x)``, by the published formula."""
    cash, size, entry, mark = (np.asarray(v, dtype=np.float64)[0] for v in (row[0], row[1], row[2], [row[3]]))
    moving = np.ones(size.shape, bool) if moving is None else moving
    price = mark * np.where(moving, 1.0 + np.asarray(x, dtype=np.float64)[..., None], 1.0)     # [..., A]
    av = cash + np.sum(size * (price - entry), axis=-1)
    return av - c * np.sum(requirement(np.abs(size) * price, bounds, rates, tier_mode), axis=-1)


def assert_first_crossing(row, x_star, c, bounds, rates, tier_mode, moving=None):
    """``g ≥ 0`` on a grid from 0 to just before ``x*`` (no earlier crossing) and ``g < 0`` just past it."""
    g = lambda x: gap(row, x, c, bounds, rates, tier_mode, moving)
    eps = 1e-9
    if x_star == 0:
        assert g(0.0) < 0
        return
    grid = np.linspace(0.0, x_star, 20001)[:-1]
    assert np.all(g(grid) >= 0), grid[g(grid) < 0][:3]
    assert g(x_star - eps * np.sign(x_star)) >= 0
    assert g(x_star + eps * np.sign(x_star)) < 0


def one_row(cash, size, entry, mark):
    return [cash], [size], [entry], mark


def test_long_crosses_a_tier_bound_on_the_way_down():
    # 2000 BTC long at 100k: notional 200M, tier 1 now; cash 60M, entry = mark, so AV = 60 + 200x.
    # Deduction: MR = 200(1+x)·2.5 % − 1.875 = 3.125 + 5x on x ≥ −0.25 (notional ≥ 150M), 2.5 + 2.5x below.
    # Liquidation, segment [−0.25, 0): g = 60 − 3.125 + (200 − 5)x = 56.875 + 195x, at −0.25: 8.125 > 0: no root.
    #              segment (−1, −0.25): g = 60 − 2.5 + (200 − 2.5)x = 57.5 + 197.5x = 0 at x = −57.5/197.5 = −23/79.
    # Backstop (c = 2/3): at −0.25 g = 60 − 2.0833 − 0.25·196.667 = 8.75 > 0; below it
    #              g = 60 − 5/3 + (200 − 5/3)x = 0 at x = −(175/3)/(595/3) = −5/17. Bankrupt: 60 + 200x = 0 at −0.3.
    # Step mode: MR = 5(1+x) on x ≥ −0.25 (root −55/195 lies below −0.25, outside it), 2.5(1+x) below: the same
    # liquidation −23/79. One rate 2.5 % everywhere would say −55/195, the segment at 0 extended −56.875/195.
    row = one_row(60e6, [2000.0], [1e5], [1e5])
    mv = moves(*row, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1])
    assert mv["liquidation"][0] == pytest.approx(-23 / 79, rel=1e-12)
    assert mv["backstop"][0] == pytest.approx(-5 / 17, rel=1e-12)
    assert mv["bankruptcy"][0] == pytest.approx(-0.3, rel=1e-12)
    for name, c in C.items():
        assert_first_crossing(row, mv[name][0], c, *BTC, "deduction")
    step = moves(*row, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1], tier_mode="step")
    assert step["liquidation"][0] == pytest.approx(-23 / 79, rel=1e-12)
    assert_first_crossing(row, step["liquidation"][0], 1.0, *BTC, "step")


def test_step_mode_crosses_at_the_bound_by_the_jump():
    # 1000 BTC short at 100k: notional 100M (tier 0) rising to 150M at x = +0.5; cash 53M: AV = 53 − 100x.
    # Step: MR = 1.25(1+x) below 0.5, 2.5(1+x) from 0.5. Liquidation: below 0.5 g = 51.75 − 101.25x, at 0.5^−
    # 1.125 > 0; at 0.5 MR jumps 1.875 → 3.75 and g = 3 − 3.75 = −0.75 < 0: the crossing is the bound, x = 0.5.
    # Backstop (c = 2/3): at 0.5 g = 3 − 2.5 = 0.5 > 0 after the jump, then g = 53 − 5/3 − (100 + 5/3)x = 0 at
    # x = (154/3)/(305/3) = 154/305. Deduction (no jump): MR = 2.5(1+x) − 1.875 from 0.5, g = 52.375 − 102.5x = 0
    # at 419/820; backstop 53 − (2/3)(0.625 + 2.5x) − 100x = 0 at (631/12)/(305/3) = 631/1220. Bankrupt at 0.53.
    row = one_row(53e6, [-1000.0], [1e5], [1e5])
    step = moves(*row, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1], tier_mode="step")
    assert step["liquidation"][0] == 0.5
    assert gap(row, 0.5 - 1e-9, 1.0, *BTC, "step") > 1e6 and gap(row, 0.5, 1.0, *BTC, "step") < -0.7e6
    assert step["backstop"][0] == pytest.approx(154 / 305, rel=1e-12)
    assert step["bankruptcy"][0] == pytest.approx(0.53, rel=1e-12)
    ded = moves(*row, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1], tier_mode="deduction")
    assert ded["liquidation"][0] == pytest.approx(419 / 820, rel=1e-12)
    assert ded["backstop"][0] == pytest.approx(631 / 1220, rel=1e-12)
    for name, c in C.items():
        assert_first_crossing(row, step[name][0], c, *BTC, "step")
        assert_first_crossing(row, ded[name][0], c, *BTC, "deduction")


def test_step_mode_jump_crosses_where_the_slope_after_it_is_up():
    # Together: 1100 BTC long (110M) and 15000 ETH short at 4000 (60M), D = 50, cash 25; BTC (0, 1 %), (150M, 30 %),
    # ETH 1 %. MR₀ = 1.7, g = 23.3 + 48.3x below BTC's bound at x = 4/11, so down: −23.3/48.3 = −233/483.
    # Step: at 4/11 g = 23.3 + 48.3·4/11 = 40.8636 before the jump, and BTC's MR jumps 1.5 → 45: g = −2.636 < 0,
    # and after it g rises again (slope 50 − 33 − 0.6 = 16.4): the crossing is the bound 4/11, nearer than −233/483.
    # Deduction: no jump, g rises past 4/11 too, so the crossing is the one down.
    bounds, rates = [[0.0, 150e6], [0.0, 0.0]], [[0.01, 0.30], [0.01, 0.01]]
    row = [25e6], [[1100.0, -15000.0]], [[1e5, 4000.0]], [1e5, 4000.0]
    step = moves(*row, backstop_ratio=RATIO, bounds=bounds, rates=rates, tier_mode="step")
    assert step["liquidation"][0] == pytest.approx(4 / 11, rel=1e-12)
    assert_first_crossing(row, step["liquidation"][0], 1.0, bounds, rates, "step")
    assert gap(row, 4 / 11 + 0.01, 1.0, bounds, rates, "step") > gap(row, 4 / 11 + 1e-9, 1.0, bounds, rates, "step")
    ded = moves(*row, backstop_ratio=RATIO, bounds=bounds, rates=rates, tier_mode="deduction")
    assert ded["liquidation"][0] == pytest.approx(-233 / 483, rel=1e-12)
    assert_first_crossing(row, ded["liquidation"][0], 1.0, bounds, rates, "deduction")


def test_a_tier_makes_a_safe_account_liquidatable_now():
    # 2000 BTC long at 100k with AV = cash = 3M. Tiered MR = 5 − 1.875 = 3.125 > 3: liquidatable now (0).
    # At one rate 1.25 % MR = 2.5 < 3: safe; g = 0.5 + 197.5x = 0 at x = −1/395.
    # Tiered backstop: g = 3 − (2/3)·3.125 + (200 − 10/3)x = 11/12 + (590/3)x = 0 at x = −11/2360 (> −0.25).
    row = one_row(3e6, [2000.0], [1e5], [1e5])
    tiered = moves(*row, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1])
    one = moves(*row, [0.0125], RATIO)
    assert tiered["liquidation"][0] == 0.0 and gap(row, 0.0, 1.0, *BTC, "deduction") < 0
    assert one["liquidation"][0] == pytest.approx(-1 / 395, rel=1e-12)
    assert tiered["backstop"][0] == pytest.approx(-11 / 2360, rel=1e-12)
    assert_first_crossing(row, tiered["backstop"][0], RATIO, *BTC, "deduction")
    step = moves(*row, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1], tier_mode="step")   # MR = 5 > 3
    assert step["liquidation"][0] == 0.0


def test_never_and_the_nearest_of_two_crossings():
    # A long of 200M with 300M cash: the liquidation root −297.5/197.5 < −1 needs a negative price: never.
    # A row without positions: never.
    rows = [300e6, 5.0], [[2000.0], [0.0]], [[1e5], [0.0]], [1e5]
    mv = moves(*rows, backstop_ratio=RATIO, bounds=BTC[0], rates=BTC[1])
    for name in C:
        assert np.isnan(mv[name]).all()
    # Hedged: 1100 BTC long (110M) and 25000 ETH short at 4000 (100M), D = 10. BTC (0, 1 %), (150M, 30 %);
    # ETH 1 % (its table padded with a repeated tier). MR = 2.1(1+x) below x = 150/110 − 1 = 4/11, and BTC's
    # MR is 110(1+x)·30 % − 43.5 above. Below 4/11 g = cash − 2.1 + 7.9x; above, its slope is 10 − 34 = −24.
    # cash 12: down −9.9/7.9 < −1 (never); g(4/11) = 140.5/11; up 4/11 + 140.5/264 = 43/48. One rate: never.
    # cash 9: down −6.9/7.9 = −69/79; up 4/11 + (107.5/11)/24 = 37/48: the nearer one, up.
    # cash 3: down −0.9/7.9 = −9/79; up 4/11 + (41.5/11)/24 = 25/48: the nearer one, down.
    bounds, rates = [[0.0, 150e6], [0.0, 0.0]], [[0.01, 0.30], [0.01, 0.01]]
    rows = [12e6, 9e6, 3e6], [[1100.0, -25000.0]] * 3, [[1e5, 4000.0]] * 3, [1e5, 4000.0]
    mv = moves(*rows, backstop_ratio=RATIO, bounds=bounds, rates=rates)
    assert mv["liquidation"] == pytest.approx([43 / 48, 37 / 48, -9 / 79], rel=1e-12)
    one = moves(*rows, [0.01, 0.01], RATIO)
    assert np.isnan(one["liquidation"][0])
    for i in range(3):
        row = [rows[0][i]], [rows[1][i]], [rows[2][i]], rows[3]
        assert_first_crossing(row, mv["liquidation"][i], 1.0, bounds, rates, "deduction")
    row = [9e6], [rows[1][1]], [rows[2][1]], rows[3]
    assert gap(row, -69 / 79 + 1e-9, 1.0, bounds, rates, "deduction") > 0 > gap(row, -69 / 79 - 1e-9, 1.0, bounds,
                                                                                  rates, "deduction")


def test_each_mode_moves_one_market_across_its_bound():
    # 2000 BTC long (200M, tiered as above) and 10000 ETH short at 4000 (40M, one tier 1 %: MR 0.4(1+x)), cash 60.
    # BTC alone: g = 60 − 0.4 − 3.125 + 195x on [−0.25, 0), 7.725 at −0.25; below it 57.1 + 197.5x: −571/1975.
    # ETH alone (up): g = 60 − 3.125 − 0.4 − 40.4x: 56.475/40.4 = 2259/1616.
    # Together: D = 160; g = 56.475 + 154.6x on [−0.25, 0) (17.825 at −0.25); below 57.1 + 157.1x: −571/1571.
    bounds, rates = [[0.0, 150e6], [0.0, 0.0]], [[0.0125, 0.025], [0.01, 0.01]]
    row = [60e6], [[2000.0, -10000.0]], [[1e5, 4000.0]], [1e5, 4000.0]
    each = moves(*row, backstop_ratio=RATIO, bounds=bounds, rates=rates, mode="each")
    assert each["liquidation"][0] == pytest.approx([-571 / 1975, 2259 / 1616], rel=1e-12)
    together = moves(*row, backstop_ratio=RATIO, bounds=bounds, rates=rates)
    assert together["liquidation"][0] == pytest.approx(-571 / 1571, rel=1e-12)
    for a in range(2):
        assert_first_crossing(row, each["liquidation"][0, a], 1.0, bounds, rates, "deduction",
                              moving=np.arange(2) == a)
    assert_first_crossing(row, together["liquidation"][0], 1.0, bounds, rates, "deduction")


def test_one_tier_tables_give_the_one_rate_answers():
    # 10 long at 100, cash 100, mm 5 %: AV = 100 + 1000x, MR = 50 + 50x.
    # Liquidation 100 + 1000x = 50 + 50x at −50/950; backstop (c = 1/2) 100 + 1000x = 25 + 25x at −75/975;
    # bankruptcy −0.1. A short of 10 goes up: bankrupt at +0.1. A table padded to 3 tiers (repeated bound and
    # rate) is still one tier. Already past: cash 10 → 0; a row with 2000 cash is bankrupt only at x = −2: never.
    rows = [100.0, 100.0, 10.0, 2000.0], [[10.0], [-10.0], [10.0], [10.0]], [[100.0]] * 4, [100.0]
    tables = {"mm": dict(mm=[0.05]), "one tier": dict(bounds=[[0.0]], rates=[[0.05]]),
              "padded": dict(bounds=[[0.0, 0.0, 0.0]], rates=[[0.05, 0.05, 0.05]])}
    for tier_mode in ("deduction", "step"):
        for how, table in tables.items():
            mv = moves(*rows, backstop_ratio=0.5, tier_mode=tier_mode, **table)
            assert mv["liquidation"][0] == pytest.approx(-50 / 950, rel=1e-12), how
            assert mv["backstop"][0] == pytest.approx(-75 / 975, rel=1e-12), how
            assert mv["bankruptcy"][0] == pytest.approx(-0.1, rel=1e-12), how
            assert mv["liquidation"][1] == pytest.approx(50 / 1050, rel=1e-12), how   # 100 − 1000x = 50 + 50x
            assert mv["bankruptcy"][1] == pytest.approx(0.1, rel=1e-12), how
            assert mv["liquidation"][2] == 0.0 and np.isnan(mv["bankruptcy"][3]), how
    # two markets, one each way: together they hedge (D = 0, bankrupt never); each: BTC −0.1, ETH +0.1
    row = [100.0], [[10.0, -10.0]], [[100.0, 100.0]], [100.0, 100.0]
    assert np.isnan(moves(*row, [0.05, 0.05], 0.5)["bankruptcy"][0])
    each = moves(*row, backstop_ratio=0.5, bounds=[[0.0], [0.0]], rates=[[0.05], [0.05]], mode="each")
    assert each["bankruptcy"][0] == pytest.approx([-0.1, 0.1], rel=1e-12)


@pytest.mark.parametrize("kwargs, field", [
    (dict(bounds=BTC[0], rates=BTC[1], tier_mode="stepwise"), "tier_mode"),
    (dict(mm=[0.01], bounds=BTC[0], rates=BTC[1]), "mm"),
    (dict(bounds=BTC[0]), "bounds"),
    (dict(bounds=[[0.0, 1.0]], rates=[[0.01]]), "bounds"),
    (dict(mm=[0.01], mode="sideways"), "mode"),
], ids=["tier_mode", "mm and tables", "no rates", "shapes", "mode"])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(InputError, match=f"^{field}:"):
        moves([1.0], [[1.0]], [[1.0]], [1.0], backstop_ratio=0.5, **kwargs)


def test_inspect_book_reads_the_venue_tiers(tmp_path, monkeypatch):
    # The long of the "now" test (cash 3M) against a 1e9-cash short: MR = 3.125M, liquidatable now; backstop
    # at −11/2360 (at one rate 1.25 %: liquidation −1/395, backstop −(4/3)/(595/3) = −4/595).
    path = tmp_path / "book.csv"
    path.write_text("account,market,size,entry,cash,isolated\nwhale,BTC,2000,100000,3000000,false\n"
                    "maker,BTC,-2000,100000,1000000000,false\n")
    tiered = lambda **o: venues.hyperliquid(margin_tiers=((0.0, 0.0125), (150e6, 0.025)), **o)
    monkeypatch.setitem(venues.PRESETS, "tiered", tiered)
    r = inspect_book(path, ["BTC"], [1e5], venue_name="tiered")
    assert r["mr"][0] == pytest.approx(3.125e6, rel=1e-12) and r["mm"][0] == 0.0125
    assert r["tier_mode"] == "deduction" and r["bounds"].tolist() == [[0.0, 150e6]]
    assert r["moves"]["liquidation"][0] == 0.0
    assert r["moves"]["backstop"][0] == pytest.approx(-11 / 2360, rel=1e-12)
    assert margin_text(["BTC"], r["rates"], r["bounds"], r["tier_mode"]) == "BTC 1.25% (2 tiers)"
    assert margin_text(["BTC", "ETH"], [[0.0125, 0.025], [0.02, 0.02]], [[0.0, 150e6], [0.0, 0.0]],
                       "step") == "BTC 1.25% (2 tiers, step), ETH 2.00%"


def test_inspect_book_gives_hyperliquid_coins_their_own_tables(tmp_path):
    # Hyperliquid's preset with coins it publishes tables for: ETH 25× (2 %), not BTC's 40× (1.25 %).
    # The ETH long of 100 at 4,000 ($400k) needs 400,000·2 % = 8,000; with a market it has no table for
    # ("ALT"), every market keeps the preset's (BTC's) table: 1.25 %, 5,000.
    path = tmp_path / "book.csv"
    path.write_text("account,market,size,entry,cash\na,ETH,100,4000,50000\nb,ETH,-100,4000,50000\n")
    assert inspect_book(path, ["BTC", "ETH"], [1e5, 4e3])["mr"][0] == pytest.approx(8_000.0, rel=1e-12)
    assert inspect_book(path, ["ALT", "ETH"], [1.0, 4e3])["mr"][0] == pytest.approx(5_000.0, rel=1e-12)
    assert inspect_book(path, ["BTC", "ETH"], [1e5, 4e3], max_leverage=[40, 10])["mr"][0] == pytest.approx(20_000.0)


HL = Path(__file__).parent / "data" / "hyperliquid"


def test_hyperliquid_files_inspected(monkeypatch, capsys):
    # tests/data/hyperliquid (see tests/test_hyperliquid_files.py): rows 0x11 cross (BTC +2, ETH −10, AV 31,000),
    # 0x11/DOGE (+100,000, AV 5,000), 0x22 cross (BTC −3, AV 53,000), 0x22/ETH (+4, AV 1,400), 0x33 (DOGE −50,000,
    # AV 2,500), at marks 100,000, 4,000, 0.21; BTC on Hyperliquid's (0, 1.25 %), ($150M, 2.5 %), ETH 2 %, DOGE 5 %.
    # MR: 0x11 200,000·1.25 % + 40,000·2 % = 3,300; 21,000·5 % = 1,050; 300,000·1.25 % = 3,750; 320; 525.
    # Together: 0x11 D = 160,000: liquidatable at (3,300 − 31,000)/(160,000 − 3,300) = −27,700/156,700 (−17.7 %),
    # bankrupt at −31,000/160,000 (−19.4 %); 0x22 D = −300,000: (3,750 − 53,000)/(−303,750) = +16.2 %.
    from adljax import cli
    from adljax.analysis.inspection import inspect_hyperliquid

    r = inspect_hyperliquid(HL / "states", HL / "meta.json")
    assert r["markets"] == ["BTC", "ETH", "DOGE"] and r["prices"].tolist() == [100_000.0, 4_000.0, 0.21]
    assert r["mr"] == pytest.approx([3_300.0, 1_050.0, 3_750.0, 320.0, 525.0], rel=1e-12)
    assert r["bounds"][0].tolist() == [0.0, 150e6] and r["rates"][:, 0].tolist() == [0.0125, 0.02, 0.05]
    assert r["moves"]["liquidation"][[0, 2]] == pytest.approx([-27_700 / 156_700, 49_250 / 303_750], rel=1e-12)
    assert r["moves"]["bankruptcy"][0] == pytest.approx(-31_000 / 160_000, rel=1e-12)

    monkeypatch.setenv("ADLJAX_COMPILATION_CACHE", "0")
    args = ["inspect", "--hyperliquid", str(HL / "states"), str(HL / "meta.json")]
    capsys.readouterr()
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "states: 5 accounts · hyperliquid rules · maintenance BTC 1.25% (2 tiers), ETH 2.00%, DOGE 5.00%" in out
    assert "-17.7 %" in out and "-19.4 %" in out and "+16.2 %" in out
    for extra, flag in ((["--prices", "1,2,3"], "--prices"), (["--max-leverage", "10"], "--max-leverage"),
                        ([str(HL / "meta.json")], str(HL / "meta.json"))):
        assert cli.main(args + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"adljax: error: {flag}") and "\n" not in err
