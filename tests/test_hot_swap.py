"""Activating another model under load: no request fails, each answer comes from one whole model."""

import asyncio
import shutil

import httpx
import pytest

from app.main import create_app
from tests.synth import chest_like, encode, make_model_dir


@pytest.mark.slow
def test_zero_failed_requests_during_swaps(settings, tiny_weights, tmp_path):
    root = tmp_path / "weights"
    shutil.copytree(tiny_weights, root)
    make_model_dir(root / "tiny2", image_size=96, seed=1, version="test-2")  # another input size too
    app = create_app(settings.model_copy(update={"weights_dir": root}), configure_logs=False)
    image = encode(chest_like(128, 128))

    async def run() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as c:
                stop = asyncio.Event()
                results: list[httpx.Response] = []

                async def client() -> None:
                    while not stop.is_set():
                        results.append(await c.post("/predict?heatmap=mask", files={"file": ("a.png", image)}))

                async def swapper() -> list[httpx.Response]:
                    swaps = []
                    for name in ("tiny2", "tiny", "tiny2", "tiny"):
                        await asyncio.sleep(0.15)
                        swaps.append(await c.post(f"/models/{name}/activate"))
                    await asyncio.sleep(0.15)
                    stop.set()
                    return swaps

                clients = [asyncio.create_task(client()) for _ in range(8)]
                swaps = await swapper()
                await asyncio.gather(*clients)
                return results, swaps

    results, swaps = asyncio.run(run())
    assert all(s.status_code == 200 for s in swaps)
    assert len(results) > 20
    assert [r.status_code for r in results if r.status_code != 200] == []
    names = {r.json()["model"]["name"] for r in results}
    assert names == {"tiny", "tiny2"}
    expected = {"tiny": "test-1", "tiny2": "test-2"}
    assert all(r.json()["model"]["version"] == expected[r.json()["model"]["name"]] for r in results)
