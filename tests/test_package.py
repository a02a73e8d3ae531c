"""The .deb under a real systemd: build the packages, boot Debian 12 with systemd as PID 1
(mmdebstrap + systemd-nspawn, ../shared/SYSTEMD-TESTING.md), `apt install` them, run the service
with every hardening line as shipped, use it over its unix socket, keep it up two minutes, then
remove (state kept) and purge (state gone).

Needs root, network to a Debian mirror (for the root file system) and a kernel that lets
systemd-nspawn boot; skipped with the reason where the machine cannot. Takes about five minutes."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOT_PACKAGES = "systemd,systemd-sysv,dbus,python3,libgomp1,adduser,ca-certificates"
MODEL = "smollm2-135m"  # the smallest model package: the service, not the model, is under test
PATIENT = ("Whitaker", "Eleanor", "MRN4471902", "Birchwood", "Rachel")  # the sample report's PID; MLLP_SEND's
UPTIME_S = 120


# Sends one HL7 ADT over MLLP to 127.0.0.1:PORT inside the container and prints the ACK, with
# the tests' own client (copied beside it into the container).
MLLP_SEND = """import sys
from mllp_client import MllpClient
port, cid = int(sys.argv[1]), sys.argv[2]
msg = ("MSH|^~\\\\&|HIS|H|APP|A|20261201120000||ADT^A01|" + cid + "|P|2.5\\rEVN|A01|20261201120000\\r"
       "PID|1||" + cid + "^^^H^MR||Roe^Rachel||19600101|F\\r")
