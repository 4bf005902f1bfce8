"""``python -m inferbox.aigateway {extproc,ratelimit}``."""

from inferbox.aigateway.server import main

main()
