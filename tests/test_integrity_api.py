"""The integrity stage end to end: /predict in every output form, STOW-RS, /metrics and cxr evaluate."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from models.errors import WeightsError
from models.evaluate import evaluate
from models.integrity.synthetic import synthetic_image
from tests.synth import DATA_ROOT, dicom_bytes, encode
from tests.dicom_helpers import SR_CLASS, header, instances, read_report
from tests.test_dicomweb import FakePacs, stow, wait_delivery

GUARD = Settings().integrity_guard_dir  # the shipped guard
NOISE = encode(synthetic_image("noise", np.random.default_rng(3), (320, 320)))
NOT_FRONTAL = "not evaluated: the image does not look like a frontal chest radiograph (integrity 0.0"
PHI = {"PatientName": "Guard^Test", "PatientID": "G-1", "StudyDate": "20260101", "StudyTime": "101010",
       "StudyID": "1", "AccessionNumber": "A-1"}


def real_xray() -> np.ndarray:
    folder = DATA_ROOT / "test" / "NORMAL"
    if not folder.is_dir():
        pytest.skip(f"real X-rays not available: {DATA_ROOT} does not exist")
    from models.imaging import decode_image

    return decode_image(sorted(folder.iterdir())[0].read_bytes()).pixels


def guarded(settings: Settings, **extra: object) -> Settings:
    return settings.model_copy(update={"integrity": "on", "integrity_guard": GUARD, **extra})


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(guarded(settings), configure_logs=False)) as c:
        yield c


def test_noise_is_not_evaluated_and_gets_no_probabilities(client):
    r = client.post("/predict", files={"file": ("noise.png", NOISE, "image/png")})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"].startswith(NOT_FRONTAL) and "< 0.50)" in body["detail"]
    assert "probabilities" not in body and body["warnings"] == []
    assert body["integrity"]["accepted"] is False and body["integrity"]["threshold"] == 0.5
    assert body["integrity"]["score"] < 0.5 and body["integrity"]["reason"] in body["detail"]


@pytest.mark.parametrize("params,headers", [({"heatmap": "none"}, {}), ({}, {"accept": "image/png"}),
                                            ({"heatmap_format": "jpeg"}, {})])
def test_every_json_and_image_form_refuses_the_same_way(client, params, headers):
    r = client.post("/predict", params=params, headers=headers, files={"file": ("n.png", NOISE, "image/png")})
    assert r.status_code == 422 and r.json()["detail"].startswith(NOT_FRONTAL)


def test_report_mode_scores_anyway_with_a_warning(client, caplog):
    r = client.post("/predict", params={"integrity": "report", "heatmap": "none"},
                    files={"file": ("n.png", NOISE, "image/png")})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["integrity"]["accepted"] is False and set(j["probabilities"]) == {"NORMAL", "PNEUMONIA"}
    assert j["warnings"][0].startswith("integrity=report: scored although the integrity check refused it")
    assert any("integrity=report used" in rec.getMessage() for rec in caplog.records)


def test_a_real_radiograph_passes_with_unchanged_probabilities(settings, shared_data):
    data = encode(real_xray())
    answers = {}
    for integrity in ("on", "off"):
        s = guarded(settings, integrity=integrity, state_dir=settings.state_dir / integrity)
        with TestClient(create_app(s, configure_logs=False)) as c:
            r = c.post("/predict", params={"heatmap": "none"}, files={"file": ("x.png", data, "image/png")})
            assert r.status_code == 200, r.text
            answers[integrity] = r.json()
    on = answers["on"]
    assert on["integrity"]["accepted"] is True and on["integrity"]["reason"] is None and on["warnings"] == []
    assert on["integrity"]["score"] > 0.9 and on["timing_ms"]["integrity"] > 0
    assert on["probabilities"] == answers["off"]["probabilities"]


@pytest.mark.parametrize(("attrs", "detail"), [
    ({"modality": "MR", "sop_class": "1.2.840.10008.5.1.4.1.1.4"}, "not evaluated: modality MR (only CR and DX"),
    ({"BodyPartExamined": "KNEE"}, "not evaluated: body part KNEE is not the chest (BodyPartExamined)"),
    ({"ViewPosition": "LL"}, "not evaluated: lateral view (ViewPosition LL)"),
])
@pytest.mark.parametrize("output", ["json", "dicom"])
def test_dicom_header_refusals(client, attrs, detail, output):
    attrs = dict(attrs)
    kwargs = {k: attrs.pop(k) for k in ("modality", "sop_class") if k in attrs}
    src = pydicom.dcmread(io.BytesIO(dicom_bytes(np.full((128, 128), 90, np.uint8), patient=PHI, **kwargs)))
    for k, v in attrs.items():
        setattr(src, k, v)
    buf = io.BytesIO()
    src.save_as(buf, enforce_file_format=True)
    r = client.post("/predict", params={"output": output}, content=buf.getvalue(),
                    headers={"content-type": "application/dicom"})
    assert r.status_code == 422 and r.json()["detail"].startswith(detail), r.text


def test_an_adult_chest_is_read_with_a_warning(client, shared_data):
    data = dicom_bytes(real_xray(), patient={**PHI, "PatientAge": "045Y"})
    r = client.post("/predict", params={"heatmap": "none"}, content=data, headers={"content-type": "application/dicom"})
    assert r.status_code == 200, r.text
    assert r.json()["integrity"]["accepted"] and "validated on pediatric radiographs" in r.json()["warnings"][0]
    r = client.post("/predict", params={"output": "dicom"}, content=data, headers={"content-type": "application/dicom"})
    assert r.status_code == 200 and len(instances(r)) == 3  # SR, PM, SC


def test_metrics_count_refusals_by_reason(client):
    client.post("/predict", files={"file": ("n.png", NOISE, "image/png")})
    lateral = dicom_bytes(np.full((128, 128), 90, np.uint8))
    ds = pydicom.dcmread(io.BytesIO(lateral))
    ds.ViewPosition = "RL"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    client.post("/predict", content=buf.getvalue(), headers={"content-type": "application/dicom"})
    text = client.get("/metrics").text
    assert 'cxr_integrity_total{outcome="not_frontal_chest"} 1.0' in text
    assert 'cxr_integrity_total{outcome="lateral_view"} 1.0' in text


def test_a_refused_image_gets_no_overlay_drawn_and_report_mode_gets_one(client):
    """A lone request's overlay is drawn on its worker thread right after the forward pass, once the check has
    accepted it: a refused image costs no overlay; integrity=report draws it, as the batched path does."""
    predictor = client.app.state.services.predictor
    drawn: list[str | None] = []
    render = predictor._render
    predictor._render = lambda pixels, cam, kind, *a: drawn.append(kind) or render(pixels, cam, kind, *a)
    assert client.post("/predict", files={"file": ("n.png", NOISE, "image/png")}).status_code == 422
    assert drawn == []
    r = client.post("/predict", params={"integrity": "report"}, files={"file": ("n.png", NOISE, "image/png")})
    assert r.status_code == 200 and r.json()["heatmap"]["kind"] == "overlay"
    assert drawn == ["overlay"]


def test_every_path_through_the_check_leaves_no_request_counted_as_arriving(client):
    """The batcher waits for requests still on their way (decoding, preprocessing beside the check); a refused,
    a header-refused, a scored-anyway and an accepted image must each stop counting, or batches would wait."""
    lateral = pydicom.dcmread(io.BytesIO(dicom_bytes(np.full((128, 128), 90, np.uint8))))
    lateral.ViewPosition = "RL"
    buf = io.BytesIO()
    lateral.save_as(buf, enforce_file_format=True)
    dicom = {"content-type": "application/dicom"}
    assert client.post("/predict", files={"file": ("n.png", NOISE, "image/png")}).status_code == 422
    assert client.post("/predict", content=buf.getvalue(), headers=dicom).status_code == 422
    r = client.post("/predict", params={"integrity": "report"}, content=buf.getvalue(), headers=dicom)
    assert r.status_code == 200 and not r.json()["integrity"]["accepted"] and r.json()["timing_ms"]["preprocess"] > 0
    assert client.post("/predict", params={"integrity": "report"}, files={"file": ("n.png", NOISE)}).status_code == 200
    assert client.app.state.services.batcher.arriving == 0


def test_openapi_documents_the_contract(client):
    spec = client.get("/openapi.json").json()
    pred = spec["components"]["schemas"]["Prediction"]["properties"]
    assert "integrity" in pred and "warnings" in pred
    assert set(spec["components"]["schemas"]["IntegrityReport"]["properties"]) == {"accepted", "score", "threshold",
                                                                                   "reason"}
    params = {p["name"] for p in spec["paths"]["/predict"]["post"]["parameters"]}
    assert "integrity" in params


def test_stow_refused_instance_gets_a_not_evaluated_report_delivered(settings):
    pacs = FakePacs()
    s = guarded(settings, pacs_stow_url="http://pacs.test/dicom-web/studies", pacs_retry_base_s=0.05)
    knee = pydicom.dcmread(io.BytesIO(dicom_bytes(np.full((128, 128), 90, np.uint8), patient=PHI)))
    knee.BodyPartExamined = "KNEE"
    buf = io.BytesIO()
    knee.save_as(buf, enforce_file_format=True)
    noise_cr = dicom_bytes(synthetic_image("noise", np.random.default_rng(1), (256, 256)), patient=PHI)
    with TestClient(create_app(s, configure_logs=False, pacs_transport=httpx.MockTransport(pacs))) as c:
        for data, reason in ((buf.getvalue(), "body part KNEE is not the chest"),
                             (noise_cr, "does not look like a frontal chest radiograph")):
            study = header(data).StudyInstanceUID
            before = len(pacs.stored)
            assert stow(c, [data]).status_code == 202
            row = wait_delivery(c, study, ("delivered",))
            assert row["state"] == "not_evaluated" and reason in row["error"]
            assert row["prediction"] is None and row["secondary_capture_sop_instance_uid"] is None
            sr = pacs.stored[before:]
            assert [d.SOPClassUID for d in sr] == [SR_CLASS]  # the report alone: no map, no overlay
            values = read_report(sr[0])
            assert values["evaluations"] == {"Worklist priority": "NOT_EVALUATED"} and values["measurements"] == {}
            assert reason in values["texts"]["Reason the image was not evaluated"]
            assert values["source"] == [header(data).SOPInstanceUID]
            assert row["priority"] == "not_evaluated" and row["parametric_map_sop_instance_uid"] is None
            again = c.get(f"/dicomweb/results/{row['id']}/instances")
            assert again.status_code == 200 and len(instances(again)) == 1
        assert 'cxr_dicom_instances_total{outcome="not_evaluated"} 2.0' in c.get("/metrics").text


def test_evaluate_counts_refused_images(tiny_weights, tmp_path, shared_data):
    for label in ("NORMAL", "PNEUMONIA"):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        for i, path in enumerate(sorted((shared_data / "test" / label).iterdir())[:3]):
            (folder / path.name).write_bytes(path.read_bytes())
        (folder / f"noise{label}.png").write_bytes(encode(synthetic_image("noise", np.random.default_rng(7), (200, 200))))
        (folder / f"text{label}.png").write_bytes(encode(synthetic_image("text", np.random.default_rng(8), (300, 400))))
    report = evaluate(tiny_weights / "tiny", tmp_path / "data", device="cpu", guard=GUARD)
    assert report["n"] == 6 and report["integrity"]["refused"] == 4 and report["integrity"]["accepted"] == 6
    assert report["integrity"]["reasons"] == {"the image does not look like a frontal chest radiograph": 4}
    unguarded = evaluate(tiny_weights / "tiny", tmp_path / "data", device="cpu")
    assert unguarded["n"] == 10 and unguarded["integrity"] is None


def test_server_without_its_guard_refuses_to_start(settings, tmp_path):
    from app.main import _load_guard  # the lifespan turns this CXRError into "cannot start" and exit 2

    s = guarded(settings, integrity_guard=tmp_path / "missing")
    with pytest.raises(WeightsError, match="integrity guard card .* not found"):
        _load_guard(s)


def test_guard_is_on_by_default():
    s = Settings()
    assert s.integrity == "on" and s.integrity_guard_dir == s.weights_dir / "integrity_guard"




def test_report_mode_scores_a_header_refused_image_too(client):
    src = pydicom.dcmread(io.BytesIO(dicom_bytes(np.full((128, 128), 90, np.uint8), patient=PHI)))
    src.ViewPosition = "LL"
    buf = io.BytesIO()
    src.save_as(buf, enforce_file_format=True)
    r = client.post("/predict", params={"integrity": "report", "heatmap": "none"}, content=buf.getvalue(),
                    headers={"content-type": "application/dicom"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["integrity"]["accepted"] is False and j["integrity"]["reason"] == "lateral view (ViewPosition LL)"
    assert j["warnings"][0].startswith("integrity=report: scored although the integrity check refused it (lateral")
