"""Per-thread caller credentials: every fop runs as the NFS caller.

Why: the kernel already knows how to check permissions (mode bits, ACLs,
sticky directories, protected hard links, CAP_MKNOD).  Acting as the caller
lets it decide, and makes new objects belong to the caller, with no
permission logic of our own to get wrong.  This is what NFS-Ganesha's VFS
FSAL does.

How: Linux keeps an fsuid, fsgid and group list per thread.  We set them with
raw calls (see `syscalls`): `setfsuid`/`setfsgid` and the raw `setgroups`
syscall, never glibc's `setgroups()`, which changes every thread.  A thread
keeps the identity of its last fop; switching is skipped when the thread
already has the wanted one, so a run of fops by one user costs no syscalls.

A non-zero fsuid drops the file-system capabilities (CAP_DAC_OVERRIDE,
CAP_FOWNER, CAP_CHOWN, CAP_MKNOD, ...) from the effective set; setting fsuid
back to 0 restores them.  CAP_SYS_ADMIN (needed for trusted.* xattrs) stays.
Housekeeping that must not depend on the caller (the gfid index) runs inside
`as_root()`.

When the process is not root, credentials cannot be switched at all; the
`Identity` is then disabled and every fop acts as the process user (the
xlator logs this at init).

Ids the kernel cannot hold ((uid_t)-1 = 0xFFFFFFFF) are refused by `become`
with EPERM, and every switch is verified (see `syscalls._switch`): setfsuid
and setfsgid report nothing, and an unchecked "-1" used to leave the thread
as whoever it was before -- root, right after an `as_root()` block.  The RPC
layer already maps such ids to the anonymous ones (rpcsvc.auth); this is the
second wall.

`SERVER_CALLER` is the server acting for itself (the NFS fd cache opening a
file that many callers will share): storage runs it as real root and never
squashes it, because root-squash is about what a CLIENT's uid 0 may do.  An
Fd whose ctx has `ANONYMOUS_FD` set serves many callers, so storage checks
each read and write on it against the caller's right (see posix_io).
"""
from __future__ import annotations

import errno
import os
import threading

from glusterfsd.xlator import ANONYMOUS_FD, SERVER_CALLER, Caller  # noqa: F401 (re-exported)
from xlators.storage import syscalls

Creds = tuple[int, int, tuple[int, ...]]  # (uid, gid, groups)
ROOT_CREDS: Creds = (0, 0, ())
_THREAD_CREDS = threading.local()
NGROUPS_MAX = 65536  # the kernel's limit for one setgroups


def is_server(caller: Caller) -> bool:
    return caller is SERVER_CALLER


def valid_creds(creds: Creds) -> bool:
    """Whether every id of creds is one the kernel can hold."""
    uid, gid, groups = creds
    return (syscalls.valid_id(uid) and syscalls.valid_id(gid) and len(groups) <= NGROUPS_MAX
            and all(syscalls.valid_id(g) for g in groups))


class Identity:
    """Switches the calling thread's file-system credentials, cheaply."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = (os.geteuid() == 0) if enabled is None else enabled
        # What each thread was set to is a property of the THREAD: shared by
        # every Identity, or two volumes in one graph would trust stale notes.
        self._tls = _THREAD_CREDS
        self.switches = 0  # how many real switches were made (statedump figure)

    def become(self, creds: Creds) -> None:
        """Make this thread act as creds=(uid, gid, groups).

        PermissionError (EPERM) for an id the kernel cannot hold, before
        anything changes; PermissionError too if the kernel kept the old
        fsuid/fsgid (the thread's identity is then marked unknown, so the
        next call sets everything again)."""
        if not self.enabled:
            return
        current = getattr(self._tls, "creds", None)
        if current == creds:
            return
        if not valid_creds(creds):
            raise PermissionError(errno.EPERM, f"credentials {creds[0]}:{creds[1]} with "
                                               f"{len(creds[2])} groups hold an invalid id")
        uid, gid, groups = creds
        # Mark unknown first: if a call below fails, the next become() redoes all.
        self._tls.creds = None
        if current is None or current[2] != groups:
            syscalls.thread_setgroups(groups)
        if current is None or current[1] != gid:
            syscalls.setfsgid(gid)
        if current is None or current[0] != uid:
            syscalls.setfsuid(uid)
        self._tls.creds = creds
        self.switches += 1

    def current(self) -> Creds | None:
        """What this thread was last set to (None: never set by us)."""
        return getattr(self._tls, "creds", None)

    def as_root(self) -> "_AsRoot":
        """A context manager running a block as root (index upkeep), then going
        back to the caller.

        The caller's groups stay: with fsuid 0 and the file-system
        capabilities back they change nothing, and keeping them saves two
        setgroups calls per switch."""
        return _AsRoot(self)

    def probe(self) -> None:
        """Check in a scratch thread that switching really works (setfsuid never
        reports failure, so we read the value back).  Raises PermissionError."""
        if not self.enabled:
            return
        failure: list[str] = []

        def trial():
            try:
                self.become((65534, 65534, (65534,)))
                if syscalls.current_fsuid() != 65534 or syscalls.current_fsgid() != 65534:
                    failure.append("setfsuid/setfsgid did not take effect")
            except OSError as err:
                failure.append(str(err))
            finally:
                self.become(ROOT_CREDS)

        worker = threading.Thread(target=trial, name="posix-identity-probe")
        worker.start()
        worker.join(10)
        if failure:
            raise PermissionError(errno.EPERM, "cannot switch per-thread credentials: " + failure[0])


def squash(uid: int, gid: int, groups: tuple[int, ...], anon_uid: int, anon_gid: int) -> Creds:
    """Root squashing as GlusterFS's server does it: uid 0 becomes the anonymous
    user and group, and group 0 in the list becomes the anonymous group."""
    if uid != 0:
        return uid, gid, groups
    return anon_uid, anon_gid, tuple(anon_gid if g == 0 else g for g in groups)


def reset_thread() -> None:
    """Give the calling thread back the daemon's own (root) file-system
    identity.  Stage threads keep the identity of their last fop; code that
    touches files as the daemon from such a thread calls this first."""
    Identity().become(ROOT_CREDS)


class _AsRoot:
    """Identity.as_root's block (a class: entry ops enter several per call, and a
    generator context manager costs several Python calls more each time)."""

    __slots__ = ("identity", "saved")

    def __init__(self, identity: Identity):
        self.identity = identity
        self.saved = None

    def __enter__(self) -> None:
        identity = self.identity
        saved = identity.current()
        if saved is not None and saved[0] == 0 and saved[1] == 0:
            return  # fsuid and fsgid are 0 already: no switch, so none to undo (saved stays None)
        self.saved = saved
        identity.become((0, 0, saved[2]) if saved is not None else ROOT_CREDS)

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            self.identity.become(self.saved)
