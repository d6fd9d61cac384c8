"""Hyperliquid's own files: clearinghouseState and meta responses read into a book, a venue and marks.

The files under tests/data/hyperliquid are hand-written in the info endpoint's format (no real user data).
States at marks BTC 100,000, ETH 4,000, DOGE 0.21 (each positionValue/|szi|):

- 0x11..11: cross BTC +2 @ 95,000 and ETH −10 @ 4,100 on totalRawUsd −129,000 (value 31,000), and an
  isolated DOGE +100,000 @ 0.2 with rawUsd −16,000 (marginUsed 5,000);
- 0x22..22: cross BTC −3 @ 101,000 on totalRawUsd 353,000 (value 53,000), an isolated ETH +4 @ 3,900 with
  rawUsd −14,600 (marginUsed 1,400), and a closed SOL position listed with szi 0 and entryPx null;
- 0x33..33: cross DOGE −50,000 @ 0.22 on totalRawUsd 13,000 (value 2,500);
- 0x44..44 (states_all.jsonl only): cross BTC +1, ETH +6, DOGE −50,000, all at the marks, value 30,000:
  with it every market is balanced and the sizes match the contexts' openInterest (3, 10, 100,000).

meta.json is a metaAndAssetCtxs response: BTC on table 56 (40× to $150M, then 20×), ETH on the unlisted id
25 (one tier at 25×), DOGE with no marginTableId (one tier at its maxLeverage 10); ETH's context has no
markPx (its oraclePx 4,000 is the mark). meta_plain.json is the bare meta with a fourth coin, ATOM.
No test here runs the engine.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import adljax
from adljax.bookfile import load_hyperliquid
from adljax.model.errors import InputError
from adljax.studies import hyperliquid as hl

DATA = Path(__file__).parent / "data" / "hyperliquid"
STATES = DATA / "states"
META = DATA / "meta.json"
U1, U2, U3, U4 = ("0x" + d * 40 for d in "1234")

# Rows: 0x11 cross, 0x11/DOGE, 0x22 cross, 0x22/ETH, 0x33 cross. cash = rawUsd + Σ szi·entryPx:
# 0x11: −129,000 + 2·95,000 − 10·4,100 = 20,000; its DOGE: −16,000 + 100,000·0.2 = 4,000;
# 0x22: 353,000 − 3·101,000 = 50,000; its ETH: −14,600 + 4·3,900 = 1,000; 0x33: 13,000 − 50,000·0.22 = 2,000.
CASH = [20_000.0, 4_000.0, 50_000.0, 1_000.0, 2_000.0]
SIZE = [[2.0, -10.0, 0.0], [0.0, 0.0, 100_000.0], [-3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, -50_000.0]]
ENTRY = [[95_000.0, 4_100.0, 0.0], [0.0, 0.0, 0.2], [101_000.0, 0.0, 0.0], [0.0, 3_900.0, 0.0], [0.0, 0.0, 0.22]]
ISOLATED = [False, True, False, True, False]
# The account values at the marks, as the states give them: 31,000, marginUsed 5,000, 53,000, 1,400, 2,500.
VALUES = [31_000.0, 5_000.0, 53_000.0, 1_400.0, 2_500.0]


def test_states_folder_reads_into_rows_cash_and_marks():
    book, venue, marks = load_hyperliquid(STATES, META, vault_cash=1e6, insurance_fund=5e4)
    np.testing.assert_allclose(np.asarray(book.cash), CASH, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(book.size), SIZE)
    np.testing.assert_array_equal(np.asarray(book.entry), ENTRY)
    np.testing.assert_array_equal(np.asarray(book.isolated), ISOLATED + [False, False])
    np.testing.assert_array_equal(marks, [100_000.0, 4_000.0, 0.21])      # ETH: oraclePx, its markPx null
    np.testing.assert_allclose(np.asarray(book.account_value(marks))[:5], VALUES, rtol=1e-12)
    assert float(book.vault_cash) == 1e6 and float(book.insurance_fund) == 5e4
    # Net BTC −1, ETH −6, DOGE +50,000: the LP row takes the opposite at the size-weighted mean entries
    # (2·95,000 + 3·101,000)/5 = 98,600, (10·4,100 + 4·3,900)/14 = 56,600/14, (100,000·0.2 + 50,000·0.22)/150,000
    # = 31,000/150,000; lp_cash = 98,600 + 6·56,600/14 + 50,000·31,000/150,000.
    np.testing.assert_array_equal(np.asarray(book.lp_size), [1.0, 6.0, -50_000.0])
    np.testing.assert_allclose(np.asarray(book.lp_entry), [98_600.0, 56_600.0 / 14, 31_000.0 / 150_000], rtol=1e-12)
    assert float(book.lp_cash) == pytest.approx(98_600.0 + 6 * 56_600.0 / 14 + 50_000 * 31_000.0 / 150_000, rel=1e-12)
    assert hl.row_names(STATES) == [U1, f"{U1}/DOGE", U2, f"{U2}/ETH", U3]


def test_venue_has_each_markets_margin_table_from_the_meta():
    _, venue, _ = load_hyperliquid(STATES, META)
    assert venue.name == "hyperliquid"
    # BTC: table 56 as rates 1/(2·40), 1/(2·20); ETH: unlisted id 25 < 50, one tier at 25×;
    # DOGE: no marginTableId, one tier at its maxLeverage 10.
    assert venue.margin_tiers == (((0.0, 0.0125), (150e6, 0.025)), ((0.0, 0.02),), ((0.0, 0.05),))
    assert venue.max_leverage == (40.0, 25.0, 10.0)
    bounds, rates = venue.tiers(3)
    np.testing.assert_array_equal(rates[:, 0], [0.0125, 0.02, 0.05])
    # The same tables on any venue, for a subset of the coins in another order.
    v = hl.venue_from_meta(META, ["DOGE", "BTC"], venue=adljax.venues.hyperliquid_builder())
    assert v.name == "hyperliquid_builder" and v.rules.backstop == "none"
    assert v.margin_tiers == (((0.0, 0.05),), ((0.0, 0.0125), (150e6, 0.025)))


def test_jsonl_states_with_every_account_match_open_interest():
    book, _, _ = load_hyperliquid(DATA / "states_all.jsonl", META, complete=True)
    # 0x44 holds BTC +1, ETH +6, DOGE −50,000 at the marks on totalRawUsd −83,500: cash
    # −83,500 + 100,000 + 24,000 − 10,500 = 30,000; every market is balanced, so the LP row is flat.
    np.testing.assert_allclose(np.asarray(book.cash), CASH + [30_000.0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(book.size)[5], [1.0, 6.0, -50_000.0])
    np.testing.assert_array_equal(np.asarray(book.lp_size), [0.0, 0.0, 0.0])
    assert float(book.lp_cash) == 0.0
    assert hl.row_names(DATA / "states_all.jsonl")[-1] == U4
    # The folder alone is three of the four accounts: BTC holds 2 long and 3 short against an open interest of 3.
    with pytest.raises(InputError, match=r"meta.json: coin 'BTC': field assetCtxs\[0\].openInterest: 3, but the "
                                         r"states hold 2 long and 3 short"):
        load_hyperliquid(STATES, META, complete=True)


def test_one_state_file_and_a_subset_of_markets(tmp_path):
    book, _, marks = load_hyperliquid(STATES / f"{U2}.json", META, markets=["ETH", "BTC"])
    # 0x22 alone: cross BTC −3 (cash 50,000) and isolated ETH +4 (cash 1,000); the LP row takes BTC +3, ETH −4.
    np.testing.assert_allclose(np.asarray(book.cash), [50_000.0, 1_000.0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(book.size), [[0.0, -3.0], [4.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(book.lp_size), [-4.0, 3.0])
    np.testing.assert_array_equal(marks, [4_000.0, 100_000.0])
    assert hl.row_names(STATES / f"{U2}.json") == [U2, f"{U2}/ETH"]


def test_coins_left_out_close_into_cash_and_plain_meta_marks_are_mean_entries():
    book, venue, marks = load_hyperliquid(STATES, DATA / "meta_plain.json", markets=["DOGE", "BTC"])
    # No asset contexts: each mark is the coin's size-weighted mean entry. ETH is left out: its positions close
    # into cash at its mark 56,600/14: 0x11 20,000 − 10·(56,600/14 − 4,100), 0x22/ETH 1,000 + 4·(56,600/14 − 3,900),
    # which then holds no position and is no longer an isolated row.
    eth = 56_600.0 / 14
    np.testing.assert_allclose(marks, [31_000.0 / 150_000, 98_600.0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(book.cash), [20_000.0 - 10 * (eth - 4_100), 4_000.0, 50_000.0,
                                                       1_000.0 + 4 * (eth - 3_900), 2_000.0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(book.size), [[0.0, 2.0], [100_000.0, 0.0], [0.0, -3.0], [0.0, 0.0],
                                                          [-50_000.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(book.isolated), [False, True, False, False, False, False, False])
    assert venue.margin_tiers == (((0.0, 0.05),), ((0.0, 0.0125), (150e6, 0.025)))
    # ATOM (table id 5: one tier at 5×) has neither a context nor a position: no mark, so every coin fails.
    with pytest.raises(InputError, match=r"meta_plain.json: coin 'ATOM': no mark"):
        load_hyperliquid(STATES, DATA / "meta_plain.json")
    assert hl.read_meta(DATA / "meta_plain.json").leverage_tables[3] == ((0.0, 5.0),)


def test_differences_within_the_tolerance_pass(tmp_path):
    # The tolerance is 1e-6 of a unit's gross money (|rawUsd| + Σ positionValue) plus 1e-5 USD. 0x11's cross
    # account has 369,000 USD of it (0.369 USD) and the whole account 406,000 (0.406 USD): 0.3 USD passes.
    state = json.loads((STATES / f"{U1}.json").read_text())
    state["marginSummary"]["accountValue"] = "36000.3"
    state["crossMarginSummary"]["accountValue"] = "31000.3"
    (tmp_path / "u.json").write_text(json.dumps(state))
    book, _, _ = load_hyperliquid(tmp_path / "u.json", META)
    np.testing.assert_allclose(np.asarray(book.cash), [20_000.0, 4_000.0], rtol=1e-12)
    # An account of 1 USD (tolerance 1.1e-5 USD) may be 4 micro-USD off: Hyperliquid writes USD with 6 decimals.
    small = {"marginSummary": {"accountValue": "1.000004"},
             "crossMarginSummary": {"accountValue": "0.999996", "totalRawUsd": "1.0"}, "assetPositions": []}
    (tmp_path / "u.json").write_text(json.dumps(small))
    book, _, _ = load_hyperliquid(tmp_path / "u.json", META)
    np.testing.assert_array_equal(np.asarray(book.cash), [1.0])


def _set(path: str, value):
    """A change to a parsed JSON document: ``path`` is a dotted path into it (list indices as numbers)."""
    def change(state):
        *head, last = path.split(".")
        d = state
        for k in head:
            d = d[int(k)] if isinstance(d, list) else d[k]
        if value is _DELETE:
            del d[int(last) if isinstance(d, list) else last]
        else:
            d[int(last) if isinstance(d, list) else last] = value
    return change


_DELETE = object()
P = "assetPositions.0.position"
BAD_STATES = [
    (_set("marginSummary.accountValue", _DELETE), r"u.json: user 'u': field marginSummary.accountValue: missing"),
    (_set("crossMarginSummary", _DELETE), r"user 'u': field crossMarginSummary: missing"),
    (_set(f"{P}.szi", "2.0x"),
     r"u.json: user 'u', coin 'BTC': field assetPositions\[0\].position.szi: '2.0x' is not a number"),
    (_set(f"{P}.szi", "NaN"), r"coin 'BTC': field assetPositions\[0\].position.szi: 'NaN' is not a finite number"),
    (_set(f"{P}.entryPx", None), r"coin 'BTC': field assetPositions\[0\].position.entryPx: missing"),
    (_set(f"{P}.entryPx", "0.0"), r"coin 'BTC': field assetPositions\[0\].position.entryPx: must be > 0"),
    (_set(f"{P}.positionValue", _DELETE), r"coin 'BTC': field assetPositions\[0\].position.positionValue: missing"),
    (_set(f"{P}.leverage.type", "portfolio"),
     r"coin 'BTC': field assetPositions\[0\].position.leverage.type: 'portfolio' is neither 'cross' nor"),
    (_set("assetPositions.2.position.leverage.rawUsd", _DELETE),
     r"coin 'DOGE': field assetPositions\[2\].position.leverage.rawUsd: missing"),
    (_set(f"{P}.coin", "ETH"), r"coin 'ETH': field assetPositions\[1\].position.coin: the coin is also "
                               r"assetPositions\[0\].position"),
    (_set(f"{P}.coin", "XYZ"),
     r"user 'u', coin 'XYZ': field assetPositions\[0\].position.coin: not a coin of meta.json's universe"),
    (_set("assetPositions", {"BTC": 1}), r"field assetPositions: expected a list, got dict"),
    # Values, 1 USD off (0x11's gross money |rawUsd| + Σ positionValue is 406,000 USD: the tolerance is
    # 1e-6 of it plus 1e-5, 0.41 USD). BTC's positionValue moves the cross account's recomputed value.
    (_set(f"{P}.positionValue", "200001.0"),
     r"user 'u', coins BTC, ETH: field crossMarginSummary.accountValue: '31000.0' USD, but .* = 31001 USD"),
    (_set("assetPositions.2.position.marginUsed", "5000.5"),
     r"user 'u', coin 'DOGE': field assetPositions\[2\].position.marginUsed: '5000.5' USD, but .* = 5000 USD"),
    (_set("marginSummary.accountValue", "36001.0"),
     r"user 'u', coins BTC, ETH, DOGE: field marginSummary.accountValue: '36001.0' USD, .* worth 36000 USD"),
    (_set("crossMarginSummary.totalRawUsd", "-128999.0"),
     r"field crossMarginSummary.accountValue: .* = -128999 \+ 160000 = 31001 USD"),
]


@pytest.mark.parametrize("change, match", BAD_STATES, ids=[f"bad{i}" for i in range(len(BAD_STATES))])
def test_bad_state_names_user_coin_and_field(tmp_path, change, match):
    state = json.loads((STATES / f"{U1}.json").read_text())
    change(state)
    (tmp_path / "u.json").write_text(json.dumps(state))
    with pytest.raises(InputError, match=match):
        load_hyperliquid(tmp_path / "u.json", META)


BAD_META = [
    (_set("0.universe.0.marginTableId", 57),
     r"m.json: coin 'BTC': field universe\[0\].marginTableId: 57 is not in marginTables \(listed: 50, 56\)"),
    (_set("0.universe.1.maxLeverage", "x"), r"m.json: coin 'ETH': field universe\[1\].maxLeverage: 'x' is not"),
    (_set("0.universe.2.name", "BTC"), r"coin 'BTC': field universe\[2\].name: the coin is also universe\[0\]"),
    (_set("0.marginTables.1.1.marginTiers.1.maxLeverage", 50),
     r"m.json: margin table 56: field marginTables\[1\]\[1\].marginTiers: rates must not fall"),
    (_set("0.marginTables.1.1.marginTiers.0.lowerBound", "10.0"),
     r"margin table 56: field marginTables\[1\]\[1\].marginTiers: the first tier's lower bound must be 0"),
    (_set("1.0.markPx", "1e5x"), r"coin 'BTC': field assetCtxs\[0\].markPx: '1e5x' is not a number"),
    (_set("1.2", _DELETE), r"m.json: 2 asset contexts for 3 universe coins"),
    (_set("0.universe", _DELETE), r"m.json: expected a Hyperliquid meta response .* found no 'universe'"),
]


@pytest.mark.parametrize("change, match", BAD_META, ids=[f"bad{i}" for i in range(len(BAD_META))])
def test_bad_meta_names_coin_and_field(tmp_path, change, match):
    doc = json.loads(META.read_text())
    change(doc)
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match):
        load_hyperliquid(STATES, tmp_path / "m.json")


def test_bad_files_and_arguments(tmp_path):
    (tmp_path / "u.json").write_text('{"marginSummary": {')
    with pytest.raises(InputError, match=r"u.json: not valid JSON"):
        load_hyperliquid(tmp_path / "u.json", META)
    with pytest.raises(InputError, match=r"u.json: not valid JSON"):
        load_hyperliquid(STATES, tmp_path / "u.json")
    (tmp_path / "u.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"user 'u': expected a clearinghouseState JSON object .* got list"):
        load_hyperliquid(tmp_path / "u.json", META)
    lines = (DATA / "states_all.jsonl").read_text().splitlines()
    for body, match in [
        (lines[0] + "\n\n" + lines[1][:50] + "\n", r"s.jsonl line 3: not valid JSON"),
        (lines[0] + "\n" + json.dumps({"state": {}}) + "\n", r"s.jsonl line 2: field user: missing"),
        (lines[0] + "\n" + json.dumps({"usr": U2, "state": {}}) + "\n", r"s.jsonl line 2: expected a record"),
        (lines[0] + "\n" + lines[0] + "\n", rf"s.jsonl line 2: user '{U1}' is also in s.jsonl line 1"),
    ]:
        (tmp_path / "s.jsonl").write_text(body)
        with pytest.raises(InputError, match=match):
            load_hyperliquid(tmp_path / "s.jsonl", META)
    with pytest.raises(InputError, match=r"states: 'u.txt' has an unknown extension '.txt'"):
        (tmp_path / "u.txt").write_text("{}")
        load_hyperliquid(tmp_path / "u.txt", META)
    with pytest.raises(InputError, match=r"states: no such file or folder"):
        load_hyperliquid(tmp_path / "nothing", META)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"states: no clearinghouseState .json files in the folder"):
        load_hyperliquid(tmp_path / "empty", META)
    with pytest.raises(InputError, match=r"meta: no such file"):
        load_hyperliquid(STATES, tmp_path / "nothing.json")
    with pytest.raises(InputError, match=r"markets: 'SOL' is not a coin of meta.json's universe \(it has BTC, ETH, "
                                         r"DOGE\)"):
        load_hyperliquid(STATES, META, markets=["BTC", "SOL"])
    with pytest.raises(InputError, match=r"markets: names repeat"):
        load_hyperliquid(STATES, META, markets=["BTC", "BTC"])


def test_meta_in_the_states_folder_is_skipped(tmp_path):
    for f in STATES.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "meta.json").write_text(META.read_text())
    book, _, _ = load_hyperliquid(tmp_path, tmp_path / "meta.json")
    np.testing.assert_allclose(np.asarray(book.cash), CASH, rtol=1e-12)
    assert hl.row_names(tmp_path) == hl.row_names(STATES)


def test_scenario_file_with_a_hyperliquid_book(tmp_path):
    study = adljax.scenario.load(DATA / "scenario.toml")
    book = study.book
    assert study.markets == ("ETH", "BTC")
    # DOGE is not a market of the study: its positions close into cash at its markPx 0.21:
    # 0x11/DOGE 4,000 + 100,000·(0.21 − 0.2) = 5,000 (now cash only), 0x33 2,000 − 50,000·(0.21 − 0.22) = 2,500.
    np.testing.assert_allclose(np.asarray(book.cash), [20_000.0, 5_000.0, 50_000.0, 1_000.0, 2_500.0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(book.size), [[-10.0, 2.0], [0.0, 0.0], [0.0, -3.0], [4.0, 0.0],
                                                          [0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(book.isolated), [False, False, False, True, False, False, False])
    assert float(book.vault_cash) == 1e6 and float(book.insurance_fund) == 5e4
    # The venue's margin tables come from the meta: ETH one tier at 25× (id 25), BTC table 56.
    assert study.venue.margin_tiers == (((0.0, 0.02),), ((0.0, 0.0125), (150e6, 0.025)))
    # A market that is not a coin of the meta, and a [book] key of another kind of book, are named.
    text = (DATA / "scenario.toml").read_text()
    for old, new, match in [
        ("[markets.BTC]", "[markets.SOL]", r"\[markets\] 'SOL' is not a coin of meta.json's universe"),
        ('meta = "meta.json"', 'meta = "meta.json"\nbalance = true', r"\[book\] unknown key 'balance'"),
        ('meta = "meta.json"\n', "", r"\[book\] missing key 'meta'"),
        ('hyperliquid = "states/"', 'hyperliquid = "nope/"', r"\[book\] hyperliquid: no such file or folder"),
        ('hyperliquid = "states/"', f'hyperliquid = "{STATES / "bad"}"', r"no such file or folder"),
        ('preset = "hyperliquid"', 'preset = "binance"', r"\[venue\] preset: a \[book\] hyperliquid study runs"),
        ('preset = "hyperliquid"', 'preset = "hyperliquid"\nmax_leverage = 10',
         r"\[venue\] max_leverage: a \[book\] hyperliquid study takes each market's margin table"),
    ]:
        f = tmp_path / "s.toml"
        f.write_text(text.replace(old, new).replace('"states/"', f'"{STATES}"').replace(
            '"meta.json"', f'"{META}"'))
        with pytest.raises(InputError, match=match):
            adljax.scenario.load(f)
    # An error inside the files names the [book] table, the file, the user and the field.
    state = json.loads((STATES / f"{U1}.json").read_text())
    state["assetPositions"][0]["position"]["szi"] = "two"
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "u.json").write_text(json.dumps(state))
    (tmp_path / "meta.json").write_text(META.read_text())
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(InputError, match=r"s.toml: \[book\] hyperliquid: u.json: user 'u', coin 'BTC': field "
                                         r"assetPositions\[0\].position.szi: 'two' is not a number"):
        adljax.scenario.load(tmp_path / "s.toml")

