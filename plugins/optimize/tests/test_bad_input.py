"""Bad input is one line on stderr (exit 2) naming file and key, before any trial:
nothing is written, no study is created."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

PARAMS = """
[optimize.params]
fast = { low = 5, high = 30 }
slow = { low = 20, high = 120, step = 5 }
"""


Invoke = Callable[..., Result]


def one_line_error(invoke: Invoke, project: Path, *args: str) -> str:
    result = invoke("optimize", *args)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in result.output
    assert not (project / "reports").exists()  # no trial ran, no file was written
    assert not list(project.glob("*.sqlite"))  # no study was created
    return message.removeprefix("error: ")


@pytest.mark.parametrize(
    "table, expected",
    [
        (
            'metric = "sharpe"\n' + PARAMS + "nope = { low = 1, high = 3 }\n",
            "optimize.toml: optimize.params.nope: not a strategy parameter; [strategy.params] of {project}/backtest.toml "
            "has fast, slow, qty",
        ),
        (
            "[optimize.params]\nslow = { low = 120, high = 20 }\n",
            "optimize.toml: optimize.params.slow: empty range: low 120 > high 20",
        ),
        (
            "[optimize.params]\nfast = { choices = [] }\n",
            "optimize.toml: optimize.params.fast: empty range: choices is empty",
        ),
        ("[optimize.params]\nfast = { low = 5 }\n", "optimize.toml: optimize.params.fast: expected a range"),
        (
            "[optimize.params]\nfast = 5\n",
            "optimize.toml: optimize.params.fast: expected a range {{ low = ..., high = ... }}",
        ),
        (
            '[optimize.params]\nfast = { low = "abc", high = 3 }\n',
            "optimize.toml: optimize.params.fast.low: expected a number, got 'abc'",
        ),
        (
            "[optimize.params]\nfast = { low = 1, high = 3, step = 0 }\n",
            "optimize.toml: optimize.params.fast.step: expected a positive number, got 0",
        ),
        (
            "[optimize.params]\nfast = { low = 1, high = 3, choices = [1] }\n",
            "optimize.toml: optimize.params.fast: give either choices or a range (low, high), not both",
        ),
        ("[optimize.params]\nfast = { low = 0, high = 5, log = true }\n", "a log range needs low > 0, got 0"),
        ("[optimize.params]\n", "optimize.toml: optimize.params: "),
        (
            'metric = "sharp"\n' + PARAMS,
            "optimize.toml: optimize.metric: unknown metric 'sharp'; one of: sharpe, sortino, cagr",
        ),
        ('metric = "bars"\n' + PARAMS, "optimize.toml: optimize.metric: 'bars' is the same for every trial"),
        ("trials = 0\n" + PARAMS, "optimize.toml: optimize.trials: expected a number >= 1, got 0"),
        (
            'sampler = "annealing"\n' + PARAMS,
            "optimize.toml: optimize.sampler: expected 'tpe', 'random', 'grid' or 'cmaes'",
        ),
        ("colour = 1\n" + PARAMS, "optimize.toml: optimize.colour: unknown key"),
        (
            'constraints = ["slow > fast +"]\n' + PARAMS,
            "optimize.toml: optimize.constraints[0]: 'slow > fast +' ends too early",
        ),
        (
            'constraints = ["slow > fast", "slow > fats + 5"]\n' + PARAMS,
            "optimize.toml: optimize.constraints[1]: 'fats' is not a strategy parameter (fast, slow, qty)",
        ),
        (
            'constraints = ["slow < fast - 200"]\n' + PARAMS,
            "optimize.toml: optimize.constraints: none of 2,000 random parameter sets satisfies them",
        ),
        (
            'sampler = "grid"\nconstraints = ["slow < fast - 20"]\n' + PARAMS,
            "optimize.toml: optimize.constraints: no point of the grid (546) satisfies them",
        ),
        (
            'sampler = "grid"\n[optimize.params]\nqty = { low = 1.0, high = 2.0 }\n',
            "optimize.toml: optimize.params.qty: the grid sampler needs a step for a float range",
        ),
        (
            "[optimize.walk_forward]\nfolds = 4\ntest_fraction = 1.5\n" + PARAMS,
            "optimize.toml: optimize.walk_forward.test_fraction: expected a number < 1.0, got 1.5",
        ),
    ],
)
def test_bad_table(
    invoke: Invoke, project: Path, write_optimize: Callable[..., Path], table: str, expected: str
) -> None:
    write_optimize(table)
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"))
    expected = expected.format(project=project)
    assert message.startswith(str(project / "optimize.toml")) or message.startswith("optimize.toml"), message
    assert expected.removeprefix("optimize.toml") in message, message


def test_walk_forward_windows_without_bars(invoke: Invoke, project: Path, write_optimize: Callable[..., Path]) -> None:
    backtest = project / "backtest.toml"
    backtest.write_text(backtest.read_text().replace('path = "data"', 'path = "data"\nend = "2024-01-01 00:30:00"'))
    write_optimize("[optimize.walk_forward]\nfolds = 20\ntest_fraction = 0.5\n" + PARAMS)
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"))
    assert message == (
        f"{project / 'optimize.toml'}: optimize.walk_forward: fold 1's out-of-sample window has 1 bars of BTCUSDT; "
        "use fewer folds"
    )


def test_a_live_config_is_not_searched(invoke: Invoke, project: Path, write_optimize: Callable[..., Path]) -> None:
    backtest = project / "backtest.toml"
    backtest.write_text(backtest.read_text().replace("[engine]\n", '[engine]\nmode = "live"\n'))
    write_optimize(PARAMS)
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"))
    assert message == f'{backtest}: engine.mode: engine optimize runs backtests; set mode = "backtest"'


def test_missing_table(invoke: Invoke, project: Path) -> None:
    message = one_line_error(invoke, project, "-c", str(project / "backtest.toml"))
    assert (
        message
        == f"{project / 'backtest.toml'}: optimize: the [optimize] table is missing (what to search, see the plugin README)"
    )


def test_bad_backtest_config_named_by_the_file(
    invoke: Invoke, project: Path, write_optimize: Callable[..., Path]
) -> None:
    (project / "backtest.toml").write_text(
        (project / "backtest.toml").read_text().replace('type = "paper"', 'type = "papr"')
    )
    write_optimize(PARAMS)
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"))
    assert message.startswith(f"{project / 'backtest.toml'}: broker.type: unknown broker 'papr'")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_address_that_does_not_answer(invoke: Invoke, project: Path, write_optimize: Callable[..., Path]) -> None:
    write_optimize(PARAMS)
    port = _closed_port()
    address = f"ray://127.0.0.1:{port}"
    message = one_line_error(
        invoke, project, "-c", str(project / "optimize.toml"), "--backend", "ray", "--address", address
    )
    assert message == f"--address {address}: no Ray cluster answers there (Connection refused)"


def test_ray_not_installed(
    invoke: Invoke, project: Path, write_optimize: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_optimize(PARAMS)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.chdir(Path(__file__).resolve().parents[3])  # the checkout: the plugin is installed from it
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"), "--backend", "ray")
    assert message == "--backend ray needs Ray, which is not installed: pip install -e './plugins/optimize[ray]'"


def test_address_without_ray(invoke: Invoke, project: Path, write_optimize: Callable[..., Path]) -> None:
    write_optimize(PARAMS)
    message = one_line_error(
        invoke, project, "-c", str(project / "optimize.toml"), "--address", "ray://127.0.0.1:10001"
    )
    assert message == "--address names a Ray cluster: use it with --backend ray"


def test_storage_that_does_not_open_hides_its_password(
    invoke: Invoke, project: Path, write_optimize: Callable[..., Path]
) -> None:
    write_optimize(PARAMS)
    config = str(project / "optimize.toml")
    message = one_line_error(invoke, project, "-c", config, "--storage", "postgresql://me:pw@127.0.0.1:1/db")
    assert message.startswith("--storage postgresql://me:***@127.0.0.1:1/db: cannot open the study storage: ")
    assert "pw" not in message
    message = one_line_error(invoke, project, "-c", config, "--storage", "nonsense://x")
    assert (
        message
        == "--storage nonsense://x: cannot open the study storage: Can't load plugin: sqlalchemy.dialects:nonsense"
    )


def test_bad_study_name(invoke: Invoke, project: Path, write_optimize: Callable[..., Path]) -> None:
    write_optimize(PARAMS)
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"), "--study", "a b")
    assert message == "--study 'a b': expected 1-64 letters, digits, '_', '.' or '-'"


@pytest.mark.parametrize("mode", ["backtest", "live"])
def test_a_venue_broker_is_never_searched(
    invoke: Invoke, project: Path, write_optimize: Callable[..., Path], mode: str
) -> None:
    """Every trial is a backtest: a venue broker is refused before any trial,
    whatever engine.mode says (binance's keys set, testnet off)."""
    backtest = project / "backtest.toml"
    text = backtest.read_text().replace("[engine]\n", f'[engine]\nmode = "{mode}"\n')
    head, _, _ = text.partition("[broker]")
    backtest.write_text(
        head + '[broker]\ntype = "binance"\napi_key = "k"\napi_secret = "s"\ntestnet = false\n'
        '[report]\ndir = "reports/out"\n'
    )
    write_optimize(PARAMS)
    message = one_line_error(invoke, project, "-c", str(project / "optimize.toml"))
    assert message == (
        f'{backtest}: [broker] type = "binance" is a venue broker; engine optimize runs only simulated brokers (paper)'
    )
