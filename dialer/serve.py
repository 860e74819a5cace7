"""`carecall serve`: one dialer process, several of which may share a database.

Each process dials for its share of the nurses (`--share 2/3`), claims tasks
atomically in the database, renews the leases of its live calls, and competes
for the scheduler leadership (PostgreSQL advisory lock): only the leader fires
the scheduler's jobs. A process killed outright loses no stored outcome: on
restart it reconciles its calls left in flight, and if it never comes back
the leader reconciles them once their leases run out.

The process takes a telephony backend (simulated by default; Asterisk or
Twilio) and a source of nurse presence (by default the consoles drive the
nurses who have an account, the others are simulated on their shifts). It
stores its nurses' presence and takes their commands: at once when the bus
(PostgreSQL LISTEN/NOTIFY; in process on SQLite) says one is there, and by
a slow poll in case a notification was lost. It serves the web application
(`--host`, `--port`): the consoles' pages, and the provider's webhooks when
the telephony has some. A backend's events arrive
from its own threads through the dialer's inbox, which wakes this loop at
once; events a webhook delivered to another process reach this one through
the database (`call_line_event`). The clock is the wall clock, or a scaled
clock shared by all processes (`--clock FACTOR:VIRTUAL@REAL`, with an
optional faster speed outside busy hours) so a deployment can run a wave of
weeks in minutes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time as wall
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType

import structlog
from sqlalchemy.engine import Engine

from campaign import services
from campaign.clock import Clock, ScaledClock, SystemClock
from campaign.db import make_engine, session_factory
from campaign.jobs import build_scheduler
from campaign.leader import Leadership
from campaign.policy import Policy
from campaign.store import NurseInfo
from dialer import lines
from dialer.backends.factory import TelephonySetup
from dialer.inbound.line import caller_hangup
from dialer.nurse_sources import MixedNurses, PresenceSource
from dialer.scheduler_loop import EventLoop
from dialer.simulation import Runtime
from dialer.staff.bus import make_bus
from dialer.staff.commands import NurseCommands
from dialer.step import settle_gc
from dialer.web.core import create_web_app, make_web
from dialer.web.server import serving

log = structlog.get_logger("carecall.serve")
PACE_REAL_SECONDS = 10.0  # how often a process logs how well it keeps up with the clock
IDLE_SLEEP = 0.005  # longest real nap of an idle process between two looks at its events
FORWARDED_REAL_SECONDS = 0.25  # how often a process looks for events other processes received for it
COMMANDS_REAL_SECONDS = 2.0  # how often a process looks for commands whose notification it missed
WEB_POOL_SIZE = 16  # the pages' connections kept open (as many again may be opened in a burst)


@dataclass(frozen=True)
class Share:
    """This process's share of the nurses: the k-th of n (1-based)."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Share:
        try:
            k, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ValueError(f"--share {text!r}: expected K/N, e.g. 2/3") from None
        if not 1 <= k <= n:
            raise ValueError(f"--share {text!r}: K must be between 1 and N")
        return cls(k, n)

    def takes(self, nurse: NurseInfo) -> bool:
        return nurse.id % self.n == self.k - 1


def dialer_engine(database_url: str) -> Engine:
    """The engine of a dialer process.

    On PostgreSQL no ping at each checkout: a dialer checks a connection out
    for every batch, and the ping's round trip would be one more wait in every
    nurse's claim. A connection found dead fails its batch, the process stops,
    and its restart reconciles what it had in flight, as after a crash.
    """
    if "postgresql" in database_url:
        return make_engine(database_url, pool_size=5, max_overflow=5, pool_pre_ping=False)
    return make_engine(database_url)


def web_engine_for(database_url: str) -> Engine:
    """The engine of the pages beside a dialer: on PostgreSQL a pool as large as the threads that use
    it at once (the streams' and the requests'), so a burst never opens and closes connections. No
    ping before each use (a round trip more for every read a console waits for): a connection lost
    fails one read, which the pool then replaces, and a stream reads again at once."""
    if "postgresql" in database_url:
        return make_engine(
            database_url, pool_size=WEB_POOL_SIZE, max_overflow=WEB_POOL_SIZE, pool_pre_ping=False
        )
    return make_engine(database_url)


def make_clock(spec: str) -> Clock:
    return SystemClock() if spec in ("", "system") else ScaledClock.parse(spec)


