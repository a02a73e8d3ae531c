"""One TOML file -> frozen dataclasses. Every error names the file and the key.

Relative paths in the file are resolved against the file's own directory, so a
state directory made by `appliancectl init` can be moved as a whole."""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/appliance/appliance.toml")


@dataclass(frozen=True)
class GrpcConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_bytes: int = 16 * 1024 * 1024
    # Bounded serving: calls beyond max_concurrent_rpcs are answered RESOURCE_EXHAUSTED at once by
    # gRPC itself; `threads` serve them (a summary follower holds one while it streams).
    threads: int = 32
    max_concurrent_rpcs: int = 128
    # Summary followers waiting on the model hold a thread each (gRPC's synchronous server); at most
    # this many at once, so `threads - max_followers` always serve intake and reads.
    max_followers: int = 24
    # A unix socket for local clients (the desktop client): who may connect is decided by the
    # file's owner, group and mode. Relative paths are under state_dir; "" turns it off.
    unix_socket: str = ""
    unix_socket_mode: int = 0o660
    # The socket's group (e.g. appliance-clinicians), when it is not the daemon's own group: the
    # unit lists it in SupplementaryGroups= so the daemon may hand the socket to it.
    unix_socket_group: str = ""
    # TLS on the TCP port (PEM files; relative paths are under state_dir). With a client CA the
    # TCP port is mutual TLS: only clients holding a certificate that CA signed get in.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""


@dataclass(frozen=True)
class MllpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2575
    max_frame_bytes: int = 16 * 1024 * 1024
    # Connections are bounded: more than this at once are closed on arrival, and one peer (address)
    # holds at most max_connections_per_peer of them, so no sender can starve the others; one silent
    # this long is closed (engines reconnect); a frame begun and not finished within
    # frame_timeout_s in all (not per read: a byte a second does not keep it open) is dropped.
    max_connections: int = 32
    max_connections_per_peer: int = 8
    idle_timeout_s: int = 120
    frame_timeout_s: int = 60
    # Bytes held in unfinished frames by all connections together: past it, the connection whose
    # data would exceed it is answered AE (resend later) and closed, so 32 half-sent 16 MB frames
    # cannot hold 512 MB. A frame's messages beyond max_messages_per_frame are refused whole (AR).
    max_buffered_bytes: int = 64 * 1024 * 1024
    max_messages_per_frame: int = 1000
    # Who may connect: the interface engines' addresses or networks. Empty: no one, loopback
    # included (any local account reaches 127.0.0.1); a local test listener names "127.0.0.1".
    allowed_peers: tuple[str, ...] = ()
    # MLLP over TLS (PEM; relative paths under state_dir). With a client CA, a sender must also
    # hold a certificate it signed: the only check that tells one local account from another.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""


@dataclass(frozen=True)
class DicomConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 11112
    ae_title: str = "APPLIANCE"  # the Called AE Title a PACS must address
    calling_ae_titles: tuple[str, ...] = ()  # senders allowed to associate; empty: any
    allowed_peers: tuple[str, ...] = ()  # PACS addresses or networks; empty: no one (see MllpConfig)
    max_pdu_bytes: int = 1024 * 1024
    max_dataset_bytes: int = 64 * 1024 * 1024
    max_associations: int = 16
    max_associations_per_peer: int = 4  # one address's share of max_associations
    artim_timeout_s: int = 30  # from connect to a complete A-ASSOCIATE-RQ (DICOM's ARTIM timer)
    # TLS on the DICOM port (PEM; relative paths under state_dir). With a client CA, only PACS
    # nodes holding a certificate it signed may connect (the DICOM TLS profile, PS3.15 B.1).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    idle_timeout_s: int = 120  # between PDUs of an association


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464
    # The Prometheus server's address; empty: no one. Counts only, but how busy a ward's
    # reporting is, is still the hospital's to share.
    allowed_peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreConfig:
    path: Path = Path("appliance.db")
    key_file: Path = Path("db.key")
    audit_key_file: Path = Path("audit.key")  # the audit chain's MAC key; a credential when installed
    # Where `appliancectl backup` writes. The package sets /var/backups/appliance: outside the
    # state directory, so removing or purging the package never takes the backups with it.
    backup_dir: Path = Path("backups")
    # SQLCipher wipes the memory it frees and locks it against swap (cipher_memory_security).
    # Off by default: measured, it cuts commits about 6x (bench/store.py), and it covers only
    # SQLite's own buffers while report text also lives in Python's heap. The unit keeps the
    # whole service out of swap instead (MemorySwapMax=0) and writes no core (LimitCORE=0).
    memory_security: bool = False


