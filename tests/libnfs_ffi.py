"""libnfs's synchronous API through cffi (ABI mode), for tests that need one long-lived
NFS client doing many operations: the client that must ride through reloads and kills.

libnfs (the library behind nfs-cp, nfs-ls, nfs-cat) reconnects on its own when
its connection breaks and sends again every call that had no reply; that is
the behaviour the prefork tests rely on.  `LibNfs.available()` is False when
the shared library is missing (tests skip then).
"""
from __future__ import annotations

import os

try:
    from cffi import FFI
except ImportError:  # pragma: no cover - cffi is a declared dependency
    FFI = None

_CDEF = """
struct nfs_context;
struct nfsfh;
struct nfs_url { char *server; char *path; char *file; };
struct nfs_stat_64 {
    uint64_t nfs_dev, nfs_ino, nfs_mode, nfs_nlink, nfs_uid, nfs_gid, nfs_rdev, nfs_size,
             nfs_blksize, nfs_blocks, nfs_atime, nfs_mtime, nfs_ctime, nfs_atime_nsec,
             nfs_mtime_nsec, nfs_ctime_nsec, nfs_used;
};
struct nfs_context *nfs_init_context(void);
void nfs_destroy_context(struct nfs_context *nfs);
struct nfs_url *nfs_parse_url_dir(struct nfs_context *nfs, const char *url);
void nfs_destroy_url(struct nfs_url *url);
int nfs_mount(struct nfs_context *nfs, const char *server, const char *exportname);
char *nfs_get_error(struct nfs_context *nfs);
void nfs_set_dircache(struct nfs_context *nfs, int enabled);
void nfs_set_autoreconnect(struct nfs_context *nfs, int num_retries);
void nfs_set_timeout(struct nfs_context *nfs, int milliseconds);
int nfs_creat(struct nfs_context *nfs, const char *path, int mode, struct nfsfh **nfsfh);
int nfs_open(struct nfs_context *nfs, const char *path, int flags, struct nfsfh **nfsfh);
int nfs_close(struct nfs_context *nfs, struct nfsfh *nfsfh);
int nfs_pwrite(struct nfs_context *nfs, struct nfsfh *nfsfh, uint64_t offset, uint64_t count,
               const void *buf);
int nfs_pread(struct nfs_context *nfs, struct nfsfh *nfsfh, uint64_t offset, uint64_t count,
              void *buf);
int nfs_fsync(struct nfs_context *nfs, struct nfsfh *nfsfh);
int nfs_stat64(struct nfs_context *nfs, const char *path, struct nfs_stat_64 *st);
int nfs_unlink(struct nfs_context *nfs, const char *path);
"""

_lib = None
_ffi = None


def _load():
    global _lib, _ffi
    if _lib is None:
        _ffi = FFI()
        _ffi.cdef(_CDEF)
        _lib = _ffi.dlopen("libnfs.so.13")
    return _ffi, _lib


class LibNfsError(OSError):
    def __init__(self, op: str, rc: int, message: str):
        super().__init__(-rc if rc < 0 else 0, f"{op}: {message} ({rc})")
        self.op = op


class LibNfs:
    """One libnfs context mounted on 127.0.0.1:<export> with explicit ports."""

    @staticmethod
    def available() -> bool:
        if FFI is None:
            return False
        try:
            _load()
            return True
        except OSError:
            return False

    def __init__(self, nfs_port: int, mount_port: int, export: str = "/gv0",
                 timeout_ms: int = 30000):
        self.ffi, self.lib = _load()
        self.ctx = self.lib.nfs_init_context()
        if self.ctx == self.ffi.NULL:
            raise OSError("nfs_init_context failed")
        url = f"nfs://127.0.0.1{export}?nfsport={nfs_port}&mountport={mount_port}"
        parsed = self.lib.nfs_parse_url_dir(self.ctx, url.encode())
        if parsed == self.ffi.NULL:
            self._fail("parse_url", -1)
        try:
            self.lib.nfs_set_dircache(self.ctx, 0)
            self.lib.nfs_set_autoreconnect(self.ctx, -1)
            self.lib.nfs_set_timeout(self.ctx, timeout_ms)
            rc = self.lib.nfs_mount(self.ctx, parsed.server, parsed.path)
        finally:
            self.lib.nfs_destroy_url(parsed)
        if rc != 0:
            self._fail("mount", rc)

    def _fail(self, op: str, rc: int):
        message = self.ffi.string(self.lib.nfs_get_error(self.ctx)).decode(errors="replace")
        raise LibNfsError(op, rc, message)

    def _check(self, op: str, rc: int) -> int:
        if rc < 0:
            self._fail(op, rc)
        return rc

    def create(self, path: str, mode: int = 0o644):
        handle = self.ffi.new("struct nfsfh **")
        self._check("creat", self.lib.nfs_creat(self.ctx, path.encode(), mode, handle))
        return handle[0]

    def open(self, path: str, flags: int = os.O_RDWR):
        handle = self.ffi.new("struct nfsfh **")
        self._check("open", self.lib.nfs_open(self.ctx, path.encode(), flags, handle))
        return handle[0]

    def close_file(self, fh) -> None:
        self._check("close", self.lib.nfs_close(self.ctx, fh))

    def pwrite(self, fh, offset: int, data: bytes) -> int:
        count = self._check("pwrite", self.lib.nfs_pwrite(self.ctx, fh, offset, len(data), data))
        if count != len(data):
            raise LibNfsError("pwrite", count, f"short write: {count} of {len(data)} bytes")
        return count

    def pread(self, fh, offset: int, size: int) -> bytes:
        buf = self.ffi.new("char[]", size)
        count = self._check("pread", self.lib.nfs_pread(self.ctx, fh, offset, size, buf))
        return bytes(self.ffi.buffer(buf, count))

    def fsync(self, fh) -> None:
        self._check("fsync", self.lib.nfs_fsync(self.ctx, fh))

    def stat(self, path: str):
        st = self.ffi.new("struct nfs_stat_64 *")
        self._check("stat", self.lib.nfs_stat64(self.ctx, path.encode(), st))
        return st

    def unlink(self, path: str) -> None:
        self._check("unlink", self.lib.nfs_unlink(self.ctx, path.encode()))

    def close(self) -> None:
        if self.ctx is not None:
            self.lib.nfs_destroy_context(self.ctx)
            self.ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
