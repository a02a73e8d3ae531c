"""The encrypted store's cost, measured against the same schema on plain SQLite in the same run,
and a retention purge while intake commits.

    python bench/store.py [--docs 3000] [--purge-docs 100000]

1. Documents committed per second, group commits of 32 (as the daemon's commit queue does), with
   synchronous=FULL: SQLCipher with this appliance's raw 256-bit key vs the same library with no
   key (plain SQLite). SQLCipher's own figure for its overhead is 5-15%.
2. Key derivation at open: the raw key (what the appliance uses: no KDF) vs a passphrase
   (PBKDF2-HMAC-SHA512, 256,000 iterations, SQLCipher 4's default).
3. A retention purge of --purge-docs documents while a writer commits one document at a time:
   commit latency (what an ACK waits for) before and during the purge.
Last line: one JSON object."""
from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlcipher3  # noqa: E402

from appliance.domain import KnownIdentifiers  # noqa: E402
from appliance.store.db import NewDocument, Store, now_ms  # noqa: E402
from appliance.store.lifecycle import purge  # noqa: E402

TEXT = ("FINDINGS: The heart size is normal. There is a small left pleural effusion with adjacent "
        "atelectasis. No pneumothorax. IMPRESSION: Small left effusion. ") * 4


def open_raw(path: Path, key: bytes | None) -> Store:
    """A Store on SQLCipher with `key`, or on plain SQLite (same library, no key)."""
    def connect() -> sqlcipher3.Connection:
        c = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None)
        if key is not None:
            c.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        c.execute("PRAGMA secure_delete=ON")
        c.execute("PRAGMA temp_store=MEMORY")
        if key is not None:
            c.execute("PRAGMA cipher_memory_security=ON")
        if c.execute("PRAGMA page_count").fetchone()[0] == 0:
            c.execute("PRAGMA auto_vacuum=INCREMENTAL")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        return c
    w = connect()
    s = Store(w, w, path)
    s.migrate()
    s._rconn = connect()
    return s


def doc(i: int) -> NewDocument:
    return NewDocument(kind="hl7:ORU^R01", source="bench", transport="mllp", patient_ref=f"p{i % 500}",
                       deid_text=TEXT + str(i), phi_spans=3, document_ref=f"A{i}", surrogates={"Smith": "Jones"},
                       raw=(TEXT + str(i)).encode(), message_key=f"bench|{i}|{secrets.token_hex(4)}",
                       known=KnownIdentifiers(patient_key=f"p{i % 500}"))


def commit_rate(store: Store, n: int, batch: int = 32) -> float:
    t = time.perf_counter()
    for start in range(0, n, batch):
        ops = [lambda cur, i=i: store.insert_document(cur, doc(i), "bench", b"ACK") for i in range(start, min(n, start + batch))]
        store.commit_batch(ops)
    return n / (time.perf_counter() - t)


def open_cost(path: Path, key_sql: str, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        c = sqlcipher3.connect(str(path))
        c.execute(f"PRAGMA key = {key_sql}")
        c.execute("SELECT count(*) FROM sqlite_master").fetchone()
        c.close()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def latencies(store: Store, stop: threading.Event, out: list[float], base: int) -> None:
    i = base
    while not stop.is_set():
        t = time.perf_counter()
        store.commit_batch([lambda cur, i=i: store.insert_document(cur, doc(i), "bench", b"ACK")])
        out.append(time.perf_counter() - t)
        i += 1
        time.sleep(0.01)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--purge-docs", type=int, default=100_000)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    key = secrets.token_bytes(32)

    enc = open_raw(tmp / "enc.db", key)
    plain = open_raw(tmp / "plain.db", None)
    rate_plain = commit_rate(plain, args.docs)
    rate_enc = commit_rate(enc, args.docs)
    rate_plain2 = commit_rate(plain, args.docs)  # both twice, interleaved: the disk's mood evens out
    rate_enc2 = commit_rate(enc, args.docs)
    plain.close()
    rate_plain, rate_enc = (rate_plain + rate_plain2) / 2, (rate_enc + rate_enc2) / 2
    print(f"commits: SQLCipher {rate_enc:.0f} docs/s, plain SQLite {rate_plain:.0f} docs/s "
          f"(SQLCipher at {rate_enc / rate_plain:.2f}x of plain; overhead {100 * (1 - rate_enc / rate_plain):.1f}%)")
    enc.close()

    raw_open = open_cost(tmp / "enc.db", f"\"x'{key.hex()}'\"")
    pw = tmp / "pw.db"
    c = sqlcipher3.connect(str(pw))
    c.execute("PRAGMA key = 'correct horse battery staple'")
    c.execute("CREATE TABLE t(x)")
    c.close()
    kdf_open = open_cost(pw, "'correct horse battery staple'", repeat=3)
    print(f"open: raw key {raw_open * 1000:.1f} ms, passphrase (PBKDF2 256k) {kdf_open * 1000:.1f} ms")

    store = open_raw(tmp / "purge.db", key)
    t = time.perf_counter()
    old = now_ms() - 40 * 86_400_000
    for start in range(0, args.purge_docs, 1000):
        ops = [lambda cur, i=i: store.insert_document(cur, doc(i), "bench", b"ACK")
               for i in range(start, min(args.purge_docs, start + 1000))]
        store.commit_batch(ops)
    with store.transaction() as cur:
        cur.execute("UPDATE documents SET received_ms=?", (old,))
        cur.execute("UPDATE raw_messages SET received_ms=?", (old,))
    print(f"filled {args.purge_docs} aged documents in {time.perf_counter() - t:.0f} s")
    before: list[float] = []
    stop = threading.Event()
    th = threading.Thread(target=latencies, args=(store, stop, before, 10_000_000))
    th.start()
    time.sleep(3)
    stop.set()
    th.join()
    during: list[float] = []
    stop = threading.Event()
    th = threading.Thread(target=latencies, args=(store, stop, during, 20_000_000))
    th.start()
    t = time.perf_counter()
    purged = purge(store, days=30, audit_days=2190)
    purge_s = time.perf_counter() - t
    stop.set()
    th.join()
    store.close()
    print(f"purge: {purged.documents} documents in {purge_s:.1f} s ({purged.documents / purge_s:.0f}/s); "
          f"commit latency p50/p99 before {pct(before, .5):.1f}/{pct(before, .99):.1f} ms, during "
          f"{pct(during, .5):.1f}/{pct(during, .99):.1f} ms ({len(during)} commits during the purge)")
    print(json.dumps({
        "sqlcipher_docs_per_s": round(rate_enc), "plain_sqlite_docs_per_s": round(rate_plain),
        "ratio_sqlcipher_vs_plain": round(rate_enc / rate_plain, 3),
        "open_raw_key_ms": round(raw_open * 1000, 2), "open_passphrase_kdf_ms": round(kdf_open * 1000, 1),
        "purge_documents": purged.documents, "purge_s": round(purge_s, 1),
        "commit_ms_p50_before": round(pct(before, .5), 2), "commit_ms_p99_before": round(pct(before, .99), 2),
        "commit_ms_p50_during_purge": round(pct(during, .5), 2),
        "commit_ms_p99_during_purge": round(pct(during, .99), 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
