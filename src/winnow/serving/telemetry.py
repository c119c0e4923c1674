"""Prometheus metrics of the service (one registry per app, exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counters and histograms; every one of them is incremented somewhere in serving/."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("winnow_requests_total", "HTTP requests", ["route", "status"], registry=r)
        self.errors = Counter("winnow_errors_total", "HTTP 5xx responses", ["route"], registry=r)
        self.latency = Histogram("winnow_request_seconds", "HTTP request latency", ["route"],
                                 buckets=_BUCKETS, registry=r)
        self.stage = Histogram("winnow_stage_seconds", "Pipeline stage latency", ["stage"],
                               buckets=_BUCKETS, registry=r)
        self.fallbacks = Counter("winnow_fallbacks_total", "Fallbacks used", ["fallback"], registry=r)
        self.events = Counter("winnow_events_ingested_total", "Events durably written", registry=r)
        self.impressions = Counter("winnow_impressions_logged_total", "Impressions written", registry=r)
        self.impression_failures = Counter("winnow_impression_failures_total",
                                           "Impression batches that failed to write (retried)", registry=r)
        self.impressions_dropped = Counter("winnow_impressions_dropped_total",
                                           "Impressions dropped because the queue was full", registry=r)
        self.swaps = Counter("winnow_bundle_swaps_total", "Bundle activations", ["result"], registry=r)
        self.build_lock_wait = Histogram("winnow_runtime_build_lock_wait_seconds", "Wait for this server's build "
                                         "lock before a runtime build (its workers build one at a time)",
                                         buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120), registry=r)
        self.build_window = Gauge("winnow_runtime_build_timestamp_seconds", "Start and end of this process's "
                                  "latest runtime build (a swap's or a rollout challenger's; unix seconds)",
                                  ["edge"], registry=r)
        self.queue = Gauge("winnow_impression_queue", "Impressions waiting to be written", registry=r)
        self.backend_errors = Counter("winnow_backend_errors_total",
                                      "Failed calls to an external backend (redis, store)", ["backend"], registry=r)
        self.backend_up = Gauge("winnow_backend_up", "1 while the backend answers, 0 while degraded",
                                ["backend"], registry=r)
        self.replica_events = Counter("winnow_replica_events_total",
                                      "Events other replicas acknowledged, received over the Redis stream", registry=r)
        self.rate_limited = Counter("winnow_rate_limited_total", "Requests answered 429 by the per-key rate limit",
                                    ["key", "scope", "kind"], registry=r)
        self.rollout_shadow = Counter("winnow_rollout_shadow_total",
                                      "Shadow requests by result (ok, error, dropped, unwritten)", ["result"], registry=r)
        self.rollout_requests = Counter("winnow_rollout_requests_total", "Requests served during a canary, by arm",
                                        ["arm"], registry=r)
        self.rollout_share = Gauge("winnow_rollout_share", "Challenger share of users (0 unless a canary runs)",
                                   registry=r)
        self.rollout_state = Gauge("winnow_rollout_state", "1 for the state of the latest rollout", ["state"],
                                   registry=r)
        self.rollout_guardrail = Gauge("winnow_rollout_guardrail", "Latest guardrail value per arm",
                                       ["arm", "guardrail"], registry=r)
        # the drift monitor's latest comparison (serving/drift_monitor.py), refreshed off the request path
        self.drift_statistic = Gauge("winnow_drift_statistic", "Latest drift statistic of the live window vs the "
                                     "serving bundle's reference", ["kind", "feature", "statistic"], registry=r)
        self.drift_detected = Gauge("winnow_drift_detected", "1 while the kind of drift (data, concept) is flagged",
                                    ["kind"], registry=r)
        self.drift_refreshed = Gauge("winnow_drift_refreshed_timestamp_seconds",
                                     "When the drift monitor last compared (unix seconds)", registry=r)
