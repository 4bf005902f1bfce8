"""Field-level shapes of the custom resource kinds inferbox applies, at the pinned upstream versions.

Each shape lists, at every level we use, every field the upstream CRD has there; a field not
listed is unknown upstream (or at least unchecked by us) and fails validation, naming the field.
Subtrees we do not use are ``Noted``: accepted without looking inside. Enumerations are the
upstream enums, or, where the CRD has none, the values the upstream code accepts (label selector
operators; Envoy Gateway's patch types, ``validation/envoyproxy_validate.go``; KServe's protocol
versions, ``pkg/constants/constants.go``). Sources (CRD ``openAPIV3Schema`` at the pinned tag):

- Gateway API v1.3.0 ``config/crd/experimental``;
- Envoy Gateway v1.4.2 ``charts/gateway-helm/crds/generated`` (``api/v1alpha1/*_types.go``);
- KServe v0.15.2 ``charts/kserve-crd/templates/serving.kserve.io_inferenceservices.yaml``;
- Istio 1.26.2 ``manifests/charts/base/files/crd-all.gen.yaml``;
- cert-manager v1.18.1 ``deploy/crds/crd-issuers.yaml``;
- prometheus-operator v0.83.0 as shipped by kube-prometheus-stack 75.6.0
  ``charts/kube-prometheus-stack/charts/crds/crds/crd-{podmonitors,servicemonitors}.yaml``;
- Envoy AI Gateway v0.2.1 ``manifests/charts/ai-gateway-crds-helm/templates/aigateway.envoyproxy.io_*.yaml``;
- kind v0.29.0 ``pkg/apis/config/v1alpha4/types.go`` (the cluster config, not a Kubernetes object).

Containers inside an InferenceService are core ``v1`` Containers and are validated with the
Kubernetes schema instead (see ``inferbox.kind.validation``).
"""

from __future__ import annotations

from inferbox.shapes import MapOf, Noted, OneOf, Shape, StringMap

UNUSED = Noted("exists upstream; inferbox does not use it, so its contents are not checked")
CONTAINER = Noted("a core/v1 Container: validated with the Kubernetes schema")

METADATA: Shape = {"name": str, "namespace": str, "labels": StringMap(), "annotations": StringMap()}
LABEL_SELECTOR: Shape = {
    "matchLabels": StringMap(),
    "matchExpressions": [{"key": str, "operator": OneOf(("In", "NotIn", "Exists", "DoesNotExist")), "values": [str]}],
}


def _camel_action(name: str) -> str:
    """prometheus-operator's CRD also accepts the CamelCase spelling of each relabel action."""
    special = {"hashmod": "HashMod", "labelmap": "LabelMap", "labeldrop": "LabelDrop", "labelkeep": "LabelKeep"}
    special |= {"keepequal": "KeepEqual", "dropequal": "DropEqual"}
    return special.get(name, name.capitalize())


def _object(spec: Shape) -> Shape:
    return {"apiVersion": str, "kind": str, "metadata": METADATA, "spec": spec}


