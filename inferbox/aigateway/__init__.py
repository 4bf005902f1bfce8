"""Stand-ins for Envoy AI Gateway 0.2.1's external processor and Envoy Gateway's rate-limit service,
for the embedded target: Envoy's own ``ext_proc`` and ``ratelimit`` filters call them over gRPC
(``envoy.service.ext_proc.v3`` and ``envoy.service.ratelimit.v3``), so the data path stays Envoy's.

Run as ``python -m inferbox.aigateway extproc ...`` and ``python -m inferbox.aigateway ratelimit ...``.
"""
