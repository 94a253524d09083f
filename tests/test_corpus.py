"""Every file of the generated bad-input corpus gets its specific answer; the server stays healthy."""


import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.corpus.generate import build, build_cases

CORPUS = build_cases()


@pytest.fixture(scope="module")
def server(tiny_weights, tmp_path_factory):
    from app.core.config import Settings

    s = Settings(weights_dir=tiny_weights, state_dir=tmp_path_factory.mktemp("state"), device="cpu", auth="off",
                 rate_limit_per_min=0, max_dataset_uncompressed_bytes=10_000_000, min_images_per_class=1,
                 log_json=False, integrity="off")
    with TestClient(create_app(s, configure_logs=False)) as c:
        yield c


def test_corpus_has_at_least_30_cases_and_writes_a_manifest(tmp_path):
    assert len(CORPUS) >= 30
    cases = build(tmp_path)
    assert (tmp_path / "manifest.json").is_file() and len(cases) == len(CORPUS)
    assert sum(c.status >= 400 for c in cases) >= 30


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_gets_its_answer(server, name):
    data, case = CORPUS[name]
    if case.endpoint == "/predict" and case.content_type == "application/octet-stream":
        r = server.post("/predict?heatmap=none", files={"file": (name, data)})
    else:
        r = server.post(case.endpoint, content=data, headers={"content-type": case.content_type})
    assert r.status_code == case.status, r.text[:300]
    if case.status >= 400:
        assert case.detail in r.json()["detail"]
    assert server.get("/readyz").status_code == 200
    # bombs never decode: their 413 comes from the declared size (the corpus checks the status and
    # the reason); a process-wide peak-RSS reading would only measure whatever ran before


def test_malformed_multipart_and_oversized_upload(server, settings):
    r = server.post("/predict", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxx",
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and "multipart" in r.json()["detail"]
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (settings.max_upload_bytes + 10)
    r = server.post("/predict", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
