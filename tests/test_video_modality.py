"""Video modality, headless: real containers written with PyAV, frame folders, UCSD Ped2, bad input,
the renderer's labelled grid, mapping answers back to frames, and the per-frame offline detector.

Every frame the tests write carries its own index as a row of black/white blocks (a "stamp"),
which survives lossy compression, so a test can tell exactly which frame a seek returned.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.imaging import CaseReadError
from inspector.model import Profile, ViewerState
from inspector.plugins import QueryView
from inspector.prompt import PromptImage

STAMP_BITS = 9
VIDEO_SIZE = (160, 96)  # width, height


def stamp_frame(index: int, size: tuple[int, int] = VIDEO_SIZE) -> np.ndarray:
    """A frame whose index can be read back after lossy compression (see `read_stamp`)."""
    w, h = size
    img = np.full((h, w, 3), 70, np.uint8)
    img[40:, :, 1] = (index * 9) % 256
    for bit in range(STAMP_BITS):
        x = 6 + bit * 16
        img[6:22, x : x + 12] = 255 if (index >> bit) & 1 else 0
    return img


def read_stamp(rgb: np.ndarray) -> int:
    return sum(1 << bit for bit in range(STAMP_BITS) if rgb[10:18, 8 + bit * 16 : 16 + bit * 16].mean() > 128)


def write_video(
    path: Path,
    codec: str = "libx264",
    frames: int = 60,
    fps: int = 25,
    gop: int = 12,
    make=stamp_frame,
    bframes: int | None = None,
) -> Path:
    """Encode a real video file with PyAV (container chosen by the file extension)."""
    import av

    first = make(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(make(index), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, count: int, name: str = "{:03d}.jpg", size: tuple[int, int] = VIDEO_SIZE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(stamp_frame(index, size)).save(folder / name.format(index), quality=95)
    return folder


@pytest.fixture
def video(registry):
    return registry.modality("video")


# ---------------------------------------------------------------------------------- containers

CONTAINERS = [
    ("clip.mp4", "libx264", 2),
    ("clip.mkv", "libx264", None),
    ("clip.avi", "mpeg4", None),
    ("clip_mpeg4.mp4", "mpeg4", None),
]


@pytest.mark.parametrize(("name", "codec", "bframes"), CONTAINERS)
def test_containers_open_with_exact_frame_count_and_frame_accurate_seeks(tmp_path, registry, name, codec, bframes):
    path = write_video(tmp_path / name, codec, frames=75, fps=25, gop=12, bframes=bframes)
    plugin = registry.modality_for_path(path)
    assert plugin.name == "video"
    loaded = plugin.read(path)
    source = loaded.data
    assert source.frame_count == 75 and loaded.metadata["frame_count"] == 75
    assert source.fps == pytest.approx(25.0)
    assert source.size == VIDEO_SIZE and loaded.metadata["keyframes"] > 1  # GOP > 1: seeks must decode forward
    rng = np.random.default_rng(3)
    targets = [74, 0, 13, 12, 11, 50, 49, 73, 1, *rng.integers(0, 75, 20).tolist()]
    for index in targets:
        source._cache.clear()  # force a real seek + decode every time
        frame = source.frame(int(index))
        assert frame.shape == (96, 160, 3) and frame.dtype == np.uint8
        assert read_stamp(frame) == index
    source.close()  # a closed source reopens lazily
    assert [read_stamp(source.frame(i)) for i in range(75)] == list(range(75))


@pytest.mark.parametrize(("name", "codec"), [("one_key.mp4", "libx264"), ("one_key_mpeg4.mp4", "mpeg4")])
def test_a_clip_with_a_single_keyframe_opens_and_seeks(tmp_path, registry, name, codec):
    """Short clips from cameras and x264 defaults often hold one keyframe for the whole file."""
    path = write_video(tmp_path / name, codec, frames=60, fps=25, gop=250)
    loaded = registry.modality_for_path(path).read(path)
    source = loaded.data
    assert loaded.metadata["keyframes"] == 1 and source.frame_count == 60
    for index in [0, 59, 30, 1, 58, 0]:
        source._cache.clear()
        assert read_stamp(source.frame(index)) == index
    source.close()


def test_mkv_without_a_frame_count_in_its_header_is_counted(tmp_path, video):
    import av

    path = write_video(tmp_path / "no_count.mkv", frames=41)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # Matroska does not store it
    assert video.read(path).data.frame_count == 41


def test_concurrent_readers_get_the_right_frames(tmp_path, video):
    source = video.read(write_video(tmp_path / "shared.mp4", frames=60)).data
    errors: list[str] = []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for index in rng.integers(0, 60, 25):
            got = read_stamp(source.frame(int(index)))
            if got != index:
                errors.append(f"asked {index}, got {got}")

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_sniffing_recognises_containers_by_content(tmp_path, registry):
    mp4 = write_video(tmp_path / "a.mp4", frames=5)
    renamed = tmp_path / "recording.bin"
    renamed.write_bytes(mp4.read_bytes())
    assert registry.modality_for_path(renamed).name == "video"
    video = registry.modality("video")
    assert video.sniff(tmp_path / "x", b"\x1a\x45\xdf\xa3" + b"\0" * 20)
    assert video.sniff(tmp_path / "x", b"RIFF\0\0\0\0AVI LIST")
    assert not video.sniff(tmp_path / "x", b"RIFF\0\0\0\0WEBPVP8 ")  # a WebP image
    assert not video.sniff(tmp_path / "x", b"\0\0\0\x18ftypheic\0\0\0\0")  # a HEIF photo


# ---------------------------------------------------------------------------------- frame folders


def test_frame_folder_is_one_case_in_natural_order(tmp_path, registry, video):
    folder = write_frames(tmp_path / "dump", 12, name="frame{}.png")  # frame2 must come before frame10
    assert video.claims_folder(folder)
    assert registry.expand_paths([tmp_path]) == [folder]
    loaded = video.read(folder)
    assert loaded.data.frame_count == 12 and loaded.metadata["source"] == "frames"
    assert [read_stamp(loaded.data.frame(i)) for i in range(12)] == list(range(12))
    assert "ground_truth_frames" not in loaded.metadata


def test_folders_that_are_not_videos_are_not_claimed(tmp_path, registry, video):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, size in enumerate([(80, 60), (90, 70), (100, 50)]):  # numbered, but different sizes
        Image.fromarray(stamp_frame(index, size)).save(photos / f"Y{index + 1}.jpg")
    assert not video.claims_folder(photos)
    masks = tmp_path / "masks"  # image + mask pairs: two extensions
    masks.mkdir()
    for index in range(3):
        Image.fromarray(stamp_frame(index)).save(masks / f"part_{index}.jpg")
        Image.fromarray(stamp_frame(index)).save(masks / f"part_{index}.png")
    assert not video.claims_folder(masks)
    parts = write_frames(tmp_path / "line3", 5, name="part_{:04d}.png")  # numbered photos of parts
    assert not video.claims_folder(parts)
    assert video.claims_folder(write_frames(tmp_path / "clip" / "frames", 5, name="part_{:04d}.png"))
    phone = write_frames(tmp_path / "phone", 3)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    Image.fromarray(stamp_frame(0)).save(phone / "000.jpg", exif=exif)  # camera photos carry EXIF
    assert not video.claims_folder(phone)
    sparse = write_frames(tmp_path / "sparse", 1)  # a single frame is not a video
    assert not video.claims_folder(sparse)
    parent = tmp_path / "collection"
    write_frames(parent / "01", 3)
    write_frames(parent / "02", 3)
    Image.fromarray(stamp_frame(0)).save(parent / "000.jpg")
    Image.fromarray(stamp_frame(1)).save(parent / "001.jpg")
    assert not video.claims_folder(parent)  # it holds videos: each subfolder is a case
    assert registry.expand_paths([parent / "01"]) == [parent / "01"]


def test_ped2_style_labels_found_above_the_frames_become_0_based_ranges(tmp_path, video):
    root = tmp_path / "ped"
    write_frames(root / "testing" / "frames" / "03", 20)
    write_frames(root / "testing" / "frames" / "04", 20)
    (root / "testing" / "labels.csv").write_text(
        "video,first_abnormal_frame,last_abnormal_frame\n03,5,12\n4,1,20\n03,18,19\n"
    )
    loaded = video.read(root / "testing" / "frames" / "03")
    assert loaded.metadata["ground_truth_frames"] == [[4, 11], [17, 18]]  # frame k is file {k-1:03d}.jpg
    assert video.read(root / "testing" / "frames" / "04").metadata["ground_truth_frames"] == [[0, 19]]


def test_embedded_copy_of_a_labelled_folder_keeps_its_ground_truth(tmp_path, registry):
    from inspector.inspection import InspectionService
    from inspector.store import ProjectStore

    root = tmp_path / "ped"
    folder = write_frames(root / "testing" / "frames" / "05", 12)
    (root / "testing" / "labels.csv").write_text("video,first_abnormal_frame,last_abnormal_frame\n05,3,7\n")
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        case, _ = service.import_file(folder)
        assert case.blob_sha256 and case.metadata["ground_truth_frames"] == [[2, 6]]
        service.close()
        reopened = InspectionService(store, registry)  # reads the project's unpacked copy, not the folder
        loaded = reopened.load_case(store.case(case.id))
        assert "anomalens-cases-" in str(loaded.data.folder)
        assert loaded.metadata["ground_truth_frames"] == [[2, 6]]
        assert read_stamp(loaded.data.frame(11)) == 11
        reopened.close()


def test_real_ucsd_ped2_folder(shared_data, registry, video):
    testing = shared_data / "ucsd_ped2" / "testing" / "frames"
    cases = registry.expand_paths([testing])
    assert [p.name for p in cases] == ["01", "02", "03", "04", "05", "06"]
    loaded = video.read(testing / "01")
    assert loaded.data.frame_count == 180
    assert loaded.metadata["ground_truth_frames"] == [[60, 179]]  # labels.csv: 01,61,180 (1-based)
    expected = np.asarray(Image.open(testing / "01" / "060.jpg").convert("RGB"))
    assert np.array_equal(loaded.data.frame(60), expected)
    training = video.read(shared_data / "ucsd_ped2" / "training" / "frames" / "01")
    assert "ground_truth_frames" not in training.metadata
    refs = video.reference_images(training)
    assert 8 <= len(refs) <= 16 and refs[0][0] == "01 frame 0" and refs[0][1].shape == expected.shape


# ---------------------------------------------------------------------------------- bad input


def test_bad_videos_give_clear_messages(tmp_path, video):
    good = write_video(tmp_path / "good.mp4", frames=40).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CaseReadError, match=r"truncated\.mp4: .*truncated"):
        video.read(truncated)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is a text file with a video extension\n" * 50)
    with pytest.raises(CaseReadError, match=r"garbage\.mp4: cannot be opened as a video"):
        video.read(garbage)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(CaseReadError, match=r"empty\.avi: the file is empty"):
        video.read(empty)


def test_truncated_mkv_opens_with_the_readable_frames_and_a_warning(tmp_path, video):
    data = write_video(tmp_path / "full.mkv", frames=80).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    loaded = video.read(cut)
    count = loaded.data.frame_count
    assert 5 < count < 80
    assert "ends early" in loaded.metadata["warning"]
    assert read_stamp(loaded.data.frame(count - 1)) == count - 1


def test_folder_without_frames_and_damaged_frame_files(tmp_path, video):
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    with pytest.raises(CaseReadError, match="notes: the folder contains no image frames"):
        video.read(empty)
    folder = write_frames(tmp_path / "broken", 10)
    (folder / "004.jpg").write_bytes((folder / "004.jpg").read_bytes()[:100])
    loaded = video.read(folder)
    with pytest.raises(CaseReadError, match=r"004\.jpg"):
        loaded.data.frame(4)
    views = video.render(loaded, {"frames": [3, 5]})  # the damaged frame is skipped, not fatal
    assert [t["frame"] for t in views[0].view_map.params["tiles"]] == [3, 5]


def test_bad_files_become_error_cases_and_the_service_keeps_working(tmp_path, registry):
    from inspector.inspection import InspectionService
    from inspector.model import CaseStatus
    from inspector.store import ProjectStore

    good = write_video(tmp_path / "good.mp4", frames=30)
    truncated = tmp_path / "bad.mp4"
    truncated.write_bytes(good.read_bytes()[:2000])
    no_frames = tmp_path / "empty_folder"
    no_frames.mkdir()
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        result = service.import_files([truncated, no_frames, good])
        assert [c.name for c in result.added] == ["good.mp4"]
        errors = {c.name: c.error for c in result.failed}
        assert "truncated" in errors["bad.mp4"] and "no modality reads this folder" in errors["empty_folder"]
        assert all(c.status == CaseStatus.ERROR for c in result.failed)
        service.close()


# ---------------------------------------------------------------------------------- rendering


def test_default_render_is_a_labelled_grid_of_nine_uniform_samples(tmp_path, video):
    loaded = video.read(write_video(tmp_path / "v.mp4", frames=81))
    views = video.render(loaded, {})
    assert len(views) == 1
    view = views[0]
    assert view.view_map.kind == "frame_grid" and view.image.dtype == np.uint8
    tiles = view.view_map.params["tiles"]
    assert [t["frame"] for t in tiles] == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    assert view.view_map.params["frame_size"] == [160, 96]
    for tile in tiles:  # each tile holds its frame, and the yellow label bar sits right above it
        crop = view.image[tile["y"] : tile["y"] + tile["h"], tile["x"] : tile["x"] + tile["w"]]
        small = np.asarray(Image.fromarray(crop).resize(VIDEO_SIZE))
        assert read_stamp(small) == tile["frame"]
        bar = view.image[tile["y"] - 20 : tile["y"] - 2, tile["x"] : tile["x"] + tile["w"]]
        assert ((bar[..., 0] > 200) & (bar[..., 2] < 120)).sum() > 40  # the printed "frame N"
    assert tiles[0]["w"] >= 200  # small frames are enlarged so the numbers stay readable


def test_render_options_range_around_and_sequence(tmp_path, video):
    loaded = video.read(write_video(tmp_path / "v.mp4", frames=100, fps=20))
    ranged = video.render(loaded, {"frames": [70, 30], "samples": 5})[0]
    assert [t["frame"] for t in ranged.view_map.params["tiles"]] == [30, 40, 50, 60, 70]
    assert ranged.label.startswith("frames 30-70")
    around = video.render(loaded, {"around": 98, "samples": 4})[0]  # step = fps/4 = 5, kept inside the video
    assert [t["frame"] for t in around.view_map.params["tiles"]] == [84, 89, 94, 99]
    sequence = video.render(loaded, {"layout": "sequence", "samples": 3})
    assert [v.label for v in sequence] == ["frame 0", "frame 50", "frame 99"]
    assert all(v.view_map.kind == "frame" for v in sequence)


# ---------------------------------------------------------------------------------- answers -> frames


def _queries(views, max_side: int = 1024) -> list[QueryView]:
    from inspector.prompt import downscale

    out = []
    for view in views:
        small, scale = downscale(view.image, max_side)
        image = PromptImage("query", view.label, b"", "", width=small.shape[1], height=small.shape[0], scale=scale)
        out.append(QueryView(image, view.view_map))
    return out


def test_ranges_map_to_frames_and_are_checked_against_the_video(tmp_path, video):
    loaded = video.read(write_video(tmp_path / "v.mp4", frames=50, fps=10))
    queries = _queries(video.render(loaded, {}))
    region = video.locate({"range": [12, 30], "unit": "frames", "reason": "a cyclist"}, queries, loaded)
    assert region.detail == {"frames": [12, 30]} and region.reason == "a cyclist"
    assert video.locate({"range": [45, 70], "unit": "frames"}, queries, loaded).detail == {"frames": [45, 49]}
    assert video.locate({"range": [30, 12], "unit": "frame_ranges"}, queries, loaded).detail == {"frames": [12, 30]}
    assert video.locate({"range": ["frame 3", "frame 7"], "unit": "frames"}, queries, loaded).detail == {
        "frames": [3, 7]
    }
    assert video.locate({"range": [1.0, 2.5], "unit": "time_ranges"}, queries, loaded).detail == {"frames": [10, 25]}
    assert video.locate({"range": [60, 90], "unit": "frames"}, queries, loaded) is None
    assert video.locate({"range": ["soon", "later"], "unit": "frames"}, queries, loaded) is None
    assert video.locate({"mark": 3}, queries, loaded) is None


def test_boxes_on_grid_tiles_become_boxes_on_their_frames(tmp_path, video):
    loaded = video.read(write_video(tmp_path / "v.mp4", frames=81))
    views = video.render(loaded, {})
    queries = _queries(views, max_side=512)  # the model saw a downscaled grid
    scale = queries[0].image.scale
    assert scale < 1
    tile = views[0].view_map.params["tiles"][4]  # frame 40
    fx, fy = tile["w"] / 160, tile["h"] / 96
    box = [
        (tile["x"] + 16 * fx) * scale,
        (tile["y"] + 24 * fy) * scale,
        (tile["x"] + 80 * fx) * scale,
        (tile["y"] + 72 * fy) * scale,
    ]
    region = video.locate({"box": box}, queries, loaded)  # placed by where it lies
    assert region.detail == {"frames": [40, 40]}
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((16, 24, 80, 72), abs=1.5)
    named = video.locate({"box": box, "view": "frame 40", "label": "cart"}, queries, loaded)
    assert named.detail == {"frames": [40, 40]} and named.label == "cart"
    relative = [16 * fx * scale, 24 * fy * scale, 80 * fx * scale, 72 * fy * scale]  # relative to its tile
    again = video.locate({"box": relative, "view": "Image to inspect: frame 40"}, queries, loaded)
    assert (again.x0, again.y0, again.x1, again.y1) == pytest.approx((16, 24, 80, 72), abs=1.5)
    first, second = views[0].view_map.params["tiles"][:2]
    across = [first["x"] * scale, first["y"] * scale, (second["x"] + second["w"]) * scale, second["y"] * scale + 20]
    assert video.locate({"box": across}, queries, loaded) is None
    assert video.locate({"box": box, "view": "frame 41"}, queries, loaded) is None  # not shown to the model


def test_box_on_a_sequence_view(tmp_path, video):
    loaded = video.read(write_video(tmp_path / "v.mp4", frames=30))
    views = video.render(loaded, {"layout": "sequence", "samples": 3})
    queries = _queries(views)
    tile = views[1].view_map.params["tiles"][0]
    f = tile["w"] / 160
    box = [tile["x"] + 10 * f, tile["y"] + 10 * f, tile["x"] + 50 * f, tile["y"] + 40 * f]
    region = video.locate({"box": box, "view": views[1].label}, queries, loaded)
    assert region.detail == {"frames": [int(views[1].label.split()[1])] * 2}
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((10, 10, 50, 40), abs=1.5)


def test_prompt_composition_through_the_service_uses_the_surveillance_preset(tmp_path, registry):
    from inspector.inspection import InspectionService
    from inspector.store import ProjectStore

    path = write_video(tmp_path / "walkway.mp4", frames=60)
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        case, outcome = service.import_file(path)
        assert outcome == "added" and case.metadata["frame_count"] == 60
        profile = store.save_profile(
            Profile(name="Walkway", class_name="a pedestrian walkway", modality="video", domain_preset="surveillance")
        )
        prompt = service.compose_prompt(
            case, profile, viewer=ViewerState.from_render_options({"frames": [10, 20], "samples": 3})
        )
        assert [img.label for img in prompt.queries] == ["frames 10-20, 3 frames sampled from the chosen range"]
        assert '"frames": [[first, last]]' in prompt.text and "printed" in prompt.text
        regions = service._locate(case, prompt, [{"range": [12, 18], "unit": "frames"}])
        assert [r.detail for r in regions] == [{"frames": [12, 18]}]
        service.close()


# ---------------------------------------------------------------------------------- offline detector


def _scene(index: int, anomalous: bool = False) -> np.ndarray:
    """A textured walkway with a few small 'pedestrians'; an anomaly is a large bright object."""
    rng = np.random.default_rng(index)
    h, w = 96, 128
    yy, xx = np.mgrid[:h, :w]
    base = 110 + 25 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    img = np.repeat(base[:, :, None], 3, axis=2)
    for _ in range(3):
        y, x = rng.integers(10, h - 20), rng.integers(5, w - 10)
        img[y : y + 12, x : x + 4] = 40
    if anomalous:
        x = 20 + (index % 30) * 2
        img[30:62, x : x + 36] = (250, 30, 30)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_offline_detector_scores_every_frame_and_finds_the_anomalous_range(tmp_path, registry):
    from inspector.inspection import InspectionCancelledError, InspectionService
    from inspector.model import VerdictSource
    from inspector.store import ProjectStore

    normal = write_video(tmp_path / "normal.mp4", frames=24, fps=10, make=lambda i: _scene(i + 500))
    case_path = write_video(tmp_path / "event.mp4", frames=32, fps=10, make=lambda i: _scene(i, 14 <= i <= 23))
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        profile = store.save_profile(
            Profile(
                name="Walkway", modality="video", domain_preset="surveillance", settings={"video": {"image_size": 192}}
            )
        )  # small: a fast test
        assert service.add_reference_file(profile.id, normal) == 12
        assert store.references(profile.id)[0].name == "normal.mp4 frame 0"
        case, _ = service.import_file(case_path)
        progress: list[float] = []
        verdict = service.inspect_offline(case, profile, progress=progress.append)
        assert verdict.source == VerdictSource.OFFLINE and verdict.anomalous
        scores = np.array(verdict.details["frame_scores"])
        assert len(scores) == 32 and verdict.details["scored_frames"] == list(range(32))
        assert scores[16:22].min() > 0.5 > max(scores[:6].max(), scores[-3:].max())
        ranges = [r.detail["frames"] for r in verdict.regions if r.x1 <= r.x0]
        assert any(a <= 16 and b >= 21 for a, b in ranges) and all(b >= 10 and a <= 27 for a, b in ranges)
        assert 14 <= verdict.details["heatmap_frame"] <= 23
        assert "192" in verdict.raw_answer  # the profile's detector setting was used
        heat = service.heatmap(verdict)
        assert heat.shape == (96, 128) and heat[30:62].mean() > heat[70:].mean()
        assert progress and progress[-1] == pytest.approx(1.0)
        with pytest.raises(InspectionCancelledError):
            service.inspect_offline(case, profile, is_cancelled=lambda: True)
        service.close()


def test_long_videos_are_scored_every_kth_frame_and_interpolated(tmp_path, registry):
    """The detector's budget path, with a stand-in scorer (its raw score is the frame's stamp)."""
    import importlib
    from types import SimpleNamespace

    detect = importlib.import_module("plugins.video_modality.detect")
    source = registry.modality("video").read(write_video(tmp_path / "long.mp4", frames=50)).data
    seen: list[int] = []

    def score(rgb: np.ndarray) -> SimpleNamespace:
        seen.append(read_stamp(rgb))
        return SimpleNamespace(raw_score=float(read_stamp(rgb)), regions=[], heatmap=None)

    step = detect.frame_step(source.frame_count, {"max_scored_frames": 12})
    assert step == 5 and detect.frame_step(50, {"frame_step": 2}) == 2
    raw, scored, best, best_index = detect.score_frames(source, SimpleNamespace(score=score), step)
    assert scored == [*range(0, 50, 5), 49] and seen == scored  # each scored frame is the frame asked for
    assert raw[7] == pytest.approx(7.0) and raw[49] == 49.0  # linear in between, exact at scored frames
    assert best_index == 49 and best.raw_score == 49.0
    assert detect.frame_ranges(np.array([0.1, 0.6, 0.7, 0.2, 0.9, 0.9])) == [(1, 2), (4, 5)]


def test_the_viewer_never_waits_behind_a_decoder(tmp_path, video):
    """`cached` is what the GUI thread calls while a worker may be in a long seek-and-decode."""
    import threading

    source = video.read(write_video(tmp_path / "clip.mp4", frames=30)).data
    source.frame(3)
    decoding, release, let_go = threading.Event(), threading.Event(), threading.Event()

    def long_decode() -> None:
        with source._lock:  # what a worker holds for a whole seek-and-decode
            decoding.set()
            release.wait(5)
            let_go.set()  # still inside the lock: a `cached` that waited for it returns after this

    worker = threading.Thread(target=long_decode)
    worker.start()
    decoding.wait(5)
    try:
        assert read_stamp(source.cached(3)) == 3
        assert source.cached(20) is None
        answered_while_decoding = not let_go.is_set()
    finally:
        release.set()
        worker.join()
    assert answered_while_decoding  # the wait itself: benchmarks/timings.py