def serve(
    database_url: str,
    policy: Policy,
    *,
    config_dir: str,
    worker: str,
    share: Share,
    clock: Clock,
    seed: int = 0,
    auto_launch: bool = False,
    lease_real_seconds: float = 20.0,
    heartbeat_real_seconds: float = 2.0,
    stop: threading.Event | None = None,
    telephony: TelephonySetup | None = None,
    presence: PresenceSource | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Run until `stop` is set or SIGTERM/SIGINT arrives."""
    stop = stop or threading.Event()
    # busy-hours speed (the pace of the work) and fastest speed (what a real second may cost)
    factor, max_factor = (clock.factor, clock.max_factor) if isinstance(clock, ScaledClock) else (1.0, 1.0)
    engine = dialer_engine(database_url)
    # leases are felt in real time (a process may lag behind a fast scaled clock), even when
    # a two-speed clock rushes through the night with a call still open
    lease = timedelta(seconds=lease_real_seconds * max_factor)
    ctx = services.Context(session_factory(engine), policy, clock, lease=lease)
    leadership = Leadership(engine)
    leader = {"held": False}
    bus = make_bus(engine)  # presence and commands between the processes (and the web application)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # On the wall clock the leader runs APScheduler with its jobs stored in the database;
    # on a scaled clock (which APScheduler cannot follow) the leader fires the same jobs
    # at the instants the same triggers give.
    apscheduler = None
    use_apscheduler = isinstance(clock, SystemClock)
    loop = EventLoop(clock)
    runtime = Runtime(
        ctx,
        loop,
        seed=seed,
        worker=worker,
        auto_launch=auto_launch,
        nurse_filter=share.takes,
        share=(share.k - 1, share.n),
        is_leader=lambda: leader["held"] and not use_apscheduler,
        # on a fast scaled clock, poll the queue and the database at a real-time pace (at the
        # busy-hours speed of a two-speed clock: outside them no nurse works)
        tick_every=max(timedelta(minutes=1), timedelta(seconds=0.05 * factor)),
        refresh_every=max(timedelta(minutes=10), timedelta(seconds=1.0 * factor)),
        collect_garbage=True,  # between two flushes, never in a nurse's wait (see settle_gc)
        backend=telephony.backend(loop, ctx, worker) if telephony and telephony.backend else None,
        # by default the consoles drive the nurses with an account, the others are simulated
        presence=presence or MixedNurses(seed),
        bus=bus,
    )
    if runtime.backend.remote:
        # a nurse ending an inbound call hangs its caller up on the line that carries it
        runtime.dialer.on_inbound_hangup = caller_hangup(
            ctx, {runtime.backend.name: runtime.backend.hangup_orphan}
        )
    runtime.start()
    settle_gc()
    log.info(
        "dialer serving",
        worker=worker,
        share=f"{share.k}/{share.n}",
        nurses=len(runtime.my_nurses),
        telephony=runtime.backend.name,
        clock=clock.describe() if isinstance(clock, ScaledClock) else "system",
        lease_virtual_seconds=lease.total_seconds(),
    )

    def real_seconds_to_next() -> float:
        """Real seconds until the next event is due; negative when it is late."""
        at = loop.next_at()
        if at is None:
            return IDLE_SLEEP
        if isinstance(clock, ScaledClock):
            return (clock.real_at(at) - clock.wall.now()).total_seconds()
        return (at - clock.now()).total_seconds()

    web = contextlib.ExitStack()
    next_beat = next_pace = next_forwarded = next_commands = 0.0
    worst = 0.0
    inbox = runtime.dialer.inbox
    try:
        hooks = None
        if telephony is not None and telephony.webhooks is not None:  # the provider's callbacks
            hooks = telephony.webhooks(ctx, worker, runtime.dialer.inbox.put, runtime.dialer.voicemail_text)
        # the consoles' pages beside the dialer, on an engine of their own: page requests never wait
        # for a connection of the dialer's pool
        web_engine = web_engine_for(database_url)
        web.callback(web_engine.dispose)
        web_ctx = services.Context(session_factory(web_engine), policy, clock, lease=lease)
        # one bus for the dialer and the pages: on SQLite the notifications never leave the process
        web_parts = make_web(web_ctx, worker=worker, bus=bus, commands=NurseCommands(web_ctx, bus))
        app = create_web_app(web_parts, twilio_webhooks=hooks)
        web.enter_context(serving(app, host, port))
        while not stop.is_set():
            t = wall.monotonic()
            worst = max(worst, -real_seconds_to_next())
            if t >= next_pace:
                # how well this process keeps up with the clock, for operators and the serve test
                stats = runtime.dialer.stats
                log.info(
                    "dialer pace",
                    worker=worker,
                    behind_real_seconds=round(worst, 3),
                    events=loop.processed,
                    dials=stats["dials"],
                    lost_claims=stats["lost_claims"],
                    virtual_now=clock.now().isoformat(timespec="seconds"),
                )
                worst = 0.0
                next_pace = t + PACE_REAL_SECONDS
            if t >= next_beat:
                was = leader["held"]
                leader["held"] = leadership.try_acquire()
                if leader["held"] != was:
                    log.info("scheduler leadership", worker=worker, leader=leader["held"])
                    if use_apscheduler and leader["held"]:
                        apscheduler = build_scheduler(database_url, config_dir, policy, background=True)
                        apscheduler.start()
                    elif apscheduler is not None:
                        apscheduler.shutdown(wait=False)
                        apscheduler = None
                runtime.dialer.heartbeat()
                next_beat = t + heartbeat_real_seconds
            if t >= next_forwarded:
                _take_forwarded(ctx, worker, runtime)
                next_forwarded = t + FORWARDED_REAL_SECONDS
            if t >= next_commands:
                runtime.dialer.commands_due()  # the safety net: a notification may have been lost
                next_commands = t + COMMANDS_REAL_SECONDS
            if loop.run_due(limit=200) == 0:
                if len(inbox):
                    runtime.step_now()  # a backend's thread reported on a call: at once
                    continue
                # until the next event or the backend's next report, not a fixed nap: on a fast
                # clock every real millisecond a nurse waits for her next step costs her seconds
                inbox.wait(min(IDLE_SLEEP, max(real_seconds_to_next(), 0.0001)))
                runtime.dialer.store_presence()  # a change no batch took along, once it has waited
    finally:
        if apscheduler is not None:
            apscheduler.shutdown(wait=False)
        runtime.dialer.flush()  # outcomes and results already given are stored, not lost
        runtime.dialer.reconcile()  # calls of this process end with it, on the switch too
        runtime.dialer.stop()  # its nurses shown offline: nobody serves them now
        runtime.backend.close()
        bus.close()
        web.close()
        leadership.release()
        engine.dispose()
        log.info("dialer stopped", worker=worker, dials=runtime.dialer.stats["dials"])


def _take_forwarded(ctx: services.Context, worker: str, runtime: Runtime) -> None:
    """Events a webhook delivered to another process for this one's calls."""
    with ctx.sessions() as s:
        events = lines.events_for_worker(s, worker)
        if events:
            s.commit()
    for e in events:
        runtime.dialer.inbox.put(e)