client = MllpClient(port, timeout=240)
print((client.request(msg.encode()) or b"").decode().replace("\\r", "\\n"))
"""


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mmdebstrap, systemd-nspawn)"
    for tool in ("mmdebstrap", "systemd-nspawn", "nsenter", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt install mmdebstrap systemd-container)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


class Container:
    """A booted Debian 12 whose PID 1 is systemd."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(root), "--boot", "--register=no", "--keep-unit", "--private-network",
             "--console=read-only"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.leader = self._leader()

    def _leader(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}")
            kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
            if kids:
                return int(kids[0])
            time.sleep(0.2)
        raise RuntimeError("the container's PID 1 did not appear in 60 s")

    def sh(self, script: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", "/bin/sh", "-c", script],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"in the container: {script}\nrc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks systemd to halt
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("debs")
    env = {**os.environ, "OUT": str(out), "MODELS": MODEL}
    r = subprocess.run([str(ROOT / "packaging" / "build-deb.sh")], env=env, capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return sorted(out.glob("*.deb"))


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian 12 with systemd; cached under build/ between runs (it is only the distribution)."""
    cached = ROOT / "build" / "nspawn-bookworm"
    stamp = cached / "root" / ".appliance-test-packages"
    if not stamp.exists() or stamp.read_text() != BOOT_PACKAGES:
        shutil.rmtree(cached, ignore_errors=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mmdebstrap", "--variant=important", f"--include={BOOT_PACKAGES}", "bookworm",
                            str(cached)], capture_output=True, text=True, timeout=1200)
        if r.returncode != 0:
            shutil.rmtree(cached, ignore_errors=True)
            pytest.skip(f"mmdebstrap could not build a Debian 12 root (no mirror?): {r.stderr[-500:]}")
        stamp.write_text(BOOT_PACKAGES)
    root = tmp_path_factory.mktemp("nspawn") / "root"
    subprocess.run(["cp", "-a", str(cached), str(root)], check=True)
    return root


def test_deb_installs_and_runs_under_real_systemd(debs: list[Path], rootfs: Path) -> None:
    names = [d.name for d in debs]
    assert any(n.startswith("appliance_") and n.endswith("_amd64.deb") for n in names), names
    assert any(n.startswith(f"appliance-model-{MODEL}_") for n in names), names
    assert any(n.startswith("appliance-client_") for n in names), names
    (rootfs / "root" / "debs").mkdir()
    for d in debs:
        shutil.copy(d, rootfs / "root" / "debs" / d.name)
    try:
        box = Container(rootfs)
    except RuntimeError as e:
        pytest.skip(f"this machine cannot boot a container with systemd-nspawn: {e}")
    try:
        box.sh("systemctl is-system-running --wait || true", timeout=120)

        # Install: the config names the default model, which is not installed here, so the service
        # is enabled but not started, and postinst says why.
        r = box.sh("cd /root/debs && DEBIAN_FRONTEND=noninteractive apt-get install -y ./appliance_*.deb "
                   f"./appliance-model-{MODEL}_*.deb 2>&1")
        assert "NOT started" in r.stdout and "model.path" in r.stdout, r.stdout[-2000:]
        assert box.sh("systemctl is-enabled appliance").stdout.strip() == "enabled"
        assert box.sh("systemctl is-active appliance", check=False).stdout.strip() == "inactive"
        creds = box.sh("ls /etc/appliance/credentials").stdout.split()
        assert sorted(creds) == ["audit.key.cred", "db.key.cred", "deid.key.cred"], creds  # encrypted
        assert box.sh("stat -c %a /etc/appliance/credentials").stdout.strip() == "700"
        # Encrypted: the file is not the 64 hex digits of a key.
        assert box.sh("grep -qE '^[0-9a-f]{64}$' /etc/appliance/credentials/db.key.cred", check=False).returncode != 0
        # No build tree, test or corpus in the package.
        listing = box.sh("dpkg -L appliance").stdout
        assert "/tests/" not in listing and "corpora" not in listing and "/build/" not in listing

        # What IT does: point the one config file at the installed model, check it, start.
        box.sh("""f=$(ls /usr/share/appliance/models/*.gguf); sha=$(cut -d' ' -f1 "$f.sha256")
sed -i "s|^path = \\"/usr/share/appliance/models/.*\\"|path = \\"$f\\"|; s|^sha256 = .*|sha256 = \\"$sha\\"|" \
  /etc/appliance/appliance.toml
applianced --check-config""")
        started = time.monotonic()
        r = box.sh("systemctl start appliance", timeout=600, check=False)  # Type=notify: returns after READY=1
        assert r.returncode == 0, box.sh("journalctl -u appliance --no-pager -o cat | tail -40").stdout
        status = box.sh("systemctl show appliance -p ActiveState -p SubState -p StatusText").stdout
        assert "ActiveState=active" in status and "SubState=running" in status, status
        assert "device=cpu" in status

        # The sample report over the unix socket, its summary streamed from the model.
        sample = "/opt/appliance/venv/lib/python3.11/site-packages/appliance/samples/oru_r01_ct_chest.hl7"
        doc = box.sh(f"appliancectl submit {sample}", timeout=120).stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{32}", doc), doc
        summary = box.sh(f"appliancectl summary {doc} --follow", timeout=300).stdout
        assert "IMPRESSION" in summary and "nodule" in summary.lower(), summary
        assert box.sh("stat -c %G:%a /run/appliance/appliance.sock").stdout.strip() == "appliance:660"

        # HL7 over MLLP on the port systemd holds (socket activation: the daemon has no network of
        # its own), the address written from the config file by appliance-generator.
        assert box.sh("systemctl is-active appliance.socket").stdout.strip() == "active"
        listen = box.sh("cat /run/systemd/generator/appliance.socket.d/50-listen.conf").stdout
        assert "ListenStream=127.0.0.1:2575" in listen, listen
        (rootfs / "root" / "mllp.py").write_text(MLLP_SEND)
        shutil.copy(Path(__file__).parent / "mllp_client.py", rootfs / "root" / "mllp_client.py")
        ack = box.sh("/opt/appliance/venv/bin/python3 /root/mllp.py 2575 PKG-1", timeout=120).stdout
        assert "MSA|AA|PKG-1" in ack, ack
        assert box.sh("systemctl show appliance -p NRestarts").stdout.strip() == "NRestarts=0"

        # Two minutes up: no restart, no seccomp kill, the watchdog fed.
        time.sleep(max(0.0, UPTIME_S - (time.monotonic() - started)))
        shown = box.sh("systemctl show appliance -p NRestarts -p ActiveState -p ExecMainStatus").stdout
        assert "NRestarts=0" in shown and "ActiveState=active" in shown, shown
        journal = box.sh("journalctl -u appliance --no-pager -o cat").stdout
        assert "status=31/SYS" not in journal and "Watchdog timeout" not in journal, journal[-2000:]
        assert "ready grpc=" in journal
        for word in PATIENT:
            assert word not in journal, f"PHI ({word}) in the journal"

        # Killed, the daemon is restarted by systemd; a message sent meanwhile waits in the socket's
        # queue (the port never closes) and is acknowledged by the new daemon.
        box.sh("systemctl kill -s KILL appliance")
        ack = box.sh("/opt/appliance/venv/bin/python3 /root/mllp.py 2575 PKG-2", timeout=300).stdout
        assert "MSA|AA|PKG-2" in ack, ack
        assert box.sh("systemctl show appliance -p NRestarts").stdout.strip() == "NRestarts=1"

        # An upgrade (here: the same version again) restarts the service and keeps the data.
        before = box.sh("appliancectl documents").stdout
        box.sh("cd /root/debs && DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall ./appliance_*.deb 2>&1")
        assert box.sh("systemctl is-active appliance").stdout.strip() == "active"
        assert doc in box.sh("appliancectl documents").stdout and before.count("\n") >= 1

        # Key rotation on the package's encrypted credentials: the sockets stopped too (a connection
        # would start the daemon), the data kept, the credential replaced, the daemon back on it.
        cred_before = box.sh("sha256sum /etc/appliance/credentials/db.key.cred").stdout.split()[0]
        r = box.sh("systemctl stop appliance.socket appliance && appliancectl rotate-key 2>&1 && "
                   "systemctl start appliance", timeout=300)
        assert "documents kept" in r.stdout, r.stdout
        assert box.sh("sha256sum /etc/appliance/credentials/db.key.cred").stdout.split()[0] != cred_before
        assert box.sh("ls /etc/appliance/credentials").stdout.split() == ["audit.key.cred", "db.key.cred",
                                                                          "deid.key.cred"]
        assert box.sh("stat -c %U /var/lib/appliance/appliance.db").stdout.strip() == "appliance"
        assert doc in box.sh("appliancectl documents").stdout

        # The installed unit's hardening, as systemd scores it.
        sec = box.sh("systemd-analyze security appliance.service --no-pager").stdout
        score = float(re.search(r"Overall exposure level for appliance.service: ([0-9.]+)", sec).group(1))
        print(f"installed unit exposure: {score}")
        assert score <= 1.0, sec
        assert box.sh("systemctl is-active appliance.socket appliance").stdout.split() == ["active", "active"]

        # remove keeps the encrypted database and its keys; purge deletes them.
        r = box.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y appliance 2>&1")
        assert "kept" in r.stdout
        assert box.sh("test -s /var/lib/appliance/appliance.db && ls /etc/appliance/credentials").stdout.split()
        assert box.sh("systemctl is-active appliance", check=False).stdout.strip() != "active"
        r = box.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y appliance 2>&1")
        assert "purge deletes" in r.stdout
        assert box.sh("test -e /var/lib/appliance || test -e /etc/appliance/credentials", check=False).returncode != 0
    finally:
        box.stop()


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed (apt install lintian)")
def test_lintian_finds_no_error(debs: list[Path]) -> None:
    """Zero errors; the warnings left are listed, with reasons, in the README."""
    r = subprocess.run(["lintian", "--allow-root", *map(str, debs)], capture_output=True, text=True, timeout=900)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors[:20])
