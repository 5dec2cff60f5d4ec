"""Point-cloud readers: every supported format written here and read back, and bad files.

No real point-cloud data set is available offline, so the clouds are synthetic (a small scanned
part from the plugin's `synthetic` module, with colours and normals) and each format is written
by the writers below following its published layout (PLY, PCL's PCD incl. LZF, MVTec 3D-AD's
organized XYZ TIFF via tifffile). The writers are also used by the other point-cloud tests and
by benchmarks/point_cloud.py.
"""

from __future__ import annotations

import importlib
import struct
from pathlib import Path

import numpy as np
import pytest

from inspector.imaging import CaseReadError
from inspector.inspection import InspectionService
from inspector.model import CaseStatus
from inspector.plugins import discover
from inspector.store import ProjectStore

PKG = "plugins.pointcloud_modality"


def plugin_module(name: str):
    """A submodule of the point-cloud plugin (importable once the registry has loaded it)."""
    if PKG not in __import__("sys").modules:
        discover()
    return importlib.import_module(f"{PKG}.{name}")


def sample_cloud(n: int = 600, seed: int = 0):
    """(points float32, colours uint8, normals float32) of a small synthetic part."""
    part = plugin_module("synthetic").make_part(seed, n_points=n)
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return part.points, colors, part.normals


# --------------------------------------------------------------------------------- writers


