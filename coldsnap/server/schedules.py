"""The server's scheduler: runs the functions of running apps that have ``schedule=``.

One thread looks at the running apps twice a second: deployed ones, and ephemeral
ones (`coldsnap run`, ``app.run()``) while they exist, as Modal's do. Each scheduled function of
an app's current version has its next run time; when it is due, the function is
called with no arguments, as a caller's call would be (its pool, its retries), and
the app's log says "scheduled run of TAG", then how it ended. A redeploy (a new
version) or a changed schedule starts the count again from then; a stopped app's
schedules stop. Runs missed while the server was down are not made up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from coldsnap.server.calls import Call
from coldsnap.server.logs import LogBook
from coldsnap.server.state import StateDB
from coldsnap.wire import serialization
from coldsnap.wire.description import AppDescription
from coldsnap.wire.schedule import Schedule

logger = logging.getLogger(__name__)
TICK_S = 0.5
Submit = Callable[[str, str, str | None, bytes], tuple[Call, Any]]


@dataclasses.dataclass
class Entry:
    """One scheduled function of an app's current version."""

    version: str
    schedule: Schedule
    next_at: dt.datetime
    runs: int = 0
    last_at: dt.datetime | None = None
    last_outcome: str = "-"
    running: list[Call] = dataclasses.field(default_factory=list)


class Schedules:
    """Every deployed app's scheduled functions, and the thread that runs them."""

    def __init__(self, db: StateDB, submit: Submit, logs: LogBook) -> None:
        self._db = db
        self._submit = submit
        self._logs = logs
        self._entries: dict[tuple[str, str], Entry] = {}
        self._descriptions: dict[tuple[str, str], AppDescription] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="schedules")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def of_app(self, app: str) -> list[dict[str, Any]]:
        """What `apps stats` shows: each scheduled function's schedule, runs and next run."""
        with self._lock:
            return [{"tag": tag, "schedule": e.schedule.describe(), "runs": e.runs,
                     "next_at": e.next_at.timestamp(),
                     "last_at": e.last_at.timestamp() if e.last_at else None,
                     "last_outcome": e.last_outcome}
                    for (name, tag), e in sorted(self._entries.items()) if name == app]

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick(dt.datetime.now(dt.UTC))
            except Exception:  # the scheduler must outlive one bad tick
                logger.exception("the scheduler's tick failed")

    def tick(self, now: dt.datetime) -> None:
        """Follow deploys and stops, start the runs that are due, report ended ones."""
        wanted = self._wanted()
        with self._lock:
            for key in [k for k in self._entries if k not in wanted]:
                del self._entries[key]
            for key, (version, schedule) in wanted.items():
                entry = self._entries.get(key)
                if entry is None or (entry.version, entry.schedule) != (version, schedule):
                    self._entries[key] = Entry(version, schedule, schedule.next_after(now))
            due = [(key, e) for key, e in self._entries.items() if e.next_at <= now]
            for _, entry in due:
                entry.next_at = entry.schedule.next_after(now)
        for key, entry in due:
            self._run(key, entry, now)
        for key, entry in list(self._entries.items()):
            self._report(key, entry)

    def _wanted(self) -> dict[tuple[str, str], tuple[str, Schedule]]:
        """(app, tag) -> (version, schedule) of every running app's scheduled functions
        (an ephemeral app's too: it is stopped and deleted when its run ends)."""
        wanted = {}
        for row in self._db.apps():
            if row["state"] != "deployed":
                continue
            description = self._description(row["name"], row["version"])
            for tag, fn in (description.functions.items() if description else ()):
                if fn.options.schedule is not None:
                    wanted[(row["name"], tag)] = (row["version"], fn.options.schedule)
        return wanted

    def _description(self, app: str, version: str) -> AppDescription | None:
        key = (app, version)
        if key not in self._descriptions:
            stored = self._db.version(app, version)
            if stored is None:
                return None
            self._descriptions[key] = stored.description
        return self._descriptions[key]

    def _run(self, key: tuple[str, str], entry: Entry, now: dt.datetime) -> None:
        app, tag = key
        self._logs.note(app, f"coldsnap: scheduled run of {tag} ({entry.schedule.describe()})",
                        logging.INFO, logger)
        try:
            call, _ = self._submit(app, tag, None, serialization.dumps_args((), {}))
        except Exception as exc:  # the app was stopped or redeployed meanwhile
            self._logs.note(app, f"coldsnap: scheduled run of {tag} could not start: {exc}",
                            logging.WARNING, logger)
            return
        with self._lock:
            entry.runs += 1
            entry.last_at = now
            entry.running.append(call)

    def _report(self, key: tuple[str, str], entry: Entry) -> None:
        app, tag = key
        for call in [c for c in entry.running if c.done.is_set()]:
            entry.running.remove(call)
            outcome = call.outcome
            if outcome is not None and outcome.ok:
                entry.last_outcome = "ok"
                self._logs.note(app, f"coldsnap: scheduled run of {tag} finished",
                                logging.INFO, logger)
            else:
                error = outcome.error if outcome is not None else None
                entry.last_outcome = "failed"
                # Nobody reads a scheduled run's result: its traceback goes to the log.
                trace = "".join(f"\n    {line}" for line in error.traceback.splitlines()
                                ) if error is not None else ""
                self._logs.note(app, f"coldsnap: scheduled run of {tag} failed: "
                                f"{error if error is not None else 'no outcome'}{trace}",
                                logging.WARNING, logger)
