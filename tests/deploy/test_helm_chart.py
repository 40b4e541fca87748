"""Lint and render the Helm chart, then validate every rendered manifest offline.

Core Kubernetes kinds are checked against the JSON schemas that the `kubernetes-validate` package
ships. The CRD kinds (KEDA, Prometheus Operator, Strimzi) are checked against the small schemas in
crd_schemas/, which cover only the fields the chart renders. helm comes from
deploy/tools/install-helm.sh, which builds it from the Go module proxy on the first run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "spanline"
CRD_SCHEMA_DIR = Path(__file__).resolve().parent / "crd_schemas"
INSTALL_SCRIPT = REPO_ROOT / "deploy" / "tools" / "install-helm.sh"
RELEASE = "spanline"
MONITORING_API = "monitoring.coreos.com/v1"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest with shipped schemas.
KUBERNETES_VERSIONS = ("1.27.0", "latest")
CRD_SCHEMAS = {
    "KafkaTopic": "kafkatopic.json",
    "ScaledObject": "scaledobject.json",
    "TriggerAuthentication": "triggerauthentication.json",
    "ServiceMonitor": "servicemonitor.json",
    "PrometheusRule": "prometheusrule.json",
}
WORKER_COMPONENTS = ("span-worker", "frame-worker", "runs-worker")

# The first test may build helm (several minutes on 2 cores) inside its fixture setup.
pytestmark = pytest.mark.timeout(1800)

Manifest = dict[str, Any]


def _helm_bin_dir() -> Path:
    configured = os.environ.get("SPANLINE_HELM_BIN_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "spanline" / "bin"


@pytest.fixture(scope="session")
def helm() -> Path:
    """Return the helm binary, building it with deploy/tools/install-helm.sh when it is missing."""
    binary = _helm_bin_dir() / "helm"
    if not binary.exists():
        if shutil.which("go") is None:
            pytest.skip(f"helm not found at {binary} and go is not installed to build it")
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1200
        )
        if result.returncode != 0:
            pytest.skip(
                f"helm could not be built by {INSTALL_SCRIPT.name} "
                f"(exit {result.returncode}): {result.stderr[-800:]}"
            )
    return binary


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., list[Manifest]]:
    """Return a function that runs `helm template` and returns the non-empty manifests."""
    cache: dict[tuple[str, ...], list[Manifest]] = {}

    def run(*args: str) -> list[Manifest]:
        if args not in cache:
            command = [str(helm), "template", RELEASE, str(CHART), "--namespace", "observability", *args]
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
            cache[args] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return cache[args]

    return run


def _values(name: str) -> tuple[str, ...]:
    return ("-f", str(CHART / "ci" / f"{name}-values.yaml"))


# Every scenario the chart must render; each is also validated manifest by manifest.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "default": (),
    "small": _values("small"),
    "large": (*_values("large"), "--api-versions", MONITORING_API),
    "keda": ("--set", "autoscaling.keda.enabled=true"),
    "keda-sasl": (
        "--set", "autoscaling.keda.enabled=true",
        "--set", "kafka.securityProtocol=SASL_SSL",
        "--set", "kafka.sasl.mechanism=SCRAM-SHA-256",
        "--set", "kafka.sasl.existingSecret=kafka-user",
        "--set", "kafka.tls.caSecret=kafka-ca",
    ),
    "hpa": ("--set", "autoscaling.hpa.enabled=true"),
    "strimzi": (
        "--set", "kafka.strimziTopics.enabled=true",
        "--set", "kafka.strimziTopics.clusterName=events",
    ),
    "strimzi-v1": (
        "--set", "kafka.strimziTopics.enabled=true",
        "--set", "kafka.strimziTopics.clusterName=events",
        "--set", "kafka.strimziTopics.apiVersion=kafka.strimzi.io/v1",
    ),
    "monitoring": ("--api-versions", MONITORING_API),
    "ingress": (
        "--set", "replay.ingress.enabled=true",
        "--set", "replay.ingress.hosts[0].host=replay.example.com",
        "--set", "replay.ingress.hosts[0].paths[0].path=/",
        "--set", "replay.ingress.hosts[0].paths[0].pathType=Prefix",
    ),
}


def _by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] == kind]


def _named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in _by_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def _pod_spec(manifest: Manifest) -> Manifest:
    if manifest["kind"] == "CronJob":
        return manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return manifest["spec"]["template"]["spec"]


def _workloads(manifests: list[Manifest]) -> Iterator[Manifest]:
    for manifest in manifests:
        if manifest["kind"] in {"Deployment", "Job", "CronJob"}:
            yield manifest


def _env(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# --- helm lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values", ["default", "small", "large"])
def test_helm_lint_strict_passes(helm: Path, values: str) -> None:
    args = () if values == "default" else _values(values)
    result = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def failed_render(helm: Path, *settings: str) -> str:
    """Run `helm template` with `--set` for each setting, check that it fails and return stderr."""
    command = [str(helm), "template", RELEASE, str(CHART)]
    for setting in settings:
        command += ["--set", setting]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, f"helm template {' '.join(settings)} rendered without an error"
    return result.stderr


def test_values_schema_rejects_unknown_key(helm: Path) -> None:
    assert "replica" in failed_render(helm, "spanWorker.replica=3")


def test_missing_database_secret_fails_render(helm: Path) -> None:
    assert "database.existingSecret" in failed_render(helm, "database.existingSecret=")


def test_sasl_without_secret_fails_render(helm: Path) -> None:
    stderr = failed_render(helm, "kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN")
    assert "kafka.sasl.existingSecret" in stderr


def test_unequal_run_keyed_partitions_fail_render(helm: Path) -> None:
    assert "topics.runs.partitions (5)" in failed_render(helm, "topics.runs.partitions=5")


def test_topics_job_passes_values_as_plan(render: Callable[..., list[Manifest]]) -> None:
    from pipeline.stack.topics import parse_topic_plan

    job = _named(render(), "Job", "spanline-topics")
    command = _pod_spec(job)["containers"][0]["command"]
    plan = parse_topic_plan(command[command.index("--plan-json") + 1])
    by_name = {topic.name: topic for topic in plan}

    assert set(by_name) == {
        "spanline.spans.v1", "spanline.frames.v1", "spanline.spans.v1.dlq", "spanline.frames.v1.dlq",
        "spanline.spans.enriched.v1", "spanline.runs.v1", "spanline.prices.v1",
    }
    assert by_name["spanline.spans.v1"].partitions == 12
    assert by_name["spanline.spans.v1"].replication_factor == 3
    assert by_name["spanline.runs.v1"].configs == {"cleanup.policy": "compact"}
    assert by_name["spanline.frames.v1"].configs["max.message.bytes"] == "9437184"


# --- offline schema validation -----------------------------------------------------------------


def _validate_core(manifest: Manifest, version: str) -> None:
    import kubernetes_validate

    desired = kubernetes_validate.latest_version() if version == "latest" else version
    kubernetes_validate.validate(manifest, desired, strict=True)


def _validate_crd(manifest: Manifest) -> None:
    schema = json.loads((CRD_SCHEMA_DIR / CRD_SCHEMAS[manifest["kind"]]).read_text())
    jsonschema.Draft7Validator(schema).validate(manifest)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_manifests_match_schemas(render: Callable[..., list[Manifest]], scenario: str) -> None:
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the test extra")
    manifests = render(*SCENARIOS[scenario])
    assert manifests, f"scenario {scenario} rendered nothing"
    for manifest in manifests:
        label = f"{scenario}: {manifest['kind']} {manifest['metadata']['name']}"
        if manifest["kind"] in CRD_SCHEMAS:
            try:
                _validate_crd(manifest)
            except jsonschema.ValidationError as error:
                pytest.fail(f"{label}: {error.message} at {list(error.absolute_path)}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                _validate_core(manifest, version)
            except Exception as error:  # kubernetes_validate raises several unrelated types
                pytest.fail(f"{label} (Kubernetes {version}): {error}")


def test_crd_schema_rejects_misspelt_field() -> None:
    topic = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {"name": "spans"},
        "spec": {"partitons": 3},
    }
    with pytest.raises(jsonschema.ValidationError):
        _validate_crd(topic)


# --- default render ----------------------------------------------------------------------------


def test_default_render_has_worker_deployments(render: Callable[..., list[Manifest]]) -> None:
    manifests = render()
    span = _named(manifests, "Deployment", "spanline-span-worker")
    frame = _named(manifests, "Deployment", "spanline-frame-worker")
    span_command = span["spec"]["template"]["spec"]["containers"][0]["command"]
    frame_command = frame["spec"]["template"]["spec"]["containers"][0]["command"]
    assert span_command[:3] == ["spanline", "worker", "spans"]
    assert frame_command[:3] == ["spanline", "worker", "frames"]
    assert "0.0.0.0" in span_command
    assert span["spec"]["replicas"] == 2


def test_default_render_has_replay_service(render: Callable[..., list[Manifest]]) -> None:
    manifests = render()
    deployment = _named(manifests, "Deployment", "spanline-replay")
    service = _named(manifests, "Service", "spanline-replay")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["spanline", "replay", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert not _by_kind(manifests, "Ingress")


def test_migration_job_is_pre_install_hook(render: Callable[..., list[Manifest]]) -> None:
    job = _named(render(), "Job", "spanline-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert _pod_spec(job)["containers"][0]["command"] == ["spanline", "stack", "migrate"]
    # The release's ServiceAccount does not exist yet when a pre-install hook runs.
    assert "serviceAccountName" not in _pod_spec(job)


def test_migration_command_comes_from_values(render: Callable[..., list[Manifest]]) -> None:
    job = _named(render("--set", "migrations.command={spanline,db,upgrade}"), "Job", "spanline-migrate")
    assert _pod_spec(job)["containers"][0]["command"] == ["spanline", "db", "upgrade"]


def test_topics_job_runs_before_migrations(render: Callable[..., list[Manifest]]) -> None:
    manifests = render()
    topics = _named(manifests, "Job", "spanline-topics")
    migrate = _named(manifests, "Job", "spanline-migrate")
    assert _pod_spec(topics)["containers"][0]["command"][:4] == ["spanline", "stack", "topics", "--plan-json"]
    assert "pre-install" in topics["metadata"]["annotations"]["helm.sh/hook"]
    topics_weight = int(topics["metadata"]["annotations"]["helm.sh/hook-weight"])
    migrate_weight = int(migrate["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert topics_weight < migrate_weight


def test_retention_cronjob_passes_age(render: Callable[..., list[Manifest]]) -> None:
    cronjob = _named(render(), "CronJob", "spanline-retention")
    command = _pod_spec(cronjob)["containers"][0]["command"]
    assert command == ["spanline", "retention", "run", "--older-than", "7d"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_pdb_per_worker_deployment(render: Callable[..., list[Manifest]]) -> None:
    manifests = render()
    for component in WORKER_COMPONENTS:
        pdb = _named(manifests, "PodDisruptionBudget", f"spanline-{component}")
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component


def test_every_container_is_restricted(render: Callable[..., list[Manifest]]) -> None:
    for manifest in _workloads(render()):
        pod = _pod_spec(manifest)
        name = f"{manifest['kind']} {manifest['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["seccompProfile"]["type"] == "RuntimeDefault", name
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, name


def test_worker_state_dir_is_writable_volume(render: Callable[..., list[Manifest]]) -> None:
    for component in WORKER_COMPONENTS:
        deployment = _named(render(), "Deployment", f"spanline-{component}")
        container = _pod_spec(deployment)["containers"][0]
        state_dir = _env(container)["SPANLINE_STATE_DIR"]["value"]
        assert state_dir in {mount["mountPath"] for mount in container["volumeMounts"]}


@pytest.mark.parametrize(
    ("name", "port"),
    [("spanline-span-worker", "http"), ("spanline-frame-worker", "http"), ("spanline-replay", "http")],
)
def test_probes_use_health_endpoints(render: Callable[..., list[Manifest]], name: str, port: str) -> None:
    container = _pod_spec(_named(render(), "Deployment", name))["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}


def test_worker_port_is_6066(render: Callable[..., list[Manifest]]) -> None:
    for component in WORKER_COMPONENTS:
        container = _pod_spec(_named(render(), "Deployment", f"spanline-{component}"))["containers"][0]
        assert container["ports"] == [{"name": "http", "containerPort": 6066, "protocol": "TCP"}]
        command = container["command"]
        assert command[command.index("--web-port") + 1] == "6066"


def test_secrets_come_from_secret_refs(render: Callable[..., list[Manifest]]) -> None:
    container = _pod_spec(_named(render(), "Deployment", "spanline-span-worker"))["containers"][0]
    env = _env(container)
    for name in ("SPANLINE_DATABASE_DSN", "SPANLINE_S3_ACCESS_KEY", "SPANLINE_S3_SECRET_KEY"):
        assert "value" not in env[name], name
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert env["SPANLINE_KAFKA_BOOTSTRAP"]["value"] == "kafka-bootstrap:9092"
    assert env["SPANLINE_S3_SECURE"]["value"] == "true"


def test_env_names_are_settings_fields(render: Callable[..., list[Manifest]]) -> None:
    from dataclasses import fields

    from pipeline.config import Settings

    known = {"SPANLINE_" + field.name.upper() for field in fields(Settings)}
    # Kafka security settings the chart passes ahead of their Settings fields.
    pending = {
        "SPANLINE_KAFKA_SECURITY_PROTOCOL",
        "SPANLINE_KAFKA_SASL_MECHANISM",
        "SPANLINE_KAFKA_SASL_USERNAME",
        "SPANLINE_KAFKA_SASL_PASSWORD",
        "SPANLINE_KAFKA_CA_FILE",
    }
    manifests = render(*SCENARIOS["keda-sasl"])
    for manifest in _workloads(manifests):
        for container in _pod_spec(manifest)["containers"]:
            names = {name for name in _env(container) if name.startswith("SPANLINE_")}
            unknown = names - known - pending
            assert not unknown, f"{manifest['metadata']['name']}: no Settings field for {sorted(unknown)}"


def test_sasl_env_and_ca_mount(render: Callable[..., list[Manifest]]) -> None:
    container = _pod_spec(_named(render(*SCENARIOS["keda-sasl"]), "Deployment", "spanline-span-worker"))[
        "containers"
    ][0]
    env = _env(container)
    assert env["SPANLINE_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["SPANLINE_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-256"
    assert env["SPANLINE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "kafka-user"
    assert env["SPANLINE_KAFKA_CA_FILE"]["value"] == "/etc/spanline/kafka-ca/ca.crt"
    assert "/etc/spanline/kafka-ca" in {mount["mountPath"] for mount in container["volumeMounts"]}


# --- scaling and monitoring --------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["keda", "hpa", "large"])
def test_autoscaling_omits_replicas(render: Callable[..., list[Manifest]], scenario: str) -> None:
    manifests = render(*SCENARIOS[scenario])
    for component in WORKER_COMPONENTS:
        deployment = _named(manifests, "Deployment", f"spanline-{component}")
        assert "replicas" not in deployment["spec"], f"{scenario}: {component}"


def test_keda_scaledobject_reads_consumer_lag(render: Callable[..., list[Manifest]]) -> None:
    manifests = render(*SCENARIOS["keda"])
    assert not _by_kind(manifests, "HorizontalPodAutoscaler")
    scaled = _named(manifests, "ScaledObject", "spanline-span-worker")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "spanline-spans"
    assert trigger["metadata"]["topic"] == "spanline.spans.v1"
    assert trigger["metadata"]["bootstrapServers"] == "kafka-bootstrap:9092"
    assert trigger["metadata"]["lagThreshold"] == "500"
    frame_trigger = _named(manifests, "ScaledObject", "spanline-frame-worker")["spec"]["triggers"][0]
    assert frame_trigger["metadata"]["consumerGroup"] == "spanline-frames"


def test_keda_sasl_uses_trigger_authentication(render: Callable[..., list[Manifest]]) -> None:
    manifests = render(*SCENARIOS["keda-sasl"])
    auth = _named(manifests, "TriggerAuthentication", "spanline-kafka")
    parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    assert parameters == {"username", "password", "ca"}
    trigger = _named(manifests, "ScaledObject", "spanline-span-worker")["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == "scram_sha256"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"]["name"] == "spanline-kafka"


def test_hpa_only_without_keda(render: Callable[..., list[Manifest]]) -> None:
    manifests = render("--set", "autoscaling.hpa.enabled=true", "--set", "autoscaling.keda.enabled=true")
    assert not _by_kind(manifests, "HorizontalPodAutoscaler")
    assert len(_by_kind(manifests, "ScaledObject")) == len(WORKER_COMPONENTS)


def test_strimzi_replaces_topics_job(render: Callable[..., list[Manifest]]) -> None:
    manifests = render(*SCENARIOS["strimzi"])
    topics = _by_kind(manifests, "KafkaTopic")
    assert {topic["spec"]["topicName"] for topic in topics} == {
        "spanline.spans.v1", "spanline.frames.v1", "spanline.spans.v1.dlq", "spanline.frames.v1.dlq",
        "spanline.spans.enriched.v1", "spanline.runs.v1", "spanline.prices.v1",
    }
    assert all(topic["metadata"]["labels"]["strimzi.io/cluster"] == "events" for topic in topics)
    assert not [job for job in _by_kind(manifests, "Job") if job["metadata"]["name"] == "spanline-topics"]


def test_monitoring_needs_api_version(render: Callable[..., list[Manifest]]) -> None:
    assert not _by_kind(render(), "ServiceMonitor")
    assert not _by_kind(render(), "PrometheusRule")
    manifests = render(*SCENARIOS["monitoring"])
    monitor = _named(manifests, "ServiceMonitor", "spanline")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"


def test_prometheus_rule_uses_documented_metrics(render: Callable[..., list[Manifest]]) -> None:
    rule = _named(render(*SCENARIOS["monitoring"]), "PrometheusRule", "spanline")
    expressions = " ".join(r["expr"] for group in rule["spec"]["groups"] for r in group["rules"])
    documented = (REPO_ROOT / "docs" / "metrics.md").read_text()
    for metric in (
        "spanline_consumer_lag_messages",
        "spanline_messages_dead_lettered_total",
        "spanline_spans_unpriced_total",
        "spanline_sink_errors_total",
        "spanline_end_to_end_latency_seconds_bucket",
        "spanline_sink_write_duration_seconds_bucket",
    ):
        assert metric in expressions, metric
        assert metric.removesuffix("_bucket") in documented, f"{metric} missing from docs/metrics.md"


def test_service_monitor_selects_only_http_services(render: Callable[..., list[Manifest]]) -> None:
    manifests = render(*SCENARIOS["monitoring"])
    selector = _named(manifests, "ServiceMonitor", "spanline")["spec"]["selector"]
    components = set(selector["matchExpressions"][0]["values"])
    for service in _by_kind(manifests, "Service"):
        labels = service["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] in components:
            assert [port["name"] for port in service["spec"]["ports"]] == ["http"]
    assert components == {"span-worker", "frame-worker", "runs-worker", "replay"}


def test_small_values_skip_single_replica_pdb(render: Callable[..., list[Manifest]]) -> None:
    manifests = render(*SCENARIOS["small"])
    assert not _by_kind(manifests, "PodDisruptionBudget")
    assert _named(manifests, "Deployment", "spanline-span-worker")["spec"]["replicas"] == 1


def test_large_values_partitions_cover_max_workers() -> None:
    values = yaml.safe_load((CHART / "ci" / "large-values.yaml").read_text())
    assert values["topics"]["spans"]["partitions"] >= values["spanWorker"]["scaling"]["maxReplicas"]
    assert values["topics"]["frames"]["partitions"] >= values["frameWorker"]["scaling"]["maxReplicas"]
    assert values["topics"]["spans"]["partitions"] >= values["runsWorker"]["scaling"]["maxReplicas"]