@dataclass(frozen=True)
class ModelConfig:
    path: Path = Path("model.gguf")
    sha256: str = ""
    n_gpu_layers: int = -1  # -1: all layers when a GPU build finds a GPU; 0: CPU only
    n_ctx: int = 2048
    n_threads: int = 1  # measured: 1 thread holds speed while intake shares the CPU
    max_tokens: int = 192
    temperature: float = 0.0
    repeat_penalty: float = 1.15
    summarize_on_arrival: bool = True  # false: only when a clinician asks (StreamSummary)
    max_requested: int = 32  # clinicians' requests waiting at once; more get RESOURCE_EXHAUSTED
    max_attempts: int = 2  # a report whose generation fails (or crashes the daemon) this often is FAILED
    # Chronic findings of an otherwise normal study in the impression: "all" | "likely" | "none"
    # (a site's house style; measured trade-off in the README's Summaries section).
    chronic_in_impression: str = "all"


@dataclass(frozen=True)
class DeidConfig:
    secret_file: Path = Path("deid.key")
    # A document whose de-identification takes longer is failed with this reason, not retried
    # (measured: a 200,000-character report, the longest accepted, takes about 2 s here).
    time_budget_s: float = 30.0


@dataclass(frozen=True)
class RetentionConfig:
    # Documents, summaries, raw messages, dead letters and identifiers older than this are purged;
    # 0: a document goes as soon as its summary is done (nothing is kept after delivery).
    days: int = 30
    audit_days: int = 2190  # six years: HIPAA's retention of documentation
    interval_s: int = 3600  # how often the purge runs
    batch: int = 100  # documents per transaction: intake's commits interleave (measured in bench/store.py)


_ROLES = ("integration", "clinician", "admin")


@dataclass(frozen=True)
class AccessConfig:
    # Roles: integration (submit; read de-identified documents and summaries), clinician (read,
    # request summaries, re-identify), admin (status, erasure, backup, dead letters). Who has which:
    unix_users: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user name -> roles
    unix_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group name -> roles
    tls_subjects: dict[str, tuple[str, ...]] = field(default_factory=dict)  # cert subject, CN or SAN -> roles
    # Root and the daemon's own user (the operator of this machine) on the unix socket.
    owner_roles: tuple[str, ...] = _ROLES
    # Plaintext TCP is refused unless roles are named here (loopback development only).
    tcp_plaintext_roles: tuple[str, ...] = ()
    ticket_ttl_s: int = 43200
    # Per identity: calls per second allowed on average, and the burst above it; more are answered
    # RESOURCE_EXHAUSTED and counted (a stuck engine loop cannot starve everyone else).
    rate_per_s: float = 200.0
    rate_burst: int = 400


