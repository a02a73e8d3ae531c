"""Who is calling, and may they: identity per person, roles per RPC, in one interceptor.

Identity comes from what the transport proves, never from what the caller says:
- the unix socket: the kernel's peer credentials (SO_PEERCRED). gRPC does not expose them, so a
  small ticket socket beside the gRPC socket reads them, and hands the caller a random ticket
  bound to its uid; the caller sends it as `x-appliance-ticket` metadata (appliancectl and the
  desktop client do this themselves). The uid's user name and groups map to roles in config.
- TCP with mutual TLS: the client certificate's subject (or its CN, or a SAN) maps to roles.
- TCP without TLS: only when `access.tcp_plaintext_roles` names roles (loopback development).
Every refusal, and every read of a document or summary, is audited with the actor."""
from __future__ import annotations

from collections.abc import Callable

import contextvars
import grp
import logging
import os
import pwd
import secrets
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from ..config import AccessConfig
from ..errors import ApplianceError, PermissionDenied

log = logging.getLogger(__name__)

ROLES = ("integration", "clinician", "admin")
TICKET_HEADER = "x-appliance-ticket"

# The roles each RPC admits. Re-identification and the IT operations are also local-socket only.
RPC_ROLES: dict[str, frozenset[str]] = {
    "SubmitHL7": frozenset({"integration"}),
    "SubmitDICOM": frozenset({"integration"}),
    "GetDocument": frozenset({"integration", "clinician"}),
    "ListDocuments": frozenset({"integration", "clinician"}),
    "StreamSummary": frozenset({"integration", "clinician"}),
    "CancelSummary": frozenset({"integration", "clinician"}),
    "Reidentify": frozenset({"clinician"}),
    "ListDeadLetters": frozenset({"admin", "integration"}),
    "ResubmitDeadLetter": frozenset({"admin", "integration"}),
    "GetStatus": frozenset({"admin"}),
    "ErasePatient": frozenset({"admin"}),
    "Backup": frozenset({"admin"}),
    "CheckStore": frozenset({"admin"}),
    "WhoAmI": frozenset(ROLES),
    "VerifyAudit": frozenset({"admin"}),
    "ExportAudit": frozenset({"admin"}),
}
READS = {"GetDocument", "StreamSummary", "Reidentify", "ListDocuments"}


class Unauthenticated(ApplianceError):
    status = "UNAUTHENTICATED"


class RateLimited(ApplianceError):
    status = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True)
class Identity:
    actor: str  # "user:alice", "cert:CN=his-engine,O=GH", "tcp-plaintext"
    roles: frozenset[str]
    # A person on this machine, proven by the kernel (SO_PEERCRED on the local unix socket). Not
    # "any unix peer": under socket activation remote TLS clients arrive on a unix socket too.
    local: bool = False


current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("identity", default=None)


def actor() -> str:
    """Who the current RPC is for, for audit rows ("system" outside an RPC)."""
    who = current.get()
    return who.actor if who else "system"


def unix_roles(cfg: AccessConfig, uid: int) -> tuple[str, frozenset[str]]:
    try:
        user = pwd.getpwuid(uid)
        name, groups = user.pw_name, {grp.getgrgid(g).gr_name for g in os.getgrouplist(user.pw_name, user.pw_gid)}
    except KeyError:
        name, groups = f"uid{uid}", set()
    roles = set(cfg.unix_users.get(name, ()))
    for g in groups:
        roles |= set(cfg.unix_groups.get(g, ()))
    if uid in (0, os.getuid()):
        roles |= set(cfg.owner_roles)  # root and the daemon's own user: the operator of this box
    return name, frozenset(roles)


