"""Static checks of the deployment: Dockerfile, docker-compose.yml, k8s/, Prometheus and Grafana.

Offline and fast: no Docker engine, no cluster. Validators:
  - docker-compose.yml: check-jsonschema --builtin-schema vendor.compose-spec;
  - k8s/: `kubectl kustomize` of each overlay, every resource validated (strict) with
    kubernetes-validate against the Kubernetes 1.32 schemas it bundles;
  - alerts: promtool (Debian package `prometheus`) check config / check rules / test rules,
    skipped with a reason where promtool is not installed.
Plus sanity checks that tie the files to the code (service names, metric names, topology).
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from shared.topology import SERVICE_NAMES, SUBSCRIPTIONS

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "hcrm-overview.json"
K8S_VERSION = "1.32.0"
OVERLAYS = ("dev", "prod")
PROCESSES = SERVICE_NAMES + ("gateway",)
PLACEHOLDER = "CHANGE-ME"
# Secret keys whose value is a name, not a secret.
NON_SECRET_KEYS = {"username", "admin-username"}
# The metrics every process exposes (shared/metrics.py, services/gateway/app.py).
STANDARD_METRICS = {
    "hcrm_events_in_total",
    "hcrm_events_out_total",
    "hcrm_events_failed_total",
    "hcrm_events_rejected_total",
    "hcrm_events_retried_total",
    "hcrm_events_dead_lettered_total",
    "hcrm_events_duplicate_total",
    "hcrm_handler_seconds",
    "hcrm_outbox_pending",
    "hcrm_http_requests_total",
    "hcrm_http_request_seconds",
}
# Gauges the services are expected to add (docs/ARCHITECTURE.md rule 7); alerts.yml names them.
ASSUMED_GAUGES = {"hcrm_followups_overdue", "hcrm_complaints_open", "hcrm_complaints_breached"}

KUBECTL = shutil.which("kubectl")
PROMTOOL = shutil.which("promtool")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: cannot render k8s/"
)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


def load_yaml(path):
    return yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8"))


def run(*args, cwd=ROOT):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------------- image


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_as_non_root_with_healthcheck():
    instructions = dockerfile_instructions()
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    final = instructions[stages[-1] :]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage must set USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users
    assert any(word == "HEALTHCHECK" for word, _ in final)
    exposed = " ".join(rest for word, rest in final if word == "EXPOSE").split()
    assert {"8080", "9100"} <= set(exposed)
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "HCRM_METRICS_PORT=9100" in env
    # Listeners default to 127.0.0.1 (issue 21); in a container they must be reachable.
    assert "HCRM_METRICS_HOST=0.0.0.0" in env and "GATEWAY_HOST=0.0.0.0" in env
    # The gunicorn settings and the default config are files read at run time.
    copies = " ".join(rest for word, rest in final if word == "COPY")
    assert "deploy/gunicorn.conf.py" in copies and "deploy/config" in copies


def test_dockerfile_installs_dependencies_before_the_source():
    instructions = dockerfile_instructions()
    positions = {}
    for index, (word, rest) in enumerate(instructions):
        if word == "COPY" and rest.startswith("pyproject.toml ./") and "pyproject" not in positions:
            positions["pyproject"] = index
        if word == "RUN" and "requirements.txt" in rest and "deps" not in positions:
            positions["deps"] = index
        if word == "COPY" and rest.startswith("shared"):
            positions["source"] = index
        if word == "RUN" and "pip install" in rest and " ." in rest:
            positions["package"] = index
    assert set(positions) == {"pyproject", "deps", "source", "package"}, positions
    assert positions["pyproject"] < positions["deps"] < positions["source"] < positions["package"]


def test_dockerignore_keeps_secrets_and_clutter_out():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for pattern in (".env", "**/.venv", "**/.git", "tests/", "k8s/"):
        assert pattern in ignored, pattern


# ------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose():
    return load_yaml(ROOT / "docker-compose.yml")


def test_compose_matches_the_compose_specification():
    pytest.importorskip("check_jsonschema", reason="pip install -e '.[dev]' (check-jsonschema)")
    result = run(
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        "docker-compose.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_part(compose):
    services = compose["services"]
    expected = {
        "rabbitmq",
        "mongo",
        "hcrm-init",
        "gateway",
        "prometheus",
        "alertmanager",
        "grafana",
        *SERVICE_NAMES,
    }
    assert expected <= set(services), expected - set(services)
    assert services["hcrm-init"]["command"] == ["hcrm", "init"]
    assert services["hcrm-init"]["restart"] == "no"
    assert services["hcrm-init"]["healthcheck"] == {"disable": True}
    assert services["gateway"]["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    assert services["gateway"]["command"][-1] == "services.gateway.wsgi:app"
    assert "rabbitmq_prometheus" in compose["configs"]["rabbitmq_plugins"]["content"]
    assert "rabbitmq_management" in compose["configs"]["rabbitmq_plugins"]["content"]
    assert "return_per_object_metrics = true" in compose["configs"]["rabbitmq_conf"]["content"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_compose_service(compose, name):
    service = compose["services"][name]
    assert service["command"] == ["hcrm", "run", name]
    env = service["environment"]
    uri = env[f"{name.upper()}_MONGO_URI"]
    assert uri.startswith(f"mongodb://{name}:${{{name.upper()}_DB_PASSWORD:?")
    assert uri.endswith(f"@mongo:27017/hcrm_{name}?authSource=hcrm_{name}")
    assert env["HCRM_METRICS_PORT"] == "9100"
    # HCRM's own virtual host (issue 21), the one the broker creates on its first start.
    assert env["HCRM_AMQP_URI"].endswith("@rabbitmq:5672/${RABBITMQ_VHOST:-hcrm}")
    assert (
        compose["services"]["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_VHOST"]
        == "${RABBITMQ_VHOST:-hcrm}"
    )
    assert env["HCRM_METRICS_HOST"] == "0.0.0.0"  # 127.0.0.1 is the default outside containers
    assert service["depends_on"] == {
        "hcrm-init": {"condition": "service_completed_successfully"},
        "rabbitmq": {"condition": "service_healthy"},
        "mongo": {"condition": "service_healthy"},
    }
    assert "9100/metrics" in " ".join(service["healthcheck"]["test"])
    assert service["restart"] == "unless-stopped"
    assert service["read_only"] is True


def test_compose_long_running_parts_have_healthchecks_and_restart(compose):
    for name, service in compose["services"].items():
        if name == "hcrm-init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition["condition"] in (
                "service_healthy",
                "service_started",
                "service_completed_successfully",
            ), (name, dependency)


# Services that take connections from outside (the HL7 listener's MLLP port): on `frontend`
# too, since a port on an internal network cannot be published.
LISTENERS = {"hl7": 2575}


def test_compose_backend_network_is_internal(compose):
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("mongo", *SERVICE_NAMES, "hcrm-init"):
        if name in LISTENERS:
            continue
        assert compose["services"][name]["networks"] == ["backend"], name
        assert "ports" not in compose["services"][name], f"{name} must not be published"


def test_compose_hl7_listener_publishes_only_mllp_on_loopback_by_default(compose):
    service = compose["services"]["hl7"]
    assert service["networks"] == ["backend", "frontend"]
    assert service["ports"] == ["${HL7_BIND:-127.0.0.1}:${HL7_PUBLISHED_PORT:-2575}:2575"]
    assert service["environment"]["HL7_HOST"] == "0.0.0.0"  # inside the container: every interface
    assert compose["services"]["gateway"]["depends_on"]["hl7"] == {"condition": "service_started"}


def _env_items(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            yield name, key, str(value)


def test_compose_secrets_come_from_the_environment(compose):
    secretish = re.compile(r"PASSWORD|PASS$|SECRET|COOKIE", re.I)
    for name, key, value in _env_items(compose):
        if secretish.search(key):
            assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value), f"{name}.{key} = {value!r}"
        if "://" in value and "@" in value:
            # Every ${VAR:?...} becomes REQUIRED; what is left of the password must be that.
            plain = re.sub(r"\$\{[A-Z0-9_]+:\?[^}]*\}", "REQUIRED", value)
            userinfo = plain.split("://", 1)[1].split("@", 1)[0]
            assert userinfo.split(":", 1)[1] == "REQUIRED", f"{name}.{key} embeds a password"


def test_env_example_lists_every_variable_and_no_secret():
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^\s*#.*$", "", text)
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert used <= set(example), f"missing in .env.example: {sorted(used - set(example))}"
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET|COOKIE", key):
            assert value == "", f".env.example must not carry a value for {key}"


def test_mongo_init_creates_one_user_per_database(compose):
    script = (ROOT / "deploy" / "mongo" / "create-users.js").read_text(encoding="utf-8")
    owners = json.loads(re.search(r"HCRM_DATABASE_OWNERS = (\[[^\]]*\])", script).group(1))
    assert owners == list(PROCESSES)
    assert 'role: "readWrite", db: dbName' in script
    mongo = compose["services"]["mongo"]
    for name in PROCESSES:
        assert f"{name.upper()}_DB_PASSWORD" in mongo["environment"], name
    assert any(
        volume.startswith("./deploy/mongo/create-users.js:/docker-entrypoint-initdb.d/")
        for volume in mongo["volumes"]
    )


def test_prometheus_scrapes_the_compose_processes(compose):
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    names = jobs["hcrm-services"]["dns_sd_configs"][0]["names"]
    assert sorted(names) == sorted(SERVICE_NAMES)
    assert set(names) <= set(compose["services"])
    assert jobs["hcrm-gateway"]["dns_sd_configs"][0]["port"] == 8080
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]
    assert config["rule_files"] == ["alerts.yml"]


# ---------------------------------------------------------------------------------- k8s


@pytest.fixture(scope="module")
def rendered():
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: cannot render k8s/")
    out = {}
    for overlay in OVERLAYS:
        result = run(KUBECTL, "kustomize", str(K8S / "overlays" / overlay))
        assert result.returncode == 0, result.stderr
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def find(resources, kind, name=None):
    found = [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]
    if name is not None:
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
        return found[0]
    return found


def env_of(container):
    return {item["name"]: item for item in container.get("env", [])}


def configmap_data(resources, prefix):
    matches = [
        r
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith(prefix)
    ]
    assert len(matches) == 1, prefix
    return matches[0]["data"]


def pod_templates(resources):
    for resource in resources:
        if resource["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield resource, resource["spec"]["template"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_kubernetes_schemas(rendered, overlay):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install -e '.[dev]' (kubernetes-validate)"
    )
    from kubernetes_validate.utils import all_versions

    assert K8S_VERSION in all_versions()
    errors = []
    for resource in rendered[overlay]:
        try:
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        except Exception as exc:  # ValidationError, SchemaNotFoundError
            errors.append(f"{resource['kind']}/{resource['metadata']['name']}: {exc}")
    assert not errors, "\n".join(errors)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_has_a_namespace_and_puts_everything_in_it(rendered, overlay):
    namespaces = find(rendered[overlay], "Namespace")
    assert len(namespaces) == 1
    name = namespaces[0]["metadata"]["name"]
    assert name == {"dev": "hcrm-dev", "prod": "hcrm"}[overlay]
    for resource in rendered[overlay]:
        if resource["kind"] != "Namespace":
            assert resource["metadata"].get("namespace") == name, resource["metadata"]["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_each_process_has_deployment_probes_resources_pdb_hpa(rendered, overlay, name):
    resources = rendered[overlay]
    deployment = find(resources, "Deployment", name)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    template = deployment["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    spec = template["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    container = spec["containers"][0]
    assert container["image"].startswith("registry.example.org/hcrm/hcrm:")
    for probe in ("readinessProbe", "livenessProbe"):
        assert "httpGet" in container[probe], f"{name}: {probe}"
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert {"cpu", "memory"} <= set(requests) and "memory" in limits
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = env_of(container)
    uri = env[f"{name.upper()}_MONGO_URI"]["value"]
    assert uri.startswith(f"mongodb://{name}:$(MONGO_PASSWORD)@$(MONGO_HOSTS)/hcrm_{name}?")
    assert f"authSource=hcrm_{name}" in uri
    assert env["MONGO_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "hcrm-mongo-users",
        "key": name,
    }
    assert env["HCRM_AMQP_URI"]["value"].startswith("amqp://$(AMQP_USERNAME):$(AMQP_PASSWORD)@")
    assert env["HCRM_AMQP_URI"]["value"].endswith("@$(AMQP_HOST):5672/$(AMQP_VHOST)")
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    ports = {port["containerPort"] for port in container["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    if name == "gateway":
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert annotations["hcrm/scrape-job"] == "hcrm-gateway"
        assert env["HCRM_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "hcrm-gateway"
    else:
        assert container["command"] == ["hcrm", "run", name]
        assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9100",
            "prometheus.io/path": "/metrics",
            "hcrm/scrape-job": "hcrm-services",
        }
        init = spec["initContainers"][0]
        assert init["command"] == ["hcrm", "init"]
    pdb = find(resources, "PodDisruptionBudget", name)
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    hpa = find(resources, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    if overlay == "prod":
        assert hpa["spec"]["minReplicas"] >= 2


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_service_and_ingress(rendered, overlay):
    resources = rendered[overlay]
    service = find(resources, "Service", "gateway")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingresses = find(resources, "Ingress")
    assert [i["metadata"]["name"] for i in ingresses] == ["gateway"], "only the gateway is exposed"
    paths = [path for rule in ingresses[0]["spec"]["rules"] for path in rule["http"]["paths"]]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in paths] == [
        ("/api", "gateway"),
        ("/portal", "gateway"),
    ]
    for resource in resources:
        if resource["kind"] == "Service":
            assert resource["spec"].get("type", "ClusterIP") == "ClusterIP", resource["metadata"][
                "name"
            ]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hl7_listener_port_service_and_probe(rendered, overlay):
    resources = rendered[overlay]
    container = find(resources, "Deployment", "hl7")["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"mllp": LISTENERS["hl7"], "metrics": 9100}
    assert env_of(container)["HL7_HOST"]["value"] == "0.0.0.0"
    assert container["startupProbe"] == {
        "tcpSocket": {"port": "mllp"},
        "periodSeconds": 5,
        "failureThreshold": 24,
    }
    service = find(resources, "Service", "hl7")
    assert service["spec"]["ports"] == [
        {"name": "mllp", "protocol": "TCP", "port": 2575, "targetPort": "mllp"}
    ]
    policy = find(resources, "NetworkPolicy", "hl7-mllp")["spec"]
    assert (
        policy["podSelector"]["matchLabels"].items() <= container_labels(resources, "hl7").items()
    )


def container_labels(resources, name):
    return find(resources, "Deployment", name)["spec"]["template"]["metadata"]["labels"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_broker_and_store_statefulsets(rendered, overlay):
    resources = rendered[overlay]
    env = configmap_data(resources, "hcrm-env-")
    rabbitmq = find(resources, "StatefulSet", "rabbitmq")
    mongo = find(resources, "StatefulSet", "mongo")
    expected = {"dev": 1, "prod": 3}[overlay]
    assert rabbitmq["spec"]["replicas"] == mongo["spec"]["replicas"] == expected
    assert env["HCRM_QUEUE_TYPE"] == {"dev": "classic", "prod": "quorum"}[overlay]
    assert int(env["MONGO_REPLICAS"]) == expected
    assert env["MONGO_HOSTS"].split(",") == [f"mongo-{i}.mongo:27017" for i in range(expected)]
    assert env["HCRM_METRICS_PORT"] == "9100"
    # HCRM's own virtual host and listeners reachable in the pod (defaults: hcrm, 127.0.0.1).
    assert env["AMQP_VHOST"] == "hcrm" and env["HCRM_METRICS_HOST"] == "0.0.0.0"
    vhost = env_of(rabbitmq["spec"]["template"]["spec"]["containers"][0])["RABBITMQ_DEFAULT_VHOST"]
    assert vhost["valueFrom"]["configMapKeyRef"]["key"] == "AMQP_VHOST"
    assert vhost["valueFrom"]["configMapKeyRef"]["name"].startswith("hcrm-env-")
    rabbit_config = configmap_data(resources, "rabbitmq-config-")
    assert "rabbitmq_prometheus" in rabbit_config["enabled_plugins"]
    assert "prometheus.return_per_object_metrics = true" in rabbit_config["30-hcrm.conf"]
    limit = rabbitmq["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    override = int(
        re.search(
            r"total_memory_available_override_value = (\d+)", rabbit_config["40-memory.conf"]
        ).group(1)
    )
    assert override == int(int(limit.removesuffix("Gi")) * 1024**3 * 0.8)
    for statefulset in (rabbitmq, mongo):
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" in container and "livenessProbe" in container
        assert container["resources"]["limits"]["memory"]
        find(resources, "PodDisruptionBudget", statefulset["metadata"]["name"])
    job = find(resources, "Job", "mongo-init")
    job_env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    for name in PROCESSES:
        assert job_env[f"{name.upper()}_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "hcrm-mongo-users",
            "key": name,
        }


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(rendered, overlay):
    resources = rendered[overlay]
    policies = {p["metadata"]["name"]: p["spec"] for p in find(resources, "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    # From outside the namespace: only the ingress controller, and only to the gateway.
    for name, spec in policies.items():
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                assert "ipBlock" not in peer, name
                namespace = (
                    peer.get("namespaceSelector", {})
                    .get("matchLabels", {})
                    .get("kubernetes.io/metadata.name")
                )
                if namespace == "ingress-nginx":
                    assert name in ("gateway", "hl7-mllp"), name
                    if name == "hl7-mllp":
                        assert [p["port"] for p in rule["ports"]] == [LISTENERS["hl7"]]
                elif "namespaceSelector" in peer:
                    assert namespace == "monitoring", name
                    assert {p["port"] for p in rule["ports"]} <= {9100, 8080, 15692}
    # A service reaches the broker and the store, nothing else.
    services = policies["services"]
    assert services["podSelector"] == {"matchLabels": {"hcrm/role": "service"}}
    reached = {
        (rule["to"][0]["podSelector"]["matchLabels"]["hcrm/role"], rule["ports"][0]["port"])
        for rule in services["egress"]
    }
    assert reached == {("broker", 5672), ("database", 27017)}
    # Every pod is selected by a policy of its own besides default-deny.
    selectors = [
        spec["podSelector"].get("matchLabels", {})
        for name, spec in policies.items()
        if name not in ("default-deny", "allow-dns")
    ]
    for resource, template in pod_templates(resources):
        labels = template["metadata"]["labels"]
        assert any(sel and sel.items() <= labels.items() for sel in selectors), resource[
            "metadata"
        ]["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_scraped_or_needs_not_be(rendered, overlay):
    jobs = {"hcrm-services", "hcrm-gateway", "rabbitmq"}
    scraped = set()
    for resource, template in pod_templates(rendered[overlay]):
        annotations = template["metadata"].get("annotations", {})
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "hcrm"
        if annotations.get("prometheus.io/scrape") == "true":
            assert annotations["hcrm/scrape-job"] in jobs
            ports = {
                p["containerPort"]
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            }
            assert int(annotations["prometheus.io/port"]) in ports
            scraped.add(resource["metadata"]["name"])
    assert scraped == {*PROCESSES, "rabbitmq"}


def secret_refs(resources):
    """Every (secret, key) a pod reads; key None = the whole Secret (a volume)."""
    refs = set()
    for _resource, template in pod_templates(resources):
        spec = template["spec"]
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                items = volume["secret"].get("items")
                for item in items or [{"key": None}]:
                    refs.add((volume["secret"]["secretName"], item["key"]))
    for ingress in (r for r in resources if r["kind"] == "Ingress"):
        for tls in ingress["spec"].get("tls", []):
            refs.add((tls["secretName"], None))
    return refs


def test_secret_templates_hold_no_real_secret():
    templates = list(yaml.safe_load_all((K8S / "secrets" / "secrets.template.yaml").read_text()))
    assert templates
    for secret in templates:
        assert secret["kind"] == "Secret"
        assert "data" not in secret, "templates use stringData placeholders"
        for key, value in secret["stringData"].items():
            if key in NON_SECRET_KEYS:
                assert len(value) <= 16 and value.isalnum(), key
            else:
                assert value == PLACEHOLDER, (
                    f"{secret['metadata']['name']}.{key} is not a placeholder"
                )
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for secret in templates:
        kubernetes_validate.validate(secret, K8S_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_apply_no_secret_and_templates_cover_every_reference(rendered, overlay):
    resources = rendered[overlay]
    assert not find(resources, "Secret"), "Secrets are created out of band (k8s/secrets/)"
    templates = {
        s["metadata"]["name"]: s["stringData"]
        for s in yaml.safe_load_all((K8S / "secrets" / "secrets.template.yaml").read_text())
    }
    for name, key in secret_refs(resources):
        assert name in templates, f"Secret {name} has no template"
        assert key is None or key in templates[name], (
            f"Secret {name} has no key {key} in its template"
        )
    script = (K8S / "secrets" / "create-secrets.sh").read_text()
    for name, keys in templates.items():
        if name == "hcrm-tls":
            continue
        assert f"create {name} " in script or f"create {name}\n" in script, name
        for key in keys:
            assert f"--from-literal={key}=" in script, f"create-secrets.sh: {name}.{key}"


def looks_random(token):
    """Hex of 32+ characters, or 24+ characters mixing upper case, lower case and digits."""
    if re.fullmatch(r"[A-Fa-f0-9]{32,}", token):
        return True
    return len(token) >= 24 and all(re.search(cls, token) for cls in ("[A-Z]", "[a-z]", "[0-9]"))


def test_no_real_looking_secret_in_deployment_files():
    """No long random-looking token (a generated password, key or cookie) in any deployment file."""
    files = [
        ROOT / "docker-compose.yml",
        ROOT / ".env.example",
        ROOT / "Dockerfile",
        *K8S.rglob("*.yaml"),
        *K8S.rglob("*.conf"),
        *K8S.rglob("*.sh"),
        *(ROOT / "deploy").rglob("*.yml"),
        *(ROOT / "deploy" / "mongo").rglob("*.js"),
    ]
    for path in files:
        for token in re.findall(r"[A-Za-z0-9+_-]{24,}", path.read_text(encoding="utf-8")):
            assert not looks_random(token), (
                f"{path.relative_to(ROOT)}: looks like a secret: {token[:8]}..."
            )
    assert looks_random("3f2a" * 8) and looks_random("aB3" * 8)
    assert not looks_random("/spec/template/spec/containers/0/resources/requests")


def test_copies_in_k8s_are_identical_to_their_source():
    pairs = [
        (ROOT / "deploy" / "prometheus" / "alerts.yml", K8S / "base" / "monitoring" / "alerts.yml"),
        (DASHBOARD, K8S / "base" / "monitoring" / "hcrm-overview.json"),
        (ROOT / "deploy" / "mongo" / "create-users.js", K8S / "base" / "mongo" / "create-users.js"),
    ]
    for source, copy in pairs:
        assert copy.read_bytes() == source.read_bytes(), (
            f"cp {source.relative_to(ROOT)} {copy.relative_to(ROOT)}"
        )


# --------------------------------------------------------------------------- monitoring


def alert_rules():
    return [
        rule
        for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
        for rule in group["rules"]
    ]


def test_alerts_cover_what_issue_8_asks_for():
    names = {rule["alert"] for rule in alert_rules()}
    for wanted in (
        "HcrmServiceDown",
        "HcrmDeadLetterQueueGrowing",
        "HcrmConsumerLag",
        "HcrmFollowupsOverdue",
        "HcrmComplaintSlaBreached",
        "HcrmRejectedEventsGrowing",
        "HcrmQueueWithoutConsumer",
        "HcrmOutboxStuck",
    ):
        assert wanted in names
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["labels"]["team"], rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def metric_names(expr):
    return {name.removesuffix("_bucket") for name in re.findall(r"\b(hcrm_[a-z_]+)", expr)}


def test_alerts_and_dashboard_use_metrics_the_code_exposes():
    code = "".join(
        p.read_text(encoding="utf-8")
        for p in [ROOT / "shared" / "metrics.py", ROOT / "services" / "gateway" / "app.py"]
    )
    exposed = set(re.findall(r'"(hcrm_[a-z_]+)"', code))
    assert exposed >= STANDARD_METRICS, STANDARD_METRICS - exposed
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [rule["expr"] for rule in alert_rules()]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set().union(*(metric_names(e) for e in exprs))
    # The gauges the services add (hcrm_followups_overdue, ...) may not exist yet.
    assert used <= exposed | ASSUMED_GAUGES, used - exposed - ASSUMED_GAUGES


def test_alerts_name_the_queues_the_topology_declares():
    queues = {s.queue for s in SUBSCRIPTIONS}
    assert all(q.endswith(".inbound") for q in queues), "alerts match consumer queues by *.inbound"
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert 'queue="hospital.events.rejected"' in text and r'".+\\.dlq"' in text


def test_grafana_dashboard_and_provisioning():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "hcrm-overview"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "service"} <= variables
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    datasource = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "hcrm.yml")["providers"][0]
    compose = load_yaml(ROOT / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts


@needs_promtool
def test_promtool_checks_config_and_rules():
    result = run(PROMTOOL, "check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(PROMTOOL, "check", "rules", "alerts.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_alerts():
    result = run(PROMTOOL, "test", "rules", "alerts.test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_checks_the_kubernetes_scrape_config():
    result = run(PROMTOOL, "check", "config", "k8s-prometheus.yml", cwd=PROMETHEUS_DIR)
    if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool is built without Kubernetes service discovery (Debian's is)")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$service", ".*")
            rules.append(
                {"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr}
            )
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(PROMTOOL, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dev_dependencies_name_the_validators():
    import tomllib

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    names = {re.split(r"[<>=!~ ]", requirement)[0] for requirement in dev}
    assert {"check-jsonschema", "kubernetes-validate"} <= names


# ------------------------------------------------------------------- MongoDB init scripts
# Run under node with mocked mongosh globals (db, rs, print, sleep): the logic, not MongoDB.

NODE = shutil.which("node")
HARNESS = r"""
const vm = require("vm"), fs = require("fs");
const [file, envJson, stateJson] = process.argv.slice(1);
const state = JSON.parse(stateJson), calls = [];
let initiated = state.initiated;
const members = state.members.slice();
const context = {
  process: { env: JSON.parse(envJson) },
  print: () => {},
  sleep: () => {},
  db: {
    getSiblingDB: (name) => ({
      getUser: (user) => (state.users.includes(user) ? { user } : null),
      createUser: (doc) => calls.push(["createUser", name, doc.user, doc.roles]),
      updateUser: (user, doc) => calls.push(["updateUser", name, user, doc.roles]),
    }),
    hello: () => ({ isWritablePrimary: initiated }),
  },
  rs: {
    status: () => {
      if (!initiated) {
        const e = new Error("no replset config");
        e.codeName = "NotYetInitialized";
        throw e;
      }
      return { ok: 1 };
    },
    initiate: (config) => {
      calls.push(["initiate", config]);
      initiated = true;
      members.push(config.members[0].host);
    },
    conf: () => ({ members: members.map((host) => ({ host })) }),
    add: (member) => { calls.push(["add", member.host]); members.push(member.host); },
  },
};
try {
  vm.runInNewContext(fs.readFileSync(file, "utf8"), context);
  console.log(JSON.stringify({ ok: true, calls }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: error.message, calls }));
}
"""
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed: cannot run the mongosh scripts"
)
PASSWORDS = {f"{name.upper()}_DB_PASSWORD": f"{name}-password-placeholder" for name in PROCESSES}


def run_mongo_script(name, env, users=(), initiated=False, members=()):
    state = {"users": list(users), "initiated": initiated, "members": list(members)}
    result = run(
        NODE, "-e", HARNESS, str(K8S / "base" / "mongo" / name), json.dumps(env), json.dumps(state)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_node
def test_create_users_creates_or_updates_one_user_per_database():
    outcome = run_mongo_script("create-users.js", PASSWORDS, users=["intake"])
    assert outcome["ok"], outcome
    assert outcome["calls"][0] == [
        "updateUser",
        "hcrm_intake",
        "intake",
        [{"role": "readWrite", "db": "hcrm_intake"}],
    ]
    assert [call[:3] for call in outcome["calls"][1:]] == [
        ["createUser", f"hcrm_{name}", name] for name in PROCESSES[1:]
    ]
    for call in outcome["calls"]:
        assert call[3] == [{"role": "readWrite", "db": call[1]}]


@needs_node
def test_create_users_refuses_a_missing_or_short_password():
    env = dict(PASSWORDS, COMPLAINTS_DB_PASSWORD=PLACEHOLDER)
    outcome = run_mongo_script("create-users.js", env)
    assert not outcome["ok"] and "COMPLAINTS_DB_PASSWORD" in outcome["error"]
    env.pop("COMPLAINTS_DB_PASSWORD")
    assert "COMPLAINTS_DB_PASSWORD" in run_mongo_script("create-users.js", env)["error"]


@needs_node
def test_init_replica_set_initiates_once_and_adds_missing_members():
    env = {"MONGO_REPLICA_SET": "rs0", "MONGO_REPLICAS": "3"}
    first = run_mongo_script("init-replica-set.js", env)
    assert first["ok"], first
    assert first["calls"] == [
        [
            "initiate",
            {"_id": "rs0", "members": [{"_id": 0, "host": "mongo-0.mongo:27017", "priority": 2}]},
        ],
        ["add", "mongo-1.mongo:27017"],
        ["add", "mongo-2.mongo:27017"],
    ]
    again = run_mongo_script(
        "init-replica-set.js",
        env,
        initiated=True,
        members=[f"mongo-{i}.mongo:27017" for i in range(3)],
    )
    assert again == {"ok": True, "calls": []}
