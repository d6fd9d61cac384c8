"""Bad scenario files and command lines are refused at the key the user wrote, before anything runs.

Each class of bad input gets an :class:`adljax.InputError` (exit code 2 and one line from the command line)
naming the file, the table and the key, or the flag:

- numbers whose paths leave what the dtype allows (a start, a depth, a vol, a drift, jumps or a stress that
  take a price below float32's smallest normal number or above its limit for USD amounts, or the book's
  money there above it), refused before any results folder is made;
- text where a number is meant, a list where one number is meant, one number (or a list of the wrong
  length) where one per market is meant;
- a venue comparison naming a preset twice;
- a study too large for this machine's memory, even in chunks, or too long to run.

Nothing here runs the engine: every refusal comes before it (the tests compile no engine program). The
size checks see a machine of 16 GB, or of 1 MB where the command runs (``physical_memory`` and
``device_memory`` patched), so the numbers in their messages are worked by hand whatever machine runs the
tests, and a command whose check went missing runs a small study and fails, rather than filling the memory.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import adljax
from adljax.cli.common import CACHE_ENV
from adljax.parallel import chunking
from adljax.studies import scenario

ROOT = Path(__file__).resolve().parent.parent
YEAR = 365 * 24 * 3600.0
# the engine's range for amounts in float32: 1e3·sqrt(smallest normal) = 1.084e-16, 1e-3·sqrt(largest) = 1.845e16
F32_FLOOR = math.sqrt(1.1754943508222875e-38) / 1e-3
F32_MONEY = 1e-3 * math.sqrt(3.4028234663852886e38)
GB = 16e9

ALT = """
[markets.ALT]
start = {start}
depth = {depth}
vol = {vol}
"""


def toml(start=1.0, depth=1e5, vol=1.0, *, steps=11, top="", rest="", accounts=10):
    """A one-market float32 study of 2 scenarios × ``steps`` steps of 1 s; ``top`` and ``rest`` add lines."""
    return (f'name = "bad"\nscenarios = 2\nsteps = {steps}\ndt = 1.0\ndtype = "float32"\n{top}'
            + ALT.format(start=start, depth=depth, vol=vol) + f"[book]\naccounts = {accounts}\n{rest}")


def refused(tmp_path, text, load=scenario.load_studies, **sizes) -> str:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(adljax.InputError) as err:
        load(f, **sizes)
    msg = str(err.value)
    assert type(err.value) is adljax.InputError
    assert msg.startswith(f"{f}: ") or str(f) in msg or msg.startswith("--"), msg    # the file, or the size's flag
    return msg.removeprefix(f"{f}: ")


def machine(monkeypatch, memory: float) -> None:
    """The size checks see ``memory`` bytes, as the machine's and as its device's."""
    monkeypatch.setattr(chunking, "physical_memory", lambda: int(memory))
    monkeypatch.setattr(chunking, "device_memory", lambda device=None: int(memory))


@pytest.fixture
def machine_of_16_gb(monkeypatch):
    machine(monkeypatch, GB)


def run_in_process(*args, cwd, monkeypatch, capsys):
    """``adljax.cli.main(args)`` in this process: (exit code, the one line on stderr)."""
    from adljax import cli

    monkeypatch.chdir(cwd)
    monkeypatch.setenv(CACHE_ENV, "0")
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, out, err)
    return lines[0]


def run_process(*args, cwd):
    """``python -m adljax args`` (a new process: JAX's import costs it 2-4 s): the one line on stderr."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), CACHE_ENV: "0"}
    p = subprocess.run([sys.executable, "-m", "adljax", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    return lines[0]


# ---- 1. numbers that take the paths out of the dtype's range ----------------------------------------------
def test_start_and_depth_must_be_amounts_float32_holds(tmp_path):
    for start in (1e-39, F32_FLOOR * 0.999, F32_MONEY * 1.001, 1e39):   # just outside, and far outside
        msg = refused(tmp_path, toml(start=start))
        assert msg.startswith("[markets.ALT] start: must be within [1.08e-16, 1.84e+16) USD in float32"), msg
    for depth in (1e-17, 1e17):
        msg = refused(tmp_path, toml(depth=depth))
        assert msg.startswith("[markets.ALT] depth: must be 0 or within [1.08e-16, 1.84e+16) USD in float32"), msg
    # just inside loads (flat paths, entries at the start; at the smallest start, notionals of 1e-14 USD)
    for start, book in ((F32_FLOOR * 1.001, "median_notional = 1e-14\n"), (F32_MONEY * 0.99, "")):
        book += "entry_spread = 0.0\n"
        f = tmp_path / "ok.toml"
        f.write_text(toml(start=start, vol=0.0, rest=book + "[paths]\nmodel = 'flat'\n"))
        scenario.load_studies(f)


def test_a_vol_or_drift_that_overflows_the_paths_is_named(tmp_path):
    # 10 returns of 1 s: the log price may move by 12·vol·sqrt(tau) + vol²·tau/2 down, tau = 10 s in years;
    # from start 1, float32 allows a fall of ln(1 / 1.084e-16) = 36.76
    tau = 10 / YEAR
    down = 12 * 1e5 * math.sqrt(tau) + 0.5 * 1e10 * tau          # 2261: refused
    msg = refused(tmp_path, toml(vol=1e5))
    assert msg.startswith(f"[markets.ALT] vol: can move ALT's log price down by {down:.4g} within the study"), msg
    assert "float32 allows 36.76 (to 1.08e-16 USD)" in msg and "dtype = 'float64'" not in msg, msg
    f = tmp_path / "ok.toml"
    f.write_text(toml(vol=2000.0))                               # 13.5 + 0.63: loads
    scenario.load_studies(f)
    # up: drift·tau, against ln(1.845e16 / 1) = 37.45 (the money limit), so 4e9 a year (tau·drift = 1268) fails
    msg = refused(tmp_path, toml(vol=0.0).replace("vol = 0.0", "vol = 0.0\ndrift = 4e9"))
    assert msg.startswith(f"[markets.ALT] drift: can move ALT's log price up by {4e9 * tau:.4g}"), msg
    assert "float32 allows 37.45" in msg, msg


def test_jumps_and_stress_are_named_at_their_keys(tmp_path):
    msg = refused(tmp_path, toml(rest="[paths]\nmodel = 'merton'\njumps_per_hour = 1e9\njump_mean = -1.0\n"))
    assert msg.startswith("[paths] jumps_per_hour, jump_mean, jump_std: can move ALT's log price down"), msg
    gap = '[[stress]]\nkind = "gap"\ndrop = {}\nover_s = 1\nat_s = 0\n'
    # 1 - 0.99999999 rounds to 0 in float32: a price of 0
    msg = refused(tmp_path, toml(rest=gap.format(0.99999999)))
    assert msg.startswith("[stress 1] drop: makes the price multiplier 0 in float32"), msg
    msg = refused(tmp_path, toml(rest=gap.format(-1e39)))          # a rise to infinity
    assert msg.startswith("[stress 1] drop: makes the price multiplier infinite in float32"), msg
    v = '[[stress]]\nkind = "v_crash"\ndrop = 0.5\ndown_s = 1\nup_s = 1\nrecover = 1e40\nat_s = 0\n'
    msg = refused(tmp_path, toml(rest=v))
    assert msg.startswith("[stress 1] recover: makes the price multiplier infinite in float32"), msg
    # each gap of 0.999999 divides the price by about 1e6 (ln: 13.8): two pass, three pass float32's 36.76
    (tmp_path / "ok.toml").write_text(toml(vol=0.0, rest=gap.format(0.999999) * 2))
    scenario.load_studies(tmp_path / "ok.toml")
    msg = refused(tmp_path, toml(vol=0.0, rest=gap.format(0.999999) * 3))
    assert msg.startswith("[stress 1] drop: can move ALT's log price down by"), msg
    assert "or use dtype = 'float64'" in msg, msg               # float64 holds a fall of e^-41
    lag = '[[stress]]\nkind = "cascade"\ndrops = [0.1]\nover_s = 1\nat_s = 0\nlags_s = 1e300\n'
    assert refused(tmp_path, toml(rest=lag)).startswith("[stress 1] lags_s: a time within ±1e+15 s"), lag


def test_the_books_money_at_the_highest_price_is_checked_at_the_key(tmp_path):
    # a long and a short of 1e9 ALT: Σ|size| = 2e9; 12·vol·sqrt(tau) up: vol 3000 takes the price to
    # e^20.3 = 6.3e8, where the positions are worth 1.3e18 > 1.845e16; vol 2000 (e^13.5 = 7.3e5) gives 1.5e15
    (tmp_path / "book.csv").write_text("account,market,size,entry,cash\na,ALT,1e9,1,1e8\nb,ALT,-1e9,1,1e8\n")
    text = toml(vol=3000.0).replace("[book]\naccounts = 10\n", '[book]\nfile = "book.csv"\n')
    top = math.exp(12 * 3000 * math.sqrt(10 / YEAR))
    msg = refused(tmp_path, text)
    assert msg.startswith(f"[markets.ALT] vol: can take ALT's price to {top:.4g} within the study"), msg
    assert f"comes to {2e8 + 2e9 * top:.4g} USD, above float32's limit for USD amounts (1.84e+16)" in msg, msg
    (tmp_path / "ok.toml").write_text(text.replace("vol = 3000.0", "vol = 2000.0"))
    scenario.load_studies(tmp_path / "ok.toml")


def test_generated_paths_out_of_range_are_refused_before_the_results_folder(tmp_path, monkeypatch, capsys):
    # bootstrapped returns of ±ln(1e7) = ±16.1, two up for one down: a path passes 1.845e16 within a few
    # dozen steps. Only the generated paths show it, and the first chunk's are made before any folder.
    (tmp_path / "hist.csv").write_text("time,ALT\n0,1\n1,1e7\n2,1\n3,1e7\n")
    (tmp_path / "boot.toml").write_text(toml(steps=200, rest='[paths]\nmodel = "bootstrap"\nfile = "hist.csv"\n'))
    line = run_in_process("run", "boot.toml", "--no-plots", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert line.startswith("adljax: error: boot.toml: ALT's generated price in scenario "), line
    assert "outside the range float32 allows ([1.08e-16, 1.84e+16) USD)" in line, line
    assert "([paths] file (its returns), block), or use dtype = 'float64'" in line, line
    assert not (tmp_path / "results").exists()
    # depth thins to a share of itself, at least [depth] floor: 2e-16 × 0.02 is below float32's 1.08e-16 ...
    msg = refused(tmp_path, toml(depth=2e-16))
    assert msg == ("[markets.ALT] depth: 2e-16 USD thins to 0.02 of itself ([depth] floor), 4e-18, below the "
                   "smallest amount float32 allows (1.08e-16 USD)"), msg
    # ... and without a floor, only the generated depth shows it (a move of one calm step halves the depth)
    (tmp_path / "thin.toml").write_text(toml(depth=2e-16, rest="[depth]\nfloor = 0.0\n"))
    with pytest.raises(adljax.InputError) as err:
        scenario.load_studies(tmp_path / "thin.toml")[0].paths_for(0, 2)
    assert str(err.value).startswith(f"{tmp_path / 'thin.toml'}: ALT's generated depth in scenario "), err.value
    assert "raise the depth or its floor ([markets.ALT] depth; [depth] floor, thinning)" in str(err.value)


def test_a_bad_file_refused_as_a_process_makes_no_folder(tmp_path):
    (tmp_path / "vol.toml").write_text(toml(vol=1e9))
    line = run_process("run", "vol.toml", cwd=tmp_path)
    assert line.startswith("adljax: error: vol.toml: [markets.ALT] vol: can move ALT's log price down by"), line
    assert not (tmp_path / "results").exists()


# ---- 2. text, lists and numbers in the wrong places -------------------------------------------------------
TWO = ('name = "bad"\n{top}[markets.BTC]\nstart = 100.0\ndepth = 1e6\n[markets.ETH]\nstart = 10.0\ndepth = 1e6\n'
       "{rest}")
CASC = '[[stress]]\nkind = "cascade"\nover_s = 1\n'

WRONG_KIND = [
    # text where a number is meant
    ("", "[markets.BTC]\nstart = 100.0\ndepth = '1e6'\n", "[markets.BTC] depth: expected a number, got '1e6'"),
    ('scenarios = "64"\n', "", "scenarios: expected an integer, got '64'"),
    ("", '[book]\naccounts = "1000"\n', "[book] accounts: expected an integer, got '1000'"),
    ("", '[depth]\nfloor = "low"\n', "[depth] floor: expected a number, got 'low'"),
    # a list where one number is meant
    ("", "[markets.BTC]\nstart = 100.0\ndepth = 1e6\nvol = [0.5, 0.6]\n",
     "[markets.BTC] vol: expected a number, got [0.5, 0.6]"),
    ("dt = [1.0]\n", "", "dt: expected a number, got [1.0]"),
    ("", "[book]\nmedian_notional = [2e4]\n", "[book] median_notional: expected a number, got [20000.0]"),
    ("", "[paths]\nmodel = 'merton'\njump_mean = [-0.1, -0.2]\n", "[paths] jump_mean: expected a number"),
    ("", "[venue]\ncooldown = [30, 30]\n", "[venue] cooldown: expected a number, got [30, 30]"),
    ("", CASC + "drops = [0.1, 0.2]\nat_s = [0, 10]\n", "[stress 1] at_s: expected a scalar"),
    # one number, or a list of the wrong length, where one per market is meant
    ("", CASC + "drops = 0.3\nat_s = 0\n", "[stress 1] drops: expected [A] (one fall per market), got shape ()"),
    ("", CASC + "drops = [0.1, 0.2, 0.3]\nat_s = 0\n", "[stress 1] drops: expected one value per market (2), got 3"),
    ("", "[venue]\nmaintenance_margin = [0.01, 0.02, 0.03]\n",
     "[venue] maintenance_margin: expected one value per market (2), got 3"),
]


@pytest.mark.parametrize("top, rest, words", WRONG_KIND, ids=[w.split(":")[0] for _, _, w in WRONG_KIND])
def test_text_and_lists_in_the_wrong_places_are_named(tmp_path, top, rest, words):
    text = TWO.format(top=top, rest=rest)
    if rest.startswith("[markets.BTC]"):          # replaces the BTC table
        text = text.replace("[markets.BTC]\nstart = 100.0\ndepth = 1e6\n", "", 1)
    assert refused(tmp_path, text).startswith(words)


# ---- 3. a comparison naming a venue twice -----------------------------------------------------------------
def test_a_preset_named_twice_is_refused_at_the_key(tmp_path):
    msg = refused(tmp_path, toml(rest='[venue]\npreset = ["bitmex", "binance", "bitmex"]\n'))
    assert msg == ("[venue] preset: names 'bitmex' more than once; a comparison runs each venue once, in a results "
                   "folder named after it (list each preset once)")
    msg = refused(tmp_path, toml(rest='[venue]\npreset = ["bitmex", "binance"]\nname = "x"\n'))
    assert msg.startswith("[venue] name: one name for the 2 venues of a comparison would give them one results"), msg
    msg = refused(tmp_path, toml().replace('name = "bad"', 'name = "../elsewhere"'))
    assert msg.startswith("name: names the results folder (results/<name>), so it must not be a path"), msg


# ---- 4. studies too large for the machine or too long -----------------------------------------------------
def test_sizes_in_the_file_are_checked_before_the_book_is_made(tmp_path, machine_of_16_gb):
    # a generated book: 80 bytes per row·market; 1e9 rows × 1 market = 80 GB > 16 GB
    msg = refused(tmp_path, toml(accounts=10**9))
    assert msg == ("[book] accounts: generating a book of 1,000,000,000 rows × 1 market needs about 80 GB "
                   "(80 bytes per row·market), more than this machine's memory (16 GB)")
    # one scenario's paths: 4 bytes × (24·12·1 + 16·12 + 3·1e9·1) = 12.0 GB fits; 1.5e9 steps (18 GB) does not
    msg = refused(tmp_path, toml(steps=1_500_000_000))
    assert msg.startswith("steps: the smallest chunk, 1 scenario, of 10 rows × 1 market × 1,500,000,000 steps needs "
                          "about 18 GB to run"), msg
    # the results table: 2 × 8 bytes × (23 metrics + index) = 384 bytes a scenario; 1e8 = 38.4 GB
    assert len(adljax.METRICS) == 23
    msg = refused(tmp_path, toml().replace("scenarios = 2", "scenarios = 100000000"))
    assert msg.startswith("scenarios: the results of 100,000,000 scenarios (one row of metrics each) need about "
                          "38.4 GB"), msg
    msg = refused(tmp_path, toml().replace("scenarios = 2", "scenarios = 5000000000"))
    assert msg.startswith("scenarios: 5,000,000,000 scenarios is more than a study can number (at most 2**32"), msg
    # 1e6 scenarios × 10,000 steps × 2e6 rows × 1 market = 2e16 cells > 1e15; the largest size is named
    msg = refused(tmp_path, toml(steps=10_000, accounts=2_000_000).replace("scenarios = 2", "scenarios = 1000000"))
    assert msg.startswith("[book] accounts: 1,000,000 scenarios × 10,000 steps × 2,000,000 rows × 1 market is "
                          "2e+16 account·market·step·scenario cells, more than adljax runs (1e+15"), msg


def test_sizes_given_for_the_file_are_named_as_given(tmp_path, machine_of_16_gb):
    msg = refused(tmp_path, toml(), accounts=10**9, size_names={"accounts": "--accounts"})
    assert msg.startswith("--accounts: generating a book of 1,000,000,000 rows"), msg
    f = tmp_path / "bad.toml"
    msg = refused(tmp_path, toml(), steps=1_500_000_000)
    assert msg.startswith(f"steps = 1500000000 (given in place of {f}'s): the smallest chunk"), msg


def test_sizes_on_the_command_line_are_refused_with_their_flag(tmp_path, monkeypatch, capsys):
    machine(monkeypatch, 1e6)

    def line(*args):
        return run_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)

    # the default study, 1,002 rows × 3 markets: 4 bytes × (24·1002·3 + 16·1002 + 3·1e5·3) = 3.95 MB a scenario
    assert line("run", "--steps", 100_000, "--scenarios", 1) == (
        "adljax: error: --steps: the smallest chunk, 1 scenario, of 1,000 rows × 3 markets × 100,000 steps needs "
        "about 3.95 MB to run (adljax.chunking.bytes_per_scenario), more than the cpu device's memory (1 MB)")
    assert line("run", "--scenarios", 10**11).startswith("adljax: error: --scenarios: 100,000,000,000 scenarios is "
                                                         "more than a study can number")
    # --chunk: 4 bytes × (24·12·1 + 16·12 + 3·11·1) = 2,052 bytes a scenario; 1 MB holds 487 of them
    (tmp_path / "small.toml").write_text(toml().replace("scenarios = 2", "scenarios = 1000"))
    assert line("run", "small.toml", "--chunk", 1000) == (
        "adljax: error: --chunk 1000: 1,000 scenarios of 10 rows × 1 market × 11 steps need about 2.05 MB at once, "
        "more than the device's memory (1 MB): at most 487 (leave --chunk out to size chunks to the memory)")
    # calibrate: fresh scenarios are numbered after the study's 2: 150 iterations × 5e9 + 2
    (tmp_path / "cal.toml").write_text(toml() + '[calibrate]\nfields = ["maintenance_margin"]\niterations = 150\n')
    assert line("calibrate", "cal.toml", "--scenarios", 5 * 10**9).startswith(
        "adljax: error: --scenarios: 150 iterations × 5,000,000,000 fresh scenarios after the study's 2 number "
        "750,000,000,002 scenarios, more than a study can number")
    assert not (tmp_path / "results").exists()


def test_calibration_sizes_in_the_file_are_checked(tmp_path, machine_of_16_gb):
    cal = '[calibrate]\nfields = ["maintenance_margin"]\nscenarios = {}\niterations = {}\n'
    msg = refused(tmp_path, toml() + cal.format(64, 10**12), load=scenario.load_calibration)
    assert msg.startswith("[calibrate] iterations: 1,000,000,000,000 iterations × 64 fresh scenarios after the "
                          "study's 2 number 64,000,000,000,002 scenarios"), msg
    # a batch runs at once: 1e7 × 2,052 bytes = 20.5 GB > 16 GB
    msg = refused(tmp_path, toml() + cal.format(10**7, 10), load=scenario.load_calibration)
    assert msg == ("[calibrate] scenarios: a batch of 10,000,000 scenarios of 10 rows × 1 market × 11 steps needs at "
                   "least 20.5 GB at once (more for its gradient), more than the device's memory (16 GB)")
    # 1e5 iterations × 1e3 scenarios × 1e3 steps × 1e4 rows = 1e15 cells: allowed; 2e5 iterations are not
    big = toml(steps=1000, accounts=10**4)
    (tmp_path / "ok.toml").write_text(big + cal.format(1000, 10**5))
    scenario.load_calibration(tmp_path / "ok.toml")
    msg = refused(tmp_path, big + cal.format(1000, 2 * 10**5), load=scenario.load_calibration)
    assert msg.startswith("[calibrate] iterations: 200,000 iterations × 1,000 scenarios × 1,000 steps × 10,000 rows "
                          "× 1 market is 2e+15 account·market·step·scenario cells"), msg


def test_a_book_too_large_refused_as_a_process(tmp_path):
    # 1e11 accounts × 3 markets × 80 bytes = 24 TB: more than any machine the tests run on
    line = run_process("run", "--accounts", 10**11, cwd=tmp_path)
    assert line.startswith("adljax: error: --accounts: generating a book of 100,000,000,000 rows × 3 markets needs "
                           "about 24 TB"), line
    assert not (tmp_path / "results").exists()
