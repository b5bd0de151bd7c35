#!/bin/bash
# Install what the benchmarks need, idempotently, and build fio with its NFS engine once.
#
# Why a build: Debian's fio is compiled without libnfs, so `--ioengine=nfs` is missing.
# Debian's own fio source package builds with it when libnfs-dev is present and
# configure is asked for it. The result is installed under benchmarks/cache/fio/ and
# reused; a stamp file records what was built so a changed patch triggers a rebuild.
#
# Usage: benchmarks/setup.sh [--no-apt] [--no-pip] [--no-fio]
# Prints the path of the built fio binary on its last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/cache"
PREFIX="$CACHE/fio"
SRC="$CACHE/src"
PATCH="$HERE/fio-nfs-getevents-min.patch"
DEBSRC_FILE=/etc/apt/sources.list.d/benchmarks-deb-src.sources
APT_PACKAGES=(nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-dev libnfs-utils libaio-dev zlib1g-dev
              pkg-config dpkg-dev build-essential)
PIP_PACKAGES=(matplotlib py-spy psutil)

do_apt=1 do_pip=1 do_fio=1
for arg in "$@"; do
    case "$arg" in
        --no-apt) do_apt=0 ;;
        --no-pip) do_pip=0 ;;
        --no-fio) do_fio=0 ;;
        *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[setup] $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
}

ensure_apt() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_update_once
        log "apt-get install ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >&2
    fi
    # Debian's nfs-ganesha package may start its own daemon on install (no systemd in a
    # container means it usually does not); the harness starts Ganesha itself.
}

ensure_deb_src() {
    # deb-src entries mirroring the machine's own Debian "deb" entries, so that
    # `apt-get source fio` fetches the same release's source package.
    if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return
    fi
    local origin=/etc/apt/sources.list.d/debian.sources
    if [ -f "$origin" ]; then
        log "adding deb-src entries to $DEBSRC_FILE"
        sed -e 's/^Types: deb$/Types: deb-src/' "$origin" | as_root tee "$DEBSRC_FILE" >/dev/null
    elif grep -qsE '^deb ' /etc/apt/sources.list; then
        log "adding deb-src lines to $DEBSRC_FILE (one-line format)"
        grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' \
            | as_root tee "${DEBSRC_FILE%.sources}.list" >/dev/null
    else
        log "no Debian source entry found to mirror; cannot fetch fio's source"; exit 1
    fi
    apt_updated=0
    apt_update_once
}

# The interpreter that runs the benchmarks (python -m benchmarks passes its own), so the
# chart library lands where it is imported, e.g. in the project's .venv.
PYTHON="${PYTHON:-python3}"

ensure_pip() {
    local missing=()
    "$PYTHON" -c 'import matplotlib' 2>/dev/null || missing+=(matplotlib)
    command -v py-spy >/dev/null 2>&1 || [ -x "$(dirname "$(command -v "$PYTHON")")/py-spy" ] \
        || missing+=(py-spy)
    "$PYTHON" -c 'import psutil' 2>/dev/null || missing+=(psutil)
    if [ ${#missing[@]} -gt 0 ]; then
        log "pip install ${missing[*]} (for $PYTHON)"
        "$PYTHON" -m pip install -q "${missing[@]}" >&2
    fi
}

stamp_text() {
    # What the build depends on: the source package version, the patch, configure flags.
    local patch_sum="none"
    [ -f "$PATCH" ] && patch_sum="$(sha256sum "$PATCH" | cut -d' ' -f1)"
    echo "fio-src=$(apt-cache policy fio 2>/dev/null | awk '/Candidate:/ {print $2}')" \
         "patch=$patch_sum configure=--disable-native --enable-libnfs"
}

ensure_fio() {
    local stamp="$PREFIX/.built"
    if [ -x "$PREFIX/bin/fio" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stamp_text)" ]; then
        return
    fi
    ensure_deb_src
    rm -rf "$SRC" "$PREFIX"
    mkdir -p "$SRC"
    log "apt-get source fio"
    (cd "$SRC" && apt-get source -qq fio >&2)
    local tree
    tree="$(find "$SRC" -mindepth 1 -maxdepth 1 -type d -name 'fio-*' | head -n 1)"
    [ -n "$tree" ] || { log "apt-get source fio produced no source tree"; exit 1; }
    if [ -f "$PATCH" ]; then
        log "applying $(basename "$PATCH")"
        patch -d "$tree" -p1 --forward < "$PATCH" >&2
    fi
    log "configure (libnfs engine)"
    (cd "$tree" && ./configure --disable-native --prefix="$PREFIX" --enable-libnfs) > "$SRC/configure.log" 2>&1
    if ! grep -qE '^NFS engine +yes' "$SRC/configure.log"; then
        log "configure did not enable the NFS engine; see $SRC/configure.log"; exit 1
    fi
    log "make -j$(nproc)"
    (cd "$tree" && make -j"$(nproc)" && make install) > "$SRC/make.log" 2>&1 \
        || { log "fio build failed; see $SRC/make.log"; tail -20 "$SRC/make.log" >&2; exit 1; }
    "$PREFIX/bin/fio" --enghelp | grep -qw nfs || { log "built fio has no nfs engine"; exit 1; }
    stamp_text > "$stamp"
    log "fio built: $("$PREFIX/bin/fio" --version)"
}

[ "$do_apt" = 1 ] && ensure_apt
[ "$do_pip" = 1 ] && ensure_pip
if [ "$do_fio" = 1 ]; then
    ensure_fio
    echo "$PREFIX/bin/fio"
fi
