"""Storage faults named for an operator and a sender: what went wrong and what to do, never the
database's own message text (which can quote SQL and values)."""
from __future__ import annotations

import errno

import sqlcipher3


def fault_reason(e: BaseException) -> str:
    """A fixed sentence for a storage fault: disk full, database busy, read-only, or I/O error."""
    text = str(e).lower()
    if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "full" in text:
        return "the appliance's disk is full: free space in its state directory; resend later"
    if "locked" in text or "busy" in text:
        return "the appliance's database is busy: resend later"
    if "readonly" in text or "read-only" in text or (isinstance(e, OSError) and e.errno == errno.EROFS):
        return "the appliance's database is read-only: check the state directory's file system and owner; resend later"
    if isinstance(e, (sqlcipher3.Error, OSError)):
        return f"the appliance could not write its database ({type(e).__name__}): resend later"
    return f"could not be stored ({type(e).__name__}): resend later"
