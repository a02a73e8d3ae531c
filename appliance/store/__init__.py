"""The only code that touches SQLCipher."""
from .db import Store, open_store

__all__ = ["Store", "open_store"]
