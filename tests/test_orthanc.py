"""Integration with a real PACS: Orthanc (Debian orthanc + orthanc-dicomweb) forwards a study to the
service over STOW-RS; the service screens it and sends the SR, Parametric Map and SC back into Orthanc's study."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.dicom_helpers import PM_CLASS, SC_CLASS, SR_CLASS, read_report
from tests.live_server import free_port, start_server, wait_ready
from tests.synth import DATA_ROOT, dicom_bytes
from tests.waiting import wait_for

PLUGINS = [p for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",) if Path(p).exists()]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("Orthanc") is None or not PLUGINS,
                       reason="Orthanc with its DICOMweb plugin is not installed "
                              "(scripts/install_orthanc.sh installs Debian's orthanc + orthanc-dicomweb as root)"),
]
API_KEY = "orthanc-test-key-0123456789"
ROUTING_RULE = Path(__file__).resolve().parents[1] / "docker" / "orthanc" / "forward-to-cxr.lua"
ORTHANC_USER, ORTHANC_PASSWORD = "cxr", "pacs-password"
PHI = {"PatientName": "Orthanc^Testpatient", "PatientID": "OT-4242", "PatientBirthDate": "20150505",
       "AccessionNumber": "ACC-OT-1", "StudyDate": "20260101", "StudyTime": "120000", "StudyID": "7"}


def xray() -> np.ndarray:
    """A real pediatric chest X-ray (the integrity check refuses synthetic ones)."""
    folder = DATA_ROOT / "test" / "PNEUMONIA"
    if not folder.is_dir():
        pytest.skip(f"real X-rays not available: {DATA_ROOT} does not exist (the integrity check refuses "
                    "synthetic images, so this test needs a real radiograph)")
    first = sorted(folder.iterdir())[0]
    return np.asarray(Image.open(first).convert("L"))


peers_processes: list[subprocess.Popen] = []


def start_orthanc(folder: Path, service_url: str, *, port: int | None = None,
                  lua: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Orthanc on loopback (``port`` or a free one), its own storage, DICOMweb on, the service
    registered as the DICOMweb server 'cxr', and optionally a Lua routing script."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = {
        "Name": "CXR-TEST-PACS",
        "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "DicomServerEnabled": False, "DicomPort": free_port(),
        "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {ORTHANC_USER: ORTHANC_PASSWORD},
        "Plugins": PLUGINS,
        "HttpTimeout": 60,
        "LuaScripts": [str(lua)] if lua else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/",
                     "Servers": {"cxr": {"Url": f"{service_url}/dicomweb/", "HttpHeaders": {"X-API-Key": API_KEY}}}},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = folder / "orthanc.log"
    proc = subprocess.Popen(["Orthanc", str(folder / "orthanc.json")], stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    def up() -> bool:
        assert proc.poll() is None, log.read_text()  # it died: say why at once
        return httpx.get(f"{url}/system", auth=(ORTHANC_USER, ORTHANC_PASSWORD), timeout=2).status_code == 200

    wait_for(up, bool, timeout=60, what="Orthanc to start", interval=0.2, ignore=(httpx.HTTPError,))
    return proc, url


def delivered(ours: httpx.Client, study: str) -> dict:
    """The service's result for ``study`` once the PACS has it."""
    rows = wait_for(lambda: ours.get("/dicomweb/results", params={"StudyInstanceUID": study}).json()["results"],
                    lambda rows: bool(rows) and rows[0]["delivery"] == "delivered", timeout=120,
                    what=f"delivery of study {study}", interval=0.5)
    return rows[0]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


