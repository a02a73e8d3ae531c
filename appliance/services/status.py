"""What the appliance reports about itself for monitoring: message and document counts,
queues, summaries, the model's device, the process. Numbers and enums only."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float], ...] = field(default_factory=tuple)


def sample(value: float, **labels: str) -> tuple[tuple[tuple[str, str], ...], float]:
    return tuple(sorted(labels.items())), float(value)


@dataclass
class Parts:
    """The running pieces the figures come from; any may be None while starting."""

    # Duck-typed on purpose: only counters are read, and the listeners live in api/, above this
    # module (a typed reference would point the dependency upwards).
    started: float
    intake: Any = None
    worker: Any = None
    deid_stage: Any = None
    commits: Any = None
    store: Any = None
    engine: Any = None
    mllp: Any = None
    dicom: Any = None
    egress: Any = None
    access: Any = None


def collect(p: Parts) -> list[Metric]:
    out = [Metric("appliance_uptime_seconds", "gauge", "Seconds since the daemon started.",
                  (sample(time.monotonic() - p.started),))]
    proc = psutil.Process()
    out.append(Metric("appliance_process_resident_memory_bytes", "gauge", "Resident memory of the daemon.",
                      (sample(proc.memory_info().rss),)))
    if p.engine is not None:
        info = p.engine.info
        out.append(Metric("appliance_model_info", "gauge", "The loaded model; device is cuda or cpu, and why.",
                          (sample(1, model=info.name, device=info.device, gpu_layers=str(info.gpu_layers),
                                  reason=getattr(info, "device_reason", "")),)))
    if p.intake is not None:
        out.append(Metric("appliance_messages_total", "counter",
                          "Messages and reports received, by transport and outcome.",
                          tuple(sample(n, transport=t, outcome=o.lower())
                                for (t, o), n in sorted(dict(p.intake.outcomes).items()))))
    if p.commits is not None:
        out.append(Metric("appliance_commit_batches_total", "counter", "Group-commit transactions.",
                          (sample(p.commits.batches),)))
    if p.deid_stage is not None:
        out.append(Metric("appliance_deidentified_total", "counter",
                          "Documents de-identified after an MLLP or DICOM acknowledgement.",
                          (sample(p.deid_stage.done),)))
        out.append(Metric("appliance_deid_failed_total", "counter",
                          "Documents set aside because de-identification raised (DEID_FAILED; raw kept).",
                          (sample(getattr(p.deid_stage, "failed", 0)),)))
    if p.worker is not None:
        w = p.worker
        out += [
            Metric("appliance_summaries_total", "counter", "Summaries written, by result.",
                   (sample(w.completed, result="ok"), sample(w.failed, result="failed"))),
            Metric("appliance_summary_tokens_total", "counter", "Tokens generated.", (sample(w.tokens_generated),)),
            Metric("appliance_summary_seconds_total", "counter", "Seconds spent generating.",
                   (sample(round(w.generation_seconds, 3)),)),
            Metric("appliance_summary_unsupported_numbers_total", "counter",
                   "Numbers in summaries that their report does not state (flagged to the reader).",
                   (sample(w.unsupported_numbers),)),
            Metric("appliance_summary_grounding_flags_total", "counter",
                   "Sides, units, negations and findings in summaries that their report does not support.",
                   (sample(w.grounding_flags),)),
            Metric("appliance_leaks_redacted_total", "counter",
                   "Declared identifiers the leak gate removed from prompts and model output.",
                   (sample(w.leaks_redacted),)),
        ]
    if p.mllp is not None:
        out.append(Metric("appliance_mllp_connections_total", "counter", "MLLP connections accepted.",
                          (sample(p.mllp.connections),)))
    if getattr(p, "access", None) is not None:
        out.append(Metric("appliance_access_refused_total", "counter",
                          "Calls refused: no identity or the wrong role (each one audited).",
                          (sample(p.access.refused),)))
        out.append(Metric("appliance_rate_limited_total", "counter",
                          "Calls answered RESOURCE_EXHAUSTED: the identity was over access.rate_per_s.",
                          (sample(p.access.rate_limited),)))
    if getattr(p, "egress", None) is not None:
        out.append(Metric("appliance_egress_refused_total", "counter",
                          "Outbound connections the in-process egress guard refused.", (sample(p.egress.refused),)))
    for name, part in (("mllp", p.mllp), ("dicom", p.dicom)):
        if part is not None:
            out.append(Metric(f"appliance_{name}_connections_refused_total", "counter",
                              "Connections closed on arrival: the configured maximum was open.",
                              (sample(getattr(part, "refused_connections", 0)),)))
            out.append(Metric(f"appliance_{name}_connections_timed_out_total", "counter",
                              "Connections closed by an idle, frame or ARTIM timeout.",
                              (sample(getattr(part, "timed_out", 0)),)))
    if p.dicom is not None:
        out.append(Metric("appliance_dicom_associations_total", "counter", "DICOM associations accepted.",
                          (sample(p.dicom.associations),)))
    if p.store is not None:
        g = p.store.gauges()
        out += [
            Metric("appliance_documents", "gauge", "Documents in the store, by status.",
                   tuple(sample(n, status=s.lower()) for s, n in sorted(g["documents"].items()))),
            Metric("appliance_summary_jobs", "gauge", "Summary jobs, by state.",
                   tuple(sample(n, state=s.lower()) for s, n in sorted(g["jobs"].items()))),
            Metric("appliance_dead_letters", "gauge", "Refused messages not yet resolved, by transport.",
                   tuple(sample(n, transport=t) for t, n in sorted(g["dead_letters"].items()))),
        ]
    return out
