"""Does HL7 intake regress against an earlier commit? `bench/hl7_intake.py` of both trees,
alternately, on this machine now: the ratio to python-hl7 moves by a quarter between runs on a
shared machine (the peer's own rate does), so one run against a figure from another day says
little; medians of alternating runs say whether the code changed. Last line: one JSON object.

    python bench/hl7_intake_ab.py REV [--rounds 3] [--messages 3000] [--workload both]

REV is checked out in a temporary git worktree (its stubs generated there, as setup.py does) and
run with this checkout's virtual environment; each tree runs its own copy of the benchmark."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("adt_1conn", "adt_4conn", "oru_1conn", "oru_4conn")


def checkout(rev: str, into: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(into), rev],
                   check=True, stdout=subprocess.DEVNULL)
    protos = sorted(str(p.relative_to(into / "proto")) for p in (into / "proto").rglob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{into / 'proto'}", f"--python_out={into}",
                    f"--grpc_python_out={into}", f"--pyi_out={into}", *protos], check=True)


def run(tree: Path, messages: int, workload: str) -> dict:
    out = subprocess.run([sys.executable, str(tree / "bench" / "hl7_intake.py"), "--messages", str(messages),
                          "--workload", workload], cwd=tree, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev", help="the earlier commit to compare with (e.g. 6ab6a76)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--workload", choices=["adt", "oru", "both"], default="both")
    args = ap.parse_args(argv)
    ratios: dict[str, dict[str, list[float]]] = {"earlier": {}, "this": {}}
    with tempfile.TemporaryDirectory() as tmp:
        earlier = Path(tmp) / "earlier"
        checkout(args.rev, earlier)
        try:
            for i in range(args.rounds):
                for name, tree in (("earlier", earlier), ("this", ROOT)):
                    figures = run(tree, args.messages, args.workload)
                    for case in CASES:
                        if case in figures:
                            ratios[name].setdefault(case, []).append(figures[case]["ratio"])
                    print(f"round {i + 1} {name:<7} " + "  ".join(
                        f"{c} {figures[c]['ratio']:.2f}" for c in CASES if c in figures), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(earlier)], check=False)
    result: dict[str, object] = {"earlier": args.rev, "rounds": args.rounds, "messages": args.messages}
    print(f"{'case':<10} {'earlier (median)':>17} {'this (median)':>14} {'this/earlier':>13}")
    for case in CASES:
        if case not in ratios["this"]:
            continue
        a = round(statistics.median(ratios["earlier"][case]), 3)
        b = round(statistics.median(ratios["this"][case]), 3)
        print(f"{case:<10} {a:17.2f} {b:14.2f} {b / a:13.2f}")
        result[case] = {"earlier_ratio_median": a, "this_ratio_median": b, "this_vs_earlier": round(b / a, 2),
                        "earlier_ratios": ratios["earlier"][case], "this_ratios": ratios["this"][case]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
