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


@pytest.mark.parametrize("case", ["deid on a directory", "deid on a bad line", "deid on a line without text",
                                  "deid on a missing file", "audit export since yesterday",
                                  "a config that does not exist"])
def test_a_user_error_is_one_line_and_exit_code_2(tmp_path, case):
    r = run(_user_errors(tmp_path)[case])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("appliancectl: "), r.stderr
