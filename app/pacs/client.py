"""Send result instances to the PACS with STOW-RS (one request per source image: its SC and SR, or the SR
alone); ``delivery.py`` decides when and how often."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.core.config import Settings
from app.dicom.multipart import encode_related


@dataclass(frozen=True)
class DeliveryOutcome:
    ok: bool
    retryable: bool
    detail: str


class PacsClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.url = settings.pacs_stow_url
        auth = None
        headers = {"Accept": "application/dicom+json"}
        if settings.pacs_token is not None:
            headers["Authorization"] = f"Bearer {settings.pacs_token.get_secret_value()}"
        elif settings.pacs_username:
            password = settings.pacs_password.get_secret_value() if settings.pacs_password else ""
            auth = httpx.BasicAuth(settings.pacs_username, password)
        self._client = httpx.AsyncClient(timeout=settings.pacs_timeout_s, auth=auth, headers=headers,
                                         transport=transport)

    @property
    def configured(self) -> bool:
        return bool(self.url)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, instances: list[bytes]) -> DeliveryOutcome:
        assert self.url, "PACS STOW-RS URL is not configured"
        body, content_type = encode_related(instances)
        try:
            r = await self._client.post(self.url, content=body, headers={"Content-Type": content_type})
        except httpx.TimeoutException:
            return DeliveryOutcome(False, True, f"timed out after {self.settings.pacs_timeout_s:g} s")
        except httpx.HTTPError as exc:
            return DeliveryOutcome(False, True, f"cannot reach the PACS: {type(exc).__name__}")
        if r.status_code in (200, 202):
            failed = _failed_instances(r)
            if failed:
                return DeliveryOutcome(False, False, f"PACS answered {r.status_code} but refused {failed} instance(s)")
            return DeliveryOutcome(True, False, f"PACS answered {r.status_code}")
        # 408/429/5xx are passing trouble; other 4xx need someone to fix the configuration, but a
        # result is never dropped: those are retried too, on the same (long) backoff.
        retryable = r.status_code in (408, 429) or r.status_code >= 500
        return DeliveryOutcome(False, retryable, f"PACS answered HTTP {r.status_code}")


def _failed_instances(r: httpx.Response) -> int:
    try:
        body = r.json()
    except ValueError:
        return 0
    if not isinstance(body, dict):
        return 0
    failed = body.get("00081198", {}).get("Value", []) if isinstance(body.get("00081198"), dict) else []
    return len(failed)
