"""A user error at the command line ends with one line naming what is wrong and exit code 2,
never a traceback; every program answers --version."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CTL = [sys.executable, "-m", "appliance.cli.main"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("program", [["appliance.cli.main"], ["appliance.daemon"], ["appliance.client.main"]])
def test_every_program_answers_version(program):
    r = run([sys.executable, "-m", *program, "--version"])
    assert r.returncode == 0 and r.stdout.strip().split()[-1][0].isdigit(), r.stdout + r.stderr


def _user_errors(tmp_path: Path) -> dict[str, list[str]]:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\nnot json at all\n')
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"id": "a"}) + "\n")
    return {
        "deid on a directory": CTL + ["deid", "--jsonl", str(tmp_path), "--out", str(tmp_path / "o.jsonl")],
        "deid on a bad line": CTL + ["deid", "--jsonl", str(bad), "--out", str(tmp_path / "o.jsonl")],
        "deid on a line without text": CTL + ["deid", "--jsonl", str(missing), "--out", str(tmp_path / "o.jsonl")],
        "deid on a missing file": CTL + ["deid", "--jsonl", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")],
        "audit export since yesterday": CTL + ["--config", str(tmp_path / "none.toml"), "audit", "export", "--since",
                                               "yesterday", "--out", str(tmp_path / "a.jsonl")],
        "a config that does not exist": CTL + ["--config", str(tmp_path / "none.toml"), "documents"],
    }


@pytest.mark.parametrize("case", ["deid on a directory", "deid on a missing file", "audit export since yesterday",
                                  "a config that does not exist"])
def test_a_user_error_is_one_line_and_exit_code_2(tmp_path, case):
    r = run(_user_errors(tmp_path)[case])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("appliancectl: "), r.stderr


@pytest.mark.parametrize("case", ["deid on a bad line", "deid on a line without text"])
def test_a_bad_line_in_a_batch_is_named_and_the_rest_done(tmp_path, case):
    """A batch goes on past a bad line: every line is answered in --out (a result or an "error"
    record), each refused one named in a line of its own, exit code 2 at the end."""
    r = run(_user_errors(tmp_path)[case])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert all(ln.startswith("appliancectl: ") for ln in r.stderr.strip().splitlines()), r.stderr
    assert "line " in r.stderr and "refused" in r.stderr.strip().splitlines()[-1]
    out = [json.loads(ln) for ln in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert any("error" in rec for rec in out)
    if case == "deid on a bad line":
        assert out[0]["id"] == "a" and "deidentified" in out[0]


def test_a_batch_survives_lone_surrogates_nul_and_bad_utf8_and_resumes(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "s", "text": "Seen by Dr Okonkwo \\ud800 today"}\n'
                    b'{"id": "n", "text": "NUL\\u0000 here"}\n'
                    b'{"id": "u", "text": "bad \xff byte"}\n'
                    b'{"id": "big", "text": "' + b"x " * 150_000 + b'"}\n'
                    b'{"id": "ok", "text": "Called Mrs Wiesniewski at home."}\n')
    out = tmp_path / "out.jsonl"
    r = run(CTL + ["deid", "--jsonl", str(src), "--out", str(out)])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    recs = {rec["id"]: rec for rec in map(json.loads, out.read_text().splitlines())}
    assert set(recs) == {"s", "n", "u", "big", "ok"}
    assert "Okonkwo" not in recs["s"]["deidentified"] and "\ufffd" in recs["s"]["deidentified"]
    assert "\x00" not in recs["n"]["deidentified"]
    assert "characters; the most accepted is" in recs["big"]["error"]
    assert "Wiesniewski" not in recs["ok"]["deidentified"]
    assert "line 1: 1 invalid character" in r.stderr and "line 3: invalid UTF-8" in r.stderr
    r = run(CTL + ["deid", "--jsonl", str(src), "--out", str(out), "--resume"])
    assert "4 already there skipped" in r.stderr, r.stderr



def test_every_command_answers_a_user_error_in_one_line_with_exit_code_2(daemon, tmp_path):
    """Per command: a wrong id, a malformed reference, a missing argument, a directory for a file."""
    ctl = CTL + ["--config", str(daemon.config)]
    cases = {
        "document": ctl + ["document", "0" * 32],
        "summary": ctl + ["summary", "0" * 32],
        "resubmit": ctl + ["resubmit", "0" * 32],
        "erase": ctl + ["erase", "--patient", "no-colon-here", "--dry-run"],
        "submit": ctl + ["submit", str(tmp_path / "missing.hl7")],
        "validate": ctl + ["validate", str(tmp_path)],
        "restore": ctl + ["restore", str(tmp_path / "none.db")],
        "backup": ctl + ["backup"],
        "init": CTL + ["init"],
        "certs": ctl + ["certs", "init", "--dir", str(tmp_path / "pki"), "--client", "x:nobody"],
        "unknown option": ctl + ["documents", "--colour"],
    }
    for name, args in cases.items():
        r = run(args)
        assert r.returncode == 2, (name, r.returncode, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, (name, r.stderr)
        assert r.stderr.startswith("appliancectl"), (name, r.stderr)
