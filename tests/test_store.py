"""The encrypted store's audit log is a hash chain: any edit to a past entry is detected."""
from __future__ import annotations

import pytest

from appliance.errors import StoreKeyError
from appliance.store import open_store
from appliance.store.keys import write_new_key


def test_audit_chain_verifies_and_detects_tampering(tmp_path):
    write_new_key(tmp_path / "k")
    store = open_store(tmp_path / "a.db", tmp_path / "k")
    for i in range(5):
        store.audit("test", "document.received", f"doc{i}", f"phi_spans={i}")
    assert store.verify_audit_chain() == 5
    with store.transaction() as cur:
        cur.execute("UPDATE audit SET detail='phi_spans=0' WHERE object_id='doc3'")
    with pytest.raises(StoreKeyError, match="audit log broken at entry 4"):
        store.verify_audit_chain()
    store.close()
