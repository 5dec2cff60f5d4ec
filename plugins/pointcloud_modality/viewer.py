"""Point-cloud viewer dock (VTK): colour by height, depth or RGB, point size, camera presets,
point picking, and the verdict's regions (their point ids) highlighted on the cloud.

The VTK arrays are built off the GUI thread in `prepare_display`. A million points take about a
second per frame with Mesa's software rasteriser on two busy cores (a GPU draws them at screen
rate), so while the operator drags the camera the viewer draws an evenly strided subset, chosen
from the measured cost of the last full frame to stay near `TARGET_FPS`, and the full cloud when
the drag ends: what VTK's LOD actors do, with levels made in advance (`LOD_LEVELS`). Camera presets are the
viewpoints of the depth renders the model sees (front = view 1 ...), in the cloud's canonical
pose, so "the box on view 3" and the "Back" preset show the same side of the part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401 - registers the OpenGL render window
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSpinBox, QToolBar, QVBoxLayout
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util import numpy_support as ns
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkPointPicker,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkWindowToImageFilter,
)

from inspector.model import LoadedCase, Verdict
from views.viewer_api import (
    CaseViewer,
)

from .polydata import vertex_polydata

LOD_LEVELS = (250_000, 60_000, 15_000)
TARGET_FPS = 12.0
COLOR_MODES = ("Height", "Depth", "RGB")
CAMERA_PRESETS = ("front", "back", "left", "right", "top", "bottom", "iso")
HIGHLIGHT_RGB = (1.0, 0.15, 0.1)
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float) / 255.0
_INFERNO = np.array([[40, 11, 84], [187, 55, 84], [249, 142, 9], [252, 255, 164]], float) / 255.0


@dataclass
class PreparedCloud:
    """VTK data made off the GUI thread: the full cloud and the subset drawn while dragging."""

    full: vtkPolyData
    levels: list[vtkPolyData]  # evenly strided subsets, largest first, for camera drags
    height_range: tuple[float, float]

    def all(self) -> list[vtkPolyData]:
        return [self.full, *self.levels]


def _polydata(points: np.ndarray, colors: np.ndarray | None) -> vtkPolyData:
    n = points.shape[0]
    poly = vertex_polydata(points)
    data = poly.GetPointData()
    height = ns.numpy_to_vtk(np.ascontiguousarray(points[:, 2], dtype=np.float32), deep=True)
    height.SetName("height")
    data.AddArray(height)
    depth = ns.numpy_to_vtk(np.zeros(n, np.float32), deep=True)
    depth.SetName("depth")
    data.AddArray(depth)
    if colors is not None:
        rgb = ns.numpy_to_vtk(np.ascontiguousarray(colors, dtype=np.uint8), deep=True, array_type=3)
        rgb.SetName("rgb")
        data.AddArray(rgb)
    return poly


def _lut(stops: np.ndarray) -> vtkLookupTable:
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    x = np.linspace(0, 1, len(stops))
    for i, t in enumerate(np.linspace(0, 1, 256)):
        lut.SetTableValue(i, *(float(np.interp(t, x, stops[:, c])) for c in range(3)), 1.0)
    lut.Build()
    return lut


class PointCloudViewer(CaseViewer):
    """Shows one cloud; `show_verdict` marks the regions' points in red and the hottest points."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("pointCloudViewer")
        self._loaded: LoadedCase | None = None
        self._prepared: PreparedCloud | None = None
        self._points: np.ndarray | None = None
        self.highlighted_ids = np.empty(0, np.int64)
        self.hot_ids = np.empty(0, np.int64)
        self._hot_scores = np.empty(0, np.float32)
        self._press: tuple[int, int] | None = None
        self._interacting = False
        self._full_frame_s = 0.05  # measured after each full render

        self.toolbar = QToolBar("Point cloud", self)
        self.color_mode = QComboBox()
        self.color_mode.addItems(COLOR_MODES)
        self.color_mode.setToolTip("Colour the points by height (z), by depth from the camera, or by their RGB")
        self.color_mode.currentTextChanged.connect(lambda _: self._apply_colors())
        self.toolbar.addWidget(QLabel(" Colour "))
        self.toolbar.addWidget(self.color_mode)
        self.point_size = QSpinBox()
        self.point_size.setRange(1, 10)
        self.point_size.setValue(2)
        self.point_size.setToolTip("Point size in pixels")
        self.point_size.valueChanged.connect(self._apply_point_size)
        self.toolbar.addWidget(QLabel(" Size "))
        self.toolbar.addWidget(self.point_size)
        self.toolbar.addSeparator()
        self.camera_actions: dict[str, QAction] = {}
        for name in (*CAMERA_PRESETS, "reset"):
            action = QAction(name.capitalize(), self)
            action.setToolTip(
                f"Camera: {name} (the depth view of the same name)"
                if name not in ("iso", "reset")
                else f"Camera: {name}"
            )
            action.triggered.connect(lambda _=False, n=name: self.camera_preset(n))
            self.toolbar.addAction(action)
            self.camera_actions[name] = action
        self.toolbar.addSeparator()
        self.show_marks = QCheckBox("Marks")
        self.show_marks.setChecked(True)
        self.show_marks.setToolTip("Show the points of the verdict's regions (red) and the hottest points")
        self.show_marks.toggled.connect(self._update_marks_visibility)
        self.toolbar.addWidget(self.show_marks)

        self.vtk_widget = QVTKRenderWindowInteractor(self)
        self.vtk_widget.setMinimumSize(120, 90)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.12, 0.13, 0.15)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.AddRenderer(self.renderer)
        self.interactor = self.render_window.GetInteractor()
        # The style forwards a button event to its own observers instead of handling it, so
        # these observers pick on a click and then hand the event back (rotate on a drag).
        self.style = vtkInteractorStyleTrackballCamera()
        self.style.AddObserver("LeftButtonPressEvent", self._on_press)
        self.style.AddObserver("LeftButtonReleaseEvent", self._on_release)
        self.interactor.SetInteractorStyle(self.style)
        self.picker = vtkPointPicker()
        self.picker.SetTolerance(0.005)
        self.interactor.SetPicker(self.picker)
        self.style.AddObserver("StartInteractionEvent", self._on_start_interaction)
        self.style.AddObserver("EndInteractionEvent", self._on_end_interaction)

        self.mapper = vtkPolyDataMapper()
        self.mapper.SetScalarModeToUsePointFieldData()
        self.actor = vtkActor()
        self.actor.SetMapper(self.mapper)
        self.actor.GetProperty().SetPointSize(self.point_size.value())
        self.actor.VisibilityOff()
        self.renderer.AddActor(self.actor)
        self.mark_mapper = vtkPolyDataMapper()
        self.mark_mapper.ScalarVisibilityOff()
        self.mark_mapper.SetRelativeCoincidentTopologyPointOffsetParameter(-4.0)
        self.mark_actor = vtkActor()
        self.mark_actor.SetMapper(self.mark_mapper)
        self.mark_actor.GetProperty().SetColor(*HIGHLIGHT_RGB)
        self.mark_actor.GetProperty().LightingOff()
        self.mark_actor.VisibilityOff()
        self.mark_actor.PickableOff()  # picks read the cloud itself
        self.renderer.AddActor(self.mark_actor)
        self.hot_mapper = vtkPolyDataMapper()
        self.hot_mapper.SetLookupTable(_lut(_INFERNO))
        self.hot_mapper.SetScalarRange(0.5, 1.0)
        self.hot_mapper.SetRelativeCoincidentTopologyPointOffsetParameter(-2.0)
        self.hot_actor = vtkActor()
        self.hot_actor.SetMapper(self.hot_mapper)
        self.hot_actor.GetProperty().LightingOff()
        self.hot_actor.VisibilityOff()
        self.hot_actor.PickableOff()
        self.renderer.AddActor(self.hot_actor)
        self._height_lut = _lut(_VIRIDIS)

        self.readout = QLabel("")
        self.readout.setObjectName("pointReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.vtk_widget, 1)
        layout.addWidget(self.readout)
        self.vtk_widget.Initialize()

    # ------------------------------------------------------------------ CaseViewer

    @classmethod
    def prepare_display(cls, loaded: LoadedCase) -> PreparedCloud:
        cloud = loaded.data
        points = cloud.points
        full = _polydata(points, cloud.colors)
        levels = []
        for size in LOD_LEVELS:
            if points.shape[0] > 2 * size:
                step = int(np.ceil(points.shape[0] / size))
                levels.append(_polydata(points[::step], None if cloud.colors is None else cloud.colors[::step]))
        z = points[:, 2]
        cloud.pose()  # computed here, off the GUI thread, for the camera presets
        return PreparedCloud(full, levels, (float(z.min()), float(z.max())))

    def render_options(self) -> dict[str, Any]:
        return {}  # the model always sees the profile's depth views, whatever the camera here

    def show_case(self, loaded: LoadedCase, display: PreparedCloud | None = None) -> None:
        if self._loaded is not None and loaded.data is self._loaded.data:
            return  # already shown: keep the operator's camera
        self._loaded = loaded
        self._prepared = display if isinstance(display, PreparedCloud) else self.prepare_display(loaded)
        self._points = loaded.data.points
        has_rgb = loaded.data.colors is not None
        item = self.color_mode.model().item(COLOR_MODES.index("RGB"))
        item.setEnabled(has_rgb)
        self.color_mode.blockSignals(True)
        self.color_mode.setCurrentText("RGB" if has_rgb else "Height")
        self.color_mode.blockSignals(False)
        self.mapper.SetInputData(self._prepared.full)
        self.actor.VisibilityOn()
        self._apply_colors(render=False)
        self.show_verdict(None, None)
        self.camera_preset("iso")
        n = len(self._points)
        self.readout.setText(f"{n:,} points  ·  {loaded.metadata.get('format', '')}  ·  click a point to read it")

    def show_verdict(self, verdict: Verdict | None, heatmap: np.ndarray | None) -> None:
        ids: list[int] = []
        for region in verdict.regions if verdict is not None else []:
            ids.extend(int(i) for i in (region.detail or {}).get("point_ids", []))
        n = len(self._points) if self._points is not None else 0
        self.highlighted_ids = np.unique(np.asarray(ids, dtype=np.int64))
        self.highlighted_ids = self.highlighted_ids[(self.highlighted_ids >= 0) & (self.highlighted_ids < n)]
        top = (verdict.details or {}).get("top_points", []) if verdict is not None else []
        hot = np.asarray([p for p in top if isinstance(p, (list, tuple)) and len(p) == 2], dtype=np.float64)
        if hot.size:
            keep = (hot[:, 0] >= 0) & (hot[:, 0] < n) & (hot[:, 1] >= 0.5)
            hot = hot[keep]
        self.hot_ids = hot[:, 0].astype(np.int64) if hot.size else np.empty(0, np.int64)
        self._hot_scores = hot[:, 1].astype(np.float32) if hot.size else np.empty(0, np.float32)
        self._build_marks()
        if verdict is not None and self._points is not None:
            regions = len(verdict.regions)
            self.readout.setText(
                f"{n:,} points  ·  {regions} region{'s' if regions != 1 else ''}, "
                f"{self.highlighted_ids.size:,} points marked"
                + (f", {self.hot_ids.size:,} hot points" if self.hot_ids.size else "")
            )
        self._render()

    def clear(self) -> None:
        self._loaded = None
        self._prepared = None
        self._points = None
        self.actor.VisibilityOff()
        self.show_verdict(None, None)
        self.readout.setText("")
        self._render()

    # ------------------------------------------------------------------ display

    def _render(self) -> None:
        if self.vtk_widget.isVisible():
            started = time.perf_counter()
            self.render_window.Render()
            if not self._interacting and self._prepared is not None:
                self._full_frame_s = max(1e-4, time.perf_counter() - started)

    def _build_marks(self) -> None:
        if self._points is not None and self.highlighted_ids.size:
            self.mark_mapper.SetInputData(_polydata(self._points[self.highlighted_ids], None))
        if self._points is not None and self.hot_ids.size:
            hot = _polydata(self._points[self.hot_ids], None)
            scores = ns.numpy_to_vtk(self._hot_scores, deep=True)
            scores.SetName("score")
            hot.GetPointData().SetScalars(scores)
            self.hot_mapper.SetInputData(hot)
        self._apply_point_size(self.point_size.value(), render=False)
        self._update_marks_visibility(render=False)

    def _update_marks_visibility(self, *_: object, render: bool = True) -> None:
        show = self.show_marks.isChecked() and self._points is not None
        self.mark_actor.SetVisibility(bool(show and self.highlighted_ids.size))
        self.hot_actor.SetVisibility(bool(show and self.hot_ids.size))
        if render:
            self._render()

    def _apply_point_size(self, size: int, render: bool = True) -> None:
        self.actor.GetProperty().SetPointSize(size)
        self.hot_actor.GetProperty().SetPointSize(size + 1)
        self.mark_actor.GetProperty().SetPointSize(size + 3)
        if render:
            self._render()

    def _apply_colors(self, render: bool = True) -> None:
        if self._prepared is None:
            return
        mode = self.color_mode.currentText()
        if mode == "RGB" and self._loaded is not None and self._loaded.data.colors is not None:
            self.mapper.SetColorModeToDirectScalars()
            self.mapper.SelectColorArray("rgb")
        else:
            self.mapper.SetColorModeToMapScalars()
            self.mapper.SetLookupTable(self._height_lut)
            if mode == "Depth":
                self._update_depth()
                self.mapper.SelectColorArray("depth")
            else:
                self.mapper.SelectColorArray("height")
                self.mapper.SetScalarRange(*self._prepared.height_range)
        self.mapper.ScalarVisibilityOn()
        if render:
            self._render()

    def _update_depth(self) -> None:
        """Depth = distance along the current viewing direction (near = bright end of the map)."""
        if self._prepared is None:
            return
        camera = self.renderer.GetActiveCamera()
        direction = np.asarray(camera.GetDirectionOfProjection(), dtype=np.float32)
        for poly in self._prepared.all():
            points = ns.vtk_to_numpy(poly.GetPoints().GetData())
            array = poly.GetPointData().GetArray("depth")
            values = ns.vtk_to_numpy(array)
            values[:] = -(points @ direction)
            array.Modified()
        values = ns.vtk_to_numpy(self._prepared.full.GetPointData().GetArray("depth"))
        self.mapper.SetScalarRange(float(values.min()), float(values.max()))

    def camera_preset(self, name: str) -> None:
        """Look at the cloud from a named depth viewpoint (front = view 1 ...), iso, or reset."""
        if self._loaded is None:
            return
        camera = self.renderer.GetActiveCamera()
        toward, up = self._loaded.data.camera("iso" if name == "reset" else name)
        pose = self._loaded.data.pose()
        centre = pose.centre
        radius = 1.0 / pose.scale
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + toward * radius * 4.0))
        camera.SetViewUp(*up)
        self.renderer.ResetCamera()
        self.renderer.ResetCameraClippingRange()
        if self.color_mode.currentText() == "Depth":
            self._apply_colors(render=False)
        self._render()

    # ------------------------------------------------------------------ interaction

    def interaction_level(self) -> vtkPolyData | None:
        """The largest prepared subset whose estimated frame time meets `TARGET_FPS`."""
        if self._prepared is None or not self._prepared.levels:
            return None
        full_points = self._prepared.full.GetNumberOfPoints()
        per_point = self._full_frame_s / max(full_points, 1)
        budget = 1.0 / TARGET_FPS
        for level in self._prepared.levels:
            if level.GetNumberOfPoints() * per_point <= budget:
                return level
        return self._prepared.levels[-1]

    def _on_start_interaction(self, *_: object) -> None:
        self._interacting = True
        level = self.interaction_level()
        if level is not None:
            self.mapper.SetInputData(level)

    def _on_end_interaction(self, *_: object) -> None:
        self._interacting = False
        if self._prepared is not None:
            self.mapper.SetInputData(self._prepared.full)
            if self.color_mode.currentText() == "Depth":
                self._apply_colors(render=False)
            self._render()

    def _on_press(self, *_: object) -> None:
        self._press = self.interactor.GetEventPosition()
        self.style.OnLeftButtonDown()

    def _on_release(self, *_: object) -> None:
        self.style.OnLeftButtonUp()
        position = self.interactor.GetEventPosition()
        if self._press is not None and abs(position[0] - self._press[0]) + abs(position[1] - self._press[1]) <= 3:
            self.pick_at(*position)
        self._press = None

    def pick_at(self, x: int, y: int) -> int | None:
        """Pick the point under display pixel (x, y) (VTK's origin: bottom left); show it."""
        if self._points is None:
            return None
        if not self.picker.Pick(x, y, 0, self.renderer) or self.picker.GetActor() is not self.actor:
            self.readout.setText("no point under the cursor")
            return None
        point_id = int(self.picker.GetPointId())
        if point_id < 0:
            return None
        if self.mapper.GetInput() is not (self._prepared.full if self._prepared else None):
            return None  # picked on the interaction subset: ids differ
        self.readout.setText(self.describe_point(point_id))
        return point_id

    def describe_point(self, point_id: int) -> str:
        assert self._loaded is not None
        cloud = self._loaded.data
        x, y, z = (float(v) for v in cloud.points[point_id])
        text = f"point #{point_id:,}   x {x:.4g}  y {y:.4g}  z {z:.4g}"
        if cloud.colors is not None:
            text += f"   rgb {tuple(int(c) for c in cloud.colors[point_id])}"
        if cloud.normals is not None:
            text += "   normal ({:.2f}, {:.2f}, {:.2f})".format(*(float(v) for v in cloud.normals[point_id]))
        if point_id in set(self.highlighted_ids.tolist()):
            text += "   in a marked region"
        hot = np.flatnonzero(self.hot_ids == point_id)
        if hot.size:
            text += f"   anomaly {float(self._hot_scores[hot[0]]):.2f}"
        return text

    # ------------------------------------------------------------------ tests and screenshots

    def grab_rgb(self) -> np.ndarray:
        """The VTK view as an RGB array (QWidget.grab() cannot read OpenGL content)."""
        self.render_window.Render()
        grabber = vtkWindowToImageFilter()
        grabber.SetInput(self.render_window)
        grabber.ReadFrontBufferOff()
        grabber.Update()
        image = grabber.GetOutput()
        w, h, _ = image.GetDimensions()
        pixels = ns.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
        return np.ascontiguousarray(pixels)
