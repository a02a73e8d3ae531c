"""Zero egress: the in-process guard refuses any outbound connection but loopback, unix sockets
and the configured networks (the unit's IPAddressDeny=any is the other line, for native code)."""
from __future__ import annotations

import subprocess
import sys

PROBE = r'''
import socket, sys
from appliance.services.egress import EgressRefused, install
g = install(sys.argv[1:])
def attempt(host, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        return "connected"
    except EgressRefused:
        return "refused-by-guard"
    except OSError as e:
        return "network:" + type(e).__name__
    finally:
        s.close()
def udp(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", (host, 53))
        return "sent"
    except EgressRefused:
        return "refused-by-guard"
    finally:
        s.close()
print(attempt("192.0.2.10", 443), attempt("8.8.8.8", 53), attempt("127.0.0.1", 9), attempt("::1", 9, socket.AF_INET6),
      attempt("10.20.30.40", 2575), udp("1.1.1.1"), g.refused)
'''


def run(*allowed: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *allowed], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_outbound_connections_are_refused_by_the_guard_loopback_is_not():
    internet, dns, lo4, lo6, his, udp, refused = run()
    assert internet == dns == his == udp == "refused-by-guard"
    assert lo4.startswith("network:") and lo6.startswith("network:")  # reached the kernel: nobody listens
    assert refused == "4"


def test_configured_peer_networks_are_allowed():
    internet, _dns, _lo4, _lo6, his, _udp, _refused = run("10.20.0.0/16")
    assert internet == "refused-by-guard" and his != "refused-by-guard"


def test_the_daemon_installs_the_guard_and_reports_it(daemon):
    import json

    r = subprocess.run([sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config), "status", "--json"],
                       capture_output=True, text=True, timeout=60)
    status = json.loads(r.stdout)
    assert status["egress_guard"]["in_process"].startswith("on:") and "0 refused" in status["egress_guard"]["in_process"]


def _netns_missing() -> str | None:
    import os
    import shutil

    if os.geteuid() != 0:
        return "needs root (ip netns)"
    if not shutil.which("ip") or not shutil.which("tcpdump"):
        return "ip (iproute2) or tcpdump not installed"
    r = subprocess.run(["ip", "netns", "add", "appl-probe"], capture_output=True)
    subprocess.run(["ip", "netns", "del", "appl-probe"], capture_output=True)
    return None if r.returncode == 0 else f"cannot create a network namespace: {r.stderr.decode().strip()}"


def test_a_full_pass_in_a_network_namespace_sends_nothing_but_loopback(state, tmp_path):
    """The daemon and a whole HL7 -> de-identification -> summary pass inside a namespace whose
    only way out is a veth to a second namespace (a default route, no real network), every
    interface captured: zero TCP/UDP packets to anything but loopback."""
    import os
    import secrets
    import time

    import pytest

    why = _netns_missing()
    if why:
        pytest.skip(why)
    from conftest import SAMPLE

    ns, peer = f"appl-{secrets.token_hex(3)}", f"applp-{secrets.token_hex(3)}"
    host_if, ns_if = f"va{secrets.token_hex(3)}", f"vb{secrets.token_hex(3)}"

    def sh(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    sh("ip", "netns", "add", ns)
    sh("ip", "netns", "add", peer)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", host_if, "netns", peer)
        sh("ip", "link", "set", ns_if, "netns", ns)
        for n, dev, addr in ((ns, ns_if, "10.99.0.2/24"), (peer, host_if, "10.99.0.1/24")):
            sh("ip", "netns", "exec", n, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", n, "ip", "addr", "add", addr, "dev", dev)
            sh("ip", "netns", "exec", n, "ip", "link", "set", dev, "up")
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", "10.99.0.1")
        pcap = tmp_path / "all.pcap"
        cap = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "any", "-n", "-U", "-w", str(pcap)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = (tmp_path / "d.log").open("w")
        daemon = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "appliance.daemon", "--config",
                                   str(state)], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            ctl = ["ip", "netns", "exec", ns, sys.executable, "-m", "appliance.cli.main", "--config", str(state)]
            deadline = time.monotonic() + 90
            doc = None
            while time.monotonic() < deadline:
                r = subprocess.run([*ctl, "submit", str(SAMPLE)], capture_output=True, text=True, timeout=60)
                if r.returncode == 0:
                    doc = r.stdout.strip()
                    break
                time.sleep(1)
            assert doc, (tmp_path / "d.log").read_text()[-2000:]
            r = subprocess.run([*ctl, "summary", doc, "--follow"], capture_output=True, text=True, timeout=600)
            assert "IMPRESSION" in r.stdout, r.stderr
        finally:
            daemon.terminate()
            daemon.wait(60)
            time.sleep(1)
            cap.terminate()
            cap.wait(30)
        dump = subprocess.run(["tcpdump", "-n", "-r", str(pcap), "tcp or udp"], capture_output=True, text=True,
                              timeout=60).stdout.splitlines()
        assert dump, "the capture saw nothing: the loopback traffic of the pass should be in it"
        outside = [line for line in dump if not all(a.startswith(("127.", "::1")) for a in
                                                    __import__("re").findall(r"(?:IP6?) (\S+) > (\S+):", line)[0])]
        assert not outside, outside[:5]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", peer], capture_output=True)
