"""The declared subset of each Kubernetes API that the embedded target interprets.

Anything outside these shapes is an error naming the kind and the field: an ignored security
field would be a hole that the suite then "proves" closed. Fields marked Noted only make sense on a
real cluster (images, probes, resource requests) and are listed by ``inferbox up --explain``.
"""

from __future__ import annotations

from inferbox.embedded.knative_defaults import check_configmap, revision_timeouts
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.serving_plan import PREVIOUS_PREDICTOR, previous_predictor
from inferbox.shapes import MapOf, Noted, OneOf, Shape, StringMap, Whole, check_shape, noted_fields

ON_CLUSTER = "used by the Kubernetes scheduler or kubelet only"

METADATA: Shape = {
    "name": str,
    "namespace": str,
    "labels": StringMap(),
    "annotations": StringMap(),
}

PARENT_REF: Shape = {"group": str, "kind": OneOf(("Gateway",)), "name": str, "namespace": str}
TARGET_REF: Shape = {
    "group": OneOf(("gateway.networking.k8s.io",)),
    "kind": OneOf(("HTTPRoute", "Gateway")),
    "name": str,
}
HEADER_MATCH: Shape = {"name": str, "type": OneOf(("Exact",)), "value": str}
# Envoy Gateway's global rate limit: a bucket per value of a Distinct header.
GLOBAL_HEADER_MATCH: Shape = {"name": str, "type": OneOf(("Exact", "Distinct")), "value": str}
RATE_LIMIT_COST: Shape = {
    "from": OneOf(("Number", "Metadata")),
    "number": int,
    "metadata": {"namespace": str, "key": str},
}
# Envoy Gateway's authorization principal matches a header against any of several values.
PRINCIPAL_HEADER: Shape = {"name": str, "values": [str]}
PATH_MATCH: Shape = {"type": OneOf(("Exact", "PathPrefix")), "value": str}
# Requests and limits count against the namespace's ResourceQuota and are checked against its
# LimitRange by the embedded deployer (inferbox/embedded/quota.py).
RESOURCES: Shape = {"requests": {"cpu": int, "memory": int}, "limits": {"cpu": int, "memory": int}}
PROBE: Shape = Noted("probes are run by the kubelet; the embedded target waits on its own health checks")

CONTAINER: Shape = {
    "name": str,
    "image": str,
    "imagePullPolicy": Noted(ON_CLUSTER),
    "args": [str],
    "command": [str],
    "env": [{"name": str, "value": str}],
    "ports": [{"name": str, "containerPort": int, "protocol": OneOf(("TCP",))}],
    "readinessProbe": PROBE,
    "livenessProbe": PROBE,
    "resources": RESOURCES,
    "volumeMounts": [{"name": str, "mountPath": str, "readOnly": bool}],
}

LABEL_SELECTOR: Shape = {"matchLabels": StringMap()}
ISTIO_SELECTOR: Shape = {"matchLabels": StringMap()}
RESOURCE_LIST: Shape = StringMap()
# Observability: prometheus-operator monitors become the embedded Prometheus's scrape config (see
# inferbox/embedded/monitors.py); Istio Telemetry and EnvoyProxy telemetry set tracing.
MONITOR_SELECTOR: Shape = {
    "matchLabels": StringMap(),
    "matchExpressions": [{"key": str, "operator": OneOf(("In", "NotIn", "Exists", "DoesNotExist")), "values": [str]}],
}
RELABEL_CONFIG: Shape = {
    "sourceLabels": [str],
    "separator": str,
    "targetLabel": str,
    "regex": str,
    "modulus": int,
    "replacement": str,
    "action": OneOf(
        (
            "replace",
            "keep",
            "drop",
            "hashmod",
            "labelmap",
            "labeldrop",
            "labelkeep",
            "lowercase",
            "uppercase",
            "keepequal",
            "dropequal",
        )
    ),
}
MONITOR_ENDPOINT: dict[str, Shape] = {
    "port": str,
    "path": str,
    "scheme": OneOf(("http",)),
    "interval": str,
    "scrapeTimeout": str,
    "honorLabels": bool,
    "relabelings": [RELABEL_CONFIG],
    "metricRelabelings": [RELABEL_CONFIG],
}
NAMESPACE_SELECTOR: Shape = {"any": bool, "matchNames": [str]}
TRACING_TAG: Shape = {
    "type": OneOf(("Literal", "Environment", "RequestHeader")),
    "literal": {"value": str},
    "environment": {"name": str, "defaultValue": str},
    "requestHeader": {"name": str, "defaultValue": str},
}
BACKEND_REF: Shape = {"group": OneOf(("",)), "kind": OneOf(("Service",)), "name": str, "namespace": str, "port": int}

