"""The result objects: TID 1500 SR, Parametric Map and Secondary Capture (/predict?output=dicom), their
Contributing Equipment, CXR_DICOM_OUTPUTS, dciodvfy, and the FHIR Bundle (output=fhir, CXR_FHIR_URL)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import highdicom as hd
import httpx
import numpy as np
import pydantic
import pydicom
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from app.core.config import Settings
from app.dicom.equipment import device_uid
from app.inference.render import cam_at
from app.main import create_app
from app.pacs.outputs import build_not_evaluated
from tests.dicom_helpers import PHI, PM_CLASS, SC_CLASS, SR_CLASS, XRAY, cr, header, instances, read_report
from tests.synth import chest_like, encode
from tests.test_dicomweb import stow, wait_done
from tests.test_integrity_api import guarded
from tests.waiting import wait_for

DICOM = {"content-type": "application/dicom"}


def predict_dicom(client: TestClient, data: bytes) -> list[pydicom.Dataset]:
    r = client.post("/predict?output=dicom", content=data, headers=DICOM)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
    return instances(r)


def test_sr_pm_and_sc_join_the_source_study_in_new_series(client):
    src = cr()
    source = header(src)
    plain = client.post("/predict?heatmap=none", content=src, headers=DICOM).json()
    sr, pm, sc = predict_dicom(client, src)
    assert [ds.SOPClassUID for ds in (sr, pm, sc)] == [SR_CLASS, PM_CLASS, SC_CLASS]
    for ds in (sr, pm, sc):
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.PatientID == PHI["PatientID"] and str(ds.PatientName) == PHI["PatientName"]
        assert ds.AccessionNumber == PHI["AccessionNumber"]
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID and "pneumonia screening" in ds.SeriesDescription.lower()
    assert len({ds.SeriesInstanceUID for ds in (sr, pm, sc)}) == 3

    # TID 1500, read back by highdicom: finding, probability, threshold, priority, algorithm, source image
    report = read_report(sr)
    assert report["template"] == "1500" and report["finding_type"] == "233604007"  # SNOMED CT pneumonia
    assert report["evaluations"] == {
        "Pneumonia": "52101004" if plain["prediction"] == "PNEUMONIA" else "2667000",
        "Worklist priority": plain["priority"].upper()}
    numbers = report["measurements"]
    assert numbers["Calibrated probability of pneumonia"] == pytest.approx(plain["probabilities"]["PNEUMONIA"], abs=1e-6)
    assert numbers["Decision threshold on the probability of pneumonia"] == pytest.approx(plain["threshold"], abs=1e-6)
    assert report["algorithm"] == (plain["model"]["name"], plain["model"]["version"])
    assert report["source"] == [source.SOPInstanceUID]
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID == source.StudyInstanceUID
    procedure = sr.ContentSequence
    assert any(i.ConceptNameCodeSequence[0].CodeMeaning == "Procedure reported"
               and i.ConceptCodeSequence[0].CodeValue == "399208008" for i in procedure)

    # the Parametric Map: float values in [0, 1] on the source's grid, its meaning named, the source referenced
    assert pm.pixel_array.dtype == np.float32 and pm.pixel_array.shape == XRAY.shape
    assert 0 <= pm.pixel_array.min() and pm.pixel_array.max() <= 1 and pm.pixel_array.max() > 0.5
    rwvm = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert (rwvm.LUTLabel, rwvm.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue) == (
        "GRADCAM", "GRADCAM_PNEU")
    derivation = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert derivation.ReferencedSOPInstanceUID == source.SOPInstanceUID and derivation.SpatialLocationsPreserved == "YES"
    assert "pixel spacing unknown" in pm.ImageComments  # the synthetic CR states none

    # the SC keeps the burned-in banner, now with the priority
    assert (sc.Rows, sc.Columns, sc.SamplesPerPixel) == (*XRAY.shape, 3) and sc.BurnedInAnnotation == "YES"
    assert f"priority {plain['priority']}" in sc.ImageComments


def test_the_parametric_map_holds_the_class_map(client):
    """The stored values are the Grad-CAM the service computed, at the stored grid, within 1e-3."""
    src = cr(pixels=chest_like(257, 311, seed=9))
    _, pm, _ = predict_dicom(client, src)
    inf = client.portal.call(client.app.state.services.predictor.infer, src)
    expected = cam_at(inf.cam("PNEUMONIA"), (311, 257))
    stored = pydicom.dcmread(io.BytesIO(pm_bytes(pm))).pixel_array
    assert stored.shape == (257, 311) and np.abs(stored - expected).max() < 1e-3


def pm_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_contributing_equipment_names_the_model_on_every_object(client):
    plain = client.post("/predict?heatmap=none", content=cr(), headers=DICOM).json()
    model, version = plain["model"]["name"], plain["model"]["version"]
    objects = predict_dicom(client, cr()) + predict_dicom(client, cr())
    uids = set()
    for ds in objects:
        # ours (Processing Algorithm); highdicom adds itself as Processing Equipment
        (item,) = [i for i in ds.ContributingEquipmentSequence
                   if i.PurposeOfReferenceCodeSequence[0].CodeValue == "109103"]
        assert item.SoftwareVersions == f"{model} {version}" and item.ManufacturerModelName
        uids.add(item.DeviceUID)
    assert uids == {device_uid(model, version)}  # stable per model version, across objects and requests
    assert device_uid(model, version + "-b") != device_uid(model, version)
    assert read_report(objects[0])["device_uid"] == device_uid(model, version)


@pytest.mark.parametrize(("outputs", "classes"), [("sr", [SR_CLASS]), ("pm,sc", [PM_CLASS, SC_CLASS]),
                                                  (" SC , sr ", [SR_CLASS, SC_CLASS])])
def test_dicom_outputs_choose_the_objects(settings, outputs, classes):
    settings.dicom_outputs = Settings(dicom_outputs=outputs).dicom_outputs
    with TestClient(create_app(settings, configure_logs=False)) as c:
        assert [ds.SOPClassUID for ds in predict_dicom(c, cr())] == classes


@pytest.mark.parametrize("value", ["", "sr,xml", "json"])
def test_unknown_dicom_outputs_are_refused_at_startup(value):
    with pytest.raises(pydantic.ValidationError, match="CXR_DICOM_OUTPUTS"):
        Settings(dicom_outputs=value)


def test_uncompressed_secondary_capture_on_request(settings):
    settings.dicom_sc_compression = "none"
    settings.dicom_outputs = "sc"
    with TestClient(create_app(settings, configure_logs=False)) as c:
        (sc,) = predict_dicom(c, cr())
    assert sc.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and sc.PhotometricInterpretation == "RGB"
    assert sc.pixel_array.shape == (300, 240, 3) and "LossyImageCompression" not in sc


def test_monochrome1_input_gives_the_same_finding(client):
    a = client.post("/predict?output=dicom", content=cr(), headers=DICOM)
    b = client.post("/predict?output=dicom", content=cr(pixels=255 - XRAY, photometric="MONOCHROME1"), headers=DICOM)
    assert a.headers["x-cxr-probability-pneumonia"] == b.headers["x-cxr-probability-pneumonia"]
    assert a.headers["x-cxr-priority"] == b.headers["x-cxr-priority"] in ("urgent", "routine")


def dciodvfy_errors(ds: pydicom.Dataset, path) -> list[str]:  # noqa: ANN001
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) is not installed")
def test_every_object_passes_dciodvfy(client, tmp_path):
    src = cr(patient={**PHI, "StudyDate": "20240101", "StudyTime": "101010", "StudyID": "1"})
    objects = predict_dicom(client, src)
    source = pydicom.dcmread(io.BytesIO(src))
    objects += list(build_not_evaluated(source, "lateral view (ViewPosition LL)", "m", "1.0", ("sr",)).objects.values())
    assert len(objects) == 4
    for i, ds in enumerate(objects):
        assert dciodvfy_errors(ds, tmp_path / f"{i}.dcm") == [], ds.SOPClassUID


@pytest.mark.parametrize(("content", "ctype", "status", "needle"), [
    (b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png", 415, "needs a DICOM input"),
    (cr(with_pixels=False), "application/dicom", 422, "no pixel data"),
    (cr(sop_class=SR_CLASS), "application/dicom", 422, "is not an image"),
])
def test_predict_dicom_output_bad_input(client, content, ctype, status, needle):
    r = client.post("/predict?output=dicom", content=content, headers={"content-type": ctype})
    assert r.status_code == status and needle in r.json()["detail"]


# -- FHIR ----------------------------------------------------------------------------------------------

def resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


@pytest.mark.parametrize("fmt", ["png", "dicom"])
def test_predict_fhir_bundle_validates_and_round_trips(client, fmt):
    data = encode(XRAY) if fmt == "png" else cr()
    ctype = {"content-type": "image/png" if fmt == "png" else "application/dicom"}
    plain = client.post("/predict?heatmap=none", content=data, headers=ctype).json()
    r = client.post("/predict?output=fhir", content=data, headers=ctype)
    assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
    parsed = Bundle.model_validate_json(r.content)  # fhir.resources validates every resource
    assert Bundle.model_validate_json(parsed.model_dump_json()) == parsed
    bundle = json.loads(r.content)
    assert bundle["type"] == "transaction" and all(e["request"]["method"] == "POST" for e in bundle["entry"])

    (report,) = resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary" and report["code"]["coding"][0]["code"] == "399208008"
    finding, priority = resources(bundle, "Observation")
    assert finding["code"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "233604007",
                                            "display": "Pneumonia"}
    positive = plain["prediction"] == "PNEUMONIA"
    assert finding["valueCodeableConcept"]["coding"][0]["code"] == ("52101004" if positive else "2667000")
    assert finding["interpretation"][0]["coding"][0]["code"] == ("POS" if positive else "NEG")
    values = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in finding["component"]}
    assert values["p-pneumonia"] == pytest.approx(plain["probabilities"]["PNEUMONIA"], abs=1e-6)
    assert values["threshold"] == pytest.approx(plain["threshold"], abs=1e-6)
    assert priority["valueCodeableConcept"]["coding"][0]["code"] == {"urgent": "UR", "routine": "R"}[plain["priority"]]
    (device,) = resources(bundle, "Device")
    assert device["identifier"][0]["value"] == f"urn:oid:{device_uid(plain['model']['name'], plain['model']['version'])}"
    assert device["version"][0]["value"] == plain["model"]["version"]
    urls = {e["resource"]["resourceType"] + str(i): e["fullUrl"] for i, e in enumerate(bundle["entry"])}
    assert {x["reference"] for x in report["result"]} <= set(urls.values())
    assert finding["device"]["reference"] in urls.values()

    studies = resources(bundle, "ImagingStudy")
    if fmt == "dicom":
        source = header(data)
        (study,) = studies
        assert study["identifier"][0]["value"] == f"urn:oid:{source.StudyInstanceUID}"
        assert study["series"][0]["uid"] == source.SeriesInstanceUID
        assert study["series"][0]["instance"][0]["uid"] == source.SOPInstanceUID
        assert report["imagingStudy"][0]["reference"] in urls.values()
        assert finding["subject"]["identifier"]["value"] == PHI["PatientID"]
    else:
        assert studies == [] and "imagingStudy" not in report


def test_fhir_output_of_a_refused_image_is_422(settings):
    with TestClient(create_app(guarded(settings), configure_logs=False)) as c:
        noise = encode(np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8))
        r = c.post("/predict?output=fhir", content=noise, headers={"content-type": "image/png"})
    assert r.status_code == 422 and r.json()["priority"] == "not_evaluated"


class FakeFhir:
    """A FHIR server that fails ``fail`` times with 503, then accepts transaction Bundles."""

    def __init__(self, fail: int = 1) -> None:
        self.fail = fail
        self.bundles: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "fhir.test" and request.headers["content-type"] == "application/fhir+json"
        if self.fail:
            self.fail -= 1
            return httpx.Response(503)
        Bundle.model_validate_json(request.content)
        self.bundles.append(json.loads(request.content))
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response"})


def test_stow_results_are_posted_to_the_fhir_server_with_retries(settings):
    fhir = FakeFhir(fail=1)
    settings.fhir_url, settings.pacs_retry_base_s = "http://fhir.test/fhir", 0.05
    with TestClient(create_app(settings, configure_logs=False, pacs_transport=httpx.MockTransport(fhir))) as c:
        data = cr()
        study = header(data).StudyInstanceUID
        assert stow(c, [data]).status_code == 202
        row = wait_for(lambda: wait_done(c, study, 1)[0], lambda r: r["fhir_delivery"] == "delivered", timeout=30,
                       what="the FHIR delivery")
        assert row["fhir_delivery_attempts"] == 2 and row["delivery"] == "not_configured"
        (bundle,) = fhir.bundles
        (report,) = resources(bundle, "DiagnosticReport")
        (study_resource,) = resources(bundle, "ImagingStudy")
        assert study_resource["series"][0]["instance"][0]["uid"] == header(data).SOPInstanceUID
        finding = resources(bundle, "Observation")[0]
        values = {x["code"]["coding"][0]["code"]: x["valueQuantity"]["value"] for x in finding["component"]}
        assert values["p-pneumonia"] == pytest.approx(row["probability_pneumonia"], abs=1e-6)
        # conditional creates: a re-delivery matches what the server already has
        assert report["identifier"][0]["value"] in bundle["entry"][-1]["request"]["ifNoneExist"]
        metrics = c.get("/metrics").text
        assert 'cxr_deliveries_total{outcome="retry",target="fhir"} 1.0' in metrics
        assert 'cxr_deliveries_total{outcome="delivered",target="fhir"} 1.0' in metrics


def test_a_refused_instance_gets_a_cancelled_fhir_report(settings):
    fhir = FakeFhir(fail=0)
    settings = guarded(settings, fhir_url="http://fhir.test/fhir")
    knee = pydicom.dcmread(io.BytesIO(cr()))
    knee.BodyPartExamined = "KNEE"
    buf = io.BytesIO()
    knee.save_as(buf, enforce_file_format=True)
    with TestClient(create_app(settings, configure_logs=False, pacs_transport=httpx.MockTransport(fhir))) as c:
        assert stow(c, [buf.getvalue()]).status_code == 202
        row = wait_for(lambda: wait_done(c, knee.StudyInstanceUID, 1)[0], lambda r: r["fhir_delivery"] == "delivered",
                       timeout=30, what="the FHIR delivery")
    assert row["state"] == "not_evaluated" and row["priority"] == "not_evaluated"
    (bundle,) = fhir.bundles
    (report,) = resources(bundle, "DiagnosticReport")
    finding, priority = resources(bundle, "Observation")
    assert report["status"] == "cancelled" and "NOT EVALUATED" in report["conclusion"]
    assert finding["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert "KNEE" in finding["dataAbsentReason"]["text"]
    assert priority["valueCodeableConcept"]["coding"][0]["code"] == "not-evaluated"


def test_highdicom_reads_the_not_evaluated_report():
    source = pydicom.dcmread(io.BytesIO(cr()))
    (sr,) = build_not_evaluated(source, "lateral view (ViewPosition LL)", "m", "1.0", ("sr",)).objects.values()
    report = hd.sr.Comprehensive3DSR.from_dataset(sr, copy=True)
    assert report.content.get_image_measurement_groups()[0].get_measurements() == []
    assert read_report(sr)["texts"]["Reason the image was not evaluated"] == "lateral view (ViewPosition LL)"
