"""The demo page: upload a photo, see the face found, its albedo, depth and shading, a frontal view, a yaw
sweep, the face as a 3D mesh you can turn, and the latents. A Gradio app over
:class:`~latentface_sdk.FaceEncoder`.

    latentface demo                     # http://127.0.0.1:7860
    python app.py                       # the same page, as a Hugging Face Space runs it

:func:`analyse` does the work and returns a typed :class:`DemoResult` (no Gradio needed, e.g. in a
notebook); :func:`build_demo` wraps it in a ``gradio.Blocks`` page whose button is also an API endpoint
(``/analyse``, for ``gradio_client``). Needs ``pip install 'latentface-sdk[demo]'``.

The frontal view, the yaw sweep and the 3D view are textured from the photo itself
(:mod:`latentface_sdk.render.photo_texture`, as ``FaceEncoder.frontalize`` and ``mesh`` do by default),
drawn at ``64 * scale`` pixels from the photo's own pixels; the reconstruction and the maps are the
model's (albedo). The 3D view is Gradio's ``Model3D`` (a Babylon.js viewer) showing the frontal mesh of
:func:`~latentface_sdk.mesh.face_mesh` (what ``FaceEncoder.mesh(view="frontal")`` gives for the face) as a
binary glTF (``.glb``, :func:`~latentface_sdk.gltf.write_glb`: positions, normals, the 256x256 photo
texture, a matte PBR material), one self-contained file that the viewer lights and shades. (In that
viewer an ``.obj`` without a material shows black, and its ``.mtl`` and texture PNG would have to be
served beside it; a ``.ply`` shows its colours, but duller and less shaded.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from .._extras import install_hint
from ..detection import crop_face
from ..errors import NoFaceError
from ..gltf import vertex_normals, write_glb
from ..images import ImageInput, to_rgb
from ..mesh import FaceMesh
from ..results import Encoding

if TYPE_CHECKING:
    import gradio

    from ..encoder import FaceEncoder

__all__ = ["DemoResult", "analyse", "build_demo", "example_photos", "require_gradio", "vertex_normals",
           "write_glb", "SWEEP_YAWS"]

#: The views of the yaw sweep, in degrees.
SWEEP_YAWS = (-45, -30, -15, 0, 15, 30, 45)

#: Where example photos are looked for when none are given: the shared data beside a checkout.
SHARED_PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "photos"


def require_gradio() -> Any:
    """The ``gradio`` module, or an :class:`ImportError` that says which extra to install."""
    try:
        import gradio
    except ImportError as exc:
        raise ImportError(f"the demo needs Gradio: {install_hint('demo')}") from exc
    return gradio


@dataclass(frozen=True)
class DemoResult:
    """What the demo shows for one photo (images enlarged ``scale`` times with square pixels).

    Attributes:
        found: the photo with the face's box (green) and the other faces' boxes (grey).
        crop: the 64x64 face crop the model sees.
        reconstruction: the face re-rendered in its estimated pose and light.
        albedo, depth, shading: the canonical maps (depth: near = bright; shading divided by its maximum,
            since ambient + diffuse light often passes 1 where the face meets the light).
        frontal: the face re-rendered frontally (canonical pose, its own light), textured from the photo.
        sweep: the face rendered at each yaw of :data:`SWEEP_YAWS`, left to right, textured from the photo.
        latents: pose (degrees), light, and the texture and shape latents' sizes and first values.
        faces: how many faces MTCNN found in the photo.
        expressions: the expression head's probability of each class (FER-2013's seven), most probable
            first; empty when the model has no expression head.
        mesh: the face as a 3D mesh, frontal (canonical pose), with the 256x256 photo texture: y up, facing
            +z (:mod:`latentface_sdk.mesh`); :func:`write_glb` writes it as the page shows it, ``mesh.save``
            as ``.obj``, ``.ply`` or ``.glb``.
    """

    found: Image.Image
    crop: Image.Image
    reconstruction: Image.Image
    albedo: Image.Image
    depth: Image.Image
    shading: Image.Image
    frontal: Image.Image
    sweep: Image.Image
    latents: dict[str, Any] = field(default_factory=dict)
    faces: int = 1
    mesh: FaceMesh | None = None
    expressions: dict[str, float] = field(default_factory=dict)


def _image(x: torch.Tensor, scale: int) -> Image.Image:
    """(3, H, W) or (H, W) in [0, 1] -> PIL RGB enlarged ``scale`` times (nearest neighbour)."""
    a = x.detach().float().cpu().nan_to_num(0.0).clamp(0, 1)
    if a.ndim == 2:
        a = a.expand(3, *a.shape)
    img = Image.fromarray((a * 255).round().byte().permute(1, 2, 0).numpy())
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def _depth_image(depth: torch.Tensor, scale: int) -> Image.Image:
    """A depth map (H, W) as grey: the nearest point white, the farthest black."""
    d = depth.detach().float().cpu()
    near, far = float(d.min()), float(d.max())
    return _image((far - d) / max(far - near, 1e-6), scale)


def analyse(encoder: FaceEncoder, photo: ImageInput, *, scale: int = 4) -> DemoResult:
    """Find the largest face of ``photo`` and show what the model makes of it.

    One pass of the encoder's pipeline finds and encodes the faces (:meth:`FaceEncoder.encode
    <latentface_sdk.FaceEncoder.encode>`, ``faces="all"``: the largest first); every view, map and the mesh
    are then drawn from the largest face's latents (:meth:`~latentface_sdk.FaceEncoder.render_from_latents`,
    :meth:`~latentface_sdk.FaceEncoder.mesh_from_latents`), not re-encoded per view.

    Raises :class:`~latentface_sdk.errors.InvalidImageError` for an unreadable input and
    :class:`~latentface_sdk.errors.NoFaceError` when MTCNN finds no face (the encoder's own errors).
    """
    rgb = to_rgb(photo)
    every = encoder.encode(rgb, faces="all")  # the largest face first
    good = [i for i in range(len(every)) if bool(every.ok[i])]
    if not good:  # only degenerate boxes
        raise NoFaceError(str(every.errors[0]))
    first = good[0]
    rows: dict[str, Any] = {k: v[first:first + 1] for k, v in vars(every).items()}  # every field is per row
    enc = Encoding(**rows)
    box = tuple(float(v) for v in enc.boxes[0])
    crop = crop_face(rgb, box, encoder.config.crop)
    found = Image.fromarray(rgb)
    draw = ImageDraw.Draw(found)
    width = max(2, round(max(found.size) / 300))
    for i in sorted(range(len(every)), key=lambda i: i == first):  # the chosen face's green box on top
        draw.rectangle(tuple(float(v) for v in every.boxes[i]),
                       outline=(0, 220, 0) if i == first else (160, 160, 160), width=width)
    yaw, pitch, roll = (float(v) for v in enc.pose[0, 3:])
    front = encoder.render_from_latents(enc, texture="albedo", maps=True, return_tensors=True)
    posed = encoder.render_from_latents(enc, yaw=yaw, pitch=pitch, roll=roll, texture="albedo",
                                        return_tensors=True)
    # the frontal view and the sweep textured from the photo, at the page's size
    views = [encoder.render_from_latents(enc, yaw=float(y), texture="photo", photos=rgb, size=64 * scale,
                                         return_tensors=True).tensor[0] for y in SWEEP_YAWS]
    frontal = views[SWEEP_YAWS.index(0)]
    mesh = encoder.mesh_from_latents(enc, texture="photo", photos=rgb).meshes[0]
    assert front.albedo is not None and front.depth is not None and front.shading is not None
    light = [float(v) for v in enc.light[0]]
    latents = {
        "pose": {"yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1),
                 "tx": round(float(enc.pose[0, 0]), 4), "ty": round(float(enc.pose[0, 1]), 4)},
        "light": {"ambient": round(light[0], 3), "diffuse": round(light[1], 3), "dx": round(light[2], 3),
                  "dy": round(light[3], 3)},
        "texture": {"norm": round(float(enc.texture[0].norm()), 3),
                    "first": [round(float(v), 3) for v in enc.texture[0, :8]]},
        "shape": {"norm": round(float(enc.shape[0].norm()), 3),
                  "first": [round(float(v), 3) for v in enc.shape[0, :8]]},
        "box": [round(v, 1) for v in box],
        "detection_score": round(float(enc.scores[0]), 4),
    }
    return DemoResult(
        found=found,
        crop=_image(torch.from_numpy(np.array(crop)).permute(2, 0, 1).float() / 255, scale),
        reconstruction=_image(posed.tensor[0], scale),
        albedo=_image(front.albedo[0], scale),
        depth=_depth_image(front.depth[0], scale),
        shading=_image(front.shading[0, 0] / front.shading[0, 0].nan_to_num(0.0).max().clamp(min=1e-6),
                       scale),
        frontal=_image(frontal, 1),
        sweep=_image(torch.cat(views, dim=2), 1),
        latents=latents,
        faces=len(every),
        expressions=_expressions(encoder, crop),
        mesh=mesh,
    )


def _expressions(encoder: FaceEncoder, crop: Any) -> dict[str, float]:
    """The expression head's probabilities for one face crop, most probable first ({} without a head)."""
    if encoder.heads.expression is None:
        return {}
    e = encoder.expressions(np.asarray(crop), detect=False)
    return {name: round(p, 4) for name, p in e.top(len(e.classes))[0]}


def compare_faces(encoder: FaceEncoder, a: ImageInput, b: ImageInput) -> str:
    """One sentence for the page's "Same person?" panel: the cosine of the two photos' largest faces'
    identity embeddings and :meth:`~latentface_sdk.FaceEncoder.verify`'s decision (or which photo has no
    face)."""
    v = encoder.verify([a], [b])
    if not bool(v.ok[0]):
        return f"Cannot compare: {v.errors[0]}"
    verdict = "**the same person**" if bool(v.same_person[0]) else "**two different people**"
    return (f"Cosine similarity of the identity embeddings: **{float(v.similarity[0]):.3f}** -> {verdict} "
            f"(threshold {v.threshold:.3f}, chosen on training identities; the model card gives its error "
            "rates)")


class _MeshFiles:
    """The mesh files handed to Gradio (which copies each into its cache): written in a temporary folder
    of their own, the oldest removed beyond ``keep``, the folder removed with the page."""

    def __init__(self, keep: int = 32) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="latentface-demo-"))
        self._written: deque[Path] = deque()
        self._keep = keep
        self._lock = threading.Lock()
        weakref.finalize(self, _remove_folder, self.folder)

    def write(self, mesh: FaceMesh) -> str:
        fd, name = tempfile.mkstemp(dir=self.folder, prefix="face-", suffix=".glb")
        os.close(fd)
        path = write_glb(mesh, name)
        with self._lock:
            self._written.append(path)
            while len(self._written) > self._keep:
                self._written.popleft().unlink(missing_ok=True)
        return str(path)


def _remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def example_photos(folder: str | os.PathLike[str] | None = None) -> list[str]:
    """Example photos for the page: the images in ``folder`` (default: ``../shared/data/photos`` beside
    a checkout, when it exists), sorted; an empty list when there are none."""
    root = Path(folder) if folder is not None else SHARED_PHOTOS
    if not root.is_dir():
        return []
    return [str(p) for p in sorted(root.iterdir()) if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}]


def build_demo(model: str | None = None, *, encoder: FaceEncoder | None = None,
               examples: Sequence[str] | None = None) -> gradio.Blocks:
    """The Gradio page over ``encoder`` (default: ``FaceEncoder.from_pretrained(model)``).

    ``examples``: photo paths offered under the upload box (default :func:`example_photos`). The
    button's function is exposed as the API endpoint ``/analyse`` (one photo in; out: the images, the
    latents, a note and, last, the frontal mesh as a ``.glb``, :func:`write_glb`). Launch with ``.launch()``.
    """
    gr = require_gradio()
    from ..encoder import FaceEncoder
    from ..errors import InvalidImageError

    enc = encoder if encoder is not None else FaceEncoder.from_pretrained(model)
    photos = list(examples) if examples is not None else example_photos()
    mesh_files = _MeshFiles()

    def run(photo: str | None) -> tuple[Any, ...]:
        if photo is None:
            raise gr.Error("Upload a photo first (or click an example).")
        try:
            r = analyse(enc, photo)
        except NoFaceError as exc:
            raise gr.Error(f"No face found: {exc}") from exc
        except InvalidImageError as exc:
            raise gr.Error(f"Cannot read this file: {exc}") from exc
        note = f"{r.faces} face(s) found; showing the largest."
        mesh = mesh_files.write(r.mesh) if r.mesh is not None else None
        return (r.found, r.crop, r.reconstruction, r.albedo, r.depth, r.shading, r.frontal, r.sweep,
                r.latents, note, mesh, r.expressions or None)

    with gr.Blocks(title="LatentFace demo") as app:
        gr.Markdown("# LatentFace\nUpload a photo: the model finds the face, takes it apart into albedo, "
                    "depth, shading, pose and light, renders it from the front and from the side, and shows "
                    "it as a 3D mesh you can turn.")
        with gr.Row():
            photo = gr.Image(type="filepath", label="Photo", sources=["upload", "clipboard"], elem_id="photo")
            found = gr.Image(label="Face found", interactive=False, elem_id="found")
        button = gr.Button("Analyse", variant="primary", elem_id="analyse")
        note = gr.Markdown(elem_id="note")
        with gr.Row():
            crop = gr.Image(label="Crop (64x64)", interactive=False, elem_id="crop")
            rec = gr.Image(label="Reconstruction", interactive=False, elem_id="reconstruction")
            albedo = gr.Image(label="Albedo", interactive=False, elem_id="albedo")
            depth = gr.Image(label="Depth (near = bright)", interactive=False, elem_id="depth")
            shading = gr.Image(label="Shading (relative)", interactive=False, elem_id="shading")
            frontal = gr.Image(label="Frontal", interactive=False, elem_id="frontal")
        sweep = gr.Image(label=f"Yaw sweep {SWEEP_YAWS[0]} to {SWEEP_YAWS[-1]} degrees", interactive=False,
                         elem_id="sweep")
        with gr.Row():
            # camera (alpha, beta) in degrees: (90, 90) is straight in front of the face (+z); a little to
            # its left and above, so that the first look already shows depth.
            mesh = gr.Model3D(label="3D face (frontal mesh; drag to turn, scroll to zoom)", elem_id="mesh",
                              camera_position=(65, 80, None), clear_color=(0.93, 0.93, 0.93, 1.0), height=420,
                              interactive=False)
            latents = gr.JSON(label="Latents", elem_id="latents")
        expressions = gr.Label(label="Expression (FER-2013's seven classes)", num_top_classes=7,
                               elem_id="expressions")
        outputs = [found, crop, rec, albedo, depth, shading, frontal, sweep, latents, note, mesh, expressions]
        button.click(run, inputs=photo, outputs=outputs, api_name="analyse")
        if photos:
            gr.Examples(examples=[[p] for p in photos], inputs=photo, outputs=outputs, fn=run,
                        cache_examples=False, run_on_click=True, elem_id="examples")
        gr.Markdown("## Same person?\nTwo photos: the cosine of their largest faces' identity embeddings "
                    "and the model's decision.")
        with gr.Row():
            photo_a = gr.Image(type="filepath", label="Photo A", sources=["upload", "clipboard"],
                               elem_id="photo_a")
            photo_b = gr.Image(type="filepath", label="Photo B", sources=["upload", "clipboard"],
                               elem_id="photo_b")
        compare_button = gr.Button("Compare", elem_id="compare")
        verdict = gr.Markdown(elem_id="verdict")

        def compare(a: str | None, b: str | None) -> str:
            if a is None or b is None:
                raise gr.Error("Upload two photos first.")
            if enc.heads.identity is None:
                raise gr.Error("This model has no identity head.")
            return compare_faces(enc, a, b)

        compare_button.click(compare, inputs=[photo_a, photo_b], outputs=verdict, api_name="compare")
    return app