SHAPES: dict[str, Shape] = {
    "Namespace": {"apiVersion": str, "kind": str, "metadata": METADATA},
    "ServiceAccount": {"apiVersion": str, "kind": str, "metadata": METADATA},
    "ConfigMap": {"apiVersion": str, "kind": str, "metadata": METADATA, "data": StringMap()},
    "Service": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "selector": StringMap(),
            "ports": [{"name": str, "port": int, "targetPort": int, "protocol": OneOf(("TCP",))}],
        },
    },
    "Deployment": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "replicas": int,
            "selector": {"matchLabels": StringMap()},
            "template": {
                "metadata": {"labels": StringMap(), "annotations": StringMap()},
                "spec": {
                    "serviceAccountName": str,
                    "containers": [CONTAINER],
                    "volumes": [{"name": str, "secret": {"secretName": str}}],
                },
            },
        },
    },
    "GatewayClass": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "controllerName": OneOf(("gateway.envoyproxy.io/gatewayclass-controller",)),
            "parametersRef": {"group": str, "kind": OneOf(("EnvoyProxy",)), "name": str, "namespace": str},
        },
    },
    "EnvoyProxy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "provider": Noted("how Envoy Gateway deploys its proxy pods and Service on a cluster"),
            "telemetry": {
                "metrics": {"prometheus": {"disable": bool}},
                "tracing": {
                    "samplingRate": int,
                    "customTags": MapOf(TRACING_TAG),
                    "provider": {"type": OneOf(("OpenTelemetry",)), "backendRefs": [BACKEND_REF]},
                },
            },
        },
    },
    "PodMonitor": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "selector": MONITOR_SELECTOR,
            "namespaceSelector": NAMESPACE_SELECTOR,
            "jobLabel": str,
            "podTargetLabels": [str],
            "podMetricsEndpoints": [{**MONITOR_ENDPOINT, "portNumber": int}],
        },
    },
    "ServiceMonitor": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "selector": MONITOR_SELECTOR,
            "namespaceSelector": NAMESPACE_SELECTOR,
            "jobLabel": str,
            "targetLabels": [str],
            "podTargetLabels": [str],
            "endpoints": [MONITOR_ENDPOINT],
        },
    },
    "Telemetry": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "tracing": [
                {
                    "providers": [{"name": str}],
                    "randomSamplingPercentage": float,
                    "disableSpanReporting": bool,
                }
            ]
        },
    },
    "Gateway": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "gatewayClassName": str,
            # A Gateway's own EnvoyProxy (its proxy Deployment and Service on a cluster).
            "infrastructure": {
                "parametersRef": {
                    "group": OneOf(("gateway.envoyproxy.io",)),
                    "kind": OneOf(("EnvoyProxy",)),
                    "name": str,
                }
            },
            "listeners": [
                {
                    "name": str,
                    "protocol": OneOf(("HTTP",)),
                    "port": int,
                    "hostname": str,
                    "allowedRoutes": {
                        "namespaces": {
                            "from": OneOf(("Same", "All", "Selector")),
                            "selector": {"matchLabels": StringMap()},
                        }
                    },
                }
            ],
        },
    },
    # Path handling, header underscores and the listener buffer as Envoy Gateway translates them
    # (inferbox/embedded/eg_policies.py); unset fields take its defaults.
    "ClientTrafficPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "targetRefs": [TARGET_REF],
            "headers": {
                "earlyRequestHeaders": {"remove": [str]},
                "withUnderscoresAction": OneOf(("Allow", "RejectRequest", "DropHeader")),
            },
            "path": {
                "disableMergeSlashes": bool,
                "escapedSlashesAction": OneOf(
                    ("KeepUnchanged", "RejectRequest", "UnescapeAndForward", "UnescapeAndRedirect")
                ),
            },
            "connection": {"bufferLimit": int},
        },
    },
    # Patches of the generated listener, applied as Envoy Gateway applies them (envoy_patch.py).
    "EnvoyPatchPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "type": OneOf(("JSONPatch",)),
            "targetRef": {"group": OneOf(("gateway.networking.k8s.io",)), "kind": OneOf(("Gateway",)), "name": str},
            "priority": int,
            "jsonPatches": [
                {
                    "type": str,
                    "name": str,
                    "operation": {
                        "op": str,
                        "path": str,
                        "jsonPath": str,
                        "from": str,
                        "value": Whole("the JSON a patch operation writes"),
                    },
                }
            ],
        },
    },
    # Lua scripts run by Envoy's Lua filter after authentication, as Envoy Gateway places them.
    "EnvoyExtensionPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {"targetRefs": [TARGET_REF], "lua": [{"type": OneOf(("Inline",)), "inline": str}]},
    },
    "HTTPRoute": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "parentRefs": [PARENT_REF],
            "hostnames": [str],
            "rules": [
                {
                    "matches": [{"path": PATH_MATCH}],
                    "backendRefs": [
                        {
                            "group": OneOf(("",)),
                            "kind": OneOf(("Service",)),
                            "name": str,
                            "namespace": str,
                            "port": int,
                            "weight": int,
                        }
                    ],
                    # Envoy Gateway's route timeout (eg_policies.route_timeout).
                    "timeouts": {"request": str, "backendRequest": str},
                }
            ],
        },
    },
    "ReferenceGrant": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "from": [{"group": str, "kind": str, "namespace": str}],
            "to": [{"group": str, "kind": str, "name": str}],
        },
    },
    "SecurityPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "targetRefs": [TARGET_REF],
            "jwt": {
                "optional": bool,
                "providers": [
                    {
                        "name": str,
                        "issuer": str,
                        "audiences": [str],
                        "remoteJWKS": {"uri": str},
                        "claimToHeaders": [{"header": str, "claim": str}],
                        "extractFrom": {
                            "headers": [{"name": str, "valuePrefix": str}],
                            "cookies": [str],
                            "params": [str],
                        },
                    }
                ],
            },
            "authorization": {
                "defaultAction": OneOf(("Allow", "Deny")),
                "rules": [
                    {
                        "name": str,
                        "action": OneOf(("Allow", "Deny")),
                        "principal": {
                            "jwt": {
                                "provider": str,
                                "claims": [{"name": str, "valueType": OneOf(("String",)), "values": [str]}],
                            },
                            "headers": [PRINCIPAL_HEADER],
                        },
                    }
                ],
            },
        },
    },
    "BackendTrafficPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "targetRefs": [TARGET_REF],
            "rateLimit": {
                "type": OneOf(("Local", "Global")),
                # Global limits with request and response costs: on the AI Gateway only (ai_gateway_plan.py).
                "global": {
                    "rules": [
                        {
                            "clientSelectors": [{"headers": [GLOBAL_HEADER_MATCH]}],
                            "limit": {"requests": int, "unit": OneOf(("Second", "Minute", "Hour", "Day"))},
                            "shared": bool,
                            "cost": {"request": RATE_LIMIT_COST, "response": RATE_LIMIT_COST},
                        }
                    ]
                },
                "local": {
                    "rules": [
                        {
                            "clientSelectors": [{"headers": [HEADER_MATCH]}],
                            "limit": {"requests": int, "unit": OneOf(("Second", "Minute", "Hour"))},
                        }
                    ]
                },
            },
            # Bodies above the limit are refused (413) by Envoy's buffer filter on the route.
            "requestBuffer": {"limit": int},
            # Envoy Gateway's fault injection (Envoy's fault filter on the route); gRPC aborts are not interpreted.
            "faultInjection": {
                "delay": {"fixedDelay": str, "percentage": float},
                "abort": {"httpStatus": int, "percentage": float},
            },
            # Resilience (inferbox/embedded/gateway_plan.py resilience_for): the route's retry policy,
            # the backend cluster's passive health check (outlier detection) and connect timeout.
            "retry": {
                "numRetries": int,
                "retryOn": {"triggers": [str], "httpStatusCodes": [int]},
                "perRetry": {"timeout": str, "backOff": {"baseInterval": str, "maxInterval": str}},
            },
            "healthCheck": {
                "panicThreshold": int,
                "passive": {
                    "interval": str,
                    "baseEjectionTime": str,
                    "consecutive5XxErrors": int,
                    "consecutiveGatewayErrors": int,
                    "consecutiveLocalOriginFailures": int,
                    "splitExternalLocalOriginErrors": bool,
                    "maxEjectionPercent": int,
                },
            },
            "timeout": {"tcp": {"connectTimeout": str}},
        },
    },
    # Istio's outlier detection for a tenant's revision services (gateway_config.cluster_resilience).
    "DestinationRule": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "host": str,
            "trafficPolicy": {
                "outlierDetection": {
                    "consecutive5xxErrors": int,
                    "consecutiveGatewayErrors": int,
                    "consecutiveLocalOriginFailures": int,
                    "splitExternalLocalOriginErrors": bool,
                    "interval": str,
                    "baseEjectionTime": str,
                    "maxEjectionPercent": int,
                    "minHealthPercent": int,
                }
            },
        },
    },
    # Envoy AI Gateway 0.2.1 (inferbox/embedded/ai_gateway_plan.py).
    "AIGatewayRoute": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "schema": {"name": OneOf(("OpenAI",)), "version": str},
            "targetRefs": [{"group": OneOf(("gateway.networking.k8s.io",)), "kind": OneOf(("Gateway",)), "name": str}],
            "rules": [
                {
                    "matches": [{"headers": [HEADER_MATCH]}],
                    "backendRefs": [{"name": str, "weight": int}],
                    "timeouts": {"request": str},
                    "modelsOwnedBy": str,
                    "modelsCreatedAt": str,
                }
            ],
            "filterConfig": {
                "type": OneOf(("ExternalProcessor",)),
                "externalProcessor": {"resources": Noted("the processor sidecar's resources on a cluster")},
            },
            "llmRequestCosts": [{"metadataKey": str, "type": OneOf(("InputToken", "OutputToken", "TotalToken"))}],
        },
    },
    "AIServiceBackend": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "schema": {"name": OneOf(("OpenAI",)), "version": str},
            "backendRef": {"group": OneOf(("gateway.envoyproxy.io",)), "kind": OneOf(("Backend",)), "name": str},
        },
    },
    "Backend": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {"endpoints": [{"fqdn": {"hostname": str, "port": int}}]},
    },
    "InferenceService": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "predictor": {
                "serviceAccountName": str,
                "minReplicas": int,
                "maxReplicas": int,
                # Knative's KPA on each revision (inferbox/embedded/autoscaler.py); traffic split
                # between the latest and the rolled-out revision (inferbox/serving_plan.py).
                "scaleMetric": OneOf(("concurrency", "rps")),
                "scaleTarget": int,
                "canaryTrafficPercent": int,
                "model": {
                    "modelFormat": {"name": str, "version": str},
                    "protocolVersion": OneOf(("v1", "v2")),
                    "storageUri": str,
                    "resources": RESOURCES,
                },
                "containers": [CONTAINER],
            }
        },
    },
    # Istio security (translated to sidecar TLS, jwt_authn and RBAC; see inferbox/embedded/mesh_plan.py).
    "PeerAuthentication": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "selector": ISTIO_SELECTOR,
            "mtls": {"mode": OneOf(("UNSET", "DISABLE", "PERMISSIVE", "STRICT"))},
        },
    },
    "RequestAuthentication": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "selector": ISTIO_SELECTOR,
            "jwtRules": [
                {
                    "issuer": str,
                    "audiences": [str],
                    "jwksUri": str,
                    "forwardOriginalToken": bool,
                    "outputClaimToHeaders": [{"header": str, "claim": str}],
                    "fromHeaders": [{"name": str, "prefix": str}],
                    "fromParams": [str],
                    "fromCookies": [str],
                }
            ],
        },
    },
    "AuthorizationPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "selector": ISTIO_SELECTOR,
            "action": OneOf(("ALLOW", "DENY")),
            "rules": [
                {
                    "from": [
                        {
                            "source": {
                                "principals": [str],
                                "notPrincipals": [str],
                                "namespaces": [str],
                                "notNamespaces": [str],
                                "requestPrincipals": [str],
                                "notRequestPrincipals": [str],
                            }
                        }
                    ],
                    "to": [
                        {
                            "operation": {
                                "methods": [str],
                                "notMethods": [str],
                                "paths": [str],
                                "notPaths": [str],
                                "ports": [str],
                                "notPorts": [str],
                            }
                        }
                    ],
                    "when": [{"key": str, "values": [str], "notValues": [str]}],
                }
            ],
        },
    },
    # Kubernetes isolation and quotas (nftables in pod namespaces; the deployer's admission).
    "NetworkPolicy": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "podSelector": LABEL_SELECTOR,
            "policyTypes": [OneOf(("Ingress",))],
            "ingress": [
                {
                    "from": [{"podSelector": LABEL_SELECTOR, "namespaceSelector": LABEL_SELECTOR}],
                    "ports": [{"protocol": OneOf(("TCP",)), "port": int}],
                }
            ],
        },
    },
    "ResourceQuota": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {"hard": RESOURCE_LIST},
    },
    "LimitRange": {
        "apiVersion": str,
        "kind": str,
        "metadata": METADATA,
        "spec": {
            "limits": [
                {
                    "type": OneOf(("Container",)),
                    "default": RESOURCE_LIST,
                    "defaultRequest": RESOURCE_LIST,
                    "max": RESOURCE_LIST,
                    "min": RESOURCE_LIST,
                }
            ]
        },
    },
}