peers_processes: list[subprocess.Popen] = []  # (service, orthanc) of the module fixture


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(service URL, Orthanc URL, work folder) with both running and wired to each other.

    The service sends results to this Orthanc, which runs the shipped routing rule; its port is
    chosen first so the service knows where the PACS is before Orthanc (which needs the
    service's URL) starts."""
    tmp = tmp_path_factory.mktemp("orthanc")
    orthanc_port = free_port()
    service, service_url = start_server({
        "CXR_STATE_DIR": str(tmp / "state"), "CXR_API_KEYS": f"{API_KEY}:predict", "CXR_LOG_JSON": "false",
        "CXR_PACS_STOW_URL": f"http://127.0.0.1:{orthanc_port}/dicom-web/studies", "CXR_PACS_USERNAME": ORTHANC_USER,
        "CXR_PACS_PASSWORD": ORTHANC_PASSWORD, "CXR_PACS_RETRY_BASE_S": "0.5",
    })
    orthanc = None
    try:
        wait_ready(service, service_url)
        orthanc, orthanc_url = start_orthanc(tmp / "pacs", service_url, port=orthanc_port, lua=ROUTING_RULE)
        peers_processes[:] = [service, orthanc]
        yield service_url, orthanc_url, tmp
    finally:
        for proc in (orthanc, service):
            if proc is not None:
                stop(proc)


@pytest.mark.parametrize(("modality", "photometric"), [("CR", "MONOCHROME2"), ("CR", "MONOCHROME1"),
                                                        ("DX", "MONOCHROME2")])
def test_orthanc_forwards_a_study_and_gets_sr_pm_and_sc_back(peers, modality, photometric):
    service_url, orthanc_url, _ = peers
    pixels = xray()
    sop_class = "1.2.840.10008.5.1.4.1.1.1" if modality == "CR" else "1.2.840.10008.5.1.4.1.1.1.1"
    data = dicom_bytes(pixels if photometric == "MONOCHROME2" else 255 - pixels, photometric=photometric,
                       modality=modality, sop_class=sop_class, patient=PHI)
    source = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    pacs = httpx.Client(base_url=orthanc_url, auth=(ORTHANC_USER, ORTHANC_PASSWORD), timeout=60)
    ours = httpx.Client(base_url=service_url, headers={"X-API-Key": API_KEY}, timeout=60)

    stored = pacs.post("/instances", content=data, headers={"Content-Type": "application/dicom"})
    assert stored.status_code == 200, stored.text
    study_id = stored.json()["ParentStudy"]

    # Orthanc pushes the study to the service, as a PACS routing rule would.
    sent = pacs.post("/dicom-web/servers/cxr/stow", json={"Resources": [study_id], "Synchronous": True})
    assert sent.status_code == 200, sent.text

    found = wait_for(lambda: pacs.get(f"/studies/{study_id}/instances").json(), lambda f: len(f) >= 4, timeout=120,
                     what="the SR, PM and SC in the PACS study", interval=0.5)

    by_class = {}
    for inst in found:
        ds = pydicom.dcmread(io.BytesIO(pacs.get(f"/instances/{inst['ID']}/file").content))
        by_class[str(ds.SOPClassUID)] = ds
    sc, sr, pm = by_class[SC_CLASS], by_class[SR_CLASS], by_class[PM_CLASS]
    for ds in (sc, sr, pm):
        assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == PHI["PatientID"]
    assert (sc.Rows, sc.Columns) == pixels.shape == pm.pixel_array.shape

    # Orthanc's own DICOMweb (QIDO-RS) lists all three beside the source
    qido = pacs.get(f"/dicom-web/studies/{source.StudyInstanceUID}/instances").json()
    assert sorted(i["00080016"]["Value"][0] for i in qido) == sorted([sop_class, SR_CLASS, PM_CLASS, SC_CLASS])

    # The finding in the PACS is what the service predicts for the same image.
    direct = ours.post("/predict?heatmap=none", content=data, headers={"Content-Type": "application/dicom"}).json()
    report = read_report(sr)
    assert report["template"] == "1500" and report["finding_type"] == "233604007"
    assert report["evaluations"]["Pneumonia"] == ("52101004" if direct["prediction"] == "PNEUMONIA" else "2667000")
    assert report["measurements"]["Calibrated probability of pneumonia"] == pytest.approx(
        direct["probabilities"]["PNEUMONIA"], abs=1e-6)
    assert 0 <= pm.pixel_array.min() and pm.pixel_array.max() <= 1

    rows = ours.get("/dicomweb/results", params={"StudyInstanceUID": source.StudyInstanceUID}).json()["results"]
    assert len(rows) == 1 and rows[0]["delivery"] == "delivered"
    assert rows[0]["secondary_capture_sop_instance_uid"] == sc.SOPInstanceUID
    assert rows[0]["probability_pneumonia"] == pytest.approx(direct["probabilities"]["PNEUMONIA"], abs=1e-6)


def test_shipped_routing_rule_forwards_radiographs_without_loops(peers):
    """With docker/orthanc/forward-to-cxr.lua (loaded by this Orthanc), storing a CR is enough:
    the SC and SR come back once, are not forwarded again, and a non-radiograph is left alone."""
    service_url, orthanc_url, _ = peers
    pacs = httpx.Client(base_url=orthanc_url, auth=(ORTHANC_USER, ORTHANC_PASSWORD), timeout=60)
    ours = httpx.Client(base_url=service_url, headers={"X-API-Key": API_KEY}, timeout=60)
    data = dicom_bytes(xray(), patient=PHI)
    other = dicom_bytes(xray(), modality="OT", sop_class="1.2.840.10008.5.1.4.1.1.7", patient=PHI)
    study = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID
    other_study = pydicom.dcmread(io.BytesIO(other), stop_before_pixels=True).StudyInstanceUID
    stored = pacs.post("/instances", content=data)
    assert stored.status_code == 200
    assert pacs.post("/instances", content=other).status_code == 200
    delivered(ours, study)
    # A loop would show as our SC/SR coming back to the service. Orthanc runs its routing rule in the
    # order instances are stored, so once a CR stored after them has been screened and delivered,
    # the rule has already seen our SC and SR: a fence instead of a sleep.
    fence = dicom_bytes(xray(), patient=PHI)
    assert pacs.post("/instances", content=fence).status_code == 200
    delivered(ours, pydicom.dcmread(io.BytesIO(fence), stop_before_pixels=True).StudyInstanceUID)
    assert len(ours.get("/dicomweb/results", params={"StudyInstanceUID": study}).json()["results"]) == 1
    assert len(pacs.get(f"/studies/{stored.json()['ParentStudy']}/instances").json()) == 4  # source, SR, PM, SC
    assert ours.get("/dicomweb/results", params={"StudyInstanceUID": other_study}).json()["results"] == []


def test_a_lateral_view_gets_a_not_evaluated_report_in_the_pacs(peers):
    """The routing rule forwards every CR; the service refuses a lateral view and the PACS receives
    a report that says the AI did not read it, and why, in the same study (no heatmap)."""
    service_url, orthanc_url, _ = peers
    pacs = httpx.Client(base_url=orthanc_url, auth=(ORTHANC_USER, ORTHANC_PASSWORD), timeout=60)
    ours = httpx.Client(base_url=service_url, headers={"X-API-Key": API_KEY}, timeout=60)
    source = pydicom.dcmread(io.BytesIO(dicom_bytes(xray(), patient=PHI)))
    source.ViewPosition = "LL"
    buf = io.BytesIO()
    source.save_as(buf, enforce_file_format=True)
    stored = pacs.post("/instances", content=buf.getvalue())
    assert stored.status_code == 200, stored.text
    rows = [delivered(ours, source.StudyInstanceUID)]
    assert rows[0]["state"] == "not_evaluated" and rows[0]["error"] == "lateral view (ViewPosition LL)"
    found = pacs.get(f"/studies/{stored.json()['ParentStudy']}/instances").json()
    classes = {}
    for inst in found:
        ds = pydicom.dcmread(io.BytesIO(pacs.get(f"/instances/{inst['ID']}/file").content))
        classes[str(ds.SOPClassUID)] = ds
    assert set(classes) == {"1.2.840.10008.5.1.4.1.1.1", SR_CLASS}  # source + report: no map, no overlay
    report = read_report(classes[SR_CLASS])
    assert report["texts"]["Reason the image was not evaluated"] == "lateral view (ViewPosition LL)"
    assert report["evaluations"] == {"Worklist priority": "NOT_EVALUATED"}


def test_service_log_has_no_patient_data(peers):
    """Runs last: stops the service and reads everything it logged while talking to Orthanc."""
    _, _, tmp = peers
    service = peers_processes[0]
    service.terminate()
    output, _ = service.communicate(timeout=30)
    assert "STOW-RS" in output and "delivered" in output
    for value in PHI.values():
        if not value.isdigit():
            assert value not in output
