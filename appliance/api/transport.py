"""Server ports and client channels are built here and nowhere else, so the security
perimeter (mTLS, roles, the unix socket) changes one module."""
from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import grpc

from ..config import GrpcConfig


def add_server_port(server: grpc.Server, cfg: GrpcConfig) -> int:
    port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if port == 0:
        raise OSError(f"cannot bind gRPC to {cfg.host}:{cfg.port} (config key grpc.port); is another "
                      "process using it?")
    return port


def add_unix_port(server: grpc.Server, path: Path, mode: int) -> Path:
    """Listen on a unix socket too; the file mode is the access rule (0660: owner and group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if not stat.S_ISSOCK(path.stat().st_mode):
            raise OSError(f"{path} (config key grpc.unix_socket) exists and is not a socket; move it away")
        if _listening(path):
            raise OSError(f"{path} (config key grpc.unix_socket) is in use by another process")
        path.unlink()  # left by a daemon that did not stop cleanly
    old = os.umask(0o777 & ~mode)  # the socket is born with the right mode: no window before chmod
    try:
        if server.add_insecure_port(f"unix:{path}") == 0:
            raise OSError(f"cannot listen on {path} (config key grpc.unix_socket)")
    finally:
        os.umask(old)
    os.chmod(path, mode)
    return path


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def client_channel(cfg: GrpcConfig, port: int | None = None) -> grpc.Channel:
    host = cfg.host if cfg.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    opts = [("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes)]
    return grpc.insecure_channel(f"{host}:{port or cfg.port}", options=opts)
