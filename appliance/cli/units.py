"""The installed service's systemd units, for the administrator's commands that need the
database to themselves (restore, rotate-key, escrow recover) and for applying a config change.

The sockets stop first: a connection to a port systemd holds would start the daemon again in
the middle of the work. They start again afterwards, whatever happened, so a command leaves the
service as it found it."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import DEFAULT_CONFIG_PATH
from ..errors import ApplianceError

# Stop order: the sockets (no new activation), then the services. Start order: the reverse.
UNITS = ("appliance.socket", "appliance-grpc.socket", "appliance-grpc.service", "appliance.service")
STOP_HINT = "systemctl stop appliance.socket appliance-grpc.socket appliance.service"


def under_systemd() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemctl") or "/bin/systemctl"
    r = subprocess.run([tool, *args], capture_output=True, text=True, timeout=900)  # noqa: S603 (fixed verbs, unit names)
    if check and r.returncode != 0:
        raise ApplianceError(f"systemctl {' '.join(args)} failed: {r.stderr.strip()[-300:]}; "
                             "see journalctl -u appliance")
    return r


def active_units() -> list[str]:
    if not under_systemd():
        return []
    return [u for u in UNITS if _systemctl("is-active", "--quiet", u, check=False).returncode == 0]


def installed_service(config: Path) -> bool:
    """Is `config` the installed service's file (the one the units run), on a booted systemd?"""
    return under_systemd() and Path(config).resolve() == DEFAULT_CONFIG_PATH.resolve()


@contextmanager
def service_paused(config: Path, say: bool = True) -> Iterator[list[str]]:
    """The installed service stopped for the block and started again after it (the units that
    were active before). Elsewhere (a development state directory) it does nothing."""
    running = active_units() if installed_service(config) else []
    if running and os.geteuid() != 0:
        raise ApplianceError(f"the service is running ({', '.join(running)}); run this as root, which stops "
                             f"and restarts it, or stop it yourself: {STOP_HINT}")
    if running:
        if say:
            print(f"appliancectl: stopping {' '.join(running)} for the duration", flush=True)
        _systemctl("stop", *running)
    try:
        yield running
    finally:
        if running:
            # Sockets before the service: its unit takes their file descriptors at start.
            _systemctl("start", *[u for u in reversed(UNITS) if u in running and u.endswith(".socket")])
            services = [u for u in ("appliance.service", "appliance-grpc.service") if u in running]
            if services:
                _systemctl("start", *services)
            if say:
                print(f"appliancectl: started {' '.join(running)} again", flush=True)


def apply_config(config: Path) -> list[str]:
    """A changed config in effect: the generator re-run (daemon-reload: the sockets' addresses),
    the sockets re-bound with the service stopped (a socket unit refuses to restart while its
    service holds it), everything started. Returns what was done, for the operator."""
    if not installed_service(config):
        raise ApplianceError(f"{config} is not the installed service's config ({DEFAULT_CONFIG_PATH}) on a running "
                             "systemd; restart the daemon you started with it instead")
    if os.geteuid() != 0:
        raise ApplianceError("apply-config restarts the service's units: run it as root (sudo)")
    done = []
    _systemctl("daemon-reload")
    done.append("systemctl daemon-reload (appliance-generator wrote the ports from the config)")
    running = active_units()
    _systemctl("stop", *UNITS)
    done.append(f"systemctl stop {' '.join(UNITS)}")
    _systemctl("start", "appliance.socket", "appliance-grpc.socket")
    _systemctl("start", "appliance.service")
    done.append("systemctl start appliance.socket appliance-grpc.socket appliance.service")
    if running and "appliance.service" not in running:
        done.append("(the service was not running before; it is now)")
    return done
