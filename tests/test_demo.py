"""The demo page: what it shows for a photo, its API through gradio_client, and the page in a real browser.

The browser test drives Debian's chromium (``/usr/bin/chromium``, ``chromedriver``) headless; ``.ci/run``
installs them when missing and sets ``LATENTFACE_REQUIRE_BROWSER=1``, so that there it fails rather than
skips without them. ``LATENTFACE_DEMO_SCREENSHOT=path.png`` keeps its screenshot (README's picture).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentface_sdk import FaceEncoder
from latentface_sdk.errors import InvalidImageError, NoFaceError

gr = pytest.importorskip("gradio", reason="needs the [demo] extra (pip install 'latentface-sdk[demo]')")
from gradio_client import Client, handle_file  # noqa: E402

from latentface_sdk.integrations.demo import SWEEP_YAWS, analyse, build_demo, write_glb  # noqa: E402


@pytest.fixture(scope="module")
def encoder() -> FaceEncoder:
    return FaceEncoder.from_pretrained(threads=1)  # the bundled weights: what the page shows


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> Path:
    return shared_data / "photos" / "obama_small.jpg"


def _not_blank(img: Image.Image | np.ndarray, min_std: float = 10.0) -> bool:
    return float(np.asarray(img, dtype=np.float32).std()) > min_std


def _load_glb(path: str | Path):  # type: ignore[no-untyped-def]
    """The .glb the page shows, read by pytorch3d.io (its glTF reader registered)."""
    from pytorch3d.io import IO
    from pytorch3d.io.experimental_gltf_io import MeshGlbFormat

    io = IO()
    io.register_meshes_format(MeshGlbFormat())
    return io.load_mesh(str(path), include_textures=True, device="cpu")


def test_analyse_shows_the_face_its_maps_and_views(encoder: FaceEncoder, photo: Path) -> None:
    r = analyse(encoder, photo, scale=2)
    for name in ("crop", "reconstruction", "albedo", "frontal", "sweep", "depth"):
        assert _not_blank(getattr(r, name)), name
    assert r.crop.size == (128, 128) and r.sweep.size == (128 * len(SWEEP_YAWS), 128)
    found = np.asarray(r.found)
    assert found.shape[:2] == np.asarray(Image.open(photo)).shape[:2]
    assert ((found[..., 1] >= 200) & (found[..., 0] < 40) & (found[..., 2] < 40)).sum() > 50  # the green box
    depth = np.asarray(r.depth)[..., 0].astype(float)
    assert depth[50:78, 50:78].mean() > depth[:10, :10].mean()  # the face's middle is nearer than the corner
    assert set(r.latents) >= {"pose", "light", "texture", "shape", "box"}
    assert r.faces == 1 and abs(r.latents["pose"]["yaw"]) < 60
    # the 3D view: the frontal mesh, as FaceEncoder.mesh gives it for this face
    assert r.mesh is not None and len(r.mesh.vertices) > 1000 and len(r.mesh.faces) > 1000
    same = encoder.mesh([str(photo)], view="frontal").meshes[0]
    assert same is not None and np.allclose(same.vertices, r.mesh.vertices, atol=1e-5)
    assert r.mesh.texture.shape == (256, 256, 3)  # the photo texture, as FaceEncoder.mesh gives it
    assert np.abs(same.texture.astype(int) - r.mesh.texture.astype(int)).max() <= 1
    assert r.frontal.size == (128, 128)  # drawn at the page's size from the photo, not enlarged
    # the expression bars: the head's seven probabilities, most probable first, as enc.expressions gives them
    assert list(r.expressions)[0] == "happy" and len(r.expressions) == 7
    assert sum(r.expressions.values()) == pytest.approx(1.0, abs=1e-3)


def test_the_compare_panel_answers_same_person(served: str, shared_data: Path) -> None:
    client = Client(served, verbose=False)
    photos = shared_data / "photos"
    def ask(a: str, b: str) -> str:
        return str(client.predict(handle_file(str(photos / a)), handle_file(str(photos / b)),
                                  api_name="/compare"))

    same, other = ask("obama-1080p.jpg", "obama_small.jpg"), ask("alex-lacamoire.png", "biden.jpg")
    assert "the same person" in same and "two different people" in other


def test_the_glb_the_page_shows_loads_with_pytorch3d(encoder: FaceEncoder, photo: Path,
                                                     tmp_path: Path) -> None:
    from latentface_sdk.integrations.demo import vertex_normals

    mesh = analyse(encoder, photo, scale=1).mesh
    assert mesh is not None
    path = write_glb(mesh, tmp_path / "face.glb")
    assert path.read_bytes()[:4] == b"glTF"
    loaded = _load_glb(path)
    assert np.allclose(loaded.verts_packed().numpy(), mesh.vertices, atol=1e-6)
    assert np.array_equal(loaded.faces_packed().numpy(), mesh.faces)
    texture = loaded.textures.maps_padded()[0].numpy()  # the embedded PNG, read through the UVs
    assert texture.shape == (256, 256, 3) and np.allclose(texture, mesh.texture / 255.0, atol=1e-6)
    assert np.allclose(loaded.textures.verts_uvs_padded()[0].numpy(), mesh.uvs, atol=1e-6)
    coloured = _load_glb(write_glb(mesh, tmp_path / "colours.glb", colors=True))  # vertex colours instead
    colours = coloured.textures.verts_features_packed().numpy()  # linear, as glTF stores them
    assert colours.shape == mesh.colors.shape and 0.0 <= colours.min() and colours.max() <= 1.0
    srgb = np.where(colours <= 0.0031308, 12.92 * colours, 1.055 * np.power(colours, 1 / 2.4) - 0.055)
    assert np.allclose(srgb, np.clip(mesh.colors, 0, 1), atol=1e-4)  # the albedo, back from linear
    normals = vertex_normals(mesh.vertices, mesh.faces)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert (normals[:, 2] > 0).mean() > 0.95 and float(np.median(normals[:, 2])) > 0.4  # the face looks to +z


def test_analyse_says_what_is_wrong(encoder: FaceEncoder, tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.new("RGB", (160, 120), (128, 128, 128)).save(grey)
    with pytest.raises(NoFaceError, match="no face found"):
        analyse(encoder, grey)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(InvalidImageError, match="notes.jpg: not an image file"):
        analyse(encoder, text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(encoder: FaceEncoder, photo: Path) -> Iterator[str]:
    app = build_demo(encoder=encoder, examples=[str(photo)])
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def test_the_api_endpoint_through_gradio_client(served: str, photo: Path, tmp_path: Path) -> None:
    client = Client(served, verbose=False, download_files=str(tmp_path))
    out = client.predict(handle_file(str(photo)), api_name="/analyse")
    found, crop, rec, albedo, depth, shading, frontal, sweep, latents, note, mesh, expressions = out
    for path in (found, crop, rec, albedo, frontal, sweep):
        assert _not_blank(Image.open(path))
    assert Image.open(sweep).size[0] == len(SWEEP_YAWS) * Image.open(frontal).size[0]
    assert set(latents) >= {"pose", "light"} and "1 face(s) found" in note
    assert expressions["label"] == "happy"  # the expression bars: Obama's broad smile
    assert len(expressions["confidences"]) == 7
    assert str(mesh).endswith(".glb")  # the 3D view's file: loads, with the face's vertices and colours
    loaded = _load_glb(mesh)
    verts = loaded.verts_packed().numpy()
    assert verts.shape[0] > 1000 and loaded.faces_packed().shape[0] > 1000
    assert 0.1 < float(np.ptp(verts[:, 0])) < 0.3  # about 0.17 wide (the renderer's depth units)
    assert tuple(loaded.textures.maps_padded().shape) == (1, 256, 256, 3)  # the photo texture
    grey = tmp_path / "grey.png"
    Image.new("RGB", (160, 120), (128, 128, 128)).save(grey)
    with pytest.raises(Exception, match="No face found"):
        client.predict(handle_file(str(grey)), api_name="/analyse")


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        if os.environ.get("LATENTFACE_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required here (LATENTFACE_REQUIRE_BROWSER is set)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")
    return chromium, driver


def test_the_page_in_headless_chromium(served: str, tmp_path: Path) -> None:
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # --enable-unsafe-swiftshader: WebGL on the CPU (recent Chromium no longer falls back to it by itself)
    # for the 3D viewer's canvas.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1900",
                "--disable-gpu", "--enable-unsafe-swiftshader"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(served)
        example = _wait(lambda: browser.find_elements(By.CSS_SELECTOR,
                                                      "#examples button, #examples tr.tr-body"),
                        "the example photo")
        example[0].click()
        frontal = _wait(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, "#frontal img")
                                 if e.get_attribute("src")], "the frontal view")[0]
        sweep = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#sweep img"), "the yaw sweep")[0]
        # the 3D viewer: a canvas of non-zero size once the photo is processed, drawing the face when the
        # browser has WebGL
        canvas = _wait(lambda: [c for c in browser.find_elements(By.CSS_SELECTOR, "#mesh canvas")
                                if c.rect["width"] > 50 and c.rect["height"] > 50],
                       "the 3D viewer's canvas")[0]
        webgl = browser.execute_script("const c = document.createElement('canvas');"
                                       "return !!(c.getContext('webgl2') || c.getContext('webgl'));")
        time.sleep(1.0)  # let the images paint
        shot = tmp_path / "demo.png"

        def screenshot() -> tuple[Image.Image, float]:
            browser.save_screenshot(str(shot))
            page = Image.open(shot).convert("RGB")
            return page, page.width / browser.execute_script("return window.innerWidth")

        def region(page: Image.Image, ratio: float, rect: dict[str, float]) -> Image.Image:
            left, top = rect["x"] * ratio, rect["y"] * ratio
            return page.crop((round(left), round(top), round(left + rect["width"] * ratio),
                              round(top + rect["height"] * ratio)))

        page, ratio = screenshot()
        if webgl:  # the viewer loads the .glb after the images: wait until the face is drawn
            end = time.monotonic() + 30.0
            while not _not_blank(region(page, ratio, canvas.rect)) and time.monotonic() < end:
                time.sleep(0.5)
                page, ratio = screenshot()
            assert _not_blank(region(page, ratio, canvas.rect)), "the 3D viewer's canvas stays blank"
        keep = os.environ.get("LATENTFACE_DEMO_SCREENSHOT")
        if keep:  # the page down to the 3D view
            bottom = round((canvas.rect["y"] + canvas.rect["height"] + 12) * ratio)
            page.crop((0, 0, page.width, min(bottom, page.height))).save(keep, optimize=True)
        face = region(page, ratio, frontal.rect)
        assert face.width > 20 and _not_blank(face), "the frontal face is blank in the screenshot"
        assert sweep.rect["width"] > 0
        with urllib.request.urlopen(frontal.get_attribute("src")) as resp:  # the image the page shows
            assert _not_blank(Image.open(io.BytesIO(resp.read())))
    finally:
        browser.quit()


def _wait(find, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = find()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"the page never showed {what} within {timeout:.0f} s")


def test_latentface_demo_and_app_py_build_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    from latentface_sdk import cli

    launched: list[dict[str, object]] = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: launched.append(kw))
    assert cli.main(["demo", "--port", "7999", "--host", "0.0.0.0"]) == 0
    assert launched == [{"server_name": "0.0.0.0", "server_port": 7999, "share": False}]
    app = runpy.run_path(str(Path(__file__).resolve().parents[1] / "app.py"))
    assert isinstance(app["demo"], gr.Blocks)
    assert cli.main(["demo", "--model", "no-such-model"]) == 2  # a clear usage error, no traceback