class TicketServer:
    """The socket beside the gRPC unix socket where a local caller trades its kernel-proven
    identity for a ticket. Same directory, same mode and group as the gRPC socket."""

    def __init__(self, path: Path, mode: int, cfg: AccessConfig) -> None:
        self.path = path
        self._cfg = cfg
        self._tickets: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o777 & ~mode)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, mode)
        self._sock.listen(64)
        self._thread = threading.Thread(target=self._serve, name="tickets", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def chown_group(self, gid: int) -> None:
        os.chown(self.path, -1, gid)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                try:
                    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                        struct.calcsize("3i")))
                    name, roles = unix_roles(self._cfg, uid)
                    ticket = secrets.token_hex(32)
                    with self._lock:
                        now = time.monotonic()
                        self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
                        self._tickets[ticket] = (Identity(f"user:{name}", roles, local=True),
                                                 now + self._cfg.ticket_ttl_s)
                    conn.sendall(ticket.encode() + b"\n")
                except OSError as e:
                    log.warning("ticket socket: %s", e.strerror)

    def identity(self, ticket: str) -> Identity | None:
        with self._lock:
            hit = self._tickets.get(ticket)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def stop(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


def ticket_path(grpc_socket: Path) -> Path:
    return grpc_socket.with_name(grpc_socket.name + ".ticket")


def fetch_ticket(grpc_socket: Path, timeout: float = 10.0) -> str:
    """The client side: ask the ticket socket beside `grpc_socket` for a ticket."""
    path = ticket_path(grpc_socket)
    if not path.exists() or not stat.S_ISSOCK(path.stat().st_mode):
        return ""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(128)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


class AccessPolicy:
    def __init__(self, cfg: AccessConfig, tickets: TicketServer | None, audit: Callable[..., object]) -> None:
        self._cfg = cfg
        self._tickets = tickets
        self._audit = audit  # (actor, action, object_id, detail) -> None
        self.refused = 0
        self.rate_limited = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # actor -> (tokens, last refill)
        self._bucket_lock = threading.Lock()


    def record_read(self, actor: str, object_id: str, method: str) -> None:
        """A read of report content, written to the audit chain under the caller's identity."""
        self._audit(actor, "read", object_id, method)
    def _spend(self, actor: str) -> bool:
        """A token bucket per identity: rate_per_s on average, rate_burst at once."""
        now = time.monotonic()
        with self._bucket_lock:
            tokens, last = self._buckets.get(actor, (float(self._cfg.rate_burst), now))
            tokens = min(float(self._cfg.rate_burst), tokens + (now - last) * self._cfg.rate_per_s)
            if tokens < 1.0:
                self._buckets[actor] = (tokens, now)
                return False
            self._buckets[actor] = (tokens - 1.0, now)
            return True

    def identify(self, context: grpc.ServicerContext) -> Identity:
        peer = context.peer()
        meta = dict(context.invocation_metadata() or ())
        # A certificate first: under socket activation the TCP port's TLS sessions reach a unix
        # socket (through systemd-socket-proxyd), and the certificate, not the proxy, is the caller.
        auth = context.auth_context() or {}
        subjects = [v.decode() for v in auth.get("x509_subject", [])]
        names = subjects + [v.decode() for k in ("x509_common_name", "x509_subject_alternative_name")
                            for v in auth.get(k, [])]
        if names:
            for n in names:
                if n in self._cfg.tls_subjects:
                    return Identity(f"cert:{subjects[0] if subjects else n}", frozenset(self._cfg.tls_subjects[n]))
            return Identity(f"cert:{subjects[0] if subjects else names[0]}", frozenset())
        if peer.startswith("unix:"):
            ticket = meta.get(TICKET_HEADER, "")
            who = self._tickets.identity(ticket) if (ticket and self._tickets) else None
            if who is None:
                raise Unauthenticated("no valid ticket on the unix socket: fetch one from the ticket socket beside "
                                      "it (appliancectl and the desktop client do this themselves)")
            return who
        if self._cfg.tcp_plaintext_roles:
            return Identity("tcp-plaintext", frozenset(self._cfg.tcp_plaintext_roles))
        raise Unauthenticated("plaintext TCP is not accepted here: connect with TLS (grpc.tls_* and a client "
                              "certificate) or over the local unix socket")

    def check(self, method: str, context: grpc.ServicerContext) -> Identity | None:
        name = method.rsplit("/", 1)[-1]
        if not method.startswith("/appliance.v1.Appliance/"):
            return None  # health and reflection: open, they carry no data
        try:
            who = self.identify(context)
        except Unauthenticated:
            self.refused += 1
            self._audit("anonymous", "access.refused", name, "unauthenticated")
            raise
        if not self._spend(who.actor):
            self.rate_limited += 1
            raise RateLimited(f"{who.actor} is over its rate ({self._cfg.rate_per_s:g} calls/s, burst "
                              f"{self._cfg.rate_burst}; config access.rate_per_s); retry shortly")
        if not (RPC_ROLES.get(name, frozenset()) & who.roles):
            self.refused += 1
            self._audit(who.actor, "access.refused", name, f"roles={','.join(sorted(who.roles)) or 'none'}")
            need = " or ".join(sorted(RPC_ROLES.get(name, frozenset({'admin'}))))
            raise PermissionDenied(f"{name} needs the role {need}; {who.actor} has "
                                   f"{', '.join(sorted(who.roles)) or 'no role'} (config section [access])")
        return who