# -- Gateway API v1.3.0 ---------------------------------------------------------------------------
GW_PARENT_REF: Shape = {"group": str, "kind": str, "name": str, "namespace": str, "port": int, "sectionName": str}
GW_HEADER_MODIFIER: Shape = {
    "add": [{"name": str, "value": str}],
    "set": [{"name": str, "value": str}],
    "remove": [str],
}
GW_HTTP_FILTER: Shape = {
    "type": OneOf(
        (
            "RequestHeaderModifier",
            "ResponseHeaderModifier",
            "RequestMirror",
            "RequestRedirect",
            "URLRewrite",
            "ExtensionRef",
            "CORS",
        )
    ),
    "requestHeaderModifier": GW_HEADER_MODIFIER,
    "responseHeaderModifier": GW_HEADER_MODIFIER,
    "urlRewrite": {
        "hostname": str,
        "path": {
            "type": OneOf(("ReplaceFullPath", "ReplacePrefixMatch")),
            "replaceFullPath": str,
            "replacePrefixMatch": str,
        },
    },
    "extensionRef": {"group": str, "kind": str, "name": str},
    "requestMirror": UNUSED,
    "requestRedirect": UNUSED,
    "cors": UNUSED,
}
GATEWAY_CLASS: Shape = _object(
    {
        "controllerName": str,
        "description": str,
        "parametersRef": {"group": str, "kind": str, "name": str, "namespace": str},
    }
)
GATEWAY: Shape = _object(
    {
        "gatewayClassName": str,
        "addresses": [{"type": str, "value": str}],
        "infrastructure": {
            "annotations": StringMap(),
            "labels": StringMap(),
            "parametersRef": {"group": str, "kind": str, "name": str},
        },
        "listeners": [
            {
                "name": str,
                "hostname": str,
                "port": int,
                "protocol": str,
                "tls": UNUSED,
                "allowedRoutes": {
                    "kinds": [{"group": str, "kind": str}],
                    "namespaces": {"from": OneOf(("All", "Selector", "Same")), "selector": LABEL_SELECTOR},
                },
            }
        ],
        "allowedListeners": UNUSED,
        "backendTLS": UNUSED,
    }
)
HTTP_ROUTE: Shape = _object(
    {
        "parentRefs": [GW_PARENT_REF],
        "hostnames": [str],
        "rules": [
            {
                "name": str,
                "matches": [
                    {
                        "path": {"type": OneOf(("Exact", "PathPrefix", "RegularExpression")), "value": str},
                        "headers": [{"name": str, "type": OneOf(("Exact", "RegularExpression")), "value": str}],
                        "queryParams": [{"name": str, "type": OneOf(("Exact", "RegularExpression")), "value": str}],
                        "method": OneOf(
                            ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
                        ),
                    }
                ],
                "filters": [GW_HTTP_FILTER],
                "backendRefs": [
                    {
                        "group": str,
                        "kind": str,
                        "name": str,
                        "namespace": str,
                        "port": int,
                        "weight": int,
                        "filters": [GW_HTTP_FILTER],
                    }
                ],
                "timeouts": {"request": str, "backendRequest": str},
                "retry": {"attempts": int, "backoff": str, "codes": [int]},
                "sessionPersistence": UNUSED,
            }
        ],
    }
)
REFERENCE_GRANT: Shape = _object(
    {
        "from": [{"group": str, "kind": str, "namespace": str}],
        "to": [{"group": str, "kind": str, "name": str}],
    }
)

