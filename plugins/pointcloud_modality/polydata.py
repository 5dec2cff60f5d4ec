"""Points as VTK poly data with one vertex cell per point: what the offline depth renderer and the
3-D viewer both draw (one builder, so the two never disagree about which points are shown)."""

from __future__ import annotations

import numpy as np
from vtkmodules.util import numpy_support as ns
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData


def vertex_polydata(points: np.ndarray) -> vtkPolyData:
    """(N, 3) points, copied (the caller's array may change), each a vertex cell."""
    n = points.shape[0]
    poly = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(ns.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float32), deep=True))
    poly.SetPoints(vtk_points)
    cells = vtkCellArray()
    cells.SetData(
        ns.numpy_to_vtkIdTypeArray(np.arange(n + 1, dtype=np.int64), deep=True),
        ns.numpy_to_vtkIdTypeArray(np.arange(n, dtype=np.int64), deep=True),
    )
    poly.SetVerts(cells)
    return poly
