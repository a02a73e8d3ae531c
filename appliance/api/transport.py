"""Server ports and client channels are built here and nowhere else, so the security
perimeter (mTLS, roles, the unix socket) changes one module."""
from __future__ import annotations

from typing import Any

import grp
import os
import socket
import stat
from pathlib import Path

import grpc

from ..config import GrpcConfig
from .access import TICKET_HEADER, fetch_ticket


def state_path(state_dir: Path, name: str) -> Path:
    """A path from the [grpc] section: absolute as written, else under state_dir."""
    return Path(name) if Path(name).is_absolute() else state_dir / name


def _read(state_dir: Path, name: str, key: str) -> bytes:
    path = state_path(state_dir, name)
    try:
        return path.read_bytes()
    except OSError as e:
        raise OSError(f"cannot read {path} (config key {key}): {e.strerror}") from None


def server_credentials(cfg: GrpcConfig, state_dir: Path) -> grpc.ServerCredentials | None:
    if not cfg.tls_cert_file:
        return None
    cert = _read(state_dir, cfg.tls_cert_file, "grpc.tls_cert_file")
    key = _read(state_dir, cfg.tls_key_file, "grpc.tls_key_file")
    ca = _read(state_dir, cfg.tls_client_ca_file, "grpc.tls_client_ca_file") if cfg.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def add_server_port(server: grpc.Server, cfg: GrpcConfig, state_dir: Path = Path(".")) -> int:
    creds = server_credentials(cfg, state_dir)
    address = f"{cfg.host}:{cfg.port}"
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC to {cfg.host}:{cfg.port} (config key grpc.port); is another "
                      "process using it?")
    return int(port)


def add_unix_port(server: grpc.Server, path: Path, mode: int, group: str = "",
                  creds: grpc.ServerCredentials | None = None) -> Path:
    """Listen on a unix socket too; the file mode is the access rule (0660: owner and group).
    With `creds`, the socket speaks TLS: what systemd-socket-proxyd forwards from the TCP port
    under socket activation (the TLS session, and the caller's certificate, end here)."""
    if len(str(path).encode()) > 107:  # sockaddr_un holds 108 bytes with its NUL
        raise OSError(f"{path} (config key grpc.unix_socket) is longer than a unix socket path may be "
                      "(107 bytes); use a shorter path such as /run/appliance/appliance.sock")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if not stat.S_ISSOCK(path.stat().st_mode):
            raise OSError(f"{path} (config key grpc.unix_socket) exists and is not a socket; move it away")
        if _listening(path):
            raise OSError(f"{path} (config key grpc.unix_socket) is in use by another process")
        path.unlink()  # left by a daemon that did not stop cleanly
    old = os.umask(0o777 & ~mode)  # the socket is born with the right mode: no window before chmod
    try:
        added = server.add_secure_port(f"unix:{path}", creds) if creds else server.add_insecure_port(f"unix:{path}")
        if added == 0:
            raise OSError(f"cannot listen on {path} (config key grpc.unix_socket)")
    finally:
        os.umask(old)
    os.chmod(path, mode)
    if group:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except KeyError:
            raise OSError(f"group {group!r} (config key grpc.unix_socket_group) does not exist; create it "
                          "or leave the key empty") from None
        except PermissionError:
            raise OSError(f"cannot give {path} to group {group!r} (config key grpc.unix_socket_group): the "
                          "daemon must be a member (SupplementaryGroups= in the unit)") from None
    return path


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


class _Ticket(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Sends the ticket the local socket's ticket server gave this process (access.py)."""

    def __init__(self, ticket: str) -> None:
        self._ticket = ticket

    def _with(self, details: Any) -> Any:
        meta = list(details.metadata or []) + [(TICKET_HEADER, self._ticket)]
        return details._replace(metadata=meta) if hasattr(details, "_replace") else _Details(details, meta)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d: Any, metadata: list[tuple[str, str]]) -> None:
        self.method, self.timeout, self.metadata = d.method, d.timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = d.credentials, d.wait_for_ready, d.compression


def ticketed(channel: grpc.Channel, sock: Path) -> grpc.Channel:
    """A channel on the unix socket that proves who this process runs as (SO_PEERCRED ticket)."""
    ticket = fetch_ticket(sock)
    return grpc.intercept_channel(channel, _Ticket(ticket)) if ticket else channel


def client_channel(cfg: GrpcConfig, port: int | None = None, state_dir: Path | None = None) -> grpc.Channel:
    """The local CLI's channel: the unix socket when there is one (no certificate needed on the
    box itself; the socket's mode decides), else TCP on loopback."""
    opts = [("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes)]
    if cfg.unix_socket and state_dir is not None:
        sock = state_path(state_dir, cfg.unix_socket)
        if sock.exists():
            return ticketed(grpc.insecure_channel(f"unix:{sock}", options=opts), sock)
    host = cfg.host if cfg.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104 (a test, not a bind)
    return grpc.insecure_channel(f"{host}:{port or cfg.port}", options=opts)
