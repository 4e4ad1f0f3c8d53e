"""``coldsnap.Period`` and ``coldsnap.Cron``: when the server runs a deployed function
by itself (Modal's names; docs/schedules.md). Example::

    @app.function(schedule=coldsnap.Cron("0 9 * * mon-fri", timezone="Europe/Berlin"))
    def report() -> None:
        ...

    @app.function(schedule=coldsnap.Period(minutes=5))
    def refresh() -> None:
        ...
"""

from coldsnap.wire.schedule import Cron, Period

__all__ = ["Cron", "Period"]