# -- Envoy Gateway v1.4.2 -------------------------------------------------------------------------
EG_TARGET_REF: Shape = {"group": str, "kind": str, "name": str, "sectionName": str}
EG_POLICY_TARGETS: dict[str, Shape] = {
    "targetRef": EG_TARGET_REF,
    "targetRefs": [EG_TARGET_REF],
    "targetSelectors": UNUSED,
}
EG_PATCH: Shape = {"type": OneOf(("JSONMerge", "StrategicMerge")), "value": Noted("a patch of the generated object")}
ENVOY_PROXY: Shape = _object(
    {
        "provider": {
            "type": OneOf(("Kubernetes", "Custom")),
            "kubernetes": {
                "envoyService": {
                    "type": OneOf(("ClusterIP", "LoadBalancer", "NodePort")),
                    "externalTrafficPolicy": OneOf(("Local", "Cluster")),
                    "name": str,
                    "annotations": StringMap(),
                    "labels": StringMap(),
                    "allocateLoadBalancerNodePorts": bool,
                    "loadBalancerClass": str,
                    "loadBalancerIP": str,
                    "loadBalancerSourceRanges": [str],
                    "patch": EG_PATCH,
                },
                "envoyDeployment": {
                    "name": str,
                    "replicas": int,
                    "patch": EG_PATCH,
                    "container": UNUSED,
                    "initContainers": UNUSED,
                    "pod": UNUSED,
                    "strategy": UNUSED,
                },
                "envoyDaemonSet": UNUSED,
                "envoyHpa": UNUSED,
                "envoyPDB": UNUSED,
                "useListenerPortAsContainerPort": bool,
            },
        },
        "backendTLS": UNUSED,
        "bootstrap": UNUSED,
        "concurrency": int,
        "extraArgs": [str],
        "filterOrder": UNUSED,
        "ipFamily": OneOf(("IPv4", "IPv6", "DualStack")),
        "logging": UNUSED,
        "mergeGateways": bool,
        "preserveRouteOrder": bool,
        "routingType": str,
        "shutdown": UNUSED,
        "telemetry": {
            "accessLog": UNUSED,
            "metrics": {
                "enablePerEndpointStats": bool,
                "enableRequestResponseSizesStats": bool,
                "enableVirtualHostStats": bool,
                "matches": UNUSED,
                "prometheus": {"compression": UNUSED, "disable": bool},
                "sinks": UNUSED,
            },
            "tracing": {
                "samplingRate": int,
                "samplingFraction": {"numerator": int, "denominator": int},
                "customTags": MapOf(
                    {
                        "type": OneOf(("Literal", "Environment", "RequestHeader")),
                        "literal": {"value": str},
                        "environment": {"name": str, "defaultValue": str},
                        "requestHeader": {"name": str, "defaultValue": str},
                    }
                ),
                "provider": {
                    "type": OneOf(("OpenTelemetry", "Zipkin", "Datadog")),
                    "backendRefs": [
                        {"group": str, "kind": str, "name": str, "namespace": str, "port": int, "fallback": bool}
                    ],
                    "backendRef": UNUSED,
                    "backendSettings": UNUSED,
                    "host": str,
                    "port": int,
                    "zipkin": UNUSED,
                },
            },
        },
    }
)
CLIENT_TRAFFIC_POLICY: Shape = _object(
    {
        **EG_POLICY_TARGETS,
        "headers": {
            "earlyRequestHeaders": GW_HEADER_MODIFIER,
            "disableRateLimitHeaders": bool,
            "enableEnvoyHeaders": bool,
            "preserveXRequestID": bool,
            "requestID": OneOf(("PreserveOrGenerate", "Preserve", "Generate", "Disable")),
            "withUnderscoresAction": OneOf(("Allow", "RejectRequest", "DropHeader")),
            "xForwardedClientCert": UNUSED,
        },
        "clientIPDetection": UNUSED,
        "connection": UNUSED,
        "enableProxyProtocol": bool,
        "healthCheck": UNUSED,
        "http1": UNUSED,
        "http2": UNUSED,
        "http3": UNUSED,
        "path": UNUSED,
        "tcpKeepalive": UNUSED,
        "timeout": UNUSED,
        "tls": UNUSED,
    }
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
SECURITY_POLICY: Shape = _object(
    {
        **EG_POLICY_TARGETS,
        "jwt": {
            "optional": bool,
            "providers": [
                {
                    "name": str,
                    "issuer": str,
                    "audiences": [str],
                    "remoteJWKS": {"uri": str, "backendRef": UNUSED, "backendRefs": UNUSED, "backendSettings": UNUSED},
                    "localJWKS": {
                        "type": OneOf(("Inline", "ValueRef")),
                        "inline": str,
                        "valueRef": {"group": str, "kind": str, "name": str},
                    },
                    "claimToHeaders": [{"header": str, "claim": str}],
                    "recomputeRoute": bool,
                    "extractFrom": {"headers": [{"name": str, "valuePrefix": str}], "cookies": [str], "params": [str]},
                }
            ],
        },
        "authorization": {
            "defaultAction": OneOf(("Allow", "Deny")),
            "rules": [
                {
                    "name": str,
                    "action": OneOf(("Allow", "Deny")),
                    "operation": {"methods": [OneOf(HTTP_METHODS)]},
                    "principal": {
                        "clientCIDRs": [str],
                        # Upstream 1.4.2: a header name and its allowed values (no match type).
                        "headers": [{"name": str, "values": [str]}],
                        "jwt": {
                            "provider": str,
                            "claims": [{"name": str, "valueType": OneOf(("String", "StringArray")), "values": [str]}],
                            "scopes": [str],
                        },
                    },
                }
            ],
        },
        "apiKeyAuth": UNUSED,
        "basicAuth": UNUSED,
        "cors": UNUSED,
        "extAuth": UNUSED,
        "oidc": UNUSED,
    }
)
EG_RATE_LIMIT_RULE: Shape = {
    "clientSelectors": [
        {
            "headers": [
                {"name": str, "type": OneOf(("Exact", "RegularExpression", "Distinct")), "value": str, "invert": bool}
            ],
            "sourceCIDR": {"type": OneOf(("Exact", "Distinct")), "value": str},
        }
    ],
    "limit": {"requests": int, "unit": OneOf(("Second", "Minute", "Hour", "Day"))},
    "cost": {
        side: {"from": OneOf(("Number", "Metadata")), "number": int, "metadata": {"namespace": str, "key": str}}
        for side in ("request", "response")
    },
    "shared": bool,
}
BACKEND_TRAFFIC_POLICY: Shape = _object(
    {
        **EG_POLICY_TARGETS,
        "rateLimit": {
            "type": OneOf(("Global", "Local")),
            "local": {"rules": [EG_RATE_LIMIT_RULE]},
            "global": {"rules": [EG_RATE_LIMIT_RULE]},
        },
        **{
            name: UNUSED
            for name in (
                "circuitBreaker",
                "compression",
                "connection",
                "dns",
                "faultInjection",
                "healthCheck",
                "http2",
                "httpUpgrade",
                "loadBalancer",
                "mergeType",
                "proxyProtocol",
                "requestBuffer",
                "responseOverride",
                "retry",
                "tcpKeepalive",
                "telemetry",
                "timeout",
                "useClientProtocol",
            )
        },
    }
)

# -- KServe v0.15.2 -------------------------------------------------------------------------------
# The predictor's own fields; its model is a Container plus the fields below, validated apart.
ISVC_MODEL_FIELDS: dict[str, Shape] = {
    "modelFormat": {"name": str, "version": str},
    "runtime": str,
    "runtimeVersion": str,
    "protocolVersion": OneOf(("v1", "v2", "grpc-v1", "grpc-v2")),
    "storageUri": str,
    "storage": UNUSED,
}
ISVC_PREDICTOR: Shape = {
    "minReplicas": int,
    "maxReplicas": int,
    "scaleMetric": OneOf(("cpu", "memory", "concurrency", "rps")),
    "scaleMetricType": OneOf(("Utilization", "Value", "AverageValue")),
    "scaleTarget": int,
    "containerConcurrency": int,
    "timeout": int,
    "canaryTrafficPercent": int,
    "annotations": StringMap(),
    "labels": StringMap(),
    "serviceAccountName": str,
    "model": Noted("the model: a Container plus modelFormat/runtime/storageUri, validated apart"),
    "containers": [CONTAINER],
    **{
        name: UNUSED
        for name in (
            "activeDeadlineSeconds", "affinity", "autoScaling", "automountServiceAccountToken", "batcher",
            "deploymentStrategy", "dnsConfig", "dnsPolicy", "enableServiceLinks", "hostAliases", "hostIPC",
            "hostNetwork", "hostPID", "hostUsers", "hostname", "huggingface", "imagePullSecrets", "initContainers",
            "lightgbm", "logger", "nodeName", "nodeSelector", "onnx", "os", "overhead", "paddle", "pmml",
            "preemptionPolicy", "priority", "priorityClassName", "pytorch", "readinessGates", "resourceClaims",
            "resources", "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext",
            "serviceAccount", "setHostnameAsFQDN", "shareProcessNamespace", "sklearn", "subdomain", "tensorflow",
            "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints", "triton", "volumes",
            "workerSpec", "xgboost",
        )
    },
}  # fmt: skip
INFERENCE_SERVICE: Shape = _object({"predictor": ISVC_PREDICTOR, "transformer": UNUSED, "explainer": UNUSED})

# -- Istio 1.26.2 ---------------------------------------------------------------------------------
ISTIO_SELECTOR: Shape = {"matchLabels": StringMap()}
ISTIO_TARGET_REF: Shape = {"group": str, "kind": str, "name": str, "namespace": str}
ISTIO_TARGETS: dict[str, Shape] = {
    "selector": ISTIO_SELECTOR,
    "targetRef": ISTIO_TARGET_REF,
    "targetRefs": [ISTIO_TARGET_REF],
}
TELEMETRY: Shape = _object(
    {
        **ISTIO_TARGETS,
        "tracing": [
            {
                "providers": [{"name": str}],
                "randomSamplingPercentage": float,
                "match": {"mode": OneOf(("CLIENT_AND_SERVER", "CLIENT", "SERVER"))},
                "disableSpanReporting": bool,
                "enableIstioTags": bool,
                "useRequestIdForTraceSampling": bool,
                "customTags": UNUSED,
            }
        ],
        "accessLogging": UNUSED,
        "metrics": UNUSED,
    }
)
PEER_AUTHENTICATION: Shape = _object(
    {
        "selector": ISTIO_SELECTOR,
        "mtls": {"mode": OneOf(("UNSET", "DISABLE", "PERMISSIVE", "STRICT"))},
        "portLevelMtls": Noted("per-port mTLS modes, keyed by port number"),
    }
)
_ISTIO_SOURCE = (
    "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
    "serviceAccounts", "notServiceAccounts", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks",
)  # fmt: skip
_ISTIO_OPERATION = ("hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths")
AUTHORIZATION_POLICY: Shape = _object(
    {
        **ISTIO_TARGETS,
        "action": OneOf(("ALLOW", "DENY", "AUDIT", "CUSTOM")),
        "provider": {"name": str},
        "rules": [
            {
                "from": [{"source": {name: [str] for name in _ISTIO_SOURCE}}],
                "to": [{"operation": {name: [str] for name in _ISTIO_OPERATION}}],
                "when": [{"key": str, "values": [str], "notValues": [str]}],
            }
        ],
    }
)
REQUEST_AUTHENTICATION: Shape = _object(
    {
        **ISTIO_TARGETS,
        "jwtRules": [
            {
                "issuer": str,
                "audiences": [str],
                "jwksUri": str,
                "jwks_uri": str,
                "jwks": str,
                "fromHeaders": [{"name": str, "prefix": str}],
                "fromCookies": [str],
                "fromParams": [str],
                "outputPayloadToHeader": str,
                "outputClaimToHeaders": [{"header": str, "claim": str}],
                "forwardOriginalToken": bool,
                "timeout": str,
            }
        ],
    }
)

# -- cert-manager v1.18.1 -------------------------------------------------------------------------
ISSUER: Shape = _object(
    {"selfSigned": {"crlDistributionPoints": [str]}, "ca": UNUSED, "acme": UNUSED, "vault": UNUSED, "venafi": UNUSED}
)

# -- kind v0.29.0 cluster config ------------------------------------------------------------------
KIND_CLUSTER: Shape = {
    "kind": OneOf(("Cluster",)),
    "apiVersion": OneOf(("kind.x-k8s.io/v1alpha4",)),
    "name": str,
    "nodes": [
        {
            "role": OneOf(("control-plane", "worker")),
            "image": str,
            "labels": StringMap(),
            "extraMounts": UNUSED,
            "extraPortMappings": [
                {"containerPort": int, "hostPort": int, "listenAddress": str, "protocol": OneOf(("TCP", "UDP", "SCTP"))}
            ],
            "kubeadmConfigPatches": [str],
            "kubeadmConfigPatchesJSON6902": UNUSED,
        }
    ],
    "networking": UNUSED,
    "featureGates": UNUSED,
    "runtimeConfig": StringMap(),
    "kubeadmConfigPatches": [str],
    "kubeadmConfigPatchesJSON6902": UNUSED,
    "containerdConfigPatches": [str],
    "containerdConfigPatchesJSON6902": [str],
}

# -- prometheus-operator v0.83.0 (kube-prometheus-stack 75.6.0) --------------------------------
RELABEL_ACTIONS: tuple[str, ...] = ("replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep")
RELABEL_ACTIONS += ("lowercase", "uppercase", "keepequal", "dropequal")
PROM_RELABEL: Shape = {
    "action": OneOf(tuple(a for name in RELABEL_ACTIONS for a in (name, _camel_action(name)))),
    "modulus": int,
    "regex": str,
    "replacement": str,
    "separator": str,
    "sourceLabels": [str],
    "targetLabel": str,
}
_ENDPOINT_COMMON: dict[str, Shape] = {
    "authorization": UNUSED,
    "basicAuth": UNUSED,
    "bearerTokenSecret": UNUSED,
    "enableHttp2": bool,
    "filterRunning": bool,
    "followRedirects": bool,
    "honorLabels": bool,
    "honorTimestamps": bool,
    "interval": str,
    "metricRelabelings": [PROM_RELABEL],
    "oauth2": UNUSED,
    "params": UNUSED,
    "path": str,
    "port": str,
    "proxyUrl": str,
    "relabelings": [PROM_RELABEL],
    "scheme": OneOf(("http", "https")),
    "scrapeTimeout": str,
    "targetPort": UNUSED,
    "tlsConfig": UNUSED,
    "trackTimestampsStaleness": bool,
}
_MONITOR_COMMON: dict[str, Shape] = {
    "attachMetadata": UNUSED,
    "bodySizeLimit": str,
    "convertClassicHistogramsToNHCB": bool,
    "fallbackScrapeProtocol": str,
    "jobLabel": str,
    "keepDroppedTargets": int,
    "labelLimit": int,
    "labelNameLengthLimit": int,
    "labelValueLengthLimit": int,
    "namespaceSelector": {"any": bool, "matchNames": [str]},
    "nativeHistogramBucketLimit": int,
    "nativeHistogramMinBucketFactor": UNUSED,
    "podTargetLabels": [str],
    "sampleLimit": int,
    "scrapeClass": str,
    "scrapeClassicHistograms": bool,
    "scrapeProtocols": [str],
    "selector": LABEL_SELECTOR,
    "selectorMechanism": OneOf(("RelabelConfig", "RoleSelector")),
    "targetLimit": int,
}
POD_MONITOR: Shape = _object({**_MONITOR_COMMON, "podMetricsEndpoints": [{**_ENDPOINT_COMMON, "portNumber": int}]})
SERVICE_MONITOR: Shape = _object(
    {**_MONITOR_COMMON, "targetLabels": [str], "endpoints": [{**_ENDPOINT_COMMON, "bearerTokenFile": str}]}
)

# (apiVersion, kind) -> shape. Istio serves v1 and v1beta1 of its security kinds with one schema.
# -- Envoy Gateway v1.4.2 Backend, Envoy AI Gateway v0.2.1 ------------------------------------------
EG_BACKEND: Shape = _object(
    {
        "endpoints": [
            {"fqdn": {"hostname": str, "port": int}, "ip": {"address": str, "port": int}, "unix": {"path": str}}
        ],
        "appProtocols": UNUSED,
        "fallback": bool,
        "tls": UNUSED,
        "type": OneOf(("Endpoints", "DynamicResolver")),
    }
)
AI_SCHEMA: Shape = {"name": OneOf(("OpenAI", "AWSBedrock", "AzureOpenAI")), "version": str}
AI_TIMEOUTS: Shape = {"request": str, "backendRequest": str}
AI_GATEWAY_ROUTE: Shape = _object(
    {
        "schema": AI_SCHEMA,
        "targetRefs": [{"group": str, "kind": str, "name": str, "sectionName": str}],
        "rules": [
            {
                "matches": [{"headers": [{"name": str, "type": OneOf(("Exact", "RegularExpression")), "value": str}]}],
                "backendRefs": [{"name": str, "weight": int, "priority": int}],
                "timeouts": AI_TIMEOUTS,
                "modelsOwnedBy": str,
                "modelsCreatedAt": str,
            }
        ],
        "filterConfig": {
            "type": OneOf(("ExternalProcessor", "DynamicModule")),
            "externalProcessor": {"replicas": int, "resources": UNUSED},
        },
        "llmRequestCosts": [
            {"metadataKey": str, "type": OneOf(("OutputToken", "InputToken", "TotalToken", "CEL")), "cel": str}
        ],
    }
)
AI_SERVICE_BACKEND: Shape = _object(
    {
        "schema": AI_SCHEMA,
        "backendRef": {"group": str, "kind": str, "name": str, "namespace": str, "port": int},
        "backendSecurityPolicyRef": {"group": str, "kind": str, "name": str},
        "timeouts": AI_TIMEOUTS,
    }
)

SHAPES: dict[tuple[str, str], Shape] = {
    ("gateway.networking.k8s.io/v1", "GatewayClass"): GATEWAY_CLASS,
    ("gateway.networking.k8s.io/v1", "Gateway"): GATEWAY,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTP_ROUTE,
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): REFERENCE_GRANT,
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"): ENVOY_PROXY,
    ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"): CLIENT_TRAFFIC_POLICY,
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): SECURITY_POLICY,
    ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"): BACKEND_TRAFFIC_POLICY,
    ("gateway.envoyproxy.io/v1alpha1", "Backend"): EG_BACKEND,
    ("aigateway.envoyproxy.io/v1alpha1", "AIGatewayRoute"): AI_GATEWAY_ROUTE,
    ("aigateway.envoyproxy.io/v1alpha1", "AIServiceBackend"): AI_SERVICE_BACKEND,
    ("serving.kserve.io/v1beta1", "InferenceService"): INFERENCE_SERVICE,
    ("telemetry.istio.io/v1", "Telemetry"): TELEMETRY,
    ("security.istio.io/v1", "PeerAuthentication"): PEER_AUTHENTICATION,
    ("security.istio.io/v1beta1", "PeerAuthentication"): PEER_AUTHENTICATION,
    ("security.istio.io/v1", "AuthorizationPolicy"): AUTHORIZATION_POLICY,
    ("security.istio.io/v1beta1", "AuthorizationPolicy"): AUTHORIZATION_POLICY,
    ("security.istio.io/v1", "RequestAuthentication"): REQUEST_AUTHENTICATION,
    ("security.istio.io/v1beta1", "RequestAuthentication"): REQUEST_AUTHENTICATION,
    ("cert-manager.io/v1", "Issuer"): ISSUER,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}