def write_ply(
    path: Path,
    points,
    colors=None,
    normals=None,
    fmt: str = "binary_little_endian",
    faces: int = 0,
    declared: int | None = None,
) -> Path:
    """PLY with float xyz, uchar colours, float normals; `faces` adds a face element after the
    vertices; `declared` lies about the vertex count in the header."""
    n = len(points)
    props = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colors is not None:
        props += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if normals is not None:
        props += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
    names = {"f4": "float", "u1": "uchar"}
    header = [
        "ply",
        f"format {fmt} 1.0",
        "comment written by the Anomalens tests",
        f"element vertex {declared if declared is not None else n}",
    ]
    header += [f"property {names[t]} {p}" for p, t in props]
    if faces:
        header += [f"element face {faces}", "property list uchar int vertex_indices"]
    header.append("end_header")
    table = np.empty(n, dtype=[(p, t) for p, t in props])
    for i, axis in enumerate("xyz"):
        table[axis] = points[:, i]
    if colors is not None:
        for i, c in enumerate(("red", "green", "blue")):
            table[c] = colors[:, i]
    if normals is not None:
        for i, c in enumerate(("nx", "ny", "nz")):
            table[c] = normals[:, i]
    with path.open("wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if fmt == "ascii":
            columns = np.column_stack([table[p].astype(np.float64) for p, _ in props])
            np.savetxt(fh, columns, fmt=["%.9g" if t == "f4" else "%d" for _, t in props])
            for f in range(faces):
                fh.write(f"3 {f} {f + 1} {f + 2}\n".encode())
        else:
            order = "<" if fmt == "binary_little_endian" else ">"
            fh.write(table.astype([(p, order + t) for p, t in props]).tobytes())
            for f in range(faces):
                fh.write(struct.pack(order + "B3i", 3, f, f + 1, f + 2))
    return path


def lzf_compress(data: bytes) -> bytes:
    """A small, greedy LZF encoder (liblzf's format) with back-references, for test files."""
    out = bytearray()
    literal = bytearray()
    table: dict[bytes, int] = {}
    i, n = 0, len(data)

    def flush() -> None:
        for k in range(0, len(literal), 32):
            chunk = literal[k : k + 32]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        literal.clear()

    while i < n:
        key = data[i : i + 3]
        ref = table.get(key) if len(key) == 3 else None
        table[key] = i
        if ref is not None and 0 < i - ref <= 8192:
            length = 3
            while i + length < n and length < 264 and data[ref + length] == data[i + length]:
                length += 1
            flush()
            offset = i - ref - 1
            code = length - 2
            if code < 7:
                out.append((code << 5) | (offset >> 8))
            else:
                out.append((7 << 5) | (offset >> 8))
                out.append(code - 7)
            out.append(offset & 0xFF)
            i += length
        else:
            literal.append(data[i])
            i += 1
    flush()
    return bytes(out)


def lzf_literal(data: bytes) -> bytes:
    """Valid LZF made of literal runs only (fast for big benchmark files; no compression)."""
    raw = np.frombuffer(data, np.uint8)
    full = raw.size // 32
    body = np.empty((full, 33), np.uint8)
    body[:, 0] = 31
    body[:, 1:] = raw[: full * 32].reshape(full, 32)
    tail = raw[full * 32 :]
    return body.tobytes() + (bytes([tail.size - 1]) + tail.tobytes() if tail.size else b"")


def write_pcd(
    path: Path,
    points,
    colors=None,
    normals=None,
    data: str = "binary",
    organized: tuple | None = None,
    declared: int | None = None,
) -> Path:
    """PCD v0.7 with x y z [rgb packed as float] [normal_x ...]; `organized` = (height, width)."""
    n = len(points)
    cols = {"x": points[:, 0].astype("<f4"), "y": points[:, 1].astype("<f4"), "z": points[:, 2].astype("<f4")}
    if colors is not None:
        packed = (colors[:, 0].astype(np.uint32) << 16) | (colors[:, 1].astype(np.uint32) << 8) | colors[:, 2]
        cols["rgb"] = packed.astype("<u4").view("<f4")
    if normals is not None:
        for i, c in enumerate(("normal_x", "normal_y", "normal_z")):
            cols[c] = normals[:, i].astype("<f4")
    height, width = organized or (1, n)
    header = [
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        "FIELDS " + " ".join(cols),
        "SIZE " + " ".join("4" for _ in cols),
        "TYPE " + " ".join("F" for _ in cols),
        "COUNT " + " ".join("1" for _ in cols),
        f"WIDTH {width}",
        f"HEIGHT {height}",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {declared if declared is not None else n}",
        f"DATA {data}",
    ]
    with path.open("wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if data == "ascii":  # the packed colour as its integer value, as PCL's writers also accept
            columns = np.column_stack(
                [
                    column.view("<u4").astype(np.float64) if key == "rgb" else column.astype(np.float64)
                    for key, column in cols.items()
                ]
            )
            np.savetxt(fh, columns, fmt=["%d" if key == "rgb" else "%.9g" for key in cols])
        elif data == "binary":
            table = np.empty(n, dtype=[(k, "<f4") for k in cols])
            for k, column in cols.items():
                table[k] = column
            fh.write(table.tobytes())
        else:
            raw = b"".join(column.tobytes() for column in cols.values())
            packed = lzf_compress(raw) if len(raw) < 1 << 20 else lzf_literal(raw)
            fh.write(struct.pack("<II", len(packed), len(raw)) + packed)
    return path


def write_xyz(path: Path, points, colors=None, normals=None, header: str | None = None, delimiter: str = " ") -> Path:
    parts = [points]
    if colors is not None:
        parts.append(colors.astype(np.float64))
    if normals is not None:
        parts.append(normals)
    table = np.hstack(parts)
    fmt = ["%.7g"] * 3 + (["%d"] * 3 if colors is not None else []) + (["%.7g"] * 3 if normals is not None else [])
    np.savetxt(path, table, fmt=fmt, delimiter=delimiter, header=header or "", comments="")
    return path


def write_xyz_tiff(folder: Path, points, shape: tuple[int, int], colors=None, name: str = "000") -> Path:
    """MVTec 3D-AD layout: <folder>/xyz/<name>.tiff (float32 H x W x 3, zeros = no point) and,
    with colours, <folder>/rgb/<name>.png."""
    import tifffile
    from PIL import Image

    h, w = shape
    grid = np.zeros((h * w, 3), np.float32)
    pixels = np.arange(len(points)) * 2  # every other pixel holds a point
    grid[pixels] = points
    (folder / "xyz").mkdir(parents=True, exist_ok=True)
    path = folder / "xyz" / f"{name}.tiff"
    tifffile.imwrite(path, grid.reshape(h, w, 3), photometric="rgb")
    if colors is not None:
        (folder / "rgb").mkdir(parents=True, exist_ok=True)
        rgb = np.zeros((h * w, 3), np.uint8)
        rgb[pixels] = colors
        Image.fromarray(rgb.reshape(h, w, 3)).save(folder / "rgb" / f"{name}.png")
    return path


# ----------------------------------------------------------------------------------- tests


@pytest.fixture
def plugin(registry):
    return registry.modality("point_cloud")


@pytest.fixture
def cloud():
    return sample_cloud()


def _check(loaded, points, colors=None, normals=None, tol: float = 1e-6):
    data = loaded.data
    assert data.points.dtype == np.float32 and data.points.shape == points.shape
    np.testing.assert_allclose(data.points, points, atol=tol * max(1.0, float(np.abs(points).max())))
    if colors is None:
        assert data.colors is None
    else:
        assert data.colors.dtype == np.uint8
        np.testing.assert_array_equal(data.colors, colors)
    if normals is None:
        assert data.normals is None
    else:
        np.testing.assert_allclose(data.normals, normals, atol=1e-5)
    meta = loaded.metadata
    assert meta["points"] == len(points)
    np.testing.assert_allclose(meta["bounds"][0], points.min(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(meta["bounds"][1], points.max(axis=0), rtol=1e-4, atol=1e-4)
    assert meta["fields"][:3] == ["x", "y", "z"]


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_all_encodings_with_colours_normals_and_faces(tmp_path, registry, plugin, cloud, fmt):
    points, colors, normals = cloud
    path = write_ply(tmp_path / f"part_{fmt}.ply", points, colors, normals, fmt=fmt, faces=4)
    assert registry.modality_for_path(path).name == "point_cloud"
    loaded = plugin.read(path)
    _check(loaded, points, colors, normals)
    assert loaded.metadata["fields"] == ["x", "y", "z", "red", "green", "blue", "nx", "ny", "nz"]
    assert loaded.metadata["format"].startswith("PLY")


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcd_all_encodings(tmp_path, registry, plugin, cloud, data):
    points, colors, normals = cloud
    path = write_pcd(tmp_path / f"part_{data}.pcd", points, colors, normals, data=data)
    assert registry.modality_for_path(path).name == "point_cloud"
    loaded = plugin.read(path)
    _check(loaded, points, colors, normals)
    assert loaded.metadata["format"] == f"PCD {data}"


def test_pcd_organized_with_nan_points_drops_them(tmp_path, plugin, cloud):
    points, _, _ = cloud
    grid = points[:600].copy()
    grid[::7] = np.nan  # PCL marks missing measurements of organized clouds with NaN
    loaded = plugin.read(write_pcd(tmp_path / "organized.pcd", grid, data="binary", organized=(20, 30)))
    assert loaded.metadata["organized"] == [20, 30]
    assert loaded.metadata["dropped_non_finite"] == len(grid[::7])
    _check(loaded, grid[np.isfinite(grid).all(axis=1)])


def test_lzf_round_trip_with_overlapping_back_references():
    decompress = plugin_module("pcd").lzf_decompress
    for raw in (b"a" * 1000, b"abcabcabcabcabd" * 50 + bytes(range(256)) * 3, np.arange(5000, dtype="<f4").tobytes()):
        packed = lzf_compress(raw)
        assert decompress(packed, len(raw)) == raw
        assert decompress(lzf_literal(raw), len(raw)) == raw
    assert len(lzf_compress(b"a" * 1000)) < 40  # back-references were really used
    with pytest.raises(ValueError, match="declared"):
        decompress(lzf_compress(b"hello world"), 99)


@pytest.mark.parametrize("variant", ["xyz", "xyz_rgb", "xyz_normals", "xyz_rgb_normals_header", "csv_header"])
def test_xyz_text_variants(tmp_path, registry, plugin, cloud, variant):
    points, colors, normals = cloud
    c = colors if "rgb" in variant or variant == "csv_header" else None
    nm = normals if "normals" in variant else None
    if variant == "csv_header":
        path = write_xyz(tmp_path / "scan.txt", points, c, None, header="x,y,z,r,g,b", delimiter=",")
    else:
        header = "x y z red green blue nx ny nz" if variant.endswith("header") else None
        path = write_xyz(tmp_path / f"scan_{variant}.xyz", points, c, nm, header=header)
    assert registry.modality_for_path(path).name == "point_cloud"
    _check(plugin.read(path), points, c, nm, tol=1e-6)


def test_pts_with_count_line_and_intensity(tmp_path, plugin, cloud):
    points, colors, _ = cloud
    table = np.hstack([points, np.full((len(points), 1), -1200.0), colors])
    path = tmp_path / "scan.pts"
    with path.open("w") as fh:
        fh.write(f"{len(points)}\n")
        np.savetxt(fh, table, fmt=["%.7g"] * 4 + ["%d"] * 3)
    loaded = plugin.read(path)
    _check(loaded, points, colors, tol=1e-6)
    assert "intensity (ignored)" in loaded.metadata["fields"]


def test_npy_and_npz(tmp_path, registry, plugin, cloud):
    points, colors, normals = cloud
    np.save(tmp_path / "plain.npy", points)
    np.save(tmp_path / "nine.npy", np.hstack([points, colors / 255.0, normals]).astype(np.float32))
    np.savez(tmp_path / "named.npz", points=points, colors=colors, normals=normals)
    np.savez_compressed(tmp_path / "single.npz", points)
    structured = np.zeros(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    for i, a in enumerate("xyz"):
        structured[a] = points[:, i]
    np.save(tmp_path / "structured.npy", structured)
    for name in ("plain.npy", "nine.npy", "named.npz", "structured.npy"):
        assert registry.modality_for_path(tmp_path / name).name == "point_cloud", name
    _check(plugin.read(tmp_path / "plain.npy"), points)
    nine = plugin.read(tmp_path / "nine.npy")
    _check(nine, points, colors, normals)
    _check(plugin.read(tmp_path / "named.npz"), points, colors, normals)
    _check(plugin.read(tmp_path / "single.npz"), points)  # a lone array: whatever its name
    _check(plugin.read(tmp_path / "structured.npy"), points)


def test_mvtec_xyz_tiff_with_rgb_sibling(tmp_path, registry, plugin, cloud):
    points, colors, _ = cloud
    path = write_xyz_tiff(tmp_path / "good", points, (30, 40), colors)
    assert registry.modality_for_path(path).name == "point_cloud"  # not the image modality
    loaded = plugin.read(path)
    _check(loaded, points, colors)
    assert loaded.metadata["organized"] == [30, 40]
    assert loaded.metadata["colors_from"] == "rgb/000.png"
    assert loaded.metadata["format"] == "MVTec 3D-AD XYZ TIFF"
    np.testing.assert_array_equal(loaded.data.pixel_index, np.arange(len(points)) * 2)


def test_other_files_are_left_to_their_modalities(tmp_path, registry):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.tiff")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "series.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1.5\n2024-01-01 00:05:00,1.7\n")
    (tmp_path / "notes.txt").write_text("Operator notes: part 12 looked scratched.\nCheck again tomorrow.\n")
    np.save(tmp_path / "signal.npy", np.zeros(1000, np.float32))
    assert registry.modality_for_path(tmp_path / "photo.tiff").name == "image"
    assert registry.modality_for_path(tmp_path / "photo.png").name == "image"
    sniff = plugin_module("readers").sniff
    for name in ("series.csv", "notes.txt", "signal.npy", "photo.tiff"):
        head = (tmp_path / name).read_bytes()[:512]
        assert not sniff(tmp_path / name, head), name


# ------------------------------------------------------------------------------ bad input


def test_ply_whose_header_claims_more_vertices_than_the_body_holds(tmp_path, plugin, cloud):
    points, colors, _ = cloud
    binary = write_ply(tmp_path / "liar.ply", points[:400], colors[:400], declared=1000)
    with pytest.raises(CaseReadError) as caught:
        plugin.read(binary)
    message = str(caught.value)
    assert "liar.ply" in message and "1,000 vertices" in message and "only 400" in message
    assert "truncated or its header is wrong" in message
    text = write_ply(tmp_path / "liar_ascii.ply", points[:400], fmt="ascii", declared=1000)
    with pytest.raises(CaseReadError, match=r"declares 1,000 vertices but the file holds only 400 vertex lines"):
        plugin.read(text)


def test_truncated_binary_ply_and_pcd(tmp_path, plugin, cloud):
    points, colors, normals = cloud
    ply = write_ply(tmp_path / "cut.ply", points, colors, normals)
    ply.write_bytes(ply.read_bytes()[:-100])
    with pytest.raises(CaseReadError, match=r"cut\.ply: the PLY header declares 600 vertices"):
        plugin.read(ply)
    pcd = write_pcd(tmp_path / "cut.pcd", points, colors)
    pcd.write_bytes(pcd.read_bytes()[:-50])
    with pytest.raises(CaseReadError, match=r"cut\.pcd: the PCD header declares 600 points"):
        plugin.read(pcd)
    packed = write_pcd(tmp_path / "cut_lzf.pcd", points, data="binary_compressed")
    packed.write_bytes(packed.read_bytes()[:-50])
    with pytest.raises(CaseReadError, match="compressed PCD body is truncated"):
        plugin.read(packed)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n", "no 'end_header'"),
        (b"ply\nformat binary_middle_endian 1.0\nelement vertex 1\nend_header\n", "unknown PLY format"),
        (
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float u\nproperty float v\nend_header\n1 2\n",
            "no x, y, z coordinates",
        ),
        (b"ply\nformat ascii 1.0\nelement vertex two\nend_header\n", "malformed PLY element"),
        (
            b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
            b"end_header\n1 2 3\n1 2 oops\n",
            "not a row of 3 numbers",
        ),
        (
            b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n",
            "no DATA line",
        ),
        (
            b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 1\nHEIGHT 1\n"
            b"POINTS 1\nDATA ascii\n1 2 3\n",
            "3 FIELDS but 2 SIZE",
        ),
        (
            b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 3\nHEIGHT 1\n"
            b"POINTS 2\nDATA ascii\n",
            "POINTS 2 but WIDTH x HEIGHT is 3",
        ),
        (
            b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nHEIGHT 1\nPOINTS 1\n"
            b"DATA zipped\n",
            "unknown PCD DATA mode",
        ),
        (b"1.0 2.0 3.0\n4.0 5.0\n", "same count of numbers"),
        (b"x y z\n", "no point rows"),
    ],
)
def test_malformed_files_give_clear_messages(tmp_path, plugin, content, expected):
    suffix = ".ply" if content.startswith(b"ply") else (".pcd" if b"PCD" in content else ".xyz")
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(CaseReadError, match=expected) as caught:
        plugin.read(path)
    assert str(caught.value).startswith(f"bad{suffix}: ")


def test_bad_arrays_and_tiffs(tmp_path, plugin):
    import tifffile

    np.save(tmp_path / "flat.npy", np.zeros((10, 2), np.float32))
    with pytest.raises(CaseReadError, match="at least x, y, z"):
        plugin.read(tmp_path / "flat.npy")
    np.savez(tmp_path / "other.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(CaseReadError, match="no point array in the archive"):
        plugin.read(tmp_path / "other.npz")
    tifffile.imwrite(tmp_path / "empty.tiff", np.zeros((4, 5, 3), np.float32), photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tiff", np.ones((3, 4, 5), np.float32), photometric="minisblack")
    assert plugin.read(tmp_path / "planar.tiff").metadata["organized"] == [4, 5]  # channels first
    with pytest.raises(CaseReadError, match="contains no valid points"):
        plugin.read(tmp_path / "empty.tiff")
    tifffile.imwrite(tmp_path / "gray.tiff", np.zeros((4, 5), np.uint8))
    with pytest.raises(CaseReadError, match="not an organized XYZ point cloud"):
        plugin.read(tmp_path / "gray.tiff")
    (tmp_path / "damaged.tiff").write_bytes(b"II*\x00" + b"\xff" * 20)
    with pytest.raises(CaseReadError, match="TIFF cannot be decoded"):
        plugin.read(tmp_path / "damaged.tiff")


def test_a_lying_ply_becomes_an_error_case_and_the_good_one_imports(tmp_path, registry, cloud):
    points, colors, _ = cloud
    good = write_ply(tmp_path / "good.ply", points, colors)
    liar = write_ply(tmp_path / "liar.ply", points[:100], declared=5000)
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        result = service.import_files([liar, good])
        assert [c.name for c in result.failed] == ["liar.ply"]
        failed = result.failed[0]
        assert failed.status == CaseStatus.ERROR and "5,000 vertices" in failed.error
        added = result.added[0]
        assert added.modality == "point_cloud" and added.metadata["points"] == len(points)
        service.close()
