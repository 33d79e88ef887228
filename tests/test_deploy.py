"""The deployment files are valid as their own tools see them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"


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


def test_kubernetes_manifests_parse_with_probes_on_the_ops_endpoints() -> None:
    kinds: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in _documents(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
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
