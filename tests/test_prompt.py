"""Prompt composition: the paper's four parts switch on and off; images and hashes are deterministic."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from inspector.model import Profile, View, ViewMap
from inspector.prompt import (
    PresetError,
    PromptSwitches,
    available_presets,
    compose,
    encode_png,
    load_preset,
)


def _image(seed: int, size: tuple[int, int] = (60, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _view(label: str = "front", seed: int = 0, size: tuple[int, int] = (60, 80)) -> View:
    return View(label, _image(seed, size), ViewMap("pixel_scale", {"scale_x": 1.0, "scale_y": 1.0}))


PROFILE = Profile(
    name="bottle line 3",
    class_name="glass bottle",
    normal_standards="The rim is round and unbroken; the glass is clear, without bubbles.",
    expected_defects="broken rim, contamination, cracks.",
    domain_preset="industrial",
)
REFS = [("ok_001", _image(10)), ("ok_002", _image(11)), ("ok_003", _image(12))]


def test_presets_are_bundled_and_complete() -> None:
    assert {"industrial", "medical", "logical", "generic"} <= set(available_presets())
    for name in available_presets():
        preset = load_preset(name)
        assert preset.name == name and preset.version
        assert '"anomalous"' in preset.answer_format and "Anomalous" in preset.answer_format


def test_unknown_preset_is_a_clear_error() -> None:
    with pytest.raises(PresetError, match=r"available: .*industrial"):
        load_preset("aerospace")
    with pytest.raises(PresetError):
        load_preset("../settings")


def test_all_parts_present_by_default() -> None:
    prompt = compose(PROFILE, [_view()], REFS)
    preset = load_preset("industrial")
    assert prompt.system == preset.system
    assert preset.task in prompt.text
    assert "glass bottle" in prompt.text
    assert PROFILE.normal_standards in prompt.text
    assert "broken rim, contamination, cracks." in prompt.text  # no doubled full stop
    assert "Normal reference" in prompt.text
    assert '"anomalous"' in prompt.text
    assert prompt.preset == "industrial" and prompt.preset_version == preset.version
    assert not prompt.edited


@pytest.mark.parametrize(
    ("switch", "absent"),
    [
        ("task", "Task:"),
        ("class_info", "glass bottle"),
        ("standards", "The rim is round"),
        ("references", "Normal reference"),
        ("answer_format", '"anomalous"'),
    ],
)
def test_each_switch_removes_its_part(switch: str, absent: str) -> None:
    on = compose(PROFILE, [_view()], REFS)
    off = compose(PROFILE, [_view()], REFS, switches=PromptSwitches(**{switch: False}))
    assert absent in on.text
    assert absent not in off.text
    assert off.sha256 != on.sha256


def test_class_switch_also_keeps_the_class_out_of_other_parts() -> None:
    off = compose(PROFILE, [_view()], REFS, switches=PromptSwitches(class_info=False, standards=False))
    assert "bottle" not in off.text


@pytest.mark.parametrize(
    ("switches", "n_refs"),
    [
        (PromptSwitches(max_references=0), 0),
        (PromptSwitches(max_references=1), 1),
        (PromptSwitches(max_references=2), 2),
        (PromptSwitches(max_references=8), 3),
        (PromptSwitches(references=False, max_references=8), 0),
    ],
)
def test_zero_one_and_few_shot_image_counts(switches: PromptSwitches, n_refs: int) -> None:
    views = [_view("front", 1), _view("side", 2)]
    prompt = compose(PROFILE, views, REFS, switches=switches)
    assert [img.role for img in prompt.images] == ["reference"] * n_refs + ["query", "query"]
    assert [img.label for img in prompt.references] == [name for name, _ in REFS[:n_refs]]
    assert [img.caption for img in prompt.queries] == ["Image to inspect: front", "Image to inspect: side"]
    assert ("Normal reference" in prompt.text) == (n_refs > 0)


def test_hash_is_stable_and_changes_with_content() -> None:
    a = compose(PROFILE, [_view()], REFS)
    b = compose(PROFILE, [_view()], REFS)
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    other_pixels = _view(seed=99)
    assert compose(PROFILE, [other_pixels], REFS).sha256 != a.sha256
    other_text = Profile(**{**PROFILE.__dict__, "normal_standards": "Something else."})
    assert compose(other_text, [_view()], REFS).sha256 != a.sha256
    assert compose(PROFILE, [_view()], REFS, preset="generic").sha256 != a.sha256
    assert compose(PROFILE, [_view(label="back")], REFS).sha256 != a.sha256


def test_operator_edit_overrides_text_and_is_recorded() -> None:
    composed = compose(PROFILE, [_view()], REFS)
    same = compose(PROFILE, [_view()], REFS, text_override=composed.text)
    assert not same.edited and same.sha256 == composed.sha256
    edited = compose(PROFILE, [_view()], REFS, text_override="Is the rim chipped? Answer in JSON.")
    assert edited.edited and edited.text == "Is the rim chipped? Answer in JSON."
    assert edited.sha256 != composed.sha256
    record = edited.to_record()
    assert record["composed_text"] == composed.text and record["edited"] is True


def test_record_is_json_and_has_images_by_hash_only() -> None:
    prompt = compose(PROFILE, [_view()], REFS)
    record = json.loads(json.dumps(prompt.to_record()))
    assert record["sha256"] == prompt.sha256
    assert record["switches"]["max_references"] == 1
    for stored, image in zip(record["images"], prompt.images, strict=True):
        assert stored["sha256"] == hashlib.sha256(image.png).hexdigest()
        assert "png" not in stored


def test_images_are_downscaled_to_the_longest_side() -> None:
    big = _view(size=(1500, 2400))
    prompt = compose(PROFILE, [big], [("tall", _image(3, (3000, 500)))])
    ref, query = prompt.images
    assert (query.width, query.height) == (1024, 640)
    assert query.scale == pytest.approx(1024 / 2400)
    assert max(ref.width, ref.height) == 1024
    with Image.open(io.BytesIO(query.png)) as decoded:
        assert decoded.size == (1024, 640)
    small = compose(PROFILE, [big], [], max_side=512).images[0]
    assert max(small.width, small.height) == 512
    untouched = compose(PROFILE, [_view(size=(60, 80))], []).images[0]
    assert (untouched.width, untouched.height, untouched.scale) == (80, 60, 1.0)


def test_encode_png_is_deterministic_and_handles_gray() -> None:
    rgb = _image(5)
    assert encode_png(rgb) == encode_png(rgb.copy())
    gray = rgb[:, :, 0]
    with Image.open(io.BytesIO(encode_png(gray))) as decoded:
        assert decoded.mode == "L" and decoded.size == (80, 60)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 2), np.uint8))


def test_profile_preset_is_used_when_none_given() -> None:
    medical = Profile(name="cxr", class_name="chest X-ray", domain_preset="medical")
    prompt = compose(medical, [_view()], [])
    assert prompt.preset == "medical"
    assert "clinician" in prompt.system


def test_a_prompt_needs_a_view() -> None:
    with pytest.raises(ValueError, match="at least one view"):
        compose(PROFILE, [], REFS)


def test_expected_defects_one_per_line_become_one_sentence() -> None:
    profile = Profile(name="line", class_name="panel", expected_defects="crack across a brick\n\nblowhole.\n stain;\n")
    prompt = compose(profile, [View("image", np.zeros((8, 8, 3), np.uint8), ViewMap("pixel_scale", {}))], [])
    assert "crack across a brick; blowhole; stain." in prompt.text
    assert "brick\nblowhole" not in prompt.text


def test_profile_overrides_replace_preset_parts_and_change_the_hash() -> None:
    view = View("image", np.zeros((8, 8, 3), np.uint8), ViewMap("pixel_scale", {}))
    plain = Profile(name="line", class_name="panel")
    own = Profile(
        name="line",
        class_name="panel",
        settings={
            "prompt_overrides": {
                "task": "Task: find loose screws on the panel.",
                "name": "hijack",
                "version": "9",
                "unknown": "x",
            }
        },
    )
    base, custom = compose(plain, [view], []), compose(own, [view], [])
    assert "find loose screws" in custom.text and "find loose screws" not in base.text
    assert custom.preset == base.preset and custom.preset_version == base.preset_version + "+profile"
    assert custom.sha256 != base.sha256


@pytest.mark.parametrize("name", ["pedestrian", "traffic", "surveillance", "point_cloud", "time_series"])
def test_modality_presets_load_and_ask_for_json(name, registry) -> None:
    """These presets come with their modality's plugin: available once the plugins are loaded."""
    preset = load_preset(name)
    assert preset.name == name and '"anomalous"' in preset.answer_format
