"""Starts KServe's ModelServer for one artifact.

``python -m inferbox.modelserver --model_name NAME --model ARTIFACT --http_port PORT``; every
other flag is KServe's own (it parses sys.argv itself). A generative artifact (``ngram-*``) is served
on KServe's V1 routes (metadata, readiness) and on KServe's OpenAI-compatible routes
(``inferbox.modelserver.openai_api``).
"""

from __future__ import annotations

import argparse
import copy
import os
import warnings
from typing import Any

from inferbox.model_kinds import GENERATIVE_ARTIFACTS
from inferbox.modelserver.artifacts import ARTIFACTS


def _bind_host_override() -> None:
    # KServe's REST server binds 0.0.0.0 with no flag to change it. Inside a pod's network
    # namespace that is the pod's own address; on the loopback fallback it would expose the model
    # to the machine's network, so the embedded target asks for 127.0.0.1 instead.
    host = os.environ.get("INFERBOX_BIND_HOST")
    if not host:
        return
    import uvicorn
    from kserve.protocol.rest import server

    class _Config(uvicorn.Config):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["host"] = host
            super().__init__(*args, **kwargs)

    server.uvicorn.Config = _Config


def _model_server() -> Any:
    """KServe's ModelServer with this process's own flags. KServe parses sys.argv when it is first
    imported and binds the results as constructor defaults; a replica forked from a pre-imported
    template (``inferbox.modelserver.template``) has other flags than the template had, so they are
    parsed again here and passed explicitly."""
    import kserve
    from kserve import model_server

    flags, _ = model_server.parser.parse_known_args()
    model_server.args = flags  # KServe reads it at run time too (logging, predictor settings)
    # KServe builds its FastAPI app at import, and FastAPI reads its telemetry settings
    # (FASTAPI_OTEL_AUTO_CONFIGURE) when an app is built: build it again with this process's
    # environment, as KServe does (its REST server looks the app up by name when it starts).
    previous = model_server.app
    model_server.app = type(previous)(
        title=previous.title,
        version=previous.version,
        docs_url="/docs" if flags.enable_docs_url else None,
        redoc_url=None,
        default_response_class=previous.router.default_response_class,
    )
    return kserve.ModelServer(
        http_port=flags.http_port,
        grpc_port=flags.grpc_port,
        workers=flags.workers,
        max_threads=flags.max_threads,
        max_asyncio_workers=flags.max_asyncio_workers,
        enable_grpc=flags.enable_grpc,
        enable_docs_url=flags.enable_docs_url,
        enable_latency_logging=False,
        access_log_format=flags.access_log_format,
        event_loop=flags.event_loop,
        timeout_keep_alive=flags.timeout_keep_alive,
        ssl_certfile=flags.ssl_certfile,
        ssl_keyfile=flags.ssl_keyfile,
    )


def main() -> None:
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model", required=True, choices=[*ARTIFACTS, *GENERATIVE_ARTIFACTS])
    parser.add_argument("--model_name", required=True)
    # Without validation, malformed inputs surface as 500s, as with a model that trusts its callers.
    parser.add_argument("--validate_inputs", default="true", choices=["true", "false"])
    ours, _ = parser.parse_known_args()

    from kserve import logging as kserve_logging

    from inferbox.modelserver.models import ArtifactModel

    # Per-request access and timing lines cost a third of the server's throughput and grow the
    # logs without bound under load; keep KServe's format, drop those two loggers to WARNING.
    config = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)
    for name in ("uvicorn.access", "kserve.trace"):
        config["loggers"][name]["level"] = "WARNING"
    kserve_logging.configure_logging(config)
    _bind_host_override()
    if ours.model in GENERATIVE_ARTIFACTS:
        from kserve import model_server

        from inferbox.modelserver.generative import NgramGenerativeModel
        from inferbox.modelserver.openai_api import register_openai_endpoints

        generative = NgramGenerativeModel(ours.model_name, ours.model)
        generative.load()
        server = _model_server()  # builds KServe's app anew: the routes go on that one
        register_openai_endpoints(model_server.app, {generative.name: generative})
        server.start([generative])
        return
    model = ArtifactModel(ours.model_name, ours.model, validate=ours.validate_inputs == "true")
    model.load()
    _model_server().start([model])


if __name__ == "__main__":
    main()
