"""Image inputs: every pixel format the issue lists, and one-line errors naming the file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from test_inference_data import MODEL, photo_bgr, photo_path

from trans3dhead import HeadAligner
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import _jpeg_segments_complete, read_image_file, to_bgr_uint8
from trans3dhead.inference.images import load_image


def test_formats_become_bgr_uint8(tmp_path):
    img = photo_bgr()
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    cases = {
        "gray.png": gray, "rgba.png": np.dstack([img, np.full(img.shape[:2], 7, np.uint8)]),
        "sixteen.png": img.astype(np.uint16) * 257, "gray16.png": gray.astype(np.uint16) * 257,
    }
    for name, arr in cases.items():
        cv2.imwrite(str(tmp_path / name), arr)
        out = read_image_file(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == img.shape, name
    np.testing.assert_array_equal(read_image_file(tmp_path / "rgba.png"), img)
    np.testing.assert_array_equal(read_image_file(tmp_path / "sixteen.png"), img)
    np.testing.assert_array_equal(read_image_file(tmp_path / "gray.png")[:, :, 0], gray)


def test_arrays_and_pil_images():
    img = photo_bgr()
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    np.testing.assert_array_equal(load_image(rgb, "rgb")[0], img)
    np.testing.assert_array_equal(load_image(img, "bgr")[0], img)
    np.testing.assert_array_equal(load_image(img.astype(np.float32) / 255.0)[0], img)
    np.testing.assert_array_equal(load_image(Image.fromarray(rgb))[0], img)
    np.testing.assert_array_equal(load_image(Image.fromarray(rgb).convert("RGBA"))[0], img)
    pil16 = Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    assert load_image(pil16)[0].shape == img.shape
    assert load_image(Image.fromarray(rgb).convert("P"))[0].shape == img.shape
    assert load_image(str(photo_path()))[1] == str(photo_path())


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("hello"), "not a readable image"),
    (lambda p: p.write_bytes(photo_path().read_bytes()[:30000]), "truncated"),
    (lambda p: p.write_bytes(photo_path().read_bytes()[:-2]), "truncated"),
    (lambda p: cv2.imwrite(str(p.with_suffix(".png")), photo_bgr()[:1, :1]) and p.with_suffix(".png").rename(p),
     "1x1 px, too small"),
])
def test_bad_files_name_themselves(tmp_path, make, words):
    p = tmp_path / "bad input.jpg"
    make(p)
    with pytest.raises(Trans3DHeadError, match=words) as info:
        read_image_file(p)
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(Trans3DHeadError, match="is a folder"):
        read_image_file(tmp_path)


def test_jpeg_marker_walk_accepts_real_variants(tmp_path):
    img = photo_bgr()
    for params in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]):
        ok, data = cv2.imencode(".jpg", img, params)
        data = data.tobytes()
        assert _jpeg_segments_complete(data) and not _jpeg_segments_complete(data[: len(data) * 3 // 4])
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.fromarray(img[:, :, ::-1]).save(tmp_path / "exif.jpg", exif=exif)
    assert _jpeg_segments_complete((tmp_path / "exif.jpg").read_bytes())
    assert _jpeg_segments_complete(data + b"trailing bytes after the end marker")


def test_bad_arrays():
    with pytest.raises(Trans3DHeadError, match="not an image"):
        to_bgr_uint8(np.zeros((4, 4, 4, 3), np.uint8), "bgr")
    with pytest.raises(Trans3DHeadError, match="too small"):
        to_bgr_uint8(np.zeros((1, 1, 3), np.uint8), "bgr")
    with pytest.raises(Trans3DHeadError, match="dtype"):
        to_bgr_uint8(np.zeros((32, 32), np.int64), "bgr")
    with pytest.raises(Trans3DHeadError, match="float image"):
        to_bgr_uint8(np.full((32, 32), np.nan, np.float32), "bgr")
    with pytest.raises(Trans3DHeadError, match="type"):
        load_image(12345)


@pytest.mark.slow
def test_ten_thousand_pixel_photo(tmp_path):
    """A 10,000 x 7,000 px JPEG with the face 13x larger: detected on a shrunk copy, cropped from
    the full image with area averaging, same pose as the original photo."""
    img = photo_bgr()
    big = np.full((7000, 10000, 3), 90, np.uint8)
    face = cv2.resize(img, (6656, 6656), interpolation=cv2.INTER_CUBIC)
    big[100:6756, 2000:8656] = face
    path = tmp_path / "huge.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    del big, face
    aligner = HeadAligner(model=MODEL, threads=1)
    (ref,) = aligner(img)
    (got,) = aligner(path)
    assert abs(got.pose.yaw - ref.pose.yaw) < 3 and abs(got.pose.pitch - ref.pose.pitch) < 3
    expected = ref.landmarks_2d * 13 + [2000, 100]
    assert np.abs(got.landmarks_2d - expected).mean() < 13 * 1.5
