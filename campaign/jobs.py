"""The scheduler's jobs and when they fire.

Jobs are plain functions of a `Context`. In production APScheduler fires them
on the wall clock (`carecall scheduler run`); the simulator fires the very same
functions at the instants the very same APScheduler triggers give on the
virtual clock. No import-time side effects: APScheduler imports this module by
name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from campaign import services
from campaign.policy import Policy


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[services.Context], Any]
    trigger: BaseTrigger


def plan_due_waves(ctx: services.Context) -> Any:
    """Plan every wave whose letter is about to arrive, so the supervisor can review it."""
    return services.plan_due_waves(ctx)


def expire_and_close(ctx: services.Context) -> Any:
    """Close tasks past their wave's window and waves with nothing left to do."""
    return services.expire_and_close(ctx)


def top_up_waves(ctx: services.Context) -> Any:
    """Before calling hours: give today's spare nurse time to the patients the waves left out."""
    return services.top_up_waves(ctx)


def job_specs(policy: Policy) -> list[JobSpec]:
    return [
        JobSpec("plan_due_waves", plan_due_waves, CronTrigger(hour="*", minute=5, timezone="Europe/Paris")),
        JobSpec(
            "top_up_waves",
            top_up_waves,
            CronTrigger(day_of_week="mon-sat", hour=8, minute=40, timezone="Europe/Paris"),
        ),
        JobSpec("expire_and_close", expire_and_close, IntervalTrigger(minutes=30, timezone="UTC")),
    ]


def next_fire(spec: JobSpec, previous: datetime | None, now: datetime) -> datetime | None:
    return spec.trigger.get_next_fire_time(previous, now)


# ---------------------------------------------------------------- wall-clock scheduler


def run_job(job_id: str, database_url: str, config_dir: str) -> None:
    """Entry point APScheduler stores by reference: rebuilds its context each run."""
    from campaign.clock import SystemClock
    from campaign.db import make_engine, session_factory
    from campaign.policy import load_policy

    policy = load_policy(config_dir)
    engine = make_engine(database_url)
    try:
        ctx = services.Context(session_factory(engine), policy, SystemClock())
        spec = next(s for s in job_specs(policy) if s.id == job_id)
        spec.func(ctx)
    finally:
        engine.dispose()


def build_scheduler(database_url: str, config_dir: str, policy: Policy, *, background: bool = False) -> Any:
    """An APScheduler with its job store in the programme's database.

    Run only by the leader (campaign.leader): a job store must not be shared
    by two running schedulers.
    """
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    kind = BackgroundScheduler if background else BlockingScheduler
    scheduler = kind(
        jobstores={"default": SQLAlchemyJobStore(url=database_url, tablename="apscheduler_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
        timezone="UTC",
    )
    for spec in job_specs(policy):
        scheduler.add_job(
            "campaign.jobs:run_job",
            trigger=spec.trigger,
            id=spec.id,
            replace_existing=True,
            kwargs={"job_id": spec.id, "database_url": database_url, "config_dir": config_dir},
        )
    return scheduler
