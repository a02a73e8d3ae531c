"""One process owns a state directory at a time: the daemon while it runs, or an offline
maintenance command (key rotation). A second daemon on the same database, or a rotation
under a running daemon, would corrupt what the first one promised."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import StoreKeyError


class StateLock:
    def __init__(self, state_dir: Path, holder: str) -> None:
        self._path = state_dir / "run" / "lock"
        self._holder = holder
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreKeyError(f"{self._path.parent.parent} is in use by another appliance process "
                                f"({self._path} is locked); stop it first: the service and the sockets that start it "
                                "(systemctl stop appliance.socket appliance-grpc.socket appliance.service), or run "
                                "the command as root, which does that and starts them again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self._holder}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
