"""Monitoring: Prometheus text on loopback, scraped from the real daemon after real HL7 and
DICOM traffic. Counts move; no name, number or text of a patient ever appears."""
from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from appliance.api.metrics import render
from appliance.config import load_config
from appliance.services.status import Metric, sample
from conftest import SAMPLE
from mllp_client import MllpClient, msa


def scrape(run) -> str:
    port = load_config(run.config).metrics.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def value(body: str, name: str, **labels: str) -> float:
    for line in body.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_render_is_prometheus_text():
    body = render([Metric("x_total", "counter", "Things.", (sample(3, kind='a"b'), sample(1.5, kind="c")))])
    assert body == ('# HELP x_total Things.\n# TYPE x_total counter\n'
                    'x_total{kind="a\\"b"} 3.0\nx_total{kind="c"} 1.5\n')


def test_metrics_count_traffic_and_carry_no_phi(daemon):
    body = scrape(daemon)
    assert value(body, "appliance_model_info", device="cpu") == 1
    assert value(body, "appliance_uptime_seconds") > 0
    port = load_config(daemon.config).mllp.port
    c = MllpClient(port)
    assert msa(c.request(SAMPLE.read_bytes()))[1] in ("AA", "CA")
    assert msa(c.request(SAMPLE.read_bytes().replace(b"|2.5.1|", b"||")))[1] == "AR"
    c.close()
    deadline = time.monotonic() + 30
    while True:
        body = scrape(daemon)
        if value(body, "appliance_deidentified_total") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert value(body, "appliance_messages_total", transport="mllp", outcome="accepted") == 1
    assert value(body, "appliance_messages_total", transport="mllp", outcome="rejected") == 1
    assert value(body, "appliance_dead_letters", transport="mllp") == 1
    assert value(body, "appliance_mllp_connections_total") == 1
    assert value(body, "appliance_deidentified_total") == 1
    assert value(body, "appliance_documents") >= 1
    assert value(body, "appliance_process_resident_memory_bytes") > 10_000_000
    # Nothing from the message body: names, MRN, dates, free text.
    for phi in ("MRN4471902", "WHITAKER", "Whitaker", "ELEANOR", "19580312", "DEMO-0001", "GENERAL HOSPITAL"):
        assert phi not in body
    assert all(re.fullmatch(r'(# (HELP|TYPE) .*|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+)', ln)
               for ln in body.splitlines()), body


def test_only_metrics_path_is_served(daemon):
    port = load_config(daemon.config).metrics.port
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert e.value.code == 404
