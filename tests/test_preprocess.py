"""Golden tests: training, evaluation and serving see the same tensor for the same image."""

import hashlib

import numpy as np
import torch

from app.inference.pipeline import Predictor
from models.data import load_tensors, scan_class_folders
from models.imaging import decode_image
from models.augment import augment_batch
from models.transforms import PreprocessSpec
from tests.synth import chest_like, encode


def test_training_cache_equals_serving_path(tmp_path):
    spec = PreprocessSpec(image_size=224)
    for cls in ("NORMAL", "PNEUMONIA"):
        (tmp_path / cls).mkdir()
    img = chest_like(300, 360, seed=3)
    (tmp_path / "NORMAL" / "a.png").write_bytes(encode(img, "PNG"))
    (tmp_path / "PNEUMONIA" / "b.jpeg").write_bytes(encode(img, "JPEG", quality=90))
    cached = load_tensors(scan_class_folders(tmp_path).samples, spec)
    training_view = spec.normalize(cached.images).unsqueeze(1)  # what fit() and evaluate() feed the model
    for i, path in enumerate(cached.paths):
        serving_view = spec.to_tensor(decode_image(path.read_bytes()).pixels)  # what /predict feeds the model
        assert torch.equal(training_view[i], serving_view)


def test_serving_predictor_uses_the_card_spec(tiny_weights):
    from models.weights import load_model

    loaded = load_model(tiny_weights / "tiny")
    data = encode(chest_like(100, 90, seed=1))
    predictor = Predictor.__new__(Predictor)  # only the pure helper is exercised
    predictor.settings = type("S", (), {"max_pixels": 10**8, "min_side": 64})()
    predictor.guard = None  # the integrity check is tested in test_integrity.py
    serving = type("M", (), {"card": loaded.card})()
    decoded, _, _ = predictor._decode(data)
    x, _ = predictor._preprocess(decoded.pixels, serving)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (1, 64, 64)
    assert torch.equal(torch.from_numpy(x), loaded.card.input.to_tensor(decode_image(data).pixels))
    pixels = decode_image(data).pixels  # the numpy transform is the tensor definition, number for number
    resized = torch.from_numpy(loaded.card.input.resize_uint8(pixels).copy())
    assert torch.equal(torch.from_numpy(x), loaded.card.input.normalize(resized)[None])


def test_preprocessing_golden_values():
    """Pins the definition: a change to decode, resize or normalize must be deliberate."""
    spec = PreprocessSpec(image_size=64)
    pixels = chest_like(128, 96, seed=5)
    resized = spec.resize_uint8(pixels)
    assert resized.shape == (64, 64) and resized.dtype == np.uint8
    x = spec.to_tensor(pixels)
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x, (torch.from_numpy(np.array(resized)).float() / 255 - 0.5) / 0.25)
    assert float(x.min()) >= -2.0 and float(x.max()) <= 2.0
    assert hashlib.sha256(resized.tobytes()).hexdigest()[:16] == GOLDEN_RESIZE


GOLDEN_RESIZE = "69b5757d76d946fe"


def test_augmentation_is_seeded_and_mild():
    spec = PreprocessSpec(image_size=64)
    x = spec.normalize(torch.from_numpy(np.stack([chest_like(64, 64, seed=i) for i in range(4)]))).unsqueeze(1)
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.shape == x.shape
    assert not torch.equal(a, x)
    assert (a - x).abs().mean() < 0.6  # small geometric and intensity changes, not a different image


def test_strong_preset_with_gamma_is_seeded_and_bounded():
    from models.augment import AUGMENT_PRESETS

    spec = PreprocessSpec(image_size=64)
    x = spec.normalize(torch.from_numpy(np.stack([chest_like(64, 64, seed=i) for i in range(4)]))).unsqueeze(1)
    a = augment_batch(x, torch.Generator().manual_seed(3), **AUGMENT_PRESETS["strong"])
    b = augment_batch(x, torch.Generator().manual_seed(3), **AUGMENT_PRESETS["strong"])
    assert torch.equal(a, b) and torch.isfinite(a).all()
    identity = augment_batch(x, torch.Generator().manual_seed(3), **AUGMENT_PRESETS["none"])
    assert (identity - x).abs().max() < 1e-5  # the "none" preset leaves images as they are


def test_border_erase_blanks_edges_only_and_is_seeded():
    spec = PreprocessSpec(image_size=64)
    x = spec.normalize(torch.from_numpy(np.stack([chest_like(64, 64, seed=i) for i in range(32)]))).unsqueeze(1)
    kw = dict(max_rotate_deg=0.0, max_shift=0.0, scale_range=(1.0, 1.0), brightness=0.0, contrast=0.0)
    out = augment_batch(x, torch.Generator().manual_seed(5), border_erase=0.25, **kw)
    assert torch.equal(out, augment_batch(x, torch.Generator().manual_seed(5), border_erase=0.25, **kw))
    fill = x.amin(dim=(1, 2, 3), keepdim=True)
    blank = (out == fill) & (x != fill)
    assert blank.any(dim=(1, 2, 3)).sum() >= 8  # about half of the images lose some border
    assert not blank[..., 17:47, 17:47].any()  # never more than a quarter of a side: the centre is kept
    untouched = ~blank.any(dim=(1, 2, 3))
    assert torch.allclose(out[untouched], x[untouched], atol=1e-5)
