"""Per-second timeline of a soak run, attribution of its slow requests, and the soak's figure.

Input is the raw record ``bench/soak.py``'s ``run_load`` returns: ``results`` (kind, due s,
latency from due s, status, latency from send s), ``swaps`` (t s, target, status, build s),
``rss`` (t s, MiB), ``cpu`` (t s, server CPU s, client CPU s, cumulative) and ``load``.

``timeline`` bins requests by due time (1 s bins): count, p50/p99/max latency, and the CPU
share (cores) the server and the load-generating client used in that second.
``attribute_slow`` says where the requests over a latency threshold happened: near a swap,
in a second when the server or the client was CPU-bound, or queued before being sent (all
client senders busy), so a p99 miss can be traced to a cause rather than guessed at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _cpu_rates(cpu: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, server cores, client cores) per sampling interval, from cumulative CPU seconds."""
    if len(cpu) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    arr = np.asarray(cpu, dtype=float)
    dt = np.diff(arr[:, 0])
    dt[dt <= 0] = np.nan
    return arr[1:, 0], np.diff(arr[:, 1]) / dt, np.diff(arr[:, 2]) / dt


def _at(ts: np.ndarray, values: np.ndarray, t: float) -> float:
    """The value of the sampling interval that contains ``t`` (nan if none)."""
    if not len(ts):
        return float("nan")
    i = int(np.searchsorted(ts, t))
    return float(values[min(i, len(values) - 1)])


def timeline(raw: dict, *, bin_s: float = 1.0) -> list[dict]:
    """One row per ``bin_s`` of due time: n, p50/p99/max ms, server/client CPU cores."""
    res = raw["results"]
    if not res:
        return []
    due = np.array([r[1] for r in res])
    lat = np.array([r[2] for r in res]) * 1000
    ct, srv, cli = _cpu_rates(raw.get("cpu", []))
    rows = []
    bins = np.floor(due / bin_s).astype(int)
    for b in range(int(bins.max()) + 1):
        x = lat[bins == b]
        if not len(x):
            continue
        mid = (b + 0.5) * bin_s
        rows.append({"t": round(b * bin_s, 2), "n": len(x), "p50_ms": round(float(np.percentile(x, 50)), 2),
                     "p99_ms": round(float(np.percentile(x, 99)), 2), "max_ms": round(float(x.max()), 2),
                     "server_cores": round(_at(ct, srv, mid), 3), "client_cores": round(_at(ct, cli, mid), 3)})
    return rows


def attribute_slow(raw: dict, *, slow_ms: float, near_swap_s: float = 3.0, busy_cores: float = 0.9,
                   top: int = 20) -> dict:
    """Where the requests slower than ``slow_ms`` (from their due time) happened.

    A slow request counts as ``near_swap`` if it was due within ``near_swap_s`` before a swap
    call started or before the swap's build ended; ``server_busy`` / ``client_busy`` if the server
    / client process used >= ``busy_cores`` of a core in that second; ``queued`` if more than
    half its latency passed before it was sent. Categories overlap; the shares are of all slow
    requests, next to the same shares for all requests (the base rate)."""
    res = raw["results"]
    ct, srv, cli = _cpu_rates(raw.get("cpu", []))
    swaps = [(s[0], (s[3] or 0.0)) for s in raw.get("swaps", [])]

    def near_swap(t: float) -> bool:
        return any(start - near_swap_s <= t <= start + build + near_swap_s for start, build in swaps)

    def tags(r: tuple) -> dict[str, bool]:
        return {"near_swap": near_swap(r[1]), "server_busy": _at(ct, srv, r[1]) >= busy_cores,
                "client_busy": _at(ct, cli, r[1]) >= busy_cores, "queued": (r[2] - r[4]) > r[2] / 2}

    slow = [r for r in res if r[2] * 1000 > slow_ms]
    all_tags = [tags(r) for r in res]
    slow_tags = [tags(r) for r in slow]
    keys = ("near_swap", "server_busy", "client_busy", "queued")
    share = {k: (sum(t[k] for t in slow_tags) / len(slow_tags) if slow_tags else 0.0) for k in keys}
    base = {k: (sum(t[k] for t in all_tags) / len(all_tags) if all_tags else 0.0) for k in keys}
    worst = sorted(slow, key=lambda r: -r[2])[:top]
    return {
        "slow_ms": slow_ms, "n_slow": len(slow), "n": len(res),
        "share_of_slow": {k: round(v, 3) for k, v in share.items()},
        "share_of_all": {k: round(v, 3) for k, v in base.items()},
        "slow_by_kind": {k: sum(1 for r in slow if r[0] == k) for k in sorted({r[0] for r in res})},
        "slowest": [{"kind": r[0], "t": round(r[1], 2), "ms": round(r[2] * 1000, 1),
                     "from_send_ms": round(r[4] * 1000, 1), **tags(r),
                     "server_cores": round(_at(ct, srv, r[1]), 2), "client_cores": round(_at(ct, cli, r[1]), 2)}
                    for r in worst],
    }


def plot(raw: dict, rows: list[dict], path: Path, *, warmup: float, title: str) -> bool:
    """RSS (top) and per-second p99/max latency with swap marks (bottom) to ``path`` (PNG)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax, lx) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    curve = raw["rss"]
    ax.plot([t / 60 for t, _ in curve], [m for _, m in curve], lw=1.2)
    ax.axvline(warmup / 60, color="grey", ls="--", lw=0.8, label="end of warm-up")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)
    lx.plot([r["t"] / 60 for r in rows], [r["max_ms"] for r in rows], lw=0.6, color="tab:red", label="max per s")
    lx.plot([r["t"] / 60 for r in rows], [r["p99_ms"] for r in rows], lw=0.9, label="p99 per s")
    for s in raw.get("swaps", []):
        lx.axvline(s[0] / 60, color="grey", lw=0.5, alpha=0.6)
    lx.set_yscale("log")
    lx.set_ylabel("latency (ms, from due time)")
    lx.set_xlabel("minutes (grey lines: swaps)")
    lx.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
