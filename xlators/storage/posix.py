"""The `storage/posix` xlator: a local directory as the bottom of the graph.

It answers every fop of `glusterfsd.xlator.FOPS` on the directory given by
the `directory` option, naming objects by gfid (see `gfid_index`), running
each fop with the caller's credentials (see `identity`), listing directories
with kernel cookies (see `dirstream`) and keeping file descriptors open in a
bounded cache (see `fd_cache`).  The fops themselves live in four mixins by
concern: `posix_entry`, `posix_inode`, `posix_io`, `posix_dir`.

Thread-safety: fops are called from several stage threads at once.  Shared
state is the fd cache, the directory-descriptor cache and the index
(each with its own lock), per-gfid stripe locks for index changes,
per-directory stripe locks around entry ops (exact wcc, see `dir_locks`),
and a lock per open directory stream; credentials are per thread.
"""
from __future__ import annotations

import errno
import os
import resource
import stat
import uuid
import weakref

from glusterfsd.options import Option, OptionError
from glusterfsd.xlator import register
from xlators.storage import fs_journal, metadata_sync
from xlators.storage.dir_locks import DirLocks
from xlators.storage.fd_cache import FdCache
from xlators.storage.gfid_index import GfidIndex
from xlators.storage.gfid_layout import GFID_XATTR, gfid_str, proc_path
from xlators.storage.identity import Identity
from xlators.storage.posix_dir import DirFops
from xlators.storage.posix_entry import EntryFops
from xlators.storage.posix_inode import InodeFops
from xlators.storage.posix_io import IoFops

VOLUME_ID_XATTR = "trusted.glusterfs.volume-id"
VOLUME_ID_XATTR_FALLBACK = "user.glusterfs.volume-id"
_ID_MAX = 0xFFFFFFFE


