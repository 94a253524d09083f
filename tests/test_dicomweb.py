"""STOW-RS intake and delivery to a PACS (mocked here; Orthanc in test_orthanc.py)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.core.config import Settings
from app.dicom.multipart import Part, check_related, encode_related, parse_related
from app.main import create_app
from app.db.engine import database_url, make_engine
from app.training.runner import runner_name
from app.pacs.results import ResultStore
from tests.dicom_helpers import PHI, PM_CLASS, SC_CLASS, SR_CLASS, cr, header, instances, mpeg2
from tests.waiting import wait_for

# -- STOW-RS ---------------------------------------------------------------------------------------

def stow(client: TestClient, payloads: list[bytes], path: str = "/dicomweb/studies") -> httpx.Response:
    body, ctype = encode_related(payloads)
    return client.post(path, content=body, headers={"content-type": ctype})


def failures(r: httpx.Response) -> list[tuple[int, str]]:
    return [(f["00081197"]["Value"][0], f["00091001"]["Value"][0]) for f in r.json().get("00081198", {}).get("Value", [])]


def results_of(client: TestClient, study: str) -> list[dict]:
    return client.get("/dicomweb/results", params={"StudyInstanceUID": study}).json()["results"]


def wait_done(client: TestClient, study: str, n: int, timeout: float = 30) -> list[dict]:
    return wait_for(lambda: results_of(client, study),
                    lambda rows: len(rows) >= n and all(r["state"] in ("done", "not_evaluated", "failed") for r in rows),
                    timeout=timeout, what=f"{n} finished result(s)")


def test_stow_accepts_radiographs_and_reports_the_rest(client):
    good = cr()
    study = header(good).StudyInstanceUID
    dx = cr(modality="DX", sop_class="1.2.840.10008.5.1.4.1.1.1.1")
    dx_ds = pydicom.dcmread(io.BytesIO(dx))
    dx_ds.StudyInstanceUID = study
    buf = io.BytesIO()
    dx_ds.save_as(buf)
    ct = cr(modality="CT", sop_class="1.2.840.10008.5.1.4.1.1.2")
    r = stow(client, [good, buf.getvalue(), ct, b"not dicom at all", cr(with_pixels=False),
                      mpeg2()])
    assert r.status_code == 202, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    refs = r.json()["00081199"]["Value"]
    assert [x["00081155"]["Value"][0] for x in refs] == [header(good).SOPInstanceUID, dx_ds.SOPInstanceUID]
    reasons = failures(r)
    assert [code for code, _ in reasons] == [0x0122, 0xC000, 0xA900, 0xC122]
    assert "modality CT" in reasons[0][1] and "not a DICOM" in reasons[1][1]
    assert "no pixel data" in reasons[2][1] and "transfer syntax" in reasons[3][1]

    rows = wait_done(client, study, 2)
    assert {row["state"] for row in rows} == {"done"}
    assert all(row["delivery"] == "not_configured" for row in rows)
    row = rows[0]
    assert row["prediction"] in ("NORMAL", "PNEUMONIA") and 0 <= row["probability_pneumonia"] <= 1
    direct = client.post("/predict?heatmap=none", content=good, headers={"content-type": "application/dicom"}).json()
    assert row["probability_pneumonia"] == pytest.approx(direct["probabilities"]["PNEUMONIA"], abs=1e-6)

    got = client.get(f"/dicomweb/results/{row['id']}/instances")
    assert got.status_code == 200
    sr, pm, sc = instances(got)  # CXR_DICOM_OUTPUTS default: all three, the report first
    assert [ds.SOPClassUID for ds in (sr, pm, sc)] == [SR_CLASS, PM_CLASS, SC_CLASS]
    assert (sr.SOPInstanceUID, pm.SOPInstanceUID, sc.SOPInstanceUID) == (
        row["structured_report_sop_instance_uid"], row["parametric_map_sop_instance_uid"],
        row["secondary_capture_sop_instance_uid"])
    assert sc.StudyInstanceUID == sr.StudyInstanceUID == pm.StudyInstanceUID == study
    assert row["priority"] == direct["priority"]


@pytest.mark.parametrize(("ctype", "body", "status", "needle"), [
    ("application/dicom", b"x" * 200, 415, "multipart/related"),
    ("multipart/related; type=\"application/dicom\"", b"--x\r\n\r\nabc\r\n--x--\r\n", 400, "boundary"),
    ("multipart/related; type=\"application/json\"; boundary=x", b"--x\r\n\r\nabc\r\n--x--\r\n", 415, "type"),
    ("multipart/related; type=\"application/dicom\"; boundary=x", b"no parts here", 400, "multipart"),
    ("multipart/related; type=\"application/dicom\"; boundary=x", b"--x\r\nContent-Type: application/dicom\r\n\r\nab",
     400, "truncated"),
])
def test_stow_bad_requests_are_4xx_with_reasons(client, ctype, body, status, needle, settings):
    r = client.post("/dicomweb/studies", content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert list(client.app.state.services.results.spool.iterdir()) == []  # no part left behind


def test_stow_parts_are_spooled_to_disk_and_moved_or_removed(client, settings):
    """The request is parsed as it streams in: each part in its own spool file, the accepted ones
    renamed into the store (same bytes), refused and over-limit ones deleted."""
    good = cr()
    r = stow(client, [good, b"not dicom at all", cr(modality="CT", sop_class="1.2.840.10008.5.1.4.1.1.2")])
    assert r.status_code == 202, r.text
    spool = client.app.state.services.results.spool  # this process's own spool folder
    assert spool.parent == settings.state_dir / "dicom" / "spool" and list(spool.iterdir()) == []
    assert [row["state"] for row in wait_done(client, header(good).StudyInstanceUID, 1)] == ["done"]

    settings.max_stow_bytes = 100_000
    body, ctype = encode_related([cr(), cr()])
    assert len(body) > 100_000

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    r = client.post("/dicomweb/studies", content=chunks(), headers={"content-type": ctype})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert list(spool.iterdir()) == []


def test_stow_with_nothing_acceptable_is_409(client):
    r = stow(client, [b"plain text", cr(modality="MR", sop_class="1.2.840.10008.5.1.4.1.1.4")])
    assert r.status_code == 409
    assert [code for code, _ in failures(r)] == [0xC000, 0x0122]
    assert "00081199" not in r.json()


def test_stow_into_a_study_refuses_other_studies(client):
    data = cr()
    other = stow(client, [data], "/dicomweb/studies/1.2.3.4")
    assert other.status_code == 409 and failures(other)[0][0] == 0xA900
    same = stow(client, [data], f"/dicomweb/studies/{header(data).StudyInstanceUID}")
    assert same.status_code == 202
    assert client.post("/dicomweb/studies/not-a-uid", content=b"").status_code == 422


def test_bad_pixels_fail_in_the_background_with_a_reason(client):
    ds = pydicom.dcmread(io.BytesIO(cr()))
    ds.PixelData = ds.PixelData[:100]  # header says 300x240; the data is short
    buf = io.BytesIO()
    ds.save_as(buf)
    r = stow(client, [buf.getvalue()])
    assert r.status_code == 202
    row = wait_done(client, ds.StudyInstanceUID, 1)[0]
    assert row["state"] == "failed" and "pixel data" in row["error"]
    assert client.get(f"/dicomweb/results/{row['id']}/instances").status_code == 404


def test_stow_queue_full_answers_a700(settings):
    settings.dicom_queue_size = 1
    with TestClient(create_app(settings, configure_logs=False)) as c:
        c.app.state.services.results.count_waiting = lambda: 1  # the queue is already full
        r = stow(c, [cr()])
        assert r.status_code == 503 and r.headers["retry-after"]
        assert failures(r)[0][0] == 0xA700


def _store(settings) -> ResultStore:
    """The results store as a server opens it (the same database and the same replica name)."""
    return ResultStore(settings.state_dir / "dicom", make_engine(database_url(settings)), owner=runner_name(settings))


def test_instances_accepted_before_a_restart_are_processed(settings):
    store = _store(settings)
    data = cr()
    h = header(data)
    rid = store.add(h.StudyInstanceUID, h.SOPClassUID, h.SOPInstanceUID, Part(body=io.BytesIO(data)))
    assert store.claim(rid) and not store.claim(rid)  # one claim wins; then the server died mid-way
    store.close()
    spooled = settings.state_dir / "dicom" / "incoming" / f"{rid}.dcm"
    with TestClient(create_app(settings, configure_logs=False)) as c:
        row = wait_done(c, h.StudyInstanceUID, 1)[0]
        assert row["id"] == rid and row["state"] == "done"
        # the spooled copy goes after the row says done (and after its audit record): wait for it, not on luck
        wait_for(spooled.exists, lambda there: not there, what=f"{spooled.name} removed")


def test_results_listing_validation(client):
    assert client.get("/dicomweb/results", params={"StudyInstanceUID": "abc"}).status_code == 422
    assert client.get("/dicomweb/results/0123456789abcdef").status_code == 404
    assert client.get("/dicomweb/results").json()["results"] == []


# -- delivery to the PACS --------------------------------------------------------------------------

class FakePacs:
    """A STOW-RS peer: fails the first ``fail`` requests with ``status``, then stores."""

    def __init__(self, fail: int = 0, status: int = 503) -> None:
        self.fail, self.status = fail, status
        self.calls = 0
        self.stored: list[pydicom.Dataset] = []
        self.auth: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.auth.append(request.headers.get("authorization"))
        if self.calls <= self.fail:
            if self.status == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status, text="unavailable")
        boundary = check_related(request.headers["content-type"])
        for part in parse_related(request.content, boundary):
            self.stored.append(pydicom.dcmread(io.BytesIO(bytes(part.data))))
        return httpx.Response(200, json={"00081199": {"vr": "SQ", "Value": []}})


@pytest.fixture()
def pacs_app(settings: Settings) -> Iterator[tuple[TestClient, FakePacs]]:
    pacs = FakePacs(fail=2, status=503)
    settings.pacs_stow_url = "http://pacs.test/dicom-web/studies"
    settings.pacs_username, settings.pacs_password = "ai", SecretStr("secret")
    settings.pacs_retry_base_s = 0.05
    with TestClient(create_app(settings, configure_logs=False, pacs_transport=httpx.MockTransport(pacs))) as c:
        yield c, pacs


def wait_delivery(client: TestClient, study: str, states: tuple[str, ...], timeout: float = 30) -> dict:
    return wait_for(lambda: results_of(client, study), lambda rows: bool(rows) and rows[0]["delivery"] in states,
                    timeout=timeout, what=f"delivery {'/'.join(states)}")[0]


def test_results_reach_the_pacs_after_retries(pacs_app):
    client, pacs = pacs_app
    data = cr()
    study = header(data).StudyInstanceUID
    assert stow(client, [data]).status_code == 202
    row = wait_delivery(client, study, ("delivered",))
    assert row["delivery_attempts"] == 3 and pacs.calls == 3
    assert [ds.SOPClassUID for ds in pacs.stored] == [SR_CLASS, PM_CLASS, SC_CLASS]
    assert all(ds.StudyInstanceUID == study for ds in pacs.stored)
    assert pacs.auth[-1] == httpx.BasicAuth("ai", "secret")._auth_header  # type: ignore[attr-defined]
    metrics = client.get("/metrics").text
    assert 'cxr_deliveries_total{outcome="retry",target="pacs"} 2.0' in metrics
    assert 'cxr_deliveries_total{outcome="delivered",target="pacs"} 1.0' in metrics
    # the audit trail: the request, the instance's screening, the delivery (after the last attempt only)
    trail = client.get("/audit").json()["records"]
    assert [(r["kind"], r["outcome"]) for r in trail] == [
        ("stow_request", "accepted"), ("stow_instance", "screened"), ("delivery", "delivered")]
    request, screened, delivered = trail
    assert request["status"] == 202 and request["detail"] == "1 instance(s): 1 accepted, 0 failed"
    assert screened["result_id"] == row["id"] == delivered["result_id"] and screened["label"] == row["prediction"]
    assert screened["input"]["format"] == "dicom" and len(screened["instance"]) == 64
    assert delivered["extra"] == {"attempts": 3, "target": "pacs"}
    assert header(data).SOPInstanceUID not in json.dumps(trail) and "PID-8841" not in json.dumps(trail)


def test_pacs_down_keeps_results_and_redelivers_on_request(settings):
    pacs = FakePacs(fail=10**6, status=0)  # connection refused, always
    settings.pacs_stow_url = "http://pacs.test/dicom-web/studies"
    settings.pacs_retry_base_s = 0.02
    settings.pacs_max_attempts = 3
    with TestClient(create_app(settings, configure_logs=False, pacs_transport=httpx.MockTransport(pacs))) as c:
        data = cr()
        study = header(data).StudyInstanceUID
        stow(c, [data])
        row = wait_delivery(c, study, ("failed",))
        assert row["delivery_attempts"] == 3 and "cannot reach the PACS" in row["delivery_error"]
        assert row["state"] == "done"  # the result itself is kept
        assert c.get(f"/dicomweb/results/{row['id']}/instances").status_code == 200
        pacs.fail = 0  # the PACS is back
        again = c.post(f"/dicomweb/results/{row['id']}/deliver")
        assert again.status_code == 200 and again.json()["delivery"] == "pending"
        assert wait_delivery(c, study, ("delivered",))["delivery"] == "delivered"
    with TestClient(create_app(settings, configure_logs=False)) as c:  # and after a restart the record is there
        assert c.get("/dicomweb/results", params={"StudyInstanceUID": study}).json()["results"][0]["delivery"] == "delivered"


def test_redeliver_without_a_pacs_is_400(client):
    data = cr()
    stow(client, [data])
    row = wait_done(client, header(data).StudyInstanceUID, 1)[0]
    r = client.post(f"/dicomweb/results/{row['id']}/deliver")
    assert r.status_code == 400 and "CXR_PACS_STOW_URL" in r.json()["detail"]


def test_no_patient_data_in_logs(pacs_app, caplog):
    client, _ = pacs_app
    caplog.set_level(logging.DEBUG)
    data = cr()
    stow(client, [data, cr(modality="CT"), b"junk"])
    client.post("/predict?output=dicom", content=data, headers={"content-type": "application/dicom"})
    wait_delivery(client, header(data).StudyInstanceUID, ("delivered",))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "STOW-RS" in text
    for value in PHI.values():
        if len(value) > 1:
            assert value not in text


def test_an_instance_sent_twice_is_read_once(client):
    data = cr()
    first = stow(client, [data])
    study = header(data).StudyInstanceUID
    wait_done(client, study, 1)
    second = stow(client, [data])
    assert second.status_code == 202
    rid = lambda r: r.json()["00081199"]["Value"][0]["00091002"]["Value"][0]  # noqa: E731
    assert rid(first) == rid(second)
    assert len(client.get("/dicomweb/results", params={"StudyInstanceUID": study}).json()["results"]) == 1


def test_retention_deletes_finished_results_but_keeps_undelivered_ones(settings):
    store = _store(settings)
    ids = {}
    for name, state, delivery in (("delivered", "done", "delivered"), ("local", "done", "not_configured"),
                                  ("failed", "failed", "not_configured"), ("pending", "done", "pending"),
                                  ("queued", "queued", "not_configured")):
        data = cr()
        h = header(data)
        rid = store.add(h.StudyInstanceUID, h.SOPClassUID, h.SOPInstanceUID, Part(body=io.BytesIO(data)))
        store.save_outputs(rid, {"sc": b"sc", "sr": b"sr"})
        store.update(rid, state=state, delivery=delivery)
        ids[name] = rid
    assert store.purge(older_than=time.time() - 3600) == 0  # all younger than an hour
    assert store.purge(older_than=time.time() + 1) == 3
    assert store.get(ids["delivered"]) is None and store.get(ids["local"]) is None and store.get(ids["failed"]) is None
    assert not (store.outputs / ids["delivered"]).exists()
    assert not store.incoming_path(ids["failed"]).exists()
    assert store.get(ids["pending"])["delivery"] == "pending" and (store.folder(ids["pending"]) / "sr.dcm").exists()
    assert store.get(ids["queued"])["state"] == "queued" and store.incoming_path(ids["queued"]).exists()


def test_compressed_instances_are_screened_like_uncompressed_ones(client):
    plain = cr()
    rle = pydicom.dcmread(io.BytesIO(plain))
    rle.compress("1.2.840.10008.1.2.5")  # RLE Lossless, as PACS often store
    buf = io.BytesIO()
    rle.save_as(buf, enforce_file_format=True)
    r = stow(client, [buf.getvalue()])
    assert r.status_code == 202, r.text
    row = wait_done(client, rle.StudyInstanceUID, 1)[0]
    direct = client.post("/predict?heatmap=none", content=plain, headers={"content-type": "application/dicom"}).json()
    assert row["state"] == "done"
    assert row["probability_pneumonia"] == pytest.approx(direct["probabilities"]["PNEUMONIA"], abs=1e-6)


@pytest.mark.slow
def test_pydicom_sample_files_never_give_a_500(client):
    """Every DICOM test file pydicom ships (176: CT, MR, RT, SR, colour, JPEG/J2K/JPEG-LS/RLE,
    big endian, broken ones) through /predict?output=dicom and STOW-RS: a 2xx or a 4xx, never a 5xx."""
    import os

    base = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    files = [os.path.join(d, f) for d, _, names in os.walk(base) for f in names]
    files = [f for f in files if os.path.getsize(f) < 5_000_000]
    assert len(files) > 100
    statuses: dict[int, int] = {}
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        r = client.post("/predict?output=dicom", content=data, headers={"content-type": "application/dicom"})
        assert r.status_code < 500, (os.path.basename(path), r.text)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code != 200:
            assert r.json()["detail"]
    assert statuses.get(200, 0) >= 30
    for start in range(0, len(files), 40):
        payloads = []
        for path in files[start:start + 40]:
            with open(path, "rb") as fh:
                payloads.append(fh.read())
        r = stow(client, payloads)
        assert r.status_code in (202, 409), r.text


def test_concurrent_stow_and_predict_traffic(client):
    """8 STOW-RS requests (2 instances each, one instance shared by all) beside 16 /predict calls:
    every request answered, every instance screened once, /predict unaffected."""
    from concurrent.futures import ThreadPoolExecutor

    shared = cr()
    bodies = [[shared, cr()] for _ in range(8)]
    png = cr()

    def push(payloads: list[bytes]) -> int:
        return stow(client, payloads).status_code

    def predict(_: int) -> int:
        return client.post("/predict?heatmap=none", content=png, headers={"content-type": "application/dicom"}).status_code

    with ThreadPoolExecutor(8) as pool:
        pushed = list(pool.map(push, bodies))
        predicted = list(pool.map(predict, range(16)))
    assert pushed == [202] * 8 and predicted == [200] * 16
    study = header(shared).StudyInstanceUID
    assert len(wait_done(client, study, 1)) == 1  # the shared instance was read once
    total = len(client.get("/dicomweb/results", params={"limit": 1000}).json()["results"])
    assert total == 9


def test_instance_without_series_uid_is_refused_at_intake(client):
    ds = pydicom.dcmread(io.BytesIO(cr()))
    del ds.SeriesInstanceUID  # the results need it to join the study: refused now, not failed later
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    r = stow(client, [buf.getvalue()])
    assert r.status_code == 409 and failures(r) == [(0xC000, "instance lacks SeriesInstanceUID")]
    assert client.get("/dicomweb/results", params={"StudyInstanceUID": ds.StudyInstanceUID}).json()["results"] == []


def test_result_files_gone_from_disk_is_404_not_500(client):
    data = cr()
    stow(client, [data])
    row = wait_done(client, header(data).StudyInstanceUID, 1)[0]
    for path in client.app.state.services.results.folder(row["id"]).iterdir():
        path.unlink()
    r = client.get(f"/dicomweb/results/{row['id']}/instances")
    assert r.status_code == 404 and "no longer on disk" in r.json()["detail"]


def test_delivery_backoff_policy(settings):
    from app.pacs.delivery import retry_delay

    s = settings.model_copy(update={"pacs_retry_base_s": 2.0, "pacs_retry_max_s": 600.0})
    for attempts, base in ((1, 2.0), (2, 4.0), (5, 32.0), (20, 600.0)):
        assert base * 0.8 <= retry_delay(s, attempts) <= base * 1.2
        assert base * 3.2 <= retry_delay(s, attempts, retryable=False) <= base * 4.8  # a refusal waits 4x longer
