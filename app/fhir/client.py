"""Post a transaction Bundle to a FHIR server (CXR_FHIR_URL); ``app/pacs/delivery.py`` decides when and how often."""

from __future__ import annotations

import httpx

from app.core.config import Settings
from app.pacs.client import DeliveryOutcome

FHIR_JSON = "application/fhir+json"


class FhirClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.url = settings.fhir_url
        headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if settings.fhir_token is not None:
            headers["Authorization"] = f"Bearer {settings.fhir_token.get_secret_value()}"
        self._client = httpx.AsyncClient(timeout=settings.pacs_timeout_s, headers=headers, transport=transport)

    @property
    def configured(self) -> bool:
        return bool(self.url)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, payloads: list[bytes]) -> DeliveryOutcome:
        assert self.url, "FHIR URL is not configured"
        (bundle,) = payloads
        try:
            r = await self._client.post(self.url.rstrip("/"), content=bundle)
        except httpx.TimeoutException:
            return DeliveryOutcome(False, True, f"timed out after {self.settings.pacs_timeout_s:g} s")
        except httpx.HTTPError as exc:
            return DeliveryOutcome(False, True, f"cannot reach the FHIR server: {type(exc).__name__}")
        if r.status_code in (200, 201):
            return DeliveryOutcome(True, False, f"FHIR server answered {r.status_code}")
        retryable = r.status_code in (408, 429) or r.status_code >= 500
        return DeliveryOutcome(False, retryable, f"FHIR server answered HTTP {r.status_code}")
