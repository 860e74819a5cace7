"""The live board: the page shows nurses, calls, queue, abandoned patients and waves; its stream,
served by a real uvicorn on SQLite and PostgreSQL (LISTEN/NOTIFY), pushes a nurse's change and a
new wave to the board as they are stored."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from board_world import Board, board_world, login_client
from factories import add_nurse, add_patient, add_task
from fastapi.testclient import TestClient

from campaign import services
from dialer.presence import NurseStatus
from dialer.staff.bus import PRESENCE, WAVES
from dialer.staff.store import PresenceRow, write_presence
from dialer.web.server import serving


@pytest.fixture
def board(db_url: str) -> Iterator[Board]:
    yield from board_world(db_url)


def _nurse_id(board: Board) -> int:
    from sqlalchemy import select

    from campaign.model import Nurse

    with board.ctx.sessions() as s:
        return int(s.execute(select(Nurse.id).where(Nurse.code == "IDE01")).scalar_one())


def _set_presence(board: Board, nurse: int, status: NurseStatus, call_state: str | None = None) -> None:
    """As the dialer owning her stores it: her row and its notification, in one transaction."""
    now = board.clock.now()
    with board.ctx.sessions() as s:
        write_presence(s, [PresenceRow(nurse, status, None, now, None, None, call_state)], "dialer-1", now)
        board.bus.notify_in(s, PRESENCE, str(nurse))
        s.commit()


def test_the_page_shows_every_live_figure(tmp_path: Path) -> None:
    for board in board_world(f"sqlite:///{tmp_path / 'b.db'}"):
        patient = add_patient(board.ctx)
        add_task(board.ctx, patient.id)  # due five minutes ago, in no wave: in the queue
        _set_presence(board, _nurse_id(board), NurseStatus.reserved, "ringing")
        board.clock.advance_to(board.clock.now() + timedelta(minutes=12))
        page = board.client.get("/board").text
        nurses = page[page.index('id="nurses-table"') :].split("</table>")[0]
        assert "IDE01" in nurses and "Appel en préparation" in nurses and "12 min" in nurses
        assert "Sonnerie" in nurses
        assert '<dd id="calls-ringing">1</dd>' in page and '<dd id="calls-connected">0</dd>' in page
        assert '<dd id="queue-depth">1</dd>' in page
        assert '<dd id="abandoned">0</dd>' in page
        assert 'sse-connect="/board/stream"' in page
        for event in ("calls", "waves", "nurses", "nurse-counts", f"nurse-{_nurse_id(board)}"):
            assert f'sse-swap="{event}"' in page


def _events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    event, data = "", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        elif not line and event:
            yield event, "\n".join(data)
            event, data = "", []


def _until(events: Iterator[tuple[str, str]], event: str, text: str) -> str:
    for name, html in events:
        if name == event and text in html:
            return html
    raise AssertionError(f"the stream ended before a {event} event with {text!r}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_stream_pushes_a_nurses_change_and_a_new_wave(board: Board) -> None:
    nurse = _nurse_id(board)
    add_patient(board.ctx, tier="high")
    port = _free_port()
    cookie = board.client.cookies["carecall_session"]
    with (
        serving(board.client.app, "127.0.0.1", port),
        httpx.Client(timeout=httpx.Timeout(10.0)) as http,
        http.stream(
            "GET",
            f"http://127.0.0.1:{port}/board/stream",
            headers={"cookie": f"carecall_session={cookie}", "accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        first = dict(next(events) for _ in range(5))
        assert first.keys() == {"nurses", "nurse-counts", f"nurse-{nurse}", "calls", "waves"}
        assert "Hors ligne" in first["nurses"]

        _set_presence(board, nurse, NurseStatus.ready)
        # her row alone, not the whole table: twenty boards of 250 nurses would get every row each time
        seen: list[tuple[str, str]] = []
        for name, html in events:
            seen.append((name, html))
            if "status-ready" in html or name == "nurses":
                break
        assert name == f"nurse-{nurse}", "a nurse's change travels as her row"
        assert html.lstrip().startswith("<tr") and html.count("<tr") == 1
        # the change's version and instant: a client can tell which change it shows, and since when
        since = board.clock.now().isoformat()
        assert f'data-nurse="{nurse}" data-version="1" data-since="{since}"' in html
        counts = [h for n, h in seen if n == "nurse-counts"]
        assert counts and '<span class="count">1</span> Disponible' in counts[-1], "the counts follow"

        wave = services.record_mailing(board.ctx, "diet", None, date(2026, 12, 7))
        services.plan_wave(board.ctx, wave.wave_id)
        board.bus.publish(WAVES, str(wave.wave_id))
        _until(events, "waves", f'data-wave="{wave.wave_id}"')
        _until(events, f"wave-{wave.wave_id}", 'data-status="planned"')


def test_the_stream_needs_a_supervisors_session(board: Board) -> None:
    anonymous = TestClient(board.client.app, base_url="https://testserver", follow_redirects=False)
    r = anonymous.get("/board/stream", headers={"accept": "text/event-stream"})
    assert r.status_code == 401
    nurse = login_client(board.client.app, "ide01")
    assert nurse.get("/board/stream", headers={"accept": "text/event-stream"}).status_code == 403


def test_a_push_reads_the_nurses_named_and_a_refresh_reads_every_nurse(board: Board) -> None:
    """The feed names the nurses whose notifications it heard; the board shows their new lines, keeps
    the others', drops a nurse who left, and reads everyone again when nothing is named."""
    from sqlalchemy import update

    from campaign.model import Nurse
    from dialer.web.board.live import PRESENCE as PART
    from dialer.web.board.live import LiveBoard
    from dialer.web.pages import web_templates

    first = _nurse_id(board)
    second = add_nurse(board.ctx, code="IDE02", level="junior")
    live = LiveBoard(board.ctx, web_templates())
    everything = live.compute(frozenset({PART, "waves"}), {PART: None, "waves": None})
    assert {f"nurse-{first}", f"nurse-{second}"} <= everything.keys()

    _set_presence(board, first, NurseStatus.ready)
    _set_presence(board, second, NurseStatus.ready)
    named = live.compute(frozenset({PART}), {PART: {PRESENCE: frozenset({str(first)})}})
    assert "status-ready" in named[f"nurse-{first}"]
    assert "status-ready" not in named[f"nurse-{second}"], "only the nurse named was read again"
    assert named["nurses"] == everything["nurses"], "the same nurses: the table is not sent again"

    with board.ctx.sessions() as s:  # the second nurse leaves the programme
        s.execute(update(Nurse).where(Nurse.id == second).values(active=False))  # type: ignore[arg-type]
        s.commit()
    left = live.compute(frozenset({PART}), {PART: {PRESENCE: frozenset({str(second)})}})
    assert f"nurse-{second}" not in left and "IDE02" not in left["nurses"]

    _set_presence(board, first, NurseStatus.offline)
    refreshed = live.compute(frozenset({PART}), {PART: None})
    assert "status-ready" not in refreshed[f"nurse-{first}"]
