"""Server definitions: our volfile (checked by our own volfile validator), Ganesha's
config rendering, URLs, and `rpcinfo -p` parsing. No server is started here."""
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.servers import (GANESHA_CONF_TEMPLATE, NFS_PORT, GaneshaServer, OursServer,
                                ServerError, parse_rpcinfo, render_ganesha_conf)

ROOT = Path(__file__).resolve().parents[2]

RPCINFO = """   program vers proto   port  service
    100000    4   tcp    111  portmapper
    100003    3   tcp   2049  nfs
    100005    3   tcp  38465  mountd
    100005    1   udp  38466  mountd
"""


def test_parse_rpcinfo():
    table = parse_rpcinfo(RPCINFO)
    assert table[(100005, 3, "tcp")] == 38465
    assert table[(100005, 1, "udp")] == 38466
    assert (100005, 3, "udp") not in table
    assert parse_rpcinfo("rpcinfo: can't contact portmapper\n") == {}


def test_our_volfile_passes_our_own_check(tmp_path):
    server = OursServer("ours", tmp_path / "export", tmp_path / "run")
    vol = tmp_path / "bench.vol"
    vol.write_text(server.volfile_text())
    result = subprocess.run([sys.executable, "-m", "glusterfsd", "--volfile-check", "-f", str(vol)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "transport.socket.bind-address 127.0.0.1" in server.volfile_text()


def test_urls_carry_both_ports(tmp_path):
    ours = OursServer("ours", tmp_path / "e", tmp_path / "r")
    ours.mount_port = 38465
    assert ours.url() == f"nfs://127.0.0.1/export/?nfsport={NFS_PORT}&mountport=38465"
    assert ours.url("big") == f"nfs://127.0.0.1/export/big/?nfsport={NFS_PORT}&mountport=38465"
    ganesha = GaneshaServer("ganesha", Path("/var/tmp/bench/ganesha"), tmp_path / "r")
    ganesha.mount_port = 40000
    assert ganesha.url().startswith("nfs://127.0.0.1/var/tmp/bench/ganesha/?")


def test_ganesha_conf_renders_every_placeholder(tmp_path):
    server = GaneshaServer("ganesha", tmp_path / "export", tmp_path / "run")
    text = server.config_text()
    assert "{" not in text.replace("NFS_CORE_PARAM {", "").replace("EXPORT {", "") \
        .replace("FSAL {", "").replace("LOG {", "")
    assert f"Path = {tmp_path / 'export'};" in text
    assert "NFS_Port = 2049;" in text and "Enable_NLM = false;" in text
    assert "Enable_RQUOTA = false;" in text and "Protocols = 3;" in text


def test_render_refuses_missing_and_unused_values():
    template = GANESHA_CONF_TEMPLATE.read_text()
    with pytest.raises(KeyError, match="nfs_port"):
        render_ganesha_conf(template, export_dir="/x")
    with pytest.raises(KeyError, match="bogus"):
        render_ganesha_conf(template, export_dir="/x", nfs_port="2049", bogus="1")


def test_pid_of_a_server_not_started_is_an_error(tmp_path):
    with pytest.raises(ServerError, match="not running"):
        _ = OursServer("ours", tmp_path / "e", tmp_path / "r").pid


def test_non_default_settings_are_listed(tmp_path):
    assert any("Squash" in s for s in GaneshaServer("g", tmp_path, tmp_path).non_default_settings())
    assert any("bind-address" in s for s in OursServer("o", tmp_path, tmp_path).non_default_settings())


def test_ours_options_reach_the_command_and_the_settings(tmp_path):
    server = OursServer("ours", tmp_path / "e", tmp_path / "r",
                        ours_options=["nfs-server.nfs.stage-threads=2"])
    server.workdir.mkdir(parents=True)
    server.prepare()
    command = server.command()
    at = command.index("--xlator-option")
    assert command[at + 1] == "nfs-server.nfs.stage-threads=2"
    assert any("stage-threads=2" in s for s in server.non_default_settings())
