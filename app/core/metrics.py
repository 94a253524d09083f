"""Prometheus metrics, kept in a registry owned by the app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cxr_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram("cxr_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.stage_seconds = Histogram("cxr_stage_duration_seconds", "time per pipeline stage", ["stage"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("cxr_batch_size", "images per inference batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.queue_depth = Gauge("cxr_queue_depth", "images waiting for inference", registry=r)
        self.predictions = Counter("cxr_predictions_total", "predictions by label", ["label"], registry=r)
        self.dicom_instances = Counter("cxr_dicom_instances_total", "STOW-RS instances by outcome "
                                       "(accepted, rejected, done, not_evaluated, failed)", ["outcome"], registry=r)
        self.deliveries = Counter("cxr_deliveries_total", "result deliveries by target (pacs, fhir) and outcome "
                                  "(delivered, retry, failed)", ["target", "outcome"], registry=r)
        self.integrity = Counter("cxr_integrity_total", "integrity check outcomes (accepted, or the refusal: modality, "
                                 "body_part, lateral_view, not_frontal_chest)", ["outcome"], registry=r)
        self.monitor_positive_rate = Gauge("cxr_monitor_positive_rate", "share called PNEUMONIA over the monitoring "
                                           "window (GET /monitoring, default 7d)", ["model", "version"], registry=r)
        self.monitor_refusal_rate = Gauge("cxr_monitor_refusal_rate", "share refused by the integrity check over the "
                                          "monitoring window", ["model", "version"], registry=r)
        self.monitor_psi = Gauge("cxr_monitor_psi", "population stability index of P(PNEUMONIA) against the card's "
                                 "reference over the monitoring window", ["model", "version"], registry=r)
        self.monitor_drift = Gauge("cxr_monitor_drift", "1 when GET /monitoring flags drift", ["model", "version"],
                                   registry=r)
        self.model_info = Info("cxr_active_model", "the model that serves /predict", registry=r)

    def set_active(self, name: str, version: str, sha256: str, device: str) -> None:
        self.model_info.info({"name": name, "version": version, "sha256": sha256, "device": device})

    def render(self) -> bytes:
        return generate_latest(self.registry)
