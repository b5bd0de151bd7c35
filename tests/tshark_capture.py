"""Capture test traffic with tshark and read it back decoded (a decoder we did not write)."""
import os
import signal
import subprocess
import time

import pytest


class Capture:
    """tshark on lo for the given ports, stopped by its pid."""

    def __init__(self, path, ports, probe):
        """`probe()` makes traffic on one of `ports`; it is repeated until frames land."""
        self.path = str(path)
        expr = " or ".join(f"port {p}" for p in ports)
        self.proc = subprocess.Popen(["tshark", "-i", "lo", "-f", expr, "-w", self.path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            seen += line
            if "Capturing on" in line:
                break
            if not line and self.proc.poll() is not None:
                deadline = 0
        else:
            deadline = 0
        # "Capturing on" comes before dumpcap really captures: wait for a probe to land
        empty = None
        while time.monotonic() < deadline:
            size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
            if empty is None and size:
                empty = size
            elif empty is not None and size > empty:
                return
            probe()
            time.sleep(0.1)
        self.stop()
        pytest.skip(f"tshark did not start capturing: {seen.strip()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            time.sleep(0.5)                        # let the last frames reach the file
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()

    def read(self, display_filter: str, tcp_ports=(), udp_ports=()) -> list[str]:
        cmd = ["tshark", "-r", self.path, "-o", "tcp.try_heuristic_first:TRUE"]
        for port in tcp_ports:
            cmd += ["-d", f"tcp.port=={port},rpc"]
        for port in udp_ports:
            cmd += ["-d", f"udp.port=={port},rpc"]
        out = subprocess.run(cmd + ["-Y", display_filter], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return [line for line in out.stdout.splitlines() if line.strip()]
