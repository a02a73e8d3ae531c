"""Server ports and client channels are built here and nowhere else, so the security
perimeter (mTLS, roles, the unix socket) changes one module."""
from __future__ import annotations

import grpc

from ..config import GrpcConfig


def add_server_port(server: grpc.Server, cfg: GrpcConfig) -> int:
    port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if port == 0:
        raise OSError(f"cannot bind gRPC to {cfg.host}:{cfg.port} (config key grpc.port); is another "
                      "process using it?")
    return port


def client_channel(cfg: GrpcConfig, port: int | None = None) -> grpc.Channel:
    host = cfg.host if cfg.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    opts = [("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes)]
    return grpc.insecure_channel(f"{host}:{port or cfg.port}", options=opts)
