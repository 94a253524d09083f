"""The part of kustomize that deploy/kubernetes uses, in Python: CI renders every overlay with it when
``kubectl`` is absent (tests/test_kubernetes.py checks it against ``kubectl kustomize`` where kubectl is
installed). Supported: ``resources`` (files, several documents each, and folders with a
kustomization), ``patches`` (strategic-merge patch files, matched by kind and name), ``images`` and
``namespace``. Anything else in a kustomization is refused, so a new feature cannot be silently ignored.

  python -m tests.kustomize deploy/kubernetes/overlays/cpu
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
KNOWN = {"apiVersion", "kind", "resources", "patches", "images", "namespace"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass"}
# strategic merge: lists of these fields merge by the key named (Kubernetes' patchMergeKey); others replace
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name"}


def _load_all(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """``patch`` merged into ``base`` as a strategic merge patch does for the fields these manifests use."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base.get(key), value, key) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = [copy.deepcopy(item) for item in base]
        new = []
        for item in patch:
            at = next((i for i, old in enumerate(out) if old.get(key) == item.get(key)), None)
            if at is None:
                new.append(copy.deepcopy(item))
            else:
                out[at] = merge(out[at], item, None)
        return new + out  # items only the patch has come first, as kustomize orders them
    return copy.deepcopy(patch)


def _set_images(obj: Any, images: list[dict[str, str]]) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    container["image"] = _image(container["image"], images)
            else:
                _set_images(value, images)
    elif isinstance(obj, list):
        for item in obj:
            _set_images(item, images)


def _image(ref: str, images: list[dict[str, str]]) -> str:
    name, tag = (ref.rsplit(":", 1) + [""])[:2] if ":" in ref.rsplit("/", 1)[-1] else (ref, "")
    for rule in images:
        if rule["name"] == name:
            name = rule.get("newName", name)
            tag = rule.get("newTag", tag)
            return f"{name}:{tag}" if tag else name
    return ref


def render(folder: Path) -> list[Resource]:
    """The resources of the kustomization in ``folder``, transformed as kustomize would."""
    folder = Path(folder)
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{folder}/kustomization.yaml: {sorted(unknown)} not supported by tests/kustomize.py")
    out: list[Resource] = []
    for entry in spec.get("resources", []):
        target = folder / entry
        out.extend(render(target) if target.is_dir() else _load_all(target))
    for patch in spec.get("patches", []):
        for doc in _load_all(folder / patch["path"]):
            matches = [i for i, r in enumerate(out) if (r["kind"], r["metadata"]["name"]) ==
                       (doc["kind"], doc["metadata"]["name"])]
            if len(matches) != 1:
                raise ValueError(f"patch {patch['path']}: {len(matches)} resources named {doc['metadata']['name']}")
            out[matches[0]] = merge(out[matches[0]], doc)
    if "namespace" in spec:
        for r in out:
            if r["kind"] not in CLUSTER_SCOPED:
                r["metadata"]["namespace"] = spec["namespace"]
    if "images" in spec:
        for r in out:
            _set_images(r, spec["images"])
    return out


def key(resource: Resource) -> tuple[str, str, str]:
    return resource["kind"], resource["metadata"].get("namespace", ""), resource["metadata"]["name"]


if __name__ == "__main__":
    print(yaml.safe_dump_all(render(Path(sys.argv[1])), sort_keys=False), end="")
