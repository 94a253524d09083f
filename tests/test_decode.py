"""The one decoder: PNG/JPEG modes, EXIF, DICOM LUTs, compression, and clear errors."""


import numpy as np
import pytest
from PIL import Image

from models.errors import ImageTooLarge, InvalidImage, UnsupportedImageType
from models.imaging import ImageFormat, decode_image, sniff_format
from tests.synth import chest_like, dicom_bytes, encode

IMG = chest_like(96, 80, seed=2)


def test_sniffs_format_from_bytes_not_names():
    assert sniff_format(encode(IMG, "PNG")) is ImageFormat.png
    assert sniff_format(encode(IMG, "JPEG")) is ImageFormat.jpeg
    assert sniff_format(dicom_bytes(IMG)) is ImageFormat.dicom
    with pytest.raises(UnsupportedImageType, match="expected PNG, JPEG or DICOM"):
        sniff_format(b"GIF89a....")
    with pytest.raises(UnsupportedImageType, match="empty upload"):
        sniff_format(b"")


def test_png_grayscale_is_exact():
    out = decode_image(encode(IMG, "PNG"))
    assert out.format is ImageFormat.png and np.array_equal(out.pixels, IMG)


def test_png_16bit_keeps_the_high_byte():
    img16 = IMG.astype(np.uint16) * 257  # 0..65535
    out = decode_image(encode(Image.fromarray(img16), "PNG"))
    assert np.array_equal(out.pixels, IMG)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "CMYK", "LA"])
def test_colour_modes_become_luminance(mode):
    rgb = Image.fromarray(IMG).convert("RGB")
    img = rgb.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = decode_image(encode(img, fmt))
    assert out.pixels.shape == IMG.shape and out.pixels.dtype == np.uint8
    tol = 6 if fmt == "JPEG" else 1  # JPEG noise, over four channels for CMYK
    if mode != "P":
        assert np.abs(out.pixels.astype(int) - IMG.astype(int)).mean() < tol


def test_exif_orientation_is_applied():
    img = Image.fromarray(IMG)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    data = encode(img, "JPEG", exif=exif, quality=95)
    out = decode_image(data)
    assert out.pixels.shape == (IMG.shape[1], IMG.shape[0])


def test_corrupt_truncated_and_tiny_images_are_rejected():
    png = encode(IMG, "PNG")
    with pytest.raises(InvalidImage, match="corrupt or truncated PNG"):
        decode_image(png[: len(png) // 2])
    jpeg = encode(IMG, "JPEG")
    with pytest.raises(InvalidImage, match="corrupt or truncated JPEG"):
        decode_image(jpeg[:200])
    with pytest.raises(InvalidImage, match="smaller side must be at least 64 px"):
        decode_image(encode(IMG[:10, :10], "PNG"))


def test_pixel_limit_is_checked_before_decoding():
    big = encode(Image.new("L", (4000, 3000)), "PNG")
    with pytest.raises(ImageTooLarge, match="4000x3000 = 12000000 pixels, over the limit of 1000000"):
        decode_image(big, max_pixels=1_000_000)


def test_dicom_8bit_min_max_equals_png():
    assert np.array_equal(decode_image(dicom_bytes(IMG)).pixels, IMG)


def test_dicom_16bit_window_and_rescale():
    stored = IMG.astype(np.uint16) * 16  # 12-bit stored values
    # rescale: value = 2 * stored - 100; window covering exactly [-100, 2*4080-100] maps back to IMG
    lo, hi = -100.0, 2 * 255 * 16 - 100.0
    data = dicom_bytes(stored, bits=12, slope=2.0, intercept=-100.0, window=((lo + hi) / 2 + 0.5, hi - lo + 1))
    out = decode_image(data).pixels
    assert np.abs(out.astype(int) - IMG.astype(int)).max() <= 1


def test_dicom_monochrome1_is_inverted_so_bone_is_bright():
    out = decode_image(dicom_bytes(255 - IMG, photometric="MONOCHROME1")).pixels
    assert np.array_equal(out, IMG)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])  # RLE, JPEG 2000 lossless
def test_dicom_compressed_transfer_syntaxes(syntax):
    try:
        data = dicom_bytes(IMG, transfer_syntax=syntax)
    except Exception as exc:  # encoder plug-in missing on this machine
        pytest.skip(f"cannot encode {syntax} here: {exc}")
    assert np.array_equal(decode_image(data).pixels, IMG)


def test_dicom_errors_are_specific():
    with pytest.raises(InvalidImage, match="no pixel data"):
        decode_image(dicom_bytes(IMG, with_pixels=False))
    with pytest.raises(InvalidImage, match="multi-frame DICOM \\(2 frames\\)"):
        decode_image(dicom_bytes(np.stack([IMG, IMG]), frames=2))
    with pytest.raises(InvalidImage, match="is not an image"):
        decode_image(dicom_bytes(IMG, sop_class="1.2.840.10008.5.1.4.1.1.88.33"))
    full = dicom_bytes(IMG)
    with pytest.raises(InvalidImage):
        decode_image(full[: len(full) - 3000])  # pixel data shorter than Rows x Columns
    with pytest.raises(InvalidImage, match="corrupt or truncated DICOM|no pixel data"):
        decode_image(full[:140])
