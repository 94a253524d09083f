"""deploy/kubernetes: every overlay renders (tests/kustomize.py, the same as `kubectl kustomize` where kubectl
is installed), validates against the Kubernetes API's schemas, passes the checkov security linter, and
says what the service needs: probes on /readyz and /healthz, non-root with a read-only root file system,
a shared volume at CXR_STATE_DIR, workers apart, settings the service knows."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings
from app.core.errors import ConfigurationError
from app.core.security import _parse_pairs
from tests.kustomize import key, render

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBE / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
K8S_VERSION = "1.32.0"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _by_key(overlay: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {key(r): r for r in render(KUBE / "overlays" / overlay)}


def _one(resources: dict, kind: str, name: str) -> dict[str, Any]:
    return resources[(kind, "cxr", name)]


def test_there_are_cpu_and_gpu_overlays():
    assert OVERLAYS == ["cpu", "gpu"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_python_renderer_matches_kubectl_kustomize(overlay):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: CI renders with tests/kustomize.py alone")
    out = subprocess.run(["kubectl", "kustomize", str(KUBE / "overlays" / overlay)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert {key(r): r for r in yaml.safe_load_all(out) if r} == _by_key(overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_validates_against_the_kubernetes_schemas(overlay):
    import kubernetes_validate

    kinds = []
    for resource in render(KUBE / "overlays" / overlay):
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)  # raises with the field at fault
        kinds.append(resource["kind"])
    assert sorted(set(kinds)) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job", "Namespace",
                                  "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service"]


def test_checkov_finds_nothing_and_every_skip_says_why(tmp_path):
    if not CHECKOV.is_file():
        pytest.skip("checkov is not installed (scripts/install_checkov.sh puts it in .venv-checkov)")
    files = []
    for overlay in OVERLAYS:
        path = tmp_path / f"{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(render(KUBE / "overlays" / overlay)))
        files += ["-f", str(path)]
    run = subprocess.run([str(CHECKOV), *files, "--framework", "kubernetes", "--quiet", "--compact", "--skip-download",
                          "-o", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    report = report if isinstance(report, dict) else report[0]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and run.returncode == 0
    assert report["summary"]["passed"] > 200 and report["summary"]["parsing_errors"] == 0
    for skipped in report["results"].get("skipped_checks", []):
        assert len(skipped["suppress_comment"]) > 30, skipped  # a reason, not just an id


def test_serving_replicas_are_probed_secured_balanced_and_scaled():
    r = _by_key("cpu")
    serve = _one(r, "Deployment", "cxr-serve")
    pod = serve["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert serve["spec"]["replicas"] >= 2 and serve["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["cxr", "serve"] and container["image"] == "registry.example.org/cxr-screen:0.1.0"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and {"cpu", "memory"} <= set(
        container["resources"]["limits"])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"] and pod["securityContext"]["runAsNonRoot"]
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod["terminationGracePeriodSeconds"] > 30 + 5  # uvicorn's drain after the preStop pause
    labels = serve["spec"]["template"]["metadata"]["labels"]
    selects = lambda selector: selector.items() <= labels.items()  # noqa: E731
    assert selects(_one(r, "Service", "cxr")["spec"]["selector"])
    assert selects(_one(r, "PodDisruptionBudget", "cxr-serve")["spec"]["selector"]["matchLabels"])
    assert _one(r, "HorizontalPodAutoscaler", "cxr-serve")["spec"]["scaleTargetRef"]["name"] == "cxr-serve"
    ingress = _one(r, "Ingress", "cxr")
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m") and int(size[:-1]) >= 64 == Settings().max_upload_bytes // 2**20
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "cxr"


def test_every_pod_shares_the_state_volume_and_the_database_and_workers_are_apart():
    for overlay in OVERLAYS:
        r = _by_key(overlay)
        config = _one(r, "ConfigMap", "cxr-config")["data"]
        assert config["CXR_WORKERS"] == "external"
        assert _one(r, "PersistentVolumeClaim", "cxr-state")["spec"]["accessModes"] == ["ReadWriteMany"]
        for name in ("cxr-serve", "cxr-worker"):
            pod = _one(r, "Deployment", name)["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
            assert claims[mounts[config["CXR_STATE_DIR"]]] == "cxr-state"
            env = {e["name"]: e for e in container["env"]}
            secret = env["CXR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert secret == {"name": "cxr-secrets", "key": "database-url"}
            assert env["CXR_WORKER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        job = _one(r, "Job", "cxr-db-upgrade")["spec"]["template"]["spec"]["containers"][0]
        assert job["args"] == ["cxr", "db", "upgrade"]
    worker = _one(_by_key("gpu"), "Deployment", "cxr-worker")["spec"]["template"]["spec"]
    (container,) = worker["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == "registry.example.org/cxr-screen:0.1.0-cuda"
    assert {"name": "CXR_TRAIN_DEVICE", "value": "cuda"} in container["env"]
    assert "nvidia.com/gpu" not in json.dumps(_one(_by_key("cpu"), "Deployment", "cxr-worker"))


def test_every_setting_the_manifests_set_is_one_the_service_knows():
    known = {f"CXR_{name.upper()}" for name in Settings.model_fields}
    for overlay in OVERLAYS:
        r = _by_key(overlay)
        names = {n for n in _one(r, "ConfigMap", "cxr-config")["data"] if n.startswith("CXR_")}
        for resource in r.values():
            for container in resource.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                names |= {e["name"] for e in container.get("env", []) if e["name"].startswith("CXR_")}
        assert names and names <= known, names - known


def test_the_shipped_secret_is_a_placeholder_the_service_refuses():
    secret = _one(_by_key("cpu"), "Secret", "cxr-secrets")["stringData"]
    with pytest.raises(ConfigurationError, match="holds no keys"):
        _parse_pairs(secret["api-keys"], "api-keys")
    assert ".invalid" in secret["database-url"]  # a reserved name: it never resolves to someone's server


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: site-\n")
    with pytest.raises(ValueError, match=r"\['namePrefix'\] not supported"):
        render(tmp_path)
