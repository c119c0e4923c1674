"""A light HTTP/1.1 load generator: open loop (fixed arrivals) or closed loop (c connections).

Open loop: request i is *scheduled* at ``t0 + i / rate`` (or Poisson arrivals with
``poisson=True``) and its latency is measured from that scheduled time, not from when it was
sent: a request that waits for a free connection or for a slow server counts the wait, so a
stalled server shows as latency instead of as fewer requests sent (no coordinated omission).
A request goes out on an idle kept-alive connection; when none is idle a new one is opened (up
to ``max_conns``), after that it queues (still timed from its schedule).

Closed loop: ``conns`` connections, each sending its next request when the previous answer
arrives (wrk's model: latency from send, throughput is what the server sustains).

Both use raw asyncio protocols on uvloop (no HTTP library on the hot path) and report the
client's own CPU share (user + system seconds of this process / wall seconds), so a benchmark
can show that the cores measured the server. Per-worker counts come from the server's
``x-winnow-worker`` response header (the answering process id).

    python bench/loadgen.py --url http://127.0.0.1:8000 --rate 300 --duration 20 \
        --path '/v1/users/{user}/recommendations?k=20' --users users.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    """What one run measured; latencies in seconds, ``None`` where nothing finished."""

    mode: str
    target: float                      # open loop: requests/s scheduled; closed loop: connections
    duration_s: float
    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)     # completion times (perf_counter)
    window_end: float = 0.0            # perf_counter at the end of the scheduled window
    errors: Counter = field(default_factory=Counter)       # kind -> count (status codes as "http_5xx")
    workers: Counter = field(default_factory=Counter)      # x-winnow-worker -> answered requests
    scheduled: int = 0
    unfinished: int = 0                # scheduled but not answered when the run ended
    connections: int = 0
    client_cpu_s: float = 0.0          # this process's user + system CPU over the run
    wall_s: float = 0.0                # the scheduled window
    elapsed_s: float = 0.0             # the window plus the drain of requests in flight

    def summary(self) -> dict:
        """JSON-ready figures: achieved rate, percentiles (ms), errors, per-worker counts, CPU."""
        a = np.asarray(self.latencies) * 1e3
        pct = {f"p{q:g}_ms": (round(float(np.percentile(a, q)), 3) if len(a) else None)
               for q in (50, 90, 99, 99.9)}
        return {"mode": self.mode, "target": self.target, "duration_s": self.duration_s,
                "requests": len(a), "scheduled": self.scheduled, "unfinished": self.unfinished,
                # answers completed inside the window: a saturated server shows its real rate
                "achieved_rps": round(sum(t <= self.window_end for t in self.done_at) / self.wall_s, 1)
                if self.wall_s else 0.0,
                **pct, "max_ms": round(float(a.max()), 3) if len(a) else None,
                "mean_ms": round(float(a.mean()), 3) if len(a) else None,
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "per_worker": dict(sorted(self.workers.items())), "connections": self.connections,
                "client_cpu_share": round(self.client_cpu_s / self.elapsed_s, 4) if self.elapsed_s else None}


class _Conn(asyncio.Protocol):
    """One kept-alive connection; answers are matched to requests in order (no pipelining)."""

    def __init__(self, gen: _Gen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.start = 0.0           # the time the current request's latency counts from
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, start: float) -> None:
        self.start, self.busy = start, True
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            length = 0
            worker = b""
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
                elif line.startswith(b"x-winnow-worker:"):
                    worker = line[16:].strip()
            if len(self.buf) < end + 4 + length:
                return
            status = int(head[9:12])
            del self.buf[:end + 4 + length]
            self.busy = False
            self.gen.answered(self, status, worker.decode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.lost(self)


class _Gen:
    def __init__(self, host: str, port: int, next_request: Callable[[], bytes], result: LoadResult,
                 *, max_conns: int, timeout_s: float) -> None:
        self.host, self.port = host, port
        self.next_request = next_request
        self.result = result
        self.max_conns = max_conns
        self.timeout_s = timeout_s
        self.idle: deque[_Conn] = deque()  # FIFO: every kept-alive connection takes turns
        self.conns: set[_Conn] = set()
        self.opening = 0
        self.queue: list[float] = []        # scheduled times waiting for a connection
        self.on_answer: Callable[[_Conn], None] | None = None
        self.recording = True

    async def open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        self.opening += 1
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        finally:
            self.opening -= 1
        self.conns.add(conn)
        self.result.connections += 1
        return conn

    def answered(self, conn: _Conn, status: int, worker: str) -> None:
        now = time.perf_counter()
        if self.recording:
            self.result.latencies.append(now - conn.start)
            self.result.done_at.append(now)
            self.result.workers[worker or "?"] += 1
            if status >= 400:
                self.result.errors[f"http_{status}"] += 1
        if self.on_answer is not None:
            self.on_answer(conn)
        elif self.queue:
            conn.send(self.next_request(), self.queue.pop(0))
        else:
            self.idle.append(conn)

    def lost(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.busy and self.recording:
            self.result.errors["connection_lost"] += 1

    async def _dispatch(self, scheduled: float) -> None:
        if self.idle:
            self.idle.popleft().send(self.next_request(), scheduled)
            return
        self.queue.append(scheduled)
        if len(self.conns) + self.opening < self.max_conns:
            try:
                conn = await self.open()
            except OSError:
                self.result.errors["connect"] += 1
                return
            if self.queue:
                conn.send(self.next_request(), self.queue.pop(0))
            else:
                self.idle.append(conn)


async def _open_loop(gen: _Gen, rate: float, duration_s: float, poisson: bool, seed: int,
                     pool: int) -> None:
    rng = random.Random(seed)
    for _ in range(pool):  # a warm keep-alive pool, as a front proxy keeps (used in turn, FIFO)
        gen.idle.append(await gen.open())
    loop_start = time.perf_counter()
    t = loop_start
    end = gen.result.window_end = loop_start + duration_s
    tasks: set[asyncio.Task] = set()
    i = 0
    while True:
        i += 1  # fixed arrivals: t_i = start + i / rate exactly (a running sum of 1 / rate drifts,
        # so whether a request lands on the window's last instant depended on the start time)
        t = t + rng.expovariate(rate) if poisson else loop_start + i / rate
        if t >= end:
            break
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        gen.result.scheduled += 1
        task = asyncio.ensure_future(gen._dispatch(t))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:  # every scheduled request handed to a connection (or queued) before the drain
        await asyncio.gather(*tasks)
    await _drain(gen, end)


async def _drain(gen: _Gen, end: float) -> None:
    """Wait (at most ``timeout_s`` past the end) for the requests in flight, then stop."""
    deadline = end + gen.timeout_s
    while time.perf_counter() < deadline and (gen.queue or any(c.busy for c in gen.conns)):
        await asyncio.sleep(0.01)
    gen.recording = False
    gen.result.unfinished = len(gen.queue) + sum(c.busy for c in gen.conns)
    if gen.result.unfinished:
        gen.result.errors["timeout"] += gen.result.unfinished


async def _closed_loop(gen: _Gen, conns: int, duration_s: float) -> None:
    opened = [await gen.open() for _ in range(conns)]
    end = gen.result.window_end = time.perf_counter() + duration_s

    def again(conn: _Conn) -> None:
        now = time.perf_counter()
        if now < end:
            gen.result.scheduled += 1
            conn.send(gen.next_request(), now)

    gen.on_answer = again
    for c in opened:
        again(c)
    await asyncio.sleep(max(end - time.perf_counter(), 0))
    await _drain(gen, end)


def run(url: str, paths: Sequence[str], *, rate: float | None = None, conns: int | None = None,
        duration_s: float = 10.0, poisson: bool = False, max_conns: int = 512, timeout_s: float = 10.0,
        seed: int = 0, pool: int = 8) -> LoadResult:
    """One run against ``url``: open loop at ``rate`` requests/s, or closed loop with ``conns``
    connections (exactly one of the two). Each request GETs a path drawn uniformly (seeded) from
    ``paths``. The open loop starts with ``pool`` kept-alive connections used in turn and opens
    more only when all are busy. Returns the measured ``LoadResult``."""
    if (rate is None) == (conns is None):
        raise ValueError(f"give exactly one of rate ({rate}) and conns ({conns})")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(seed)
    reqs = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in paths]
    result = LoadResult("open" if rate else "closed", float(rate or conns), duration_s)
    gen = _Gen(host, port, lambda: reqs[rng.randrange(len(reqs))], result, max_conns=max_conns,
               timeout_s=timeout_s)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # plain asyncio works too, at a higher client CPU share
        runner = asyncio.run
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()

    async def main() -> None:
        if rate is not None:
            await _open_loop(gen, float(rate), duration_s, poisson, seed, pool)
        else:
            await _closed_loop(gen, int(conns or 1), duration_s)
        for c in list(gen.conns):
            if c.transport is not None:
                c.transport.close()

    runner(main())
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    result.wall_s = duration_s  # rates are over the scheduled window (the drain is excluded)
    result.elapsed_s = time.perf_counter() - w0
    result.client_cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--path", default="/v1/users/{user}/recommendations?k=20")
    ap.add_argument("--users", help="file with one user id per line (substituted for {user})")
    ap.add_argument("--rate", type=float, help="open loop: requests/s")
    ap.add_argument("--conns", type=int, help="closed loop: connections")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of a fixed interval")
    args = ap.parse_args()
    users = open(args.users).read().split() if args.users else ["1"]
    paths = [args.path.format(user=u) for u in users]
    res = run(args.url, paths, rate=args.rate, conns=args.conns, duration_s=args.duration,
              poisson=args.poisson)
    print(json.dumps(res.summary(), indent=2))


if __name__ == "__main__":
    main()