@register
class PosixXlator(EntryFops, InodeFops, IoFops, DirFops):
    type_name = "storage/posix"
    children_range = (0, 0)
    options = (
        Option("directory", "path", description="The directory this volume stores its data in "
               "(required; must exist and be accessible)."),
        Option("volume-id", "uuid", description="The id of this store.  Checked against (or "
               "written to) trusted.glusterfs.volume-id of the directory, so a volfile cannot be "
               "pointed at another volume's data by mistake.  Generated and kept when absent."),
        Option("anonymous-uid", "int", "65534", min=0, max=_ID_MAX, aliases=("anonuid",),
               description="The uid root is mapped to when root-squash is on."),
        Option("anonymous-gid", "int", "65534", min=0, max=_ID_MAX, aliases=("anongid",),
               description="The gid root is mapped to when root-squash is on."),
        Option("root-squash", "bool", "off", description="Run fops of uid 0 as the anonymous "
               "uid/gid."),
        Option("read-only", "bool", "off", description="Refuse every modifying fop with EROFS."),
        Option("fd-cache-size", "int", "1024", min=1, max=1 << 20, description="How many open "
               "file descriptors (by gfid and access mode) are kept for READ/WRITE."),
        Option("dir-fd-cache-size", "int", "1024", min=0, max=1 << 20, description="How many "
               "directory descriptors are kept to resolve gfids without walking the index."),
        Option("max-hardlinks", "int", "100", min=0, max=0xFFFFFFFF, description="LINK fails "
               "with EMLINK once a file has this many names (0: no limit), as GlusterFS's posix."),
        Option("metadata-sync", "choice", "on", choices=metadata_sync.CHOICES,
               description="How every entry operation (create, mkdir, symlink, mknod, link, "
               "unlink, rmdir, rename) is committed to stable storage before it returns, as "
               "RFC 1813 asks and knfsd does.  on: fsync of each changed directory, new file "
               "and directory and gfid index directory (any file system).  journal: the same "
               "guarantee with ONE fsync per operation, of the object it changed last, which "
               "commits the file system's whole metadata journal in order; used only where "
               "that was verified at start (xfs; ext4 with a journal and without fast_commit, "
               "its superblock readable), else it acts as on and says so in the log.  off: no "
               "fsync; faster, but a server crash may lose entries a client was told exist "
               "(or bring back removed ones).  yes/no/true/false mean on/off."),
        Option("index-buckets", "choice", "lazy", choices=("lazy", "all"),
               description="When the gfid index directories .glusterfs/xx/yy are made.  lazy: "
               "by the first entry op that needs one, as GlusterFS does (that op then also "
               "pays a mkdir and, under metadata-sync on, one more fsync).  all: all 65536 at "
               "start, once per store (seconds the first time; on ext4 about 256 MiB, a block "
               "per directory), so no entry op makes one.  The 256 xx directories are always "
               "made at start."),
        Option("brick-uid", "int", min=0, max=_ID_MAX, description="Owner uid the directory "
               "is given at start (GlusterFS's storage.owner-uid)."),
        Option("brick-gid", "int", min=0, max=_ID_MAX, description="Owner gid the directory "
               "is given at start (GlusterFS's storage.owner-gid)."),
    )

    def _value(self, key: str):
        """An option's value, whichever of its names the volfile used."""
        opt = self.option_table().lookup(key)
        for name in (opt.key, *opt.aliases):
            if name in self.given:
                return self.given[name]
        return self.opts.get(key)

    # --- lifecycle ----------------------------------------------------------------
    def init(self) -> None:
        self.directory = self._check_directory(self._value("directory"))
        self._journal_check = None  # (verified, why), made once when `journal` is asked for
        self._apply_options()
        self.identity = Identity()
        if self.identity.enabled:
            self.identity.probe()
        else:
            self.log.warning("not running as root: every fop acts as uid %d; caller "
                             "identities and root-squash cannot be enforced", os.geteuid())
        fd_size, dir_size = self._fit_descriptor_budget()
        self.dir_locks = DirLocks()
        self.index = GfidIndex(self.directory, self.identity, dir_size,
                               self.metadata_sync == metadata_sync.ON)
        try:
            self.index.open()
        except OSError as err:
            self.index.close()
            raise OptionError("directory", f"option 'directory': {err.strerror or err}") from None
        try:
            if self._value("index-buckets") == "all":
                made = self.index.make_all_buckets()
                if made:
                    self.log.info("made %d gfid index directories (index-buckets all)", made)
            self.volume_id = self._volume_id()
            self._set_brick_owner()
        except BaseException:
            self.index.close()
            raise
        self.fd_cache = FdCache(fd_size, self._reopen)
        self.open_streams = weakref.WeakSet()
        self.log.info("serving %s (volume-id %s, gfids in %s%s)", self.directory,
                      gfid_str(self.volume_id), self.index.xattr,
                      ", read-only" if self.read_only else "")

    def _check_directory(self, path: str | None) -> str:
        if not path:
            raise OptionError("directory", f"volume {self.name}: option 'directory' is required")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise OptionError("directory", f"option 'directory': {path} does not exist") from None
        except PermissionError:
            raise OptionError("directory", f"option 'directory': {path} is not accessible "
                              "(no search permission on the way to it)") from None
        except OSError as err:
            raise OptionError("directory", f"option 'directory': {path}: {err.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise OptionError("directory", f"option 'directory': {path} is not a directory")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise OptionError("directory", f"option 'directory': {path} is not accessible "
                              "(needs read, write and search permission)")
        return os.path.realpath(path)

    def _apply_options(self) -> None:
        self.read_only = bool(self._value("read-only"))
        self.root_squash = bool(self._value("root-squash"))
        self.anon_uid = int(self._value("anonymous-uid"))
        self.anon_gid = int(self._value("anonymous-gid"))
        self.max_hardlinks = int(self._value("max-hardlinks"))
        self.metadata_sync = self._sync_mode(metadata_sync.mode_of(self._value("metadata-sync")))
        index = getattr(self, "index", None)
        if index is not None:
            index.sync_metadata = self.metadata_sync == metadata_sync.ON

    def _sync_mode(self, wanted: str) -> str:
        """The metadata-sync mode in effect: `journal` only where one fsync
        was verified to commit all earlier metadata (see fs_journal)."""
        if wanted != metadata_sync.JOURNAL:
            return wanted
        if self._journal_check is None:
            try:
                self._journal_check = fs_journal.check(self.directory)
            except OSError as err:
                self._journal_check = (False, f"cannot check: {err.strerror or err}")
            verified, why = self._journal_check
            if verified:
                self.log.info("metadata-sync journal: one fsync per entry op (%s)", why)
            else:
                self.log.warning("metadata-sync journal not safe here (%s): using on", why)
        return metadata_sync.JOURNAL if self._journal_check[0] else metadata_sync.ON

    def _fit_descriptor_budget(self) -> tuple[int, int]:
        """Keep the two descriptor caches within half of RLIMIT_NOFILE, so the
        rest of the process (sockets, logs) never runs out of descriptors."""
        fd_size = int(self._value("fd-cache-size"))
        dir_size = int(self._value("dir-fd-cache-size"))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        budget = soft // 2 if soft != resource.RLIM_INFINITY else fd_size + dir_size
        if fd_size + dir_size > budget:
            scale = budget / (fd_size + dir_size)
            fd_size, dir_size = max(1, int(fd_size * scale)), int(dir_size * scale)
            self.log.warning("descriptor caches cut to %d files + %d directories to fit "
                             "RLIMIT_NOFILE %d", fd_size, dir_size, soft)
        return fd_size, dir_size

    def _volume_id(self) -> bytes:
        key = VOLUME_ID_XATTR if self.index.xattr == GFID_XATTR else VOLUME_ID_XATTR_FALLBACK
        path = proc_path(self.index.root_fd)
        wanted = self._value("volume-id")
        with self.identity.as_root():
            stored = _getxattr_or_none(path, key)
            if stored is None:
                try:
                    stored = wanted.bytes if wanted is not None else uuid.uuid4().bytes
                    os.setxattr(path, key, stored, os.XATTR_CREATE)
                except FileExistsError:  # another worker initialising the same new store won
                    stored = _getxattr_or_none(path, key)
            if stored is None or len(stored) != 16:
                raise OptionError("volume-id", f"{self.directory} has a corrupt {key}")
            if wanted is not None and stored is not None and stored != wanted.bytes:
                raise OptionError("volume-id", f"option 'volume-id' {wanted} does not match "
                                  f"{uuid.UUID(bytes=stored)} stored in {self.directory}: "
                                  "this directory holds another volume")
        return stored

    def _set_brick_owner(self) -> None:
        uid, gid = self._value("brick-uid"), self._value("brick-gid")
        if uid is None and gid is None:
            return
        with self.identity.as_root():
            os.chown(proc_path(self.index.root_fd), -1 if uid is None else uid,
                     -1 if gid is None else gid)

    def reconfigure(self, changed: dict) -> None:
        super().reconfigure(changed)
        self._apply_options()
        if "fd-cache-size" in changed:
            self.fd_cache.capacity = max(1, int(changed["fd-cache-size"]))
        for key in ("directory", "volume-id", "dir-fd-cache-size", "index-buckets"):
            if key in changed:
                self.log.warning("option '%s' takes effect only when the graph is rebuilt", key)
        if "brick-uid" in changed or "brick-gid" in changed:
            self._set_brick_owner()

    def fini(self) -> None:
        if getattr(self, "index", None) is not None:
            # before the streams and the index close: parked listings, and the gfid
            # snapshot a last listing may be saving (workers leave with os._exit)
            self.finish_listings()
        for stream in list(getattr(self, "open_streams", ())):
            with stream.lock:
                stream.close()
        for part in ("fd_cache", "index"):
            holder = getattr(self, part, None)
            if holder is None:
                continue
            try:
                holder.clear() if part == "fd_cache" else holder.close()
            except OSError as err:
                self.log.warning("fini: closing the %s failed: %s", part, err)

    def dump_private(self) -> dict:
        cache = self.fd_cache
        figures = {
            "directory": self.directory,
            "volume-id": gfid_str(self.volume_id),
            "gfid-xattr": self.index.xattr,
            "read-only": self.read_only,
            "root-squash": self.root_squash,
            "metadata-sync": self.metadata_sync,
            "metadata-sync-journal-check": (self._journal_check or (None, "not asked"))[1],
            "caller-identity": "per-thread fsuid/fsgid/groups" if self.identity.enabled
                               else "disabled (not root)",
            "credential-switches": self.identity.switches,
            "fd-cache-size": cache.capacity,
            "fd-cache-entries": len(cache),
            "fd-cache-hits": cache.hits,
            "fd-cache-misses": cache.misses,
            "fd-cache-evictions": cache.evictions,
            "index-resolved": self.index.resolved,
            "index-healed": self.index.healed,
            "index-orphans-removed": self.index.orphans_removed,
        }
        figures.update(self.index.dir_cache_stats())
        return figures


def _getxattr_or_none(path: str, key: str) -> bytes | None:
    try:
        return os.getxattr(path, key)
    except OSError as err:
        if err.errno != errno.ENODATA:
            raise
        return None
