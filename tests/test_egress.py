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
