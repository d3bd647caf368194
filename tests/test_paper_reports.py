"""The paper broker reports like a venue: through ``on_update``, in the
core's ``OrderStatus`` (issue 22: one path for every broker's updates)."""

from __future__ import annotations

from decimal import Decimal

from engine_core.builtin.paper import PaperBroker, PaperConfig
from engine_core.journal import Journal
from engine_core.model import Order, OrderType, Side
from engine_core.orders import OrderStatus, OrderUpdate, UpdateKind


def broker(reports: list[OrderUpdate]) -> PaperBroker:
    return PaperBroker(PaperConfig(), on_update=reports.append, symbols=["A"])


def test_a_match_and_a_cancel_are_reported_through_on_update():
    reports: list[OrderUpdate] = []
    paper = broker(reports)
    paper.submit(Order("e-A-1", "A", Side.BUY, Decimal(2), 1, "enter"))
    paper.submit(Order("e-A-2", "A", Side.SELL, Decimal(1), 1, "exit", OrderType.LIMIT, Decimal(150)))
    paper.match("A", 2, 100.0, 101.0, 99.0)
    assert [(u.kind, u.client_id, u.fill.price if u.fill else None) for u in reports] == [
        (UpdateKind.FILL, "e-A-1", Decimal(100))
    ]
    paper.cancel("e-A-2")
    paper.cancel("e-A-2")  # idempotent: reported once
    assert [(u.kind, u.client_id) for u in reports[1:]] == [(UpdateKind.CANCEL, "e-A-2")]


def test_its_records_speak_order_status_and_an_older_journals_open_is_read(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    paper = broker([])
    paper.bind_journal(journal)
    paper.submit(Order("e-A-1", "A", Side.BUY, Decimal(2), 1, "enter"))
    assert OrderStatus(journal.get("paper:e-A-1")["status"]) is OrderStatus.ACCEPTED
    older = dict(journal.get("paper:e-A-1"), status="open")  # what journals before said
    journal.put("paper:e-A-2", older)
    again = broker(reports := [])
    again.bind_journal(journal)
    assert again.order_status("e-A-2").status is OrderStatus.ACCEPTED
    again.match("A", 2, 100.0, 101.0, 99.0)
    assert sorted(u.client_id for u in reports) == ["e-A-1", "e-A-2"]
    assert OrderStatus(journal.get("paper:e-A-2")["status"]) is OrderStatus.FILLED
    journal.close()


def test_its_reports_are_whole_updates_and_fills_with_every_field():
    """The book makes its updates and fills without their classes' ``__new__``
    (compiled, a frame less per fill): each is what the class makes from the
    same values, every field there, defaults included, so a field added to
    ``Fill`` or ``OrderUpdate`` cannot go missing here."""
    from engine_core.model import Fill

    reports: list[OrderUpdate] = []
    paper = PaperBroker(PaperConfig(commission=Decimal("0.001")), on_update=reports.append, symbols=["A"])
    paper.submit(Order("e-A-1", "A", Side.BUY, Decimal(2), 1, "enter"))
    paper.submit(Order("e-A-2", "A", Side.SELL, Decimal(1), 1, "exit", OrderType.LIMIT, Decimal(150)))
    paper.match("A", 2, 100.5, 101.0, 99.0)
    paper.cancel("e-A-2")
    fill = Fill("e-A-1", "A", Side.BUY, Decimal(2), Decimal("100.5"), Decimal("0.2010"), 2, "e-A-1")
    assert reports == [
        OrderUpdate(UpdateKind.FILL, "e-A-1", "A", 2, fill),
        OrderUpdate(UpdateKind.CANCEL, "e-A-2", "A", 1),
    ]
    for update in reports:
        assert len(update) == len(OrderUpdate._fields) and type(update) is OrderUpdate
    assert len(reports[0].fill) == len(Fill._fields) and reports[0].fill.position_change == Decimal(2)


def test_settled_orders_leave_memory_and_answer_from_the_journal_across_a_restart(tmp_path):
    """Weeks of live paper trading: a filled or cancelled order's record is
    in the journal, not in memory; order_status still answers for it, the
    positions still add up, and a resend of it still places nothing, in the
    same run and after a restart."""
    journal = Journal(tmp_path / "j.sqlite")
    reports: list[OrderUpdate] = []
    paper = broker(reports)
    paper.bind_journal(journal)
    for k in range(1, 201, 2):  # 100 round trips: a buy filled, a sell filled
        paper.submit(Order(f"e-A-{k}", "A", Side.BUY, Decimal(3), k, "enter"))
        paper.match("A", k + 1, 100.0, 101.0, 99.0)
        paper.submit(Order(f"e-A-{k + 1}", "A", Side.SELL, Decimal(3), k + 1, "exit"))
        paper.match("A", k + 2, 102.0, 103.0, 101.0)
    paper.submit(Order("e-A-201", "A", Side.BUY, Decimal(2), 300, "enter"))
    paper.match("A", 301, 100.0, 101.0, 99.0)
    paper.submit(Order("e-A-202", "A", Side.SELL, Decimal(2), 301, "exit", OrderType.LIMIT, Decimal(150)))
    paper.submit(Order("e-A-203", "A", Side.BUY, Decimal(1), 301, "enter", OrderType.LIMIT, Decimal(50)))
    paper.cancel("e-A-203")
    assert sum(u.kind is UpdateKind.FILL for u in reports) == 201
    assert list(paper.book.records) == ["e-A-202"]  # only the working order is held
    assert paper.positions() == {"A": Decimal(2)}
    filled = paper.order_status("e-A-7")
    assert filled.status is OrderStatus.FILLED and filled.fills[0].price == Decimal(100)
    assert paper.order_status("e-A-203").status is OrderStatus.CANCELLED
    paper.submit(Order("e-A-7", "A", Side.BUY, Decimal(3), 400, "enter"))  # a resend of a settled order
    paper.match("A", 401, 100.0, 101.0, 99.0)
    assert sum(u.kind is UpdateKind.FILL for u in reports) == 201 and paper.positions() == {"A": Decimal(2)}

    again = broker(later := [])
    again.bind_journal(journal)
    assert list(again.book.records) == ["e-A-202"]
    assert again.positions() == {"A": Decimal(2)}
    assert again.order_status("e-A-200").status is OrderStatus.FILLED
    assert again.order_status("e-A-203").status is OrderStatus.CANCELLED
    assert again.order_status("e-A-999") is None
    again.submit(Order("e-A-8", "A", Side.SELL, Decimal(3), 402, "exit"))  # settled before the restart
    again.match("A", 403, 160.0, 161.0, 159.0)  # the limit sell fills, the resend does not
    assert [(u.kind, u.client_id) for u in later] == [(UpdateKind.FILL, "e-A-202")]
    assert again.positions() == {"A": Decimal(0)}
    journal.close()
