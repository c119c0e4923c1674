"""winnow.lifecycle: ``winnow autopilot``, the loop that keeps the served bundle current.

A cycle is a pipeline of named, idempotent stages (winnow.lifecycle.cycle): snapshot (a time
cut of the store) -> datasets (training part and the holdout window) -> fit (``winnow train``'s
job at the cut's holdout start, never activating) -> gate (champion vs challenger on the
holdout) -> write (the verdict into the bundle's manifest) -> handoff (activate, or hold).
Every stage's inputs, outputs and timings land in the cycle record (winnow.cyclelog.record).
Training runs in the autopilot's own process, never inside a serving process.
"""
