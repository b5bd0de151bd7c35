"""A small synchronous NFSv3 client over Debian's libnfs (libnfs.so.13), through cffi.

The metadata job wants a real client, not our own RPC code: libnfs is what fio's NFS
engine and the nfs-* tools use. Only the calls the job needs are declared (ABI mode,
no compiler needed); each failure raises NfsError with libnfs's message and the
negative errno libnfs returned.
"""
from __future__ import annotations

import os

from cffi import FFI

CDEF = """
struct nfs_context;
struct nfsfh;
struct nfsdir;
struct nfs_url { char *server; char *path; char *file; };
struct timeval { long tv_sec; long tv_usec; };
struct nfsdirent {
    struct nfsdirent *next;
    char *name;
    uint64_t inode;
    uint32_t type;
    uint32_t mode;
    uint64_t size;
    struct timeval atime;
    struct timeval mtime;
    struct timeval ctime;
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;
    uint64_t dev;
    uint64_t rdev;
    uint64_t blksize;
    uint64_t blocks;
    uint64_t used;
    uint32_t atime_nsec;
    uint32_t mtime_nsec;
    uint32_t ctime_nsec;
};
struct nfs_stat_64 {
    uint64_t nfs_dev; uint64_t nfs_ino; uint64_t nfs_mode; uint64_t nfs_nlink;
    uint64_t nfs_uid; uint64_t nfs_gid; uint64_t nfs_rdev; uint64_t nfs_size;
    uint64_t nfs_blksize; uint64_t nfs_blocks; uint64_t nfs_atime; uint64_t nfs_mtime;
    uint64_t nfs_ctime; uint64_t nfs_atime_nsec; uint64_t nfs_mtime_nsec;
    uint64_t nfs_ctime_nsec; uint64_t nfs_used;
};
struct nfs_context *nfs_init_context(void);
void nfs_destroy_context(struct nfs_context *nfs);
char *nfs_get_error(struct nfs_context *nfs);
void nfs_set_timeout(struct nfs_context *nfs, int milliseconds);
struct nfs_url *nfs_parse_url_dir(struct nfs_context *nfs, const char *url);
void nfs_destroy_url(struct nfs_url *url);
int nfs_mount(struct nfs_context *nfs, const char *server, const char *exportname);
int nfs_creat(struct nfs_context *nfs, const char *path, int mode, struct nfsfh **nfsfh);
int nfs_close(struct nfs_context *nfs, struct nfsfh *nfsfh);
int nfs_stat64(struct nfs_context *nfs, const char *path, struct nfs_stat_64 *st);
int nfs_unlink(struct nfs_context *nfs, const char *path);
int nfs_mkdir(struct nfs_context *nfs, const char *path);
int nfs_rmdir(struct nfs_context *nfs, const char *path);
int nfs_opendir(struct nfs_context *nfs, const char *path, struct nfsdir **nfsdir);
struct nfsdirent *nfs_readdir(struct nfs_context *nfs, struct nfsdir *nfsdir);
void nfs_closedir(struct nfs_context *nfs, struct nfsdir *nfsdir);
"""

LIBRARY = "libnfs.so.13"
CALL_TIMEOUT_MS = 60_000       # a server that stops answering fails the call, not the run

_ffi = FFI()
_ffi.cdef(CDEF)
_lib = None


def _library():
    global _lib
    if _lib is None:
        _lib = _ffi.dlopen(LIBRARY)
    return _lib


class NfsError(OSError):
    """A libnfs call failed; errno is libnfs's (negated) return value."""


class NfsClient:
    """One mounted export. Paths are absolute within the export ("/dir/file")."""

    def __init__(self, url: str):
        self.lib = _library()
        self.ctx = self.lib.nfs_init_context()
        if self.ctx == _ffi.NULL:
            raise NfsError(0, "nfs_init_context failed")
        self.lib.nfs_set_timeout(self.ctx, CALL_TIMEOUT_MS)
        parsed = self.lib.nfs_parse_url_dir(self.ctx, url.encode())
        if parsed == _ffi.NULL:
            message = self.error()
            self.lib.nfs_destroy_context(self.ctx)
            raise NfsError(0, f"bad NFS URL {url!r}: {message}")
        try:
            server = _ffi.string(parsed.server)
            export = _ffi.string(parsed.path)
            self._check(self.lib.nfs_mount(self.ctx, server, export), f"mount {url}")
        except BaseException:
            self.lib.nfs_destroy_url(parsed)
            self.lib.nfs_destroy_context(self.ctx)
            raise
        self.lib.nfs_destroy_url(parsed)

    def error(self) -> str:
        text = self.lib.nfs_get_error(self.ctx)
        return _ffi.string(text).decode(errors="replace") if text != _ffi.NULL else ""

    def _check(self, ret: int, what: str) -> int:
        if ret < 0:
            raise NfsError(-ret, f"{what}: {self.error()} ({os.strerror(-ret)})")
        return ret

    def create(self, path: str, mode: int = 0o644) -> None:
        """Create (or truncate) an empty file, as `touch` on a new name does."""
        handle = _ffi.new("struct nfsfh **")
        self._check(self.lib.nfs_creat(self.ctx, path.encode(), mode, handle), f"create {path}")
        self._check(self.lib.nfs_close(self.ctx, handle[0]), f"close {path}")

    def stat(self, path: str) -> tuple[int, int]:
        """(mode, size) of path."""
        st = _ffi.new("struct nfs_stat_64 *")
        self._check(self.lib.nfs_stat64(self.ctx, path.encode(), st), f"stat {path}")
        return int(st.nfs_mode), int(st.nfs_size)

    def unlink(self, path: str) -> None:
        self._check(self.lib.nfs_unlink(self.ctx, path.encode()), f"unlink {path}")

    def mkdir(self, path: str) -> None:
        self._check(self.lib.nfs_mkdir(self.ctx, path.encode()), f"mkdir {path}")

    def rmdir(self, path: str) -> None:
        self._check(self.lib.nfs_rmdir(self.ctx, path.encode()), f"rmdir {path}")

    def list_long(self, path: str) -> list[tuple[str, int, int, int, int]]:
        """`ls -l`: every entry's (name, mode, size, uid, mtime), from libnfs's READDIRPLUS.

        libnfs reads the whole directory at opendir (READDIRPLUS, attributes included),
        which is where the time goes; readdir then walks its list.
        """
        handle = _ffi.new("struct nfsdir **")
        self._check(self.lib.nfs_opendir(self.ctx, path.encode(), handle), f"opendir {path}")
        entries = []
        try:
            for _ in range(10_000_000):             # bound: far above any test directory
                ent = self.lib.nfs_readdir(self.ctx, handle[0])
                if ent == _ffi.NULL:
                    break
                entries.append((_ffi.string(ent.name).decode(errors="replace"), int(ent.mode),
                                int(ent.size), int(ent.uid), int(ent.mtime.tv_sec)))
        finally:
            self.lib.nfs_closedir(self.ctx, handle[0])
        return [e for e in entries if e[0] not in (".", "..")]

    def close(self) -> None:
        """Drop the connection. No UMNT: MOUNT's UMNT is advisory in NFSv3."""
        if self.ctx is not None:
            self.lib.nfs_destroy_context(self.ctx)
            self.ctx = None

    def __enter__(self) -> "NfsClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