def check_supported(obj: K8sObject) -> None:
    """Raises ManifestError naming the kind and field the embedded target cannot interpret."""
    shape = SHAPES.get(obj.kind)
    if shape is None:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: kind {obj.kind} is not supported by the embedded target",
            f"remove it, or run on a cluster (--platform kind/existing); supported kinds: {', '.join(sorted(SHAPES))}",
        )
    problem = check_shape(obj.body, shape)
    if problem is None:
        return
    allowed = f" (supported here: {', '.join(problem.allowed)})" if problem.allowed else ""
    raise ManifestError(
        f"{obj.source}: {obj.ref}: field {problem.path} {problem.message}{allowed}; "
        "the embedded target interprets a declared subset of each API and never ignores a field",
        "remove or correct the field, or run this manifest on a cluster (--platform kind/existing)",
    )


def check_all_supported(manifests: ManifestSet) -> None:
    for obj in manifests:
        check_supported(obj)
        if obj.kind == "InferenceService":
            _check_previous_predictor(obj)
        if obj.kind == "ConfigMap":
            check_configmap(obj)
    revision_timeouts(manifests)  # Knative's validation of config-defaults


def _check_previous_predictor(obj: K8sObject) -> None:
    """The revision rolled out before (a merge patch in an annotation) must stay within the subset too."""
    previous = previous_predictor(obj)
    isvc = SHAPES["InferenceService"]
    assert isinstance(isvc, dict)
    spec_shape = isvc["spec"]
    assert isinstance(spec_shape, dict)
    problem = None if previous is None else check_shape(previous, spec_shape["predictor"], "spec.predictor")
    if problem is not None:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: the previous revision (annotation {PREVIOUS_PREDICTOR}): field "
            f"{problem.path} {problem.message}",
            "the patched predictor must stay within the subset the embedded target interprets",
        )


def not_interpreted(manifests: ManifestSet) -> list[tuple[str, str, str]]:
    """(object, field, why) for every Noted field present: accepted, meaningful only on a cluster."""
    rows: list[tuple[str, str, str]] = []
    for obj in manifests:
        shape = SHAPES.get(obj.kind)
        if shape is not None:
            rows.extend((obj.ref, path, why) for path, why in noted_fields(obj.body, shape))
    return rows
