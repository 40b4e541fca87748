"""Check deploy/docker-compose.yml offline, with structural assertions.

No Docker is needed. The `compose-spec` package on PyPI (0.2.1) wraps a Rust parser and ships no
JSON schema, so the checks below cover what a wrong edit most often breaks: missing images, ports open beyond the machine,
dangling depends_on targets and environment variables that no Settings field reads.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "deploy" / "docker-compose.yml"
APP_SERVICES = ("setup", "span-worker", "frame-worker", "runs-worker", "replay")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_has_all_services(compose: dict[str, Any]) -> None:
    expected = {"kafka", "timescaledb", "s3", "grafana", *APP_SERVICES}
    assert expected <= set(compose["services"])


def test_every_service_has_image_or_build(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name


def test_build_context_has_dockerfile(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        build = compose["services"][name]["build"]
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file(), name
        assert (context / "pyproject.toml").is_file(), name


def test_ports_bound_to_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{name}: use the 127.0.0.1:host:container string form"
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is reachable from other hosts"


def test_host_ports_are_unique(compose: dict[str, Any]) -> None:
    host_ports = [
        port.split(":")[1] for service in compose["services"].values() for port in service.get("ports", [])
    ]
    assert len(host_ports) == len(set(host_ports))


def test_depends_on_targets_exist(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    for name, service in compose["services"].items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown service {target}"


def test_spanline_env_matches_settings(compose: dict[str, Any]) -> None:
    known = {"SPANLINE_" + field.name.upper() for field in fields(Settings)}
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        spanline_names = {key for key in environment if key.startswith("SPANLINE_")}
        assert spanline_names <= known, f"{name}: no Settings field for {sorted(spanline_names - known)}"
        assert environment["SPANLINE_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_env_reaches_services_by_name(compose: dict[str, Any]) -> None:
    environment = compose["services"]["span-worker"]["environment"]
    settings = Settings.from_env(
        kafka_bootstrap=environment["SPANLINE_KAFKA_BOOTSTRAP"],
        s3_endpoint=environment["SPANLINE_S3_ENDPOINT"],
    )
    services = set(compose["services"])
    assert settings.kafka_bootstrap.split(":")[0] in services
    assert settings.s3_endpoint.split(":")[0] in services
    assert "host=timescaledb" in environment["SPANLINE_DATABASE_DSN"]


def test_app_containers_are_locked_down(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "/tmp" in service["tmpfs"], name


def test_workers_wait_for_setup(compose: dict[str, Any]) -> None:
    for name in ("span-worker", "frame-worker", "runs-worker", "replay"):
        condition = compose["services"][name]["depends_on"]["setup"]["condition"]
        assert condition == "service_completed_successfully", name


def test_grafana_mounts_provisioning(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["grafana"]["volumes"]
    sources = {volume.split(":")[0] for volume in volumes}
    for source in sources:
        assert (COMPOSE_FILE.parent / source).is_dir(), source
    assert any(volume.endswith(":/etc/grafana/provisioning/datasources:ro") for volume in volumes)
    environment = compose["services"]["grafana"]["environment"]
    datasource = (COMPOSE_FILE.parent / "grafana/provisioning/datasources/spanline.yaml").read_text()
    for variable in ("SPANLINE_GRAFANA_DB_HOST", "SPANLINE_GRAFANA_DB_PASSWORD", "SPANLINE_GRAFANA_DB_SSLMODE"):
        assert "${" + variable + "}" in datasource
        assert variable in environment


def test_no_minio_server_image(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "minio" not in str(service.get("image", "")).lower(), name
