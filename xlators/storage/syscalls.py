"""Raw Linux calls the standard library does not offer, bound with cffi (ABI mode).

Why each one is needed:

* `setfsuid`/`setfsgid`: the file-system identity of ONE thread.  glibc's
  wrappers are plain syscalls, so they stay per-thread (unlike `setuid`).
* `setgroups` through `syscall()`: glibc's `setgroups()` broadcasts the change
  to every thread of the process (POSIX semantics), which would hand one
  caller's groups to requests running in other stage threads.  The raw
  syscall changes only the calling thread, as NFS-Ganesha does.
* `getdents64`: directory entries WITH the kernel's `d_off`, the position to
  resume after an entry; `os.scandir` hides it and NFS needs it as the cookie.
* `utimensat` with `UTIME_OMIT`/`UTIME_NOW` per field: `os.utime` can set
  neither "leave alone" nor "now" for one of the two times.
* `syncfs`: commit one file system (the gfid snapshot's, see `gfid_snapshot`);
  `os.sync` would commit every mounted one.

cffi releases the GIL around every call, so other stage threads keep running.
"""
from __future__ import annotations

import errno
import os
import platform

import cffi

_ffi = cffi.FFI()
_ffi.cdef("""
    int setfsuid(unsigned int fsuid);
    int setfsgid(unsigned int fsgid);
    long syscall(long number, ...);
    struct timespec { long tv_sec; long tv_nsec; };
    int utimensat(int dirfd, const char *pathname, const struct timespec times[2], int flags);
    int faccessat(int dirfd, const char *pathname, int mode, int flags);
    int syncfs(int fd);
""")
_libc = _ffi.dlopen(None)

# Syscall numbers differ per architecture; only the two we call raw.
_SYSCALLS = {
    "x86_64": {"setgroups": 116, "getdents64": 217},
    "aarch64": {"setgroups": 159, "getdents64": 61},
    "ppc64le": {"setgroups": 81, "getdents64": 202},
    "s390x": {"setgroups": 206, "getdents64": 220},
    "riscv64": {"setgroups": 159, "getdents64": 61},
}
_MACHINE = platform.machine()
if _MACHINE not in _SYSCALLS:  # pragma: no cover - depends on the build machine
    raise ImportError(f"storage/posix: no syscall table for architecture {_MACHINE}")
_NR = _SYSCALLS[_MACHINE]

AT_FDCWD = -100
AT_EACCESS = 0x200
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
_NO_CHANGE = 0xFFFFFFFF  # (uid_t)-1: setfsuid(-1) only reports the current value
ID_MAX = 0xFFFFFFFE  # the largest uid/gid the kernel accepts; (uid_t)-1 means "no id"


def _raise_errno(what: str) -> None:
    err = _ffi.errno
    raise OSError(err, f"{what}: {os.strerror(err)}")


def valid_id(value: int) -> bool:
    """Whether the kernel can hold `value` as a uid or gid."""
    return 0 <= value <= ID_MAX


def _switch(call, value: int, what: str) -> None:
    """Set an fs id and prove it took.

    Why: setfsuid/setfsgid never report failure; they return the PREVIOUS
    value and silently keep it when the new one is refused (or is -1, "leave
    unchanged").  Trusting them once let (uid_t)-1 keep a thread's earlier
    identity, root included.  So the value is range-checked first, and the
    call is made a second time: its return value is the id now in force.
    """
    if not valid_id(value):
        raise PermissionError(errno.EPERM, f"{what}({value:#x}): not a valid id")
    call(value)
    now = call(value) & _NO_CHANGE  # the C int return is signed: 0xFFFFFFFE comes back as -2
    if now != value:
        raise PermissionError(errno.EPERM, f"{what}({value}) did not take effect "
                                           f"(still {now})")


def setfsuid(uid: int) -> None:
    """Make this thread's fsuid `uid`, or raise PermissionError (see `_switch`)."""
    _switch(_libc.setfsuid, uid, "setfsuid")


def setfsgid(gid: int) -> None:
    """Make this thread's fsgid `gid`, or raise PermissionError (see `_switch`)."""
    _switch(_libc.setfsgid, gid, "setfsgid")


def current_fsuid() -> int:
    return _libc.setfsuid(_NO_CHANGE) & _NO_CHANGE


def current_fsgid() -> int:
    return _libc.setfsgid(_NO_CHANGE) & _NO_CHANGE


_SYS_SETGROUPS = _ffi.cast("long", _NR["setgroups"])
_SYS_GETDENTS64 = _ffi.cast("long", _NR["getdents64"])


def thread_setgroups(groups: tuple[int, ...]) -> None:
    """Supplementary groups of the calling thread only (raw syscall, see module doc).
    An id the kernel cannot hold is refused here (the syscall would say EINVAL)."""
    if not all(valid_id(g) for g in groups):
        raise PermissionError(errno.EPERM, "setgroups: a group id out of range")
    array = _ffi.new("unsigned int[]", list(groups) or [0])
    ret = _libc.syscall(_SYS_SETGROUPS, _ffi.cast("long", len(groups)),
                        _ffi.cast("unsigned int *", array))
    if ret != 0:
        _raise_errno("setgroups")


def getdents64(fd: int, size: int) -> bytes:
    """Raw `linux_dirent64` records from the directory's current position (b'' at the end)."""
    buf = _ffi.new("char[]", size)
    ret = _libc.syscall(_SYS_GETDENTS64, _ffi.cast("long", fd),
                        _ffi.cast("char *", buf), _ffi.cast("long", size))
    if ret < 0:
        _raise_errno("getdents64")
    return _ffi.buffer(buf, ret)[:]


def set_times(path: bytes, atime: int | None, mtime: int | None, now: int) -> None:
    """utimensat(path) with each time in ns, `now` (the SET_TO_NOW marker) or None (omit).

    `path` is followed: callers pass /proc/self/fd/N of an O_PATH descriptor,
    which reaches the object itself even when that object is a symlink.
    """
    times = _ffi.new("struct timespec[2]")
    for slot, value in ((0, atime), (1, mtime)):
        if value is None:
            times[slot].tv_sec, times[slot].tv_nsec = 0, UTIME_OMIT
        elif value == now:
            times[slot].tv_sec, times[slot].tv_nsec = 0, UTIME_NOW
        else:
            if value < 0:
                raise OSError(errno.EINVAL, "negative timestamp")
            times[slot].tv_sec, times[slot].tv_nsec = divmod(value, 1_000_000_000)
    if _libc.utimensat(AT_FDCWD, path, times, 0) != 0:
        _raise_errno("utimensat")


def check_access(path: bytes, mask: int) -> None:
    """faccessat(AT_EACCESS): the check uses this thread's fsuid, fsgid and
    groups (without AT_EACCESS the kernel would use the real uid).  Raises
    OSError with the kernel's errno (EACCES, EROFS, ...) instead of a bool."""
    if _libc.faccessat(AT_FDCWD, path, mask, AT_EACCESS) != 0:
        _raise_errno("access")


def syncfs(fd: int) -> None:
    """Commit the file system `fd` is on; OSError with the errno on failure."""
    if _libc.syncfs(fd) != 0:
        _raise_errno("syncfs")
