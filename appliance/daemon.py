"""applianced: wires store, model, intake and the gRPC server from one config file."""
from __future__ import annotations

import argparse
import grp
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import __version__, crash, sd
from .api.dicom import DicomServer
from .api.access import AccessPolicy, TicketServer, ticket_path
from .api.activation import assign, stale
from .api.errors import ErrorInterceptor
from .api.metrics import MetricsServer
from .api.mllp import MllpServer
from .api.servicer import ApplianceServicer
from .api.transport import add_server_port, add_unix_port, server_credentials, state_path
from .version import package_version
from .config import DEFAULT_CONFIG_PATH, Config, load_config
from .errors import ApplianceError, StoreKeyError
from .ingest.hl7.validate import known_segments
from .llm.engine import Engine, open_engine
from .llm.prompt import site_examples
from .llm.integrity import verify_model
from .llm.worker import SummaryHub, SummaryWorker
from .services.commit import CommitQueue
from .services.core import Core
from .services.deid_stage import DeidStage
from .services.intake import IntakeService
from .services import egress
from .services.retention import RetentionTask
from .services.status import Metric, Parts, collect
from .store import Store, open_store
from .store.lifecycle import check
from .store.keys import read_key
from .store.custody import describe as describe_custody, running_custody
from .store.lock import StateLock
from .v1 import appliance_pb2 as pb
from .v1 import appliance_pb2_grpc as pb_grpc

log = logging.getLogger("appliance.daemon")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Appliance"].full_name
TLS_SOCKET = "grpc-tls.sock"  # beside grpc.unix_socket; appliance-grpc.service forwards the TCP port to it


