#!/usr/bin/env bash
# Set up this project on a fresh Debian 12 machine, as root, unattended:
#   contrib/setup.sh          the server and its runtime needs
#   contrib/setup.sh --test   also what the test suite drives (real NFS clients, tshark,
#                             and for the benchmark smoke NFS-Ganesha and fio with libnfs)
# Everything lands in the repository's .venv; nothing else in the system Python changes.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

apt_packages=(rpcbind attr)
if [ "$want_tests" = 1 ]; then
    apt_packages+=(libnfs-utils nfs-common tshark procps)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$want_tests" = 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
else
    .venv/bin/python -m pip install -q -e .
fi
if [ "$want_tests" = 1 ]; then
    # the benchmark smoke in the suite: NFS-Ganesha, and fio built with its NFS engine (once)
    PYTHON="$PWD/.venv/bin/python" bash benchmarks/setup.sh >/dev/null
fi
mkdir -p /srv/gluster/export /var/log/glusterfs /run/gluster /etc/glusterfs
ln -sf "$PWD/.venv/bin/glusterfs" /usr/local/sbin/glusterfs
[ -e /etc/glusterfs/nfs.vol ] || cp contrib/nfs.vol /etc/glusterfs/nfs.vol
echo "setup done: $(.venv/bin/glusterfs --version)"
