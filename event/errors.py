"""The named errors of the event pool.

GlusterFS's event functions answer -1 and log; in Python each failure gets its
own exception type, so a transport can tell "that slot is already gone" (a race
it expects during teardown) from "the pool is shut down" or "out of slots".
Kernel refusals (a closed fd, an fd registered twice) stay plain OSError
subclasses with their errno, as the system call gave them.
"""


class EventPoolError(Exception):
    """Base of every event-pool specific error."""


class UnknownSlotError(EventPoolError, LookupError):
    """The slot index is out of range or nothing is registered there now."""


class PoolFullError(EventPoolError):
    """Every slot of the table is in use (GlusterFS: table of 1024 x 1024)."""


class PoolClosedError(EventPoolError):
    """The pool was destroyed; it takes no new registrations or mask changes."""
