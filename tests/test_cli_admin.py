"""appliancectl in the habits of the ecosystem: every option documented, erasure that shows what
it will do and asks first, JSON on listings, a submit that waits out a daemon that is starting."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from conftest import SAMPLE, start_daemon, stop_daemon

CTL = [sys.executable, "-m", "appliance.cli.main"]


def test_every_option_of_every_command_has_help_text():
    from appliance.cli.main import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "appliancectl")
    assert not missing, missing


def test_erase_shows_what_it_would_do_and_asks_first(daemon):
    def ctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CTL, "--config", str(daemon.config), *args], capture_output=True, text=True,
                              timeout=120, input=stdin)

    assert ctl("submit", str(SAMPLE)).returncode == 0
    dry = ctl("erase", "--patient", "GH:MRN4471902", "--dry-run")
    assert dry.returncode == 0 and "would erase: 1 documents" in dry.stdout, dry.stdout + dry.stderr
    unconfirmed = ctl("erase", "--patient", "GH:MRN4471902", stdin="")  # not a terminal, no --yes
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert unconfirmed.stderr.strip().count("\n") == 0 and "Traceback" not in unconfirmed.stderr
    docs = json.loads(ctl("documents", "--json").stdout)
    assert len(docs) == 1  # nothing was erased
    done = ctl("erase", "--patient", "GH:MRN4471902", "--yes")
    assert done.returncode == 0 and "erased: 1 documents" in done.stdout, done.stdout + done.stderr
    empty = ctl("documents")
    assert empty.returncode == 0 and "no documents" in empty.stderr
    letters = ctl("deadletters", "--json")
    assert letters.returncode == 0 and json.loads(letters.stdout) == []
    audit = [json.loads(x) for x in ctl("audit", "export").stdout.splitlines() if x.strip()]
    assert [r["action"] for r in audit].count("patient.erase_preview") >= 2


def test_backup_will_not_print_its_key_unless_asked(daemon):
    r = subprocess.run([*CTL, "--config", str(daemon.config), "backup"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--key-out" in r.stderr and "Traceback" not in r.stderr


def test_submit_waits_for_a_daemon_that_is_still_starting(state, tmp_path):
    sub = subprocess.Popen([*CTL, "--config", str(state), "submit", str(SAMPLE), "--retry-for", "90"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sub.stderr is not None
    first = sub.stderr.readline()  # the submit is retrying against no daemon at all
    assert "retrying" in first and sub.poll() is None, first
    run = start_daemon(state, tmp_path / "d.log")
    try:
        out, err = sub.communicate(timeout=120)
        assert sub.returncode == 0, err
        assert len(out.strip()) == 32, out
    finally:
        stop_daemon(run)