class Daemon:
    def __init__(self, cfg: Config, config_file: Path | str = "the config file") -> None:
        self.cfg = cfg
        self.config_file = config_file
        self.activated: dict[str, socket.socket] = {}  # listeners on sockets systemd passed
        self.tls_socket: Path | None = None  # gRPC TLS for the TCP port's proxy, under socket activation
        self.health = health.HealthServicer()
        self.hub = SummaryHub()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.worker: SummaryWorker | None = None
        self.intake: IntakeService | None = None
        self.grpc_port = 0
        self.mllp_port = 0
        self.mllp: MllpServer | None = None
        self.dicom_port = 0
        self.dicom: DicomServer | None = None
        self.metrics_port = 0
        self.unix_socket: Path | None = None
        self.metrics: MetricsServer | None = None
        self._started = time.monotonic()
        self._lock = StateLock(cfg.state_dir, "applianced")
        self.commits: CommitQueue | None = None
        self.deid_stage: DeidStage | None = None
        self.retention: RetentionTask | None = None
        self.egress: egress.EgressGuard | None = None
        self._server: grpc.Server | None = None
        self.tickets: TicketServer | None = None
        self.access: AccessPolicy | None = None
        self.servicer: ApplianceServicer | None = None
        self.core: Core | None = None  # the use cases, once the store is open and the model loaded
        self._watchdog = sd.Watchdog(self._healthy)

    def _pace(self) -> float:
        """Seconds per summary written since start (0.0 before the first): the queue's estimate."""
        w = self.worker
        return w.generation_seconds / w.completed if w is not None and w.completed else 0.0

    def status(self) -> dict[str, object]:
        """What `appliancectl status` shows: counts, ages, addresses, never content."""
        cfg, store = self.cfg, self.store
        if store is None or self.engine is None:
            raise RuntimeError("status asked before the store and the model are open")
        info = self.engine.info
        oldest = store.oldest_pending_ms()
        pending: dict[str, int] = {}
        for priority, n in store.pending_by_priority().items():  # requested (and corrections) before arrivals
            kind = "requested" if priority > 0 else "on_arrival"
            pending[kind] = pending.get(kind, 0) + n
        files = [cfg.store.path, Path(str(cfg.store.path) + "-wal")]
        cred = os.environ.get("CREDENTIALS_DIRECTORY")
        key_source = Path(cred) / cfg.store.key_file.name if cred and (Path(cred) / cfg.store.key_file.name).exists() \
            else cfg.store.key_file
        rotated = store.last_audit_ms("store.key_rotated")
        key_since = rotated / 1000 if rotated else (key_source.stat().st_mtime if key_source.exists() else None)
        source = "systemd credential" if cred and key_source.parent == Path(cred) else "key file"
        custody_word = running_custody(source)
        quant = re.search(r"(?i)(q\d(?:_[a-z0-9]+)*|f16|bf16|f32)", cfg.model.path.name)
        r = self.retention
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started),
            "model": {"file": str(cfg.model.path), "sha256": cfg.model.sha256,
                      "quantisation": quant.group(1) if quant else "",
                      "device": info.device, "device_reason": info.device_reason, "gpu_layers": info.gpu_layers,
                      "threads": cfg.model.n_threads},
            "queue": {"jobs_by_state": store.gauges()["jobs"],
                      "pending_by_priority": pending,
                      "oldest_pending_age_s": round(time.time() - oldest / 1000) if oldest else None},
            "documents_by_status": store.gauges()["documents"],
            "dead_letters_open": sum(store.gauges()["dead_letters"].values()),
            "retention": {"days": cfg.retention.days, "audit_days": cfg.retention.audit_days,
                          "last_run_unix": round(r.last_run_unix) if r and r.last_run_unix else None,
                          "last_purged": r.last.__dict__ if r and r.last else None},
            "store": {"path": str(cfg.store.path), "bytes": sum(f.stat().st_size for f in files if f.exists())},
            "key": {"source": source,
                    "custody": custody_word, "custody_means": describe_custody(custody_word),
                    "age_days": round((time.time() - key_since) / 86400, 1) if key_since else None},
            "listeners": {"grpc": (f"{cfg.grpc.host}:{self.grpc_port}" if not self.activated else
                                   f"appliance-grpc.socket {cfg.grpc.host}:{cfg.grpc.port}, "
                                   f"TLS ending at {self.tls_socket}"
                                   if self.tls_socket else "off (TCP): under socket activation gRPC over TCP needs "
                                   "grpc.tls_cert_file; local clients use the unix socket"),
                          "socket_activation": sorted(self.activated),
                          "unix_socket": str(self.unix_socket) if self.unix_socket else "",
                          "mllp": f"{cfg.mllp.host}:{self.mllp_port}" if self.mllp else "off",
                          "dicom": f"{cfg.dicom.host}:{self.dicom_port}" if self.dicom else "off",
                          "metrics": f"{cfg.metrics.host}:{self.metrics_port}" if self.metrics else "off"},
            # Outbound traffic is impossible under the unit (no network of its own); outside
            # systemd nothing but the daemon's own code stands guard, and status says so.
            "egress_guard": {"in_process": f"on: loopback, unix sockets and {list(cfg.egress.allowed) or 'no other'} "
                                           f"networks; {self.egress.refused if self.egress else 0} refused",
                             "unit": ("PrivateNetwork=yes, no AF_INET: the ports are appliance.socket's"
                                      if self.activated else "IPAddressDeny=any, loopback allowed")
                             if os.environ.get("INVOCATION_ID") else "not running under the systemd unit"},
        }

    def _run_dir(self) -> Path:
        cfg = self.cfg
        return state_path(cfg.state_dir, cfg.grpc.unix_socket).parent if cfg.grpc.unix_socket else cfg.state_dir / "run"

    def _healthy(self) -> bool:
        return bool(self.worker and self.worker._thread.is_alive() and self.store)

    def start(self) -> None:
        cfg = self.cfg
        passed = sd.listen_sockets()
        self.activated = assign(cfg, passed, self.config_file)
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Health answers (NOT_SERVING) while the slow parts load.
        self.tickets = None
        if cfg.grpc.unix_socket:
            sock = state_path(cfg.state_dir, cfg.grpc.unix_socket)
            sock.parent.mkdir(parents=True, exist_ok=True)
            self.tickets = TicketServer(ticket_path(sock), cfg.grpc.unix_socket_mode, cfg.access)
            if cfg.grpc.unix_socket_group:
                self.tickets.chown_group(grp.getgrnam(cfg.grpc.unix_socket_group).gr_gid)
            self.tickets.start()
        self.access = AccessPolicy(cfg.access, self.tickets,
                                   lambda *a: self.store.audit(*a) if self.store is not None else None)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=cfg.grpc.threads, thread_name_prefix="grpc"),
                                   maximum_concurrent_rpcs=cfg.grpc.max_concurrent_rpcs,
                                   interceptors=[ErrorInterceptor(self.access)],
                                   options=[("grpc.max_receive_message_length", cfg.grpc.max_message_bytes),
                                            ("grpc.max_send_message_length", cfg.grpc.max_message_bytes)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server)
        self.servicer = ApplianceServicer()
        pb_grpc.add_ApplianceServicer_to_server(self.servicer, self._server)
        if not passed:
            self.grpc_port = add_server_port(self._server, cfg.grpc, cfg.state_dir)
        elif cfg.grpc.tls_cert_file:
            # Socket activation: no network of our own, so gRPC over TCP arrives through
            # appliance-grpc.socket and systemd-socket-proxyd, still TLS, ending here.
            self.tls_socket = add_unix_port(self._server, self._run_dir() / TLS_SOCKET, 0o600,
                                            creds=server_credentials(cfg.grpc, cfg.state_dir))
        if cfg.grpc.unix_socket:
            self.unix_socket = add_unix_port(self._server, state_path(cfg.state_dir, cfg.grpc.unix_socket),
                                             cfg.grpc.unix_socket_mode,
                                             cfg.grpc.unix_socket_group)
        self._server.start()

        self.egress = egress.install(cfg.egress.allowed)
        self._lock.acquire()  # before the store: one daemon per database
        self.store = open_store(cfg.store.path, cfg.store.key_file, cfg.store.audit_key_file,
                                memory_security=cfg.store.memory_security)
        problems = check(self.store, full=False)  # the fast check; `appliancectl check` runs the full one
        if problems:
            raise StoreKeyError(f"store {cfg.store.path} fails its quick integrity check ({problems[0]}); "
                                "run `appliancectl check`, and restore the last backup if it agrees")
        deid_secret = read_key(cfg.deid.secret_file, "deid")
        digest = verify_model(cfg.model.path, cfg.model.sha256)
        self.engine = open_engine(cfg.model, digest)
        self.commits = CommitQueue()
        self.commits.start()
        # Callbacks look the stages up when they fire, so construction order does not matter.
        self.intake = IntakeService(self.store, deid_secret, commit_queue=self.commits,
                                    on_document=lambda _id: self._wake())
        self.intake.warm()
        self.worker = SummaryWorker(self.store, self.engine, cfg.model, self.hub, busy=self.intake.busy,
                                    examples=site_examples(cfg.state_dir))
        self.deid_stage = DeidStage(self.store, deid_secret, on_ready=lambda _id: self._wake(deid=False),
                                    busy=self.intake.busy, time_budget_s=cfg.deid.time_budget_s)
        self.deid_stage.start()
        self.retention = RetentionTask(self.store, cfg.retention)
        self.core = Core(self.store, self.intake, self.hub, self.worker.notify, self.worker.cancel,
                         cfg.model.max_requested, cfg.model.summarize_on_arrival, status=self.status,
                         backups_dir=cfg.store.backup_dir, max_followers=cfg.grpc.max_followers, pace=self._pace)
        self.servicer.attach(self.core)
        if cfg.mllp.enabled:
            # hl7apy's segment tables load in about 0.3 s: before the port opens, not on the
            # event loop while the first sender (and every other connection) waits for an ACK.
            known_segments()
            self.mllp = MllpServer(cfg.mllp, self.intake, sock=self.activated.get("mllp"), state_dir=cfg.state_dir)
            self.mllp_port = self.mllp.start()
        if cfg.dicom.enabled:
            self.dicom = DicomServer(cfg.dicom, self.intake, cfg.state_dir, sock=self.activated.get("dicom"))
            self.dicom_port = self.dicom.start()
        if cfg.metrics.enabled:
            self.metrics = MetricsServer(cfg.metrics, self._collect, sock=self.activated.get("metrics"))
            self.metrics_port = self.metrics.start()
        self.worker.start()
        self.retention.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._write_runtime()
        info = self.engine.info
        where = self._addresses()
        sd.notify(f"READY=1\nSTATUS=serving {where} device={info.device} ({info.device_reason})")
        self._watchdog.start()
        log.info("ready %s device=%s model=%s", where, self.engine.info.device, self.engine.info.name)

    def _wake(self, deid: bool = True) -> None:
        """A document arrived (or was de-identified): the stages that take it look now."""
        if deid and self.deid_stage is not None:
            self.deid_stage.notify()
        if self.worker is not None:
            self.worker.notify()

    def _addresses(self) -> str:
        """Where each listener is, as an operator would connect: under socket activation gRPC
        over TCP is appliance-grpc.socket's (or off) and local clients use the unix socket."""
        cfg = self.cfg
        if not self.activated:
            grpc_at = f"{cfg.grpc.host}:{self.grpc_port}"
        elif self.tls_socket:
            grpc_at = f"{cfg.grpc.host}:{cfg.grpc.port}(tls,socket)"
        else:
            grpc_at = f"unix:{self.unix_socket}" if self.unix_socket else "off"
        parts = [f"grpc={grpc_at}"]
        for name, server, host, port in (("mllp", self.mllp, cfg.mllp.host, self.mllp_port),
                                         ("dicom", self.dicom, cfg.dicom.host, self.dicom_port)):
            parts.append(f"{name}={host}:{port}" if server else f"{name}=off")
        return " ".join(parts)

    def _collect(self) -> list[Metric]:
        return collect(Parts(started=self._started, intake=self.intake, worker=self.worker,
                             deid_stage=self.deid_stage, commits=self.commits, store=self.store,
                             engine=self.engine, mllp=self.mllp, dicom=self.dicom, egress=self.egress,
                             access=self.access))

    def _write_runtime(self) -> None:
        run = self.cfg.state_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        (run / "ports.json").write_text(json.dumps({"grpc": self.grpc_port, "mllp": self.mllp_port,
                                                     "dicom": self.dicom_port, "metrics": self.metrics_port}))

    def stop(self) -> None:
        """Safe after a start that failed at any step: each part is stopped only if it exists, and
        one part's failure to stop does not keep the others (the store's close above all) from it."""
        sd.notify("STOPPING=1")
        server = self._server

        def unlink_sockets() -> None:
            for path in (self.unix_socket, self.tls_socket):
                if path is not None:
                    path.unlink(missing_ok=True)

        def not_serving() -> None:
            for n in ("", SERVICE_NAME):
                self.health.set(n, health_pb2.HealthCheckResponse.NOT_SERVING)

        def of(part: object | None, method: str = "stop") -> Callable[[], object] | None:
            """How `part` stops, or None when it never started."""
            return getattr(part, method) if part is not None else None

        steps: list[tuple[str, Callable[[], object] | None]] = [
            ("watchdog", self._watchdog.stop), ("health", not_serving),
            ("mllp", of(self.mllp)), ("dicom", of(self.dicom)), ("metrics", of(self.metrics)),
            ("grpc", (lambda: server.stop(grace=5).wait()) if server is not None else None),
            ("sockets", unlink_sockets), ("tickets", of(self.tickets)), ("retention", of(self.retention)),
            ("commits", of(self.commits)), ("deid", of(self.deid_stage)), ("worker", of(self.worker)),
            ("engine", of(self.engine, "close")), ("store", of(self.store, "close")),
            ("lock", self._lock.release)]
        failed = []
        for name, step in steps:
            if step is None:
                continue
            try:
                step()
            # keep stopping the rest; the type names the fault, never content
            except Exception as e:  # noqa: BLE001
                failed.append(f"{name} ({type(e).__name__})")
        if failed:
            log.warning("stopped; these parts failed to stop cleanly: %s", ", ".join(failed))
        else:
            log.info("stopped cleanly")


