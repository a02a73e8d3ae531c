"""Reading a JSONL batch for the offline commands: one bad line never stops the others.

Each input line becomes a `Row` or a `BadRow` with the reason; the commands write one output
line per input line (an "error" record for a refused one), so a batch of 10,000 notes with one
broken line loses that line only and says which. `--resume` skips ids already done in --out."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..deid.text import scrub
from ..ingest.limits import MAX_REPORT_CHARS, too_long


@dataclass(frozen=True)
class Row:
    line: int
    id: str
    text: str
    kind: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class BadRow:
    line: int
    id: str | None
    reason: str


def rows(src: Path, progress: str = "") -> Iterator[Row | BadRow]:
    """The file's rows; with `progress` (a verb), a bar with rate and ETA on a terminal's stderr
    (tqdm; nothing when stderr is a pipe or a file, so logs and scripts stay clean)."""
    from tqdm import tqdm

    with src.open("rb") as f:
        total = sum(1 for _ in f)
        f.seek(0)
        with tqdm(total=total, unit="doc", desc=progress, disable=None if progress else True, file=sys.stderr,
                  mininterval=1.0, dynamic_ncols=True) as bar:
            for n, raw in enumerate(f, 1):
                bar.update(1)
                if raw.strip():
                    yield _row(n, raw)


def _row(n: int, raw: bytes) -> Row | BadRow:
    warnings: list[str] = []
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.decode("utf-8", "replace")
        warnings.append(f"invalid UTF-8 from byte {e.start} replaced with U+FFFD")
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        return BadRow(n, None, f"not JSON (column {e.colno}: {e.msg}); one object per line is expected")
    if not isinstance(rec, dict):
        return BadRow(n, None, 'not a JSON object; lines are {"id", "text"[, "kind"]}')
    rid = str(rec["id"]) if rec.get("id") is not None else str(n)
    text = rec.get("text")
    if not isinstance(text, str):
        return BadRow(n, rid, 'no "text" string; lines are {"id", "text"[, "kind"]}')
    if len(text) > MAX_REPORT_CHARS:
        return BadRow(n, rid, too_long(len(text)))
    text, bad = scrub(text)
    if bad:
        warnings.append(f"{bad} invalid character(s) (lone surrogates or NUL) replaced with U+FFFD")
    return Row(n, rid, text, str(rec.get("kind") or ""), tuple(warnings))


def done_ids(out: Path) -> set[str]:
    """Ids --out already holds a result for (error records are tried again)."""
    done: set[str] = set()
    if not out.exists():
        return done
    with out.open("rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a line cut by a crash: that row is done again
            if isinstance(rec, dict) and rec.get("id") is not None and "error" not in rec:
                done.add(str(rec["id"]))
    return done


def error_record(bad: BadRow) -> dict[str, object]:
    return {"id": bad.id, "line": bad.line, "error": bad.reason}


@dataclass
class Tally:
    done: int = 0
    skipped: int = 0
    refused: int = 0

    def message(self, verb: str, out: Path) -> str:
        head = f"{verb} {self.done} documents -> {out}"
        if self.skipped:
            head += f"; {self.skipped} already there skipped (--resume)"
        if self.refused:
            head += f"; {self.refused} line(s) refused, each named above and kept in --out as an \"error\" record"
        return head


def run_batch(src: Path, out: Path, resume: bool, progress: str, handle: Callable[[Row], dict[str, object]],
              ensure_ascii: bool = True) -> Tally:
    """Every line of `src` answered in `out`: `handle(row)` for a good one, an error record (and a
    line on stderr) for a refused one; with `resume`, ids `out` already holds are skipped."""
    tally = Tally()
    skip = done_ids(out) if resume else set()
    with out.open("a" if resume else "w", encoding="utf-8") as fout:
        for row in rows(src, progress=progress):
            if isinstance(row, BadRow):
                print(f"appliancectl: line {row.line}: {row.reason}", file=sys.stderr)
                fout.write(json.dumps(error_record(row)) + "\n")
                tally.refused += 1
                continue
            if row.id in skip:
                tally.skipped += 1
                continue
            for w in row.warnings:
                print(f"appliancectl: line {row.line}: {w}", file=sys.stderr)
            fout.write(json.dumps(handle(row), ensure_ascii=ensure_ascii) + "\n")
            fout.flush()
            tally.done += 1
    return tally
