"""A journal that stops writing in the middle of a live run (a full disk, a
failed fsync): the run ends with the journal's one error, nothing is sent
after it, no worker thread dies of it, and the file keeps what was written
before: every order a venue got has its intent; every order the paper
broker kept in the journal too (its orders are written behind their
intents, which therefore do not wait for the disk)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import engine_core.journal_sync as journal_sync
from engine_core.errors import JournalError
from engine_core.journal import Journal
from engine_core.runner import build_engine
from engine_core.testing import python_strategy, venue, write_config

STRATEGY = {
    "watch": 'return "setup" if ctx.index % 3 == 0 else None',
    "close_watch": 'return "enter"',
    "in_trade": 'return "exit" if ctx.index % 3 == 2 else None',
}


@pytest.mark.parametrize("broker", ["scripted", "paper"])
def test_a_journal_that_stops_writing_ends_the_run_with_its_error_and_nothing_more_is_sent(
    tmp_path, monkeypatch, broker
):
    apply = journal_sync.GroupCommit._apply
    rounds: list[int] = []

    def apply_until_full(self: journal_sync.GroupCommit, batch: Any) -> None:
        rounds.append(len(batch))
        if len(rounds) > 40:
            raise JournalError(f"{self.path}: cannot write the journal: database or disk is full")
        apply(self, batch)

    monkeypatch.setattr(journal_sync.GroupCommit, "_apply", apply_until_full)
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A", "B", "C"]},
            "source": {"type": "simulated", "bars": 400, "pace": 0.002, "seed": 5},
            "strategy": python_strategy(tmp_path, **STRATEGY),
            "broker": {"type": "paper", "cash": 100000}
            if broker == "paper"
            else {"type": "scripted", "venue": "journal_failure"},
        },
    )
    venue("journal_failure", reset=True)
    engine = build_engine(config)
    sent: list[str] = []
    submit = engine.broker.submit

    def counted(order: Any) -> Any:
        sent.append(order.client_id)
        return submit(order)

    monkeypatch.setattr(engine.broker, "submit", counted)
    result: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as err:  # noqa: BLE001 - what the run ended with
            result.append(err)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the run did not end"
    assert len(result) == 1 and isinstance(result[0], JournalError)
    assert "cannot write the journal: database or disk is full" in str(result[0])
    assert died == []  # no worker thread died of it
    monkeypatch.setattr(journal_sync.GroupCommit, "_apply", apply)
    journal = Journal(tmp_path / ".engine" / "c.sqlite")
    try:
        intents = {row["client_id"] for row in journal.orders()}
        kept = {key.removeprefix("paper:") for key, _ in journal.items("paper:")}
    finally:
        journal.close()
    assert len(sent) > 20
    if broker == "paper":  # what the paper broker knows of an order is written behind its intent
        assert kept and kept <= intents
    else:  # a venue got an order only once its intent was on disk
        assert set(sent) <= intents