def check_config(path: Path, sockets: bool = True) -> int:
    """What the package's postinst and IT ask before a start: is the file valid (ports included:
    no two listeners on one), is the model the pinned one, and (`sockets`) do the ports systemd
    holds match the file? Keys are not checked: they reach only the service, as credentials.
    Exit 0 valid, 2 invalid, 3 valid but not in effect."""
    try:
        cfg = load_config(path)
        verify_model(cfg.model.path, cfg.model.sha256)
    except (ApplianceError, OSError) as e:
        print(f"applianced: {path} is not valid: {e}", file=sys.stderr)
        return 2
    for section, peers in (("mllp", cfg.mllp), ("dicom", cfg.dicom), ("metrics", cfg.metrics)):
        if peers.enabled and not peers.allowed_peers:
            print(f"applianced: note: {section}.allowed_peers is empty in {path}: the {section.upper()} port "
                  "refuses every connection until it names a sender", file=sys.stderr)
    behind = stale(cfg) if sockets else []
    if behind:
        print(f"applianced: {path} is valid, but the ports systemd holds are from an older version of it "
              f"({', '.join(behind)} differ); put it in effect with `appliancectl apply-config` (as root)",
              file=sys.stderr)
        return 3
    print(f"{path}: valid; model {cfg.model.path} matches its pinned SHA-256")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="applianced", description="Run the appliance daemon in the foreground: HL7 v2 "
                                 "(MLLP) and DICOM intake, de-identification, local LLM summaries, gRPC. Under "
                                 "systemd it is appliance.service; see appliancectl(8) for the administrator's tool.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="TOML config file")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--check-config", action="store_true",
                    help="check the config file, the pinned model and the ports systemd holds, then exit "
                         "(0: valid; 2: invalid; 3: valid but not in effect: run appliancectl apply-config)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Every file the daemon makes (the database, its WAL and shared memory, backups, exports) is
    # the service user's alone, whatever umask it was started under; sockets set their own mode.
    os.umask(0o077)
    if args.check_config:
        return check_config(args.config)
    root = logging.getLogger()
    root.addHandler(sd.log_handler())
    root.setLevel(args.log_level.upper())
    crash.install()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    daemon: Daemon | None = None
    try:
        cfg = load_config(args.config)
        daemon = Daemon(cfg, args.config)
        daemon.start()
    except (ApplianceError, OSError) as e:
        print(f"applianced: cannot start: {e}", file=sys.stderr)
        if daemon is not None:
            daemon.stop()
        return 2
    # not a fault the code foresaw: name its type (its text could hold anything)
    except Exception as e:  # noqa: BLE001
        print(f"applianced: cannot start: unexpected {type(e).__name__} while starting; run "
              f"`applianced --check-config` and see the lines above", file=sys.stderr)
        if daemon is not None:
            daemon.stop()
        return 1
    stop.wait()
    daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
