"""Exit codes of the `devpulse` command, one documented enum as pytest does it."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What a `devpulse` process tells its caller through its exit status."""

    #: Done: decided, answered, or everything scanned was clean.
    OK = 0
    #: The command ran and found a problem (a sensitive file, a failed request), the output
    #: was cut (the reader of a pipe went away), or DevPulse failed unexpectedly.
    PROBLEM = 1
    #: Bad usage or configuration: unknown option, bad value, unreadable or invalid config.
    USAGE = 2
    #: Preflight: the model fits only within the safety margin or after unloading idle models.
    TIGHT = 10
    #: Preflight: the model does not fit in memory now.
    NO_FIT = 20
    #: Interrupted (Ctrl-C, SIGINT): stopped before the end, as shells report 128 + SIGINT.
    INTERRUPTED = 130
    #: Terminated (SIGTERM: a service manager, `docker stop`, `timeout`): stopped as by
    #: Ctrl-C, the request cancelled and booked, as shells report 128 + SIGTERM.
    TERMINATED = 143
