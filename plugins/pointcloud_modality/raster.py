"""Rasterising a canonical cloud into depth and point-index images, one per viewpoint.

Two backends produce the same thing, a depth image t (float32, larger = nearer, NaN = no point)
and an index image (int32, the front-most point of each pixel, -1 = background):

* ``vtk``: VTK off-screen through EGL (`vtkEGLRenderWindow`, no X server involved). Each point is
  drawn with its index + 1 as a flat 24-bit colour (lighting, multisampling and smoothing off), so
  the colour buffer *is* the index map and the z-buffer of the same draw is the depth: the two can
  never disagree. Checked on this project's machines (Mesa llvmpipe under xvfb): renders from
  worker threads while the Qt viewer renders 1 M points with GLX on the GUI thread gave identical
  index maps every time; renders are still serialised by a lock, one GL context at a time.
* ``numpy``: a z-buffer point splatter with the same camera model (`cameras.project`), used where
  EGL is missing (Windows and macOS wheels have no `vtkEGLRenderWindow`), where the start-up
  self-check fails, for clouds over 16.7 M points (24-bit ids) or when
  ``ANOMALENS_POINT_RENDERER=numpy``. Exact and deterministic, a little slower.

Which backend ran is recorded in every view map (``renderer``).
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from .cameras import CAMERA_DISTANCE, EXTENT, ViewSpec, project

log = logging.getLogger(__name__)

MAX_VTK_POINTS = (1 << 24) - 2
_NEAR, _FAR = CAMERA_DISTANCE - 3.0, CAMERA_DISTANCE + 3.0
_lock = threading.Lock()
_vtk_state: dict[str, object] = {}


def backend_for(n_points: int) -> str:
    wanted = os.environ.get("ANOMALENS_POINT_RENDERER", "").strip().lower()
    if wanted == "numpy" or n_points > MAX_VTK_POINTS:
        return "numpy"
    return "vtk" if vtk_available() else "numpy"


def rasterize(
    points: np.ndarray, views: list[ViewSpec], size: int, point_size: int, backend: str | None = None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """-> ([(depth, index) per view], backend used)."""
    backend = backend or backend_for(points.shape[0])
    if backend == "vtk":
        try:
            return _vtk_rasterize(points, views, size, point_size), "vtk"
        except Exception:
            log.exception("VTK off-screen rendering failed; using the numpy renderer")
    return [_numpy_view(points, spec, size, point_size) for spec in views], "numpy"


# ---------------------------------------------------------------------------------- numpy


def _numpy_view(points: np.ndarray, spec: ViewSpec, size: int, point_size: int) -> tuple[np.ndarray, np.ndarray]:
    col, row, t = project(points, spec, size)
    ids = np.flatnonzero(np.abs(t) <= 3.0)  # the VTK clipping range
    # rank 0 = nearest; one int64 key per covered pixel sorts by pixel, then nearest first
    by_depth = ids[np.argsort(-t[ids], kind="stable")]
    rank = np.empty(points.shape[0], np.int64)
    rank[by_depth] = np.arange(by_depth.size)
    # OpenGL covers the pixels whose centres lie within the point's square: the first is
    # floor(c + 0.5 - size / 2), for odd and even sizes alike
    shift = 0.5 - point_size / 2
    cx = np.floor(col[by_depth] + shift).astype(np.int64)
    cy = np.floor(row[by_depth] + shift).astype(np.int64)
    keys = []
    for dy in range(point_size):
        for dx in range(point_size):
            px, py = cx + dx, cy + dy
            keep = (px >= 0) & (px < size) & (py >= 0) & (py < size)
            keys.append((py[keep] * size + px[keep]) * by_depth.size + rank[by_depth][keep])
    key = np.sort(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    pixel, nearest = np.divmod(key, max(by_depth.size, 1))
    first = np.ones(pixel.shape[0], dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    winners = by_depth[nearest[first]]
    depth = np.full(size * size, np.nan, dtype=np.float32)
    index = np.full(size * size, -1, dtype=np.int32)
    depth[pixel[first]] = t[winners]
    index[pixel[first]] = winners
    return depth.reshape(size, size), index.reshape(size, size)


# ------------------------------------------------------------------------------------ vtk


def vtk_available() -> bool:
    """Whether EGL off-screen rendering works here (checked once: one point must come back)."""
    with _lock:
        if "ok" not in _vtk_state:
            try:
                from .cameras import ALL_VIEWS

                probe = np.array([[0.05, 0.05, 0.0], [0.5, -0.5, 0.5]], dtype=np.float32)
                ((depth, index),) = _vtk_render_locked(probe, [ALL_VIEWS[0]], 16, 1)
                expected = _numpy_view(probe, ALL_VIEWS[0], 16, 1)[1]
                _vtk_state["ok"] = bool(np.array_equal(index, expected) and abs(float(depth[11, 11]) - 0.5) < 1e-3)
                if not _vtk_state["ok"]:
                    log.warning("VTK off-screen self-check gave a wrong image; using the numpy renderer")
            except Exception as exc:  # noqa: BLE001 - no EGL in this VTK build or no driver
                log.info("VTK off-screen rendering unavailable (%s); using the numpy renderer", exc)
                _vtk_state["ok"] = False
        return bool(_vtk_state["ok"])


def _vtk_rasterize(
    points: np.ndarray, views: list[ViewSpec], size: int, point_size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    with _lock:
        return _vtk_render_locked(points, views, size, point_size)


def _vtk_render_locked(
    points: np.ndarray, views: list[ViewSpec], size: int, point_size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    from vtkmodules.util import numpy_support as ns
    from vtkmodules.vtkCommonCore import vtkFloatArray, vtkUnsignedCharArray
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer
    from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

    from .polydata import vertex_polydata

    n = points.shape[0]
    codes = np.arange(1, n + 1, dtype=np.uint32)
    colors = np.stack([codes & 255, (codes >> 8) & 255, (codes >> 16) & 255], axis=1).astype(np.uint8)
    poly = vertex_polydata(points)
    scalars = ns.numpy_to_vtk(colors, deep=True, array_type=3)  # VTK_UNSIGNED_CHAR
    scalars.SetName("id")
    poly.GetPointData().SetScalars(scalars)
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.SetColorModeToDirectScalars()
    mapper.ScalarVisibilityOn()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.LightingOff()
    prop.SetPointSize(point_size)
    prop.SetRenderPointsAsSpheres(False)
    renderer = vtkRenderer()
    renderer.AddActor(actor)
    renderer.SetBackground(0, 0, 0)
    renderer.UseFXAAOff()
    window = vtkEGLRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)
    window.SetPointSmoothing(False)
    window.AddRenderer(renderer)
    window.SetSize(size, size)
    camera = renderer.GetActiveCamera()
    camera.ParallelProjectionOn()
    out = []
    try:
        for spec in views:
            _, up, back = spec.basis()
            camera.SetFocalPoint(0.0, 0.0, 0.0)
            camera.SetPosition(*(back * CAMERA_DISTANCE))
            camera.SetViewUp(*up)
            camera.SetParallelScale(EXTENT)
            camera.SetClippingRange(_NEAR, _FAR)
            window.Render()
            rgb = vtkUnsignedCharArray()
            window.GetPixelData(0, 0, size - 1, size - 1, 0, rgb, 0)
            zbuf = vtkFloatArray()
            window.GetZbufferData(0, 0, size - 1, size - 1, zbuf)
            pixels = ns.vtk_to_numpy(rgb).reshape(size, size, -1)[::-1].astype(np.int32)
            z = ns.vtk_to_numpy(zbuf).reshape(size, size)[::-1]
            index = (pixels[..., 0] | (pixels[..., 1] << 8) | (pixels[..., 2] << 16)) - 1
            index[(index >= n) | (z >= 1.0)] = -1
            depth = np.where(index >= 0, CAMERA_DISTANCE - (_NEAR + z * (_FAR - _NEAR)), np.nan).astype(np.float32)
            out.append((np.ascontiguousarray(depth), np.ascontiguousarray(index.astype(np.int32))))
    finally:
        window.Finalize()
    return out
