"""The deployment files are valid as their own tools see them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"
ROOT = DEPLOY.parent


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    # verify checks that ExecStart exists: point it at this checkout's lmsbridge.
    executable = Path(sys.executable).with_name("lmsbridge")
    unit = (
        (DEPLOY / "systemd" / "lmsbridge.service")
        .read_text()
        .replace("/opt/lmsbridge/venv/bin/lmsbridge", str(executable))
    )
    path = tmp_path / "lmsbridge.service"
    path.write_text(unit)
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, check=False)
    problems = [line for line in result.stderr.splitlines() if "lmsbridge.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_systemd_unit_is_hardened() -> None:
    unit = (DEPLOY / "systemd" / "lmsbridge.service").read_text()
    for setting in (
        "User=lmsbridge",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "EnvironmentFile=",
        "Restart=on-failure",
    ):
        assert setting in unit


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kubernetes() -> dict[str, list[dict[str, Any]]]:
    """Every manifest by file name."""
    return {path.name: _documents(path) for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))}


def test_kubernetes_manifests_parse_with_probes_on_the_ops_endpoints() -> None:
    kinds: dict[str, dict[str, Any]] = {}
    for name, docs in _kubernetes().items():
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), name
            kinds.setdefault(doc["kind"], doc)
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= set(kinds)
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["envFrom"][0]["secretRef"]["name"] == "lmsbridge-secrets"


def test_compose_file_runs_lmsbridge_with_postgres_and_secrets() -> None:
    (compose,) = _documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"postgres", "migrate", "lmsbridge"} <= set(services)
    assert "pgdata" in compose["volumes"]
    assert services["lmsbridge"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert all(not str(v).startswith("CHANGE") for v in services["lmsbridge"].get("environment", {}).values())


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, str(DEPLOY / "docker" / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- issue 17: works as shipped


def _pod() -> dict[str, Any]:
    (deployment,) = _kubernetes()["deployment.yaml"]
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def _settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    from bridge.settings import load_settings

    for name in [n for n in os.environ if n.startswith("LMSBRIDGE_")]:
        monkeypatch.delenv(name)
    return load_settings(DEPLOY / "lmsbridge.toml")


def test_the_configuration_and_the_mappings_are_separate_config_maps() -> None:
    manifests = _kubernetes()
    (config,) = manifests["configmap.yaml"]
    assert config["metadata"]["name"] == "lmsbridge-config"
    assert config["data"] == {"lmsbridge.toml": (DEPLOY / "lmsbridge.toml").read_text()}
    (mappings,) = manifests["mappings-configmap.yaml"]
    assert mappings["metadata"]["name"] == "lmsbridge-mappings"
    shipped = {p.name: p.read_text() for p in sorted((ROOT / "mappings").glob("*.yaml"))}
    assert mappings["data"] == shipped
    others = [d for name, docs in manifests.items() if name != "mappings-configmap.yaml" for d in docs]
    assert all(d["metadata"]["name"] != "lmsbridge-mappings" for d in others)


def test_the_pod_has_a_writable_tmp_and_the_hr_exports_under_a_read_only_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(monkeypatch)
    hr_dir = {str(Path(v).parent) for k, v in settings.feeds["hr"].options().items() if k != "type"}
    assert hr_dir == {"/var/lib/lmsbridge/hr"}
    pod = _pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert volumes["hr"]["persistentVolumeClaim"]["claimName"] == "lmsbridge-hr"
    (claim,) = _kubernetes()["hr-pvc.yaml"]
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == "lmsbridge-hr"
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = _mounts(container)
        assert mounts["/tmp"]["name"] == "tmp"
        assert mounts["/var/lib/lmsbridge/hr"] == {
            "name": "hr",
            "mountPath": "/var/lib/lmsbridge/hr",
            "readOnly": True,
        }
        assert mounts[str(settings.resolve(settings.mappings.dir))]["name"] == "mappings"
        assert mounts["/etc/lmsbridge/lmsbridge.toml"]["subPath"] == "lmsbridge.toml"


def test_prometheus_scrapes_with_the_daemon_token() -> None:
    manifests = _kubernetes()
    (monitor,) = manifests["servicemonitor.yaml"]
    (service,) = manifests["service.yaml"]
    (secret,) = manifests["secret.example.yaml"]
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["name"] == secret["metadata"]["name"]
    assert credentials["key"] == "LMSBRIDGE_DAEMON__TOKEN" and credentials["key"] in secret["stringData"]
    # Annotations would make a plain Prometheus scrape without the token: 401 on every scrape.
    (deployment,) = manifests["deployment.yaml"]
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert not [key for key in annotations if key.startswith("prometheus.io/")]


def test_the_production_config_paths_are_where_the_unit_compose_and_image_put_things(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(monkeypatch)
    unit = (DEPLOY / "systemd" / "lmsbridge.service").read_text()
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    readme = (DEPLOY / "README.md").read_text()
    config_path = "/etc/lmsbridge/lmsbridge.toml"
    assert f"LMSBRIDGE_CONFIG={config_path}" in unit and f"LMSBRIDGE_CONFIG={config_path}" in dockerfile
    assert "sudo cp deploy/lmsbridge.toml /etc/lmsbridge/" in readme
    mappings_dir = str(settings.resolve(settings.mappings.dir))
    assert f"COPY mappings {mappings_dir}" in dockerfile
    assert "sudo cp -r mappings /etc/lmsbridge/" in readme
    # SQLite (one host) lives in the unit's one writable directory.
    database = Path(settings.store_url().removeprefix("sqlite:///"))
    assert "ReadWritePaths=/var/lib/lmsbridge" in unit and database.parent == Path("/var/lib/lmsbridge")
    (compose,) = _documents(DEPLOY / "compose.yaml")
    for service in ("migrate", "lmsbridge"):
        mounts = dict(
            v.rsplit(":", 1)[0].split(":", 1)[::-1] for v in compose["services"][service]["volumes"]
        )
        assert mounts[config_path] == "./lmsbridge.toml" and (DEPLOY / "lmsbridge.toml").is_file()
        assert mounts[mappings_dir] == "../mappings"
        assert mounts["/var/lib/lmsbridge/hr"] == "./hr"
        assert all(v.endswith(":ro") for v in compose["services"][service]["volumes"])


def test_make_image_tags_the_image_the_manifests_run() -> None:
    from bridge import __version__

    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed on this machine")
    # -n prints the command without running it: docker cannot run here.
    printed = subprocess.run(
        [make, "-s", "-n", "image"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    (command,) = printed.stdout.strip().splitlines()
    image = f"ghcr.io/lmsbridge/lmsbridge:{__version__}"
    assert command == (
        f"docker build --file deploy/docker/Dockerfile --tag {image} "
        f"--label org.opencontainers.image.version={__version__} ."
    )
    pod = _pod()
    assert {c["image"] for c in [*pod["initContainers"], *pod["containers"]]} == {image}
    (compose,) = _documents(DEPLOY / "compose.yaml")
    assert {compose["services"][s]["image"] for s in ("migrate", "lmsbridge")} == {image}


def test_the_package_license_is_an_spdx_expression_with_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] and all((ROOT / f).is_file() for f in project["license-files"])
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert "COPY pyproject.toml README.md LICENSE ./" in (DEPLOY / "docker" / "Dockerfile").read_text()


def test_deploy_readme_lists_every_metric(sqlite_engine: Any) -> None:
    from bridge import metrics

    exposed = {family.name for family in metrics.registry.collect()}
    exposed |= {family.name for family in metrics.StoreCollector(sqlite_engine).collect()}
    assert {info.name for info in metrics.REFERENCE} == exposed
    readme = (DEPLOY / "README.md").read_text()
    block = readme.split("<!-- metrics-reference:start -->\n")[1].split("\n<!-- metrics-reference:end -->")[0]
    assert block == metrics.reference_markdown()
