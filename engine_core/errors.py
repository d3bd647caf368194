"""The engine's one exception tree.

    EngineError                 anything the engine reports as a one-line user error
    ├── ConfigError             bad TOML, wrong type, unknown key, missing env var
    ├── PluginError             unknown plugin name, duplicate name, failed import
    ├── DataError               bad market data (malformed row, time going backwards)
    ├── IndicatorError          unknown indicator or parameter, bad indicator input
    ├── StrategyError           a strategy failed to load, raised, or returned nonsense
    │   └── StrategyBudgetError a sandboxed strategy ran past its CPU or memory budget
    ├── StateError              an illegal state-machine transition
    ├── BrokerError             a broker refused, failed or could not be reached
    │   ├── BrokerTimeout       an order was sent but no answer came: its state is unknown
    │   └── OrderLost           the broker has no such order after a timeout: it is not resent
    ├── RiskError               an order refused by a risk rule
    └── JournalError            the order journal is corrupt, too new, or unwritable

The CLI turns any EngineError into one line on stderr and exit code 2. Code
that wraps a lower-level failure raises ``SomeError(...) from err``.
Wherever an exception becomes a line a user reads (a halt, a failed sink or
hook, the CLI), :func:`error_text` makes it, and never an empty one.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine reports to a user as one line."""


class ConfigError(EngineError):
    """The configuration is invalid; the message names file, key path and expectation."""


class PluginError(EngineError):
    """A plugin is unknown, duplicated, or failed to load."""


class DataError(EngineError):
    """Market data is malformed; the message names file and line (or symbol and time)."""


class IndicatorError(EngineError):
    """An indicator name, parameter or input is invalid."""


class StrategyError(EngineError):
    """A strategy failed: load error, runtime error, invalid decision."""


class StrategyBudgetError(StrategyError):
    """A sandboxed strategy exceeded its instruction or memory budget."""


class StateError(EngineError):
    """A state-machine transition that the transition table does not allow."""


class BrokerError(EngineError):
    """A broker refused an order, failed, or could not be reached."""


class BrokerTimeout(BrokerError):
    """An order was sent but the broker did not answer; resolve it by client id."""


class OrderLost(BrokerError):
    """An unanswered order the broker does not know: never placed, never resent."""


class RiskError(EngineError):
    """A risk rule refused an order; ``rule`` names the rule."""

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class JournalError(EngineError):
    """The journal is corrupt, of a newer schema, or cannot be written."""


def error_text(err: BaseException) -> str:
    """An exception as one line, never empty: an EngineError's own message;
    anything else (a library's error, a bug) its type and message, e.g.
    ``TimeoutError: binance-broker: BinanceBroker._place gave no answer
    within 40 s``. One without a message says what it came from, if known,
    and that it has none. The caller puts what was being done before it."""
    text = str(err).strip()
    if isinstance(err, EngineError) and text:
        return text
    text = " ".join(text.split())  # one line
    if not text:
        cause = err.__cause__ if err.__cause__ is not None else None if err.__suppress_context__ else err.__context__
        text = "(no message)" if cause is None or cause is err else f"(no message), from {error_text(cause)}"
    return f"{type(err).__name__}: {text}"


__all__ = [
    "BrokerError",
    "BrokerTimeout",
    "ConfigError",
    "DataError",
    "EngineError",
    "IndicatorError",
    "JournalError",
    "OrderLost",
    "PluginError",
    "RiskError",
    "StateError",
    "StrategyBudgetError",
    "StrategyError",
    "error_text",
]
