"""Versioned migrations. Append only: a shipped migration is never edited."""
from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: documents, their raw messages, patients, surrogate maps, jobs, summaries,
    #    dead letters, acknowledgements for duplicates, and the hash-chained audit log.
    """
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        transport TEXT NOT NULL,
        status TEXT NOT NULL,
        patient_ref TEXT NOT NULL,
        deid_text TEXT NOT NULL,
        phi_spans INTEGER NOT NULL,
        message_key TEXT,
        document_ref TEXT NOT NULL DEFAULT '',
        superseded_by TEXT,
        received_ms INTEGER NOT NULL
    );
    CREATE INDEX documents_received ON documents(received_ms DESC);
    CREATE INDEX documents_ref ON documents(patient_ref, document_ref);
    CREATE TABLE raw_messages (
        message_key TEXT PRIMARY KEY,
        document_id TEXT,
        transport TEXT NOT NULL,
        raw BLOB NOT NULL,
        ack BLOB,
        received_ms INTEGER NOT NULL
    );
    CREATE TABLE patients (
        patient_ref TEXT PRIMARY KEY,
        known_json TEXT NOT NULL,
        merged_into TEXT,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE surrogates (
        document_id TEXT NOT NULL,
        surrogate TEXT NOT NULL,
        original TEXT NOT NULL,
        PRIMARY KEY (document_id, surrogate)
    );
    CREATE TABLE jobs (
        document_id TEXT PRIMARY KEY,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        enqueued_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX jobs_pending ON jobs(state, priority DESC, enqueued_ms);
    CREATE TABLE summaries (
        document_id TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        model TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        leaks_redacted INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE dead_letters (
        id TEXT PRIMARY KEY,
        transport TEXT NOT NULL,
        reason TEXT NOT NULL,
        raw BLOB NOT NULL,
        received_ms INTEGER NOT NULL,
        resolved_ms INTEGER
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object_id TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 2: de-identification off the MLLP acknowledgement path. A document may be committed
    #    PARSED (its text and declared identifiers kept, encrypted like the raw message) and
    #    de-identified moments later; the original text is cleared once it is.
    """
    ALTER TABLE documents ADD COLUMN original_text TEXT;
    ALTER TABLE documents ADD COLUMN known_json TEXT;
    CREATE INDEX documents_status ON documents(status);
    """,
    # 3: numbers in a summary that the report does not state, recorded with the summary.
    """
    ALTER TABLE summaries ADD COLUMN unsupported_numbers TEXT NOT NULL DEFAULT '[]';
    """,
    # 4: the structured summary (JSON, with prompt version and model) and its grounding flags.
    """
    ALTER TABLE summaries ADD COLUMN structured TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE summaries ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
    """,
    # 5: the result status the sender stated (preliminary, final, corrected, cancelled).
    """
    ALTER TABLE documents ADD COLUMN result_status TEXT NOT NULL DEFAULT '';
    """,
    # 6: whose raw message this is, so erasure finds a patient's ADT messages too.
    """
    ALTER TABLE raw_messages ADD COLUMN patient_ref TEXT;
    UPDATE raw_messages SET patient_ref = (SELECT patient_ref FROM documents d WHERE d.id = raw_messages.document_id);
    CREATE INDEX raw_messages_patient ON raw_messages(patient_ref);
    CREATE INDEX raw_messages_received ON raw_messages(received_ms);
    CREATE INDEX dead_letters_received ON dead_letters(received_ms);
    CREATE INDEX documents_patient ON documents(patient_ref);
    """,
    # 7: audit rows chained with a keyed MAC (HMAC-SHA-256 under the audit key, a credential apart
    #    from the database key); rows written before this keep their plain SHA-256 (mac=0).
    """
    ALTER TABLE audit ADD COLUMN mac INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX audit_ts ON audit(ts_ms);
    """,
    # 8: the current version of a document is found through the index alone. Before, each
    #    corrected result scanned every earlier version of its order for `superseded_by IS NULL`
    #    (measured: a sender that re-sends one order's result went O(n) per message). The
    #    patient-only index is the new one's prefix, so it goes.
    """
    DROP INDEX documents_patient;
    DROP INDEX documents_ref;
    CREATE INDEX documents_ref ON documents(patient_ref, document_ref, superseded_by);
    """,
    # 9: worklist columns, de-identified at intake: the exam as ordered, modality, priority and the
    #    patient's surrogate name.
    """
    ALTER TABLE documents ADD COLUMN exam TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN modality TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN order_priority TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN patient_surrogate TEXT NOT NULL DEFAULT '';
    """,
]
