"""History CSV: reading and its errors, replay, the stationary block bootstrap."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit.paths import (
    HistoryError,
    Market,
    MarketParams,
    block_bootstrap,
    read_history,
    replay,
)

N_SE = 4.0
DATA = Path(__file__).resolve().parents[1] / "data"
SYNTHETIC = DATA / "history_synthetic.csv"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def history():
    return read_history(SYNTHETIC)


def write(tmp_path, text, name="history.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- Reading ------------------------------------------------------------------------------------


def test_reads_the_shipped_synthetic_history(history):
    assert history.n_days == 2000
    assert history.dates.dtype == np.dtype("datetime64[D]")
    assert np.all(np.diff(history.dates) > np.timedelta64(0, "D"))
    assert history.close[0] == 3.0 and np.all(history.close > 0)
    assert history.iv is not None and history.iv[0] == 4.2517 and np.all(history.iv > 0)
    assert history.log_returns.shape == (1999,)
    assert SYNTHETIC.stat().st_size <= 300_000


def test_iv_column_is_optional_and_columns_are_found_by_name(tmp_path):
    h = read_history(write(tmp_path, "Close,Volume,Date\n3.0,10,2024-01-02\n3.3,12,2024-01-03\n"))
    assert h.iv is None
    np.testing.assert_array_equal(h.close, [3.0, 3.3])
    np.testing.assert_array_equal(h.dates, np.array(["2024-01-02", "2024-01-03"], "datetime64[D]"))


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("", "file", "is empty"),
        ("\n\n", "file", "is empty"),
        ("date,close\n", "file", "needs at least 2 days"),
        ("date,close\n2024-01-02,3.0\n", "file", "needs at least 2 days"),
        (
            "date,price\n2024-01-02,3.0\n2024-01-03,3.1\n",
            "line 1, header",
            "missing column 'close'",
        ),
        ("close,iv\n3.0,1.0\n3.1,1.0\n", "line 1, header", "missing column 'date'"),
        ("date,close\n2024-01-02,3.0\n2024-01-03,abc\n", "line 3, close", "'abc' is not a number"),
        ("date,close\n2024-01-02,3.0\n2024-01-03,\n", "line 3, close", "'' is not a number"),
        ("date,close\n2024-01-02,-3.0\n2024-01-03,3.0\n", "line 2, close", "must be a price > 0"),
        ("date,close\n2024-01-02,0\n2024-01-03,3.0\n", "line 2, close", "must be a price > 0"),
        ("date,close\n2024-01-02,nan\n2024-01-03,3.0\n", "line 2, close", "must be a price > 0"),
        ("date,close\n2024-01-02,inf\n2024-01-03,3.0\n", "line 2, close", "must be a price > 0"),
        ("date,close\n2024-01-03,3.0\n2024-01-02,3.1\n", "line 3, date", "must increase strictly"),
        ("date,close\n2024-01-02,3.0\n2024-01-02,3.1\n", "line 3, date", "must increase strictly"),
        ("date,close\n01/02/2024,3.0\n2024-01-03,3.1\n", "line 2, date", "not an ISO date"),
        (
            "date,close,iv\n2024-01-02,3.0,4.2\n2024-01-03,3.1\n",
            "line 3",
            "expected 3 fields, got 2",
        ),
        (
            "date,close,iv\n2024-01-02,3.0,4.2\n2024-01-03,3.1,-1\n",
            "line 3, iv",
            "must be a fraction > 0",
        ),
        ("date,close,close\n2024-01-02,3.0,3.0\n2024-01-03,3.1,3.1\n", "header", "'close' repeats"),
    ],
)
def test_bad_files_raise_history_error_naming_file_line_and_problem(tmp_path, text, where, what):
    path = write(tmp_path, text, "bad.csv")
    with pytest.raises(HistoryError) as error:
        read_history(path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert where in message and what in message, message
    assert isinstance(error.value, ValueError)
    assert error.value.path == str(path) and where in error.value.field


def test_missing_file(tmp_path):
    with pytest.raises(HistoryError, match="does not exist"):
        read_history(tmp_path / "nowhere.csv")
    with pytest.raises(HistoryError, match="does not exist or is not a file"):
        read_history(tmp_path)


def test_not_text(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(HistoryError, match="cannot be read as UTF-8"):
        read_history(path)


# --- Replay -------------------------------------------------------------------------------------


def test_replay_is_the_history_as_one_path(history):
    market = replay(history)
    for name in Market._fields:
        assert getattr(market, name).shape == (1, history.n_days), name
    np.testing.assert_allclose(market.spot[0], history.close, rtol=1e-6)
    np.testing.assert_allclose(market.iv[0], history.iv, rtol=1e-6)
    assert not market.jump.any() and not market.thesis_event.any()
    np.testing.assert_allclose(market.vix, MarketParams().vix)


def test_replay_without_iv_uses_a_constant(tmp_path):
    h = read_history(
        write(tmp_path, "date,close\n2024-01-02,3.0\n2024-01-03,3.3\n2024-01-04,3.1\n")
    )
    market = replay(h, MarketParams(iv0=1.5))
    np.testing.assert_allclose(market.iv, 1.5)


# --- Stationary bootstrap -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bootstrap64(history):
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        market = block_bootstrap(history, 17, 400, 250, block_len=10, dtype=jnp.float64)
        return {name: np.asarray(value) for name, value in market._asdict().items()}
    finally:
        jax.config.update("jax_enable_x64", previous)


def _indices_of(returns_drawn, returns):
    """Index of each drawn return in the history (returns are distinct floats)."""
    order = np.argsort(returns)
    position = np.clip(np.searchsorted(returns[order], returns_drawn), 0, len(returns) - 1)
    below = np.clip(position - 1, 0, len(returns) - 1)
    nearest = np.where(
        np.abs(returns[order][position] - returns_drawn)
        < np.abs(returns[order][below] - returns_drawn),
        position,
        below,
    )
    index = order[nearest]
    assert np.allclose(returns[index], returns_drawn, rtol=0, atol=1e-9)
    return index


def test_bootstrap_draws_history_returns_in_blocks(history, bootstrap64):
    spot = bootstrap64["spot"]
    assert spot.shape == (400, 251) and spot.dtype == np.float64
    np.testing.assert_allclose(spot[:, 0], history.close[0])
    returns = history.log_returns
    index = _indices_of(np.diff(np.log(spot), axis=1), returns)
    # A block continues with probability 1 - 1/block_len (the next day, wrapping around).
    continues = index[:, 1:] == (index[:, :-1] + 1) % len(returns)
    p = 1 - 1 / 10 + (1 / 10) / len(returns)  # a new block may start at the next day by chance
    n = continues.size
    assert abs(continues.mean() - p) <= N_SE * math.sqrt(p * (1 - p) / n)
    # Block starts are uniform over the history.
    assert abs(index[:, 0].mean() - (len(returns) - 1) / 2) <= N_SE * len(returns) / math.sqrt(
        12 * 400
    )


def test_bootstrap_takes_iv_of_the_day_whose_return_it_drew(history, bootstrap64):
    returns = history.log_returns
    index = _indices_of(np.diff(np.log(bootstrap64["spot"]), axis=1), returns)
    # Return i runs from history day i to day i + 1: the path's day has day i + 1's IV, and
    # day 0 the IV of the day the first block starts on.
    np.testing.assert_array_equal(bootstrap64["iv"][:, 1:], history.iv[index + 1])
    np.testing.assert_array_equal(bootstrap64["iv"][:, 0], history.iv[index[:, 0]])
    assert not bootstrap64["jump"].any()


def test_bootstrap_starts_at_the_first_close_whatever_s0(history):
    market = block_bootstrap(history, 4, 3, 5, params=MarketParams(s0=77.0))
    np.testing.assert_allclose(market.spot[:, 0], history.close[0], rtol=1e-6)


def test_bootstrap_without_iv_uses_the_iv_process(tmp_path, history):
    no_iv = tmp_path / "no_iv.csv"
    lines = [
        f"{d},{float(c)!r}" for d, c in zip(history.dates[:300], history.close[:300], strict=True)
    ]
    no_iv.write_text("date,close\n" + "\n".join(lines) + "\n")
    h = read_history(no_iv)
    market = block_bootstrap(h, 3, 2000, 20)
    iv = np.asarray(market.iv, np.float64)
    assert np.all(np.isfinite(iv) & (iv > 0))
    # IV shocks follow the standardized returns with iv_spot_corr = -0.5.
    p = MarketParams()
    decay = math.exp(-p.kappa / 252)
    shocks = np.log(iv[:, 1:]) - np.log(iv[:, :-1]) * decay - math.log(p.iv_long_run) * (1 - decay)
    r = np.diff(np.log(np.asarray(market.spot, np.float64)), axis=1)
    corr = np.corrcoef(r.ravel(), shocks.ravel())[0, 1]
    assert abs(corr - p.iv_spot_corr) <= N_SE * (1 - 0.25) / math.sqrt(r.size)


def test_bootstrap_is_the_same_in_any_block_of_paths(history):
    whole = block_bootstrap(history, 5, 60, 30, cell=2)
    block = block_bootstrap(history, 5, 20, 30, cell=2, path_start=25)
    for name in Market._fields:
        np.testing.assert_array_equal(
            getattr(whole, name)[25:45], getattr(block, name), err_msg=name
        )
    single = block_bootstrap(history, 5, 1, 30, cell=2, path_start=30)
    for name in Market._fields:
        np.testing.assert_array_equal(getattr(whole, name)[30:31], getattr(single, name))
    # A key instead of a seed, and another seed, give other paths.
    by_key = block_bootstrap(history, jax.random.PRNGKey(5), 20, 30)
    assert not np.array_equal(by_key.spot, block.spot)


def test_bootstrap_arguments_are_checked(history):
    with pytest.raises(ValueError, match="block_len must be a number >= 1"):
        block_bootstrap(history, 0, 2, 2, block_len=0.5)
    with pytest.raises(ValueError, match="n_paths must be an integer >= 1; got 0"):
        block_bootstrap(history, 0, 0, 2)
    with pytest.raises(ValueError, match="key_or_seed"):
        block_bootstrap(history, -1, 2, 2)


# --- The generator script -----------------------------------------------------------------------


def test_make_history_script_reproduces_the_shipped_file(tmp_path):
    out = tmp_path / "short.csv"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_history.py"), str(out), "--days", "40"],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    shipped = SYNTHETIC.read_text().splitlines()
    assert out.read_text().splitlines() == shipped[:41]


# --- Input columns, history markets -------------------------------------------------------------

INPUTS_CSV = """date,close,iv,vix,Short_Interest ,volume
2024-01-02,100.0,0.20,20.0,5.0,7
2024-01-03,101.0,0.22,22.0,6.0,7
2024-01-04,99.0,0.25,25.0,7.0,7
2024-01-05,98.0,0.30,30.0,8.0,7
"""


def test_input_columns_are_read_by_their_input_names(tmp_path):
    h = read_history(write(tmp_path, INPUTS_CSV))
    assert sorted(h.inputs) == ["short_interest", "vix"]  # "volume" is no input: ignored
    np.testing.assert_array_equal(h.inputs["vix"], [20.0, 22.0, 25.0, 30.0])
    np.testing.assert_array_equal(h.inputs["short_interest"], [5.0, 6.0, 7.0, 8.0])
    assert len(h.sha256) == 64


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("vix", "-1", "must be a finite number >= 0"),
        ("short_interest", "101", "must be a finite number in [0, 100]"),
        ("btc_correlation", "1.5", "must be a finite number in [-1, 1]"),
        ("bid_ask_spread", "nan", "must be a finite number >= 0"),
        ("open_interest", "x", "'x' is not a number"),
    ],
)
def test_input_columns_are_checked_against_their_bounds(tmp_path, column, value, what):
    text = f"date,close,{column}\n2024-01-02,3.0,1\n2024-01-03,3.1,{value}\n"
    with pytest.raises(HistoryError) as error:
        read_history(write(tmp_path, text, "bad.csv"))
    assert error.value.field == f"line 3, {column}" and what in error.value.message


def test_replay_takes_the_input_columns(tmp_path):
    h = read_history(write(tmp_path, INPUTS_CSV))
    market = replay(h, MarketParams(vix=99.0, short_interest_eta=5.0))
    np.testing.assert_allclose(market.vix[0], h.inputs["vix"])
    np.testing.assert_allclose(market.short_interest[0], h.inputs["short_interest"])
    np.testing.assert_allclose(market.bid_ask_spread, MarketParams().bid_ask_spread)


def test_bootstrap_takes_the_input_columns_of_the_drawn_day(tmp_path):
    # Distinct returns identify the drawn day; its vix and IV (= vix / 100) come with it.
    days = 40
    closes = 100.0 * np.exp(np.cumsum(np.r_[0.0, np.linspace(-0.05, 0.05, days - 1)]))
    dates = np.busday_offset(np.datetime64("2024-01-02"), np.arange(days), roll="forward")
    lines = [
        f"{d},{float(c)!r},{(10.0 + k) / 100!r},{10.0 + k!r}"
        for k, (d, c) in enumerate(zip(dates, closes, strict=True))
    ]
    h = read_history(write(tmp_path, "date,close,iv,vix\n" + "\n".join(lines) + "\n"))
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        m = block_bootstrap(h, 2, 6, 50, block_len=4, dtype=jnp.float64)
    finally:
        jax.config.update("jax_enable_x64", previous)
    index = _indices_of(np.diff(np.log(np.asarray(m.spot)), axis=1), h.log_returns)
    vix = np.asarray(m.vix)
    np.testing.assert_array_equal(vix[:, 1:], h.inputs["vix"][index + 1])
    np.testing.assert_array_equal(vix[:, 0], h.inputs["vix"][index[:, 0]])
    np.testing.assert_allclose(np.asarray(m.iv), vix / 100, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(m.spot)[:, 0], closes[0])


def test_history_market_replays_every_row_and_cuts_to_the_horizon(history):
    from simkit.paths.history import history_market

    params = MarketParams(model="replay", history=str(SYNTHETIC))
    whole = replay(history, params, seed=3)
    block = history_market(params, 3, 0, 0, 3, 40)
    assert block.spot.shape == (3, 41)
    for row in range(3):
        np.testing.assert_array_equal(block.spot[row], whole.spot[0, :41])
        np.testing.assert_array_equal(block.iv[row], whole.iv[0, :41])
    np.testing.assert_array_equal(block.early_u[0], whole.early_u[0, :41])  # path 0's draws
    assert not np.array_equal(block.early_u[1], block.early_u[0])  # each row its own
    with pytest.raises(ValueError, match="at most the history's 1999 returns"):
        history_market(params, 3, 0, 0, 1, 2000)


def test_history_market_bootstraps_with_the_block_length(history):
    from simkit.paths.history import history_market

    params = MarketParams(model="bootstrap", history=str(SYNTHETIC), block_len=7.0)
    got = history_market(params, 5, 1, 4, 3, 30)
    want = block_bootstrap(history, 5, 3, 30, block_len=7.0, params=params, cell=1, path_start=4)
    for name in Market._fields:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


def test_simulated_engines_refuse_a_history_model():
    from simkit.paths.market import simulate_market
    from simkit.strategy import engine
    from simkit.strategy.config import StrategyConfig

    params = MarketParams(model="replay", history=str(SYNTHETIC))
    with pytest.raises(ValueError, match="reads a history: use simkit.paths.history"):
        simulate_market(params, 0, 0, 0, 1, 2)
    with pytest.raises(ValueError, match="reads a history"):
        engine.simulate_block(
            StrategyConfig(), params, seed=0, cell=0, path_start=0, n_paths=1, n_steps=2
        )
    with pytest.raises(ValueError, match="must name a history CSV for model 'bootstrap'"):
        MarketParams(model="bootstrap")
    with pytest.raises(ValueError, match="block_len must be a finite number >= 1"):
        MarketParams(block_len=0.5)


def test_load_history_reads_an_edited_file_again(tmp_path):
    from simkit.paths.history_csv import load_history

    path = write(tmp_path, "date,close\n2024-01-02,3.0\n2024-01-03,3.3\n")
    first = load_history(path)
    assert load_history(path) is first  # one read per file version
    path.write_text("date,close\n2024-01-02,3.0\n2024-01-03,3.3\n2024-01-04,3.6\n")
    assert load_history(path).n_days == 3


def test_history_moments_are_the_gbm_of_the_history(history):
    from simkit.paths.history_csv import history_moments

    m = history_moments(MarketParams(model="replay", history=str(SYNTHETIC), risk_neutral=True))
    r = history.log_returns
    assert math.isclose(m.sigma, r.std(ddof=1) * math.sqrt(252), rel_tol=1e-12)
    assert math.isclose(m.mu - m.sigma**2 / 2, r.mean() * 252, rel_tol=1e-12)
    assert not m.risk_neutral


def test_make_spx_vix_script_reproduces_the_shipped_file(tmp_path):
    pytest.importorskip("arch")  # the script's data (a development dependency)
    out = tmp_path / "spx.csv"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_spx_vix.py"), str(out)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    shipped = REPO / "scenarios" / "data" / "spx_vix_2014_2018.csv"
    assert out.read_text() == shipped.read_text()
    h = read_history(shipped)
    assert h.n_days == 1257 and str(h.dates[0]) == "2014-01-03"
    # 2014-01-02 is in the S&P 500 data but not in VIX's: the file starts a day later.
    assert 1800 < h.close[0] < 1850 and 0.05 < h.iv.min() and h.iv.max() < 0.6