@dataclass(frozen=True)
class EgressConfig:
    # Networks the daemon may open a connection to, besides loopback (CIDRs, e.g. the HIS and
    # PACS subnets). The appliance only listens, so this is normally empty.
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    source: Path
    state_dir: Path
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    mllp: MllpConfig = field(default_factory=MllpConfig)
    dicom: DicomConfig = field(default_factory=DicomConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    deid: DeidConfig = field(default_factory=DeidConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    egress: EgressConfig = field(default_factory=EgressConfig)
    access: AccessConfig = field(default_factory=AccessConfig)


_SECTIONS = {"grpc": GrpcConfig, "mllp": MllpConfig, "dicom": DicomConfig, "metrics": MetricsConfig,
             "store": StoreConfig, "model": ModelConfig,
             "deid": DeidConfig, "retention": RetentionConfig, "egress": EgressConfig,
             "access": AccessConfig}


def _coerce_roles(path: Path, key: str, value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(path, key, 'must be a table such as { "alice" = ["clinician"] }')
    out = {}
    for name, roles in value.items():
        if not isinstance(roles, list) or not all(r in _ROLES for r in roles):
            raise ConfigError(path, f"{key}.{name}", f"must be a list of roles from {list(_ROLES)}, not {roles!r}")
        out[str(name)] = tuple(roles)
    return out


def _coerce_scalar(path: Path, key: str, value: Any, kind: type) -> Any:
    """bool, int and float are told apart strictly: TOML's true is not the integer 1 here."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, key, f"must be true or false, not {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, key, f"must be an integer, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, key, f"must be a number, not {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(path, key, f"must be a string, not {value!r}")
    return value


def _coerce(path: Path, key: str, value: Any, default: Any, base: Path) -> Any:
    if isinstance(default, dict):  # name -> roles
        return _coerce_roles(path, key, value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(path, key, "must be a list of non-empty strings, e.g. [\"PACS1\", \"PACS2\"]")
        return tuple(value)
    if isinstance(default, Path):
        if not isinstance(value, str) or not value:
            raise ConfigError(path, key, "must be a non-empty path string")
        p = Path(value)
        return p if p.is_absolute() else (base / p)
    return _coerce_scalar(path, key, value, type(default))


def _section(path: Path, name: str, raw: Any, cls: type, base: Path) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, name, "must be a table")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(path, f"{name}.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
    values = {}
    for f in fields(cls):
        default = getattr(defaults, f.name)
        if f.name in raw:
            values[f.name] = _coerce(path, f"{name}.{f.name}", raw[f.name], default, base)
        elif isinstance(default, Path):
            values[f.name] = base / default
        else:
            values[f.name] = default
    return cls(**values)


def _check_port_clashes(cfg: Config) -> None:
    """Two listeners on one port cannot both bind; under socket activation the second would be
    handed the first's socket. A wildcard host ("0.0.0.0", "::", "") clashes with every host."""
    seen: dict[int, tuple[str, str]] = {}
    wild = ("", "0.0.0.0", "::")  # noqa: S104 (compared against, never bound)
    for key, host, port, on in (("grpc.port", cfg.grpc.host, cfg.grpc.port, True),
                                ("mllp.port", cfg.mllp.host, cfg.mllp.port, cfg.mllp.enabled),
                                ("dicom.port", cfg.dicom.host, cfg.dicom.port, cfg.dicom.enabled),
                                ("metrics.port", cfg.metrics.host, cfg.metrics.port, cfg.metrics.enabled)):
        if not on or port == 0:
            continue
        if port in seen:
            other_key, other_host = seen[port]
            if host == other_host or host in wild or other_host in wild:
                raise ConfigError(cfg.source, key, f"port {port} is also {other_key}: each listener needs its own port")
        seen[port] = (key, host)


def _validate(cfg: Config) -> None:
    """Each group of keys is checked by its own function; the first error found is raised."""
    for check in (_validate_ports, _validate_model, _validate_limits, _validate_access, _validate_networks,
                  _validate_tls, _validate_retention, _validate_dicom):
        check(cfg, cfg.source)


def _validate_ports(cfg: Config, p: Path) -> None:
    for key, port in (("grpc.port", cfg.grpc.port), ("mllp.port", cfg.mllp.port), ("dicom.port", cfg.dicom.port),
                      ("metrics.port", cfg.metrics.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(p, key, f"must be 0..65535 (0 picks a free port), not {port}")
    _check_port_clashes(cfg)


def _validate_model(cfg: Config, p: Path) -> None:
    sha = cfg.model.sha256.lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ConfigError(p, "model.sha256", "must be the model file's 64-hex-digit SHA-256 "
                          "(`sha256sum FILE`); the daemon refuses an unpinned model")
    if cfg.model.chronic_in_impression not in ("all", "likely", "none"):
        raise ConfigError(p, "model.chronic_in_impression", 'must be "all", "likely" or "none"')
    if cfg.model.n_gpu_layers < -1:
        raise ConfigError(p, "model.n_gpu_layers", "must be -1 (all), 0 (CPU) or a layer count")
    if cfg.model.n_threads < 1:
        raise ConfigError(p, "model.n_threads", "must be at least 1")
    if not 64 <= cfg.model.max_tokens <= cfg.model.n_ctx:
        raise ConfigError(p, "model.max_tokens", f"must be 64..model.n_ctx ({cfg.model.n_ctx})")
    if not 0 < cfg.deid.time_budget_s <= 3600:
        raise ConfigError(p, "deid.time_budget_s", "must be more than 0 and at most 3600 seconds")


def _validate_limits(cfg: Config, p: Path) -> None:
    for key, value in (("mllp.max_connections", cfg.mllp.max_connections),
                       ("mllp.idle_timeout_s", cfg.mllp.idle_timeout_s),
                       ("mllp.max_connections_per_peer", cfg.mllp.max_connections_per_peer),
                       ("dicom.max_associations_per_peer", cfg.dicom.max_associations_per_peer),
                       ("mllp.frame_timeout_s", cfg.mllp.frame_timeout_s),
                       ("mllp.max_messages_per_frame", cfg.mllp.max_messages_per_frame),
                       ("dicom.max_associations", cfg.dicom.max_associations),
                       ("dicom.artim_timeout_s", cfg.dicom.artim_timeout_s),
                       ("dicom.idle_timeout_s", cfg.dicom.idle_timeout_s)):
        if value < 1:
            raise ConfigError(p, key, f"must be at least 1, not {value}")
    if not 1 <= cfg.grpc.max_followers < cfg.grpc.threads:
        raise ConfigError(p, "grpc.max_followers", f"must be at least 1 and below grpc.threads ({cfg.grpc.threads}), "
                          "so some threads always serve intake")
    if cfg.mllp.max_frame_bytes < 1024:
        raise ConfigError(p, "mllp.max_frame_bytes", "must be at least 1024")
    if cfg.mllp.max_buffered_bytes < cfg.mllp.max_frame_bytes:
        raise ConfigError(p, "mllp.max_buffered_bytes",
                          f"must be at least mllp.max_frame_bytes ({cfg.mllp.max_frame_bytes}), "
                          "or no frame of the largest size could ever arrive")


def _validate_access(cfg: Config, p: Path) -> None:
    for key, roles in (("access.owner_roles", cfg.access.owner_roles),
                       ("access.tcp_plaintext_roles", cfg.access.tcp_plaintext_roles)):
        if any(r not in _ROLES for r in roles):
            raise ConfigError(p, key, f"roles must be from {list(_ROLES)}, not {list(roles)}")
    if not 0 <= cfg.grpc.unix_socket_mode <= 0o777 or cfg.grpc.unix_socket_mode & 0o007:
        raise ConfigError(p, "grpc.unix_socket_mode", "must be a file mode such as 0o660 that gives "
                          "others no access (grant a group instead)")


def _validate_networks(cfg: Config, p: Path) -> None:
    for key, values in (("mllp.allowed_peers", cfg.mllp.allowed_peers),
                        ("dicom.allowed_peers", cfg.dicom.allowed_peers),
                        ("metrics.allowed_peers", cfg.metrics.allowed_peers)):
        for net in values:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(p, key, f"{net!r} is not an address or network (e.g. \"10.20.0.15\", "
                                  "\"10.20.0.0/24\", \"127.0.0.1\" for a local test sender)") from None
    for net in cfg.egress.allowed:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(p, "egress.allowed", f"{net!r} is not a network (e.g. \"10.20.0.0/16\")") from None


def _validate_tls(cfg: Config, p: Path) -> None:
    for section, tls, what in (("mllp", cfg.mllp, "MLLP TLS"), ("dicom", cfg.dicom, "DICOM TLS"),
                               ("grpc", cfg.grpc, "TLS")):
        if bool(tls.tls_cert_file) != bool(tls.tls_key_file):
            raise ConfigError(p, f"{section}.tls_key_file" if tls.tls_cert_file else f"{section}.tls_cert_file",
                              f"{what} needs both {section}.tls_cert_file and {section}.tls_key_file")
    for section, tls in (("mllp", cfg.mllp), ("dicom", cfg.dicom)):
        if tls.tls_client_ca_file and not tls.tls_cert_file:
            raise ConfigError(p, f"{section}.tls_client_ca_file", f"client certificates need the server's own "
                              f"{section}.tls_cert_file and {section}.tls_key_file too")
    if cfg.grpc.tls_client_ca_file and not cfg.grpc.tls_cert_file:
        raise ConfigError(p, "grpc.tls_client_ca_file", "mutual TLS needs the server's own "
                          "grpc.tls_cert_file and grpc.tls_key_file too")


def _validate_retention(cfg: Config, p: Path) -> None:
    if cfg.retention.days < 0 or cfg.retention.audit_days < 1:
        raise ConfigError(p, "retention.days" if cfg.retention.days < 0 else "retention.audit_days",
                          "must be 0 or more days (audit_days at least 1)")
    if cfg.retention.interval_s < 1 or cfg.retention.batch < 1:
        raise ConfigError(p, "retention.interval_s" if cfg.retention.interval_s < 1 else "retention.batch",
                          "must be at least 1")


def _validate_dicom(cfg: Config, p: Path) -> None:
    ae = cfg.dicom.ae_title
    if not 1 <= len(ae) <= 16 or not ae.isascii() or "\\" in ae or ae.strip() != ae or not ae.isprintable():
        raise ConfigError(p, "dicom.ae_title", "must be 1-16 printable ASCII characters, no backslash, "
                          "no leading or trailing space")
    if not 4096 <= cfg.dicom.max_pdu_bytes <= 16 * 1024 * 1024:
        raise ConfigError(p, "dicom.max_pdu_bytes", "must be 4096..16777216")


def load_config(path: Path | str) -> Config:
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "-", "config file not found; create one with "
                          "`appliancectl init --state-dir DIR`") from None
    except OSError as e:
        raise ConfigError(path, "-", f"cannot read config file: {e.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "-", f"not valid TOML: {e}") from None
    base = path.parent
    top_known = {"state_dir", *_SECTIONS}
    for key in raw:
        if key not in top_known:
            raise ConfigError(path, key, f"unknown key; known keys: {', '.join(sorted(top_known))}")
    state_dir = _coerce(path, "state_dir", raw.get("state_dir", "."), Path("."), base)
    sections = {name: _section(path, name, raw.get(name), cls, state_dir) for name, cls in _SECTIONS.items()}
    cfg = Config(source=path, state_dir=state_dir, **sections)
    _validate(cfg)
    return cfg
