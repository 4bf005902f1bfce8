"""Chaos experiments: faults under load, each with a steady-state hypothesis, run on Chaos
Toolkit's engine through the inferbox extension (``actions``, ``probes``), judged on the open-loop
prober's timeline with the conformance profile's chaos tolerances."""
