"""POST /datasets: archives in, validated datasets out; hostile archives rejected, nothing left behind."""

import io
import stat
import tarfile
import zipfile

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.waiting import wait_for
from tests.synth import chest_like, encode

PNG = encode(chest_like(70, 70))


def make_zip(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def dataset_entries(n: int = 20, prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{cls}/IM-{i:04d}-0001.png": PNG for cls in ("NORMAL", "PNEUMONIA") for i in range(n)}


@pytest.fixture()
def ds_client(settings):
    s = settings.model_copy(update={"min_images_per_class": 20, "max_dataset_bytes": 2_000_000,
                                    "max_dataset_uncompressed_bytes": 5_000_000})
    with TestClient(create_app(s, configure_logs=False)) as c:
        yield c


def _leftovers(c) -> list[str]:
    root = c.app.state.services.settings.state_dir / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_upload_zip_list_get_delete(ds_client):
    entries = dataset_entries(20, prefix="site/train/") | dataset_entries(3, prefix="site/val/")
    entries["site/train/NORMAL/broken.png"] = PNG[:100]
    entries["site/README.txt"] = b"hello"
    r = ds_client.post("/datasets", files={"file": ("site.zip", make_zip(entries), "application/zip")})
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["counts"] == {"train": {"NORMAL": 20, "PNEUMONIA": 20}, "val": {"NORMAL": 3, "PNEUMONIA": 3}}
    assert d["rejected_count"] == 2 and d["filename"] == "site.zip"
    reasons = {x["file"]: x["reason"] for x in d["rejected"]}
    assert "corrupt or truncated PNG" in reasons["site/train/NORMAL/broken.png"]
    assert ds_client.get("/datasets").json()["datasets"][0]["id"] == d["id"]
    assert ds_client.get(f"/datasets/{d['id']}").json()["counts"] == d["counts"]
    assert ds_client.delete(f"/datasets/{d['id']}").status_code == 204
    assert ds_client.get(f"/datasets/{d['id']}").status_code == 404
    assert _leftovers(ds_client) == []


def test_raw_tar_gz_upload(ds_client):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in dataset_entries(20).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    r = ds_client.post("/datasets", content=buf.getvalue(), headers={"content-type": "application/gzip"})
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["train"] == {"NORMAL": 20, "PNEUMONIA": 20}


BAD = [
    ("zip-slip", lambda: make_zip(dataset_entries(20) | {"../../evil.png": PNG}), 400, "zip-slip"),
    ("absolute", lambda: make_zip(dataset_entries(20) | {"/tmp/evil.png": PNG}), 400, "zip-slip"),
    ("symlink", lambda: make_zip(dataset_entries(20), symlink="NORMAL/link.png"), 400, "symbolic link"),
    ("zip bomb", lambda: make_zip({"NORMAL/big.png": b"\0" * 6_000_000}), 413, "zip bomb"),
    ("not an archive", lambda: PNG, 415, ".zip or .tar.gz"),
    ("corrupt zip", lambda: make_zip(dataset_entries(20))[:500], 400, "corrupt archive"),
    ("one class", lambda: make_zip({f"NORMAL/{i}.png": PNG for i in range(25)}), 422,
     "the archive is missing the class folder(s): PNEUMONIA"),
    # layouts POST /train cannot use are refused at upload (one parser for both)
    ("classes in two folders", lambda: make_zip({**{f"a/NORMAL/{i}.png": PNG for i in range(25)},
                                                 **{f"b/PNEUMONIA/{i}.png": PNG for i in range(25)}}), 422,
     "the archive has neither train/val/test split folders nor NORMAL/PNEUMONIA class folders"),
    ("only a test split", lambda: make_zip(dataset_entries(25, "test/")), 422, "the archive has no train/ split folder"),
    ("too few", lambda: make_zip(dataset_entries(5)), 422, "at least 20 valid images per class"),
]


@pytest.mark.parametrize("case,body,status,detail", BAD, ids=[b[0] for b in BAD])
def test_hostile_archives_are_rejected_and_leave_nothing(ds_client, case, body, status, detail):
    r = ds_client.post("/datasets", files={"file": ("d.zip", body(), "application/zip")})
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert _leftovers(ds_client) == []
    assert ds_client.get("/datasets").json()["datasets"] == []


def test_oversized_upload_is_413_while_streaming(ds_client):
    r = ds_client.post("/datasets", content=b"PK\x03\x04" + b"\0" * 2_100_000, headers={"content-type": "application/zip"})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
    assert _leftovers(ds_client) == []


def test_missing_file_field(ds_client):
    r = ds_client.post("/datasets", files={"other": ("d.zip", b"PK")})
    assert r.status_code == 400 and "no 'file' field" in r.json()["detail"]


@pytest.mark.slow
def test_train_on_an_uploaded_dataset(settings):
    s = settings.model_copy(update={"min_images_per_class": 20, "train_threads": 1})
    with TestClient(create_app(s, configure_logs=False)) as c:
        entries = dataset_entries(20, prefix="train/") | dataset_entries(4, prefix="val/")
        d = c.post("/datasets", files={"file": ("d.zip", make_zip(entries))}).json()
        job = c.post("/train", json={"dataset": d["id"], "epochs": 1, "batch_size": 8}).json()
        j = wait_for(lambda: c.get(f"/train/{job['id']}").json(), lambda j: j["state"] in ("succeeded", "failed"),
                     timeout=180, what="the job to finish", interval=0.2)
        assert j["state"] == "succeeded", j
        card = {m["name"]: m for m in c.get("/models").json()["models"]}[j["model"]]["card"]
        assert card["training"]["counts"]["val"] == {"NORMAL": 4, "PNEUMONIA": 4}  # its own val/ split was used


def test_retention_deletes_old_datasets_but_not_those_in_use(ds_client):
    import datetime as dt
    import json as _json

    ids = [ds_client.post("/datasets", files={"file": ("d.zip", make_zip(dataset_entries(20)))}).json()["id"]
           for _ in range(3)]
    store = ds_client.app.state.services.datasets
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)).isoformat()
    for i in ids[:2]:
        meta_path = store.folder(i) / "dataset.json"
        meta = _json.loads(meta_path.read_text()) | {"created_at": old}
        meta_path.write_text(_json.dumps(meta))
    assert store.expire(30, keep={ids[1]}) == [ids[0]]
    assert sorted(d["id"] for d in ds_client.get("/datasets").json()["datasets"]) == sorted(ids[1:])


def test_train_errors_name_the_dataset_not_the_server_path(settings, tmp_path):
    """POST /train on a data-root folder it cannot use: 422 that names the dataset, never a server path."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    root = tmp_path / "data"
    (root / "site" / "test" / "NORMAL").mkdir(parents=True)
    (root / "site" / "test" / "NORMAL" / "IM-0001-0001.png").write_bytes(PNG)
    with TestClient(create_app(settings.model_copy(update={"data_root": root}), configure_logs=False)) as c:
        r = c.post("/train", json={"dataset": "site", "epochs": 1})
    assert r.status_code == 422 and r.json()["detail"] == "dataset 'site' has no train/ split folder"
    assert str(tmp_path) not in r.text
