"""The inspection flow, headless: file -> case -> prompt -> VLM or offline detector -> verdict.

`InspectionService` is what the GUI, the batch mode and the self-test all drive. Every result is
written to the project as soon as it exists (the answer before it is parsed, the verdict right
after), so closing or crashing the app loses at most the request in flight.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.imaging import CaseReadError, decode_image
from inspector.model import (
    Case,
    CaseStatus,
    LoadedCase,
    ParseStatus,
    Profile,
    Region,
    ScoreSource,
    Verdict,
    VerdictSource,
    ViewMap,
)
from inspector.plugins import PluginRegistry, UnsupportedFileError
from inspector.prompt import ComposedPrompt, PromptSwitches, compose, encode_png
from inspector.settings import EndpointSettings, resolve_api_key
from inspector.store import ProjectStore, StoreError, sha256_bytes

log = logging.getLogger(__name__)

LOADED_CASE_CACHE = 8  # decoded cases kept in memory (a 4096x4096 RGB image is 48 MB)


class InspectionError(Exception):
    """Inspection cannot start or finish; the message is for the operator."""


class InspectionCancelledError(Exception):
    """The operator cancelled; nothing was stored for this inspection."""


@dataclass
class ImportResult:
    added: list[Case] = field(default_factory=list)
    duplicates: list[Case] = field(default_factory=list)
    failed: list[Case] = field(default_factory=list)


class InspectionService:
    """Owns the loaded-case cache and the fitted offline detectors for one open project."""

    def __init__(self, store: ProjectStore, registry: PluginRegistry):
        self.store = store
        self.registry = registry
        self._loaded: OrderedDict[int, LoadedCase] = OrderedDict()
        self._detectors: dict[str, object] = {}
        # prompt hash -> view label -> map to the case, for the prompts of this session (bounded)
        self._view_maps: OrderedDict[str, dict[str, ViewMap]] = OrderedDict()
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- cases

    def import_file(self, path: str | Path, profile_id: int | None = None) -> tuple[Case, str]:
        """Add one file as a case. Returns (case, outcome) with outcome "added", "duplicate" or "failed".

        A file that cannot be read still becomes a case with status ERROR and the reason, so the
        operator sees what went wrong in the case list instead of a vanished file.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            data = b""
            read_error: str | None = f"{path.name}: cannot be read ({exc.strerror or exc})"
        else:
            read_error = None
        sha = sha256_bytes(data)
        if read_error is None:
            existing = self.store.find_case_by_hash(sha)
            if existing is not None:
                return existing, "duplicate"
        modality = "unknown"
        metadata: dict = {}
        loaded: LoadedCase | None = None
        if read_error is None:
            try:
                plugin = self.registry.modality_for_path(path)
                modality = plugin.name
                loaded = plugin.read(path)
                metadata = loaded.metadata
            except (CaseReadError, UnsupportedFileError) as exc:
                read_error = str(exc)
            except Exception as exc:
                log.exception("reader failed on %s", path)
                read_error = f"{path.name}: could not be read ({type(exc).__name__}: {exc})"
        case = Case(
            name=path.name, modality=modality, source_path=str(path.resolve()), source_sha256=sha,
            metadata=metadata, profile_id=profile_id,
            status=CaseStatus.ERROR if read_error else CaseStatus.NOT_INSPECTED, error=read_error,
        )
        case = self.store.add_case(case, source_bytes=data if read_error is None else None)
        if loaded is not None and case.id is not None:
            self._remember(case.id, loaded)
        return case, "failed" if read_error else "added"

    def import_files(self, paths: list[str | Path], profile_id: int | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     is_cancelled: Callable[[], bool] | None = None) -> ImportResult:
        result = ImportResult()
        for index, path in enumerate(paths):
            if is_cancelled is not None and is_cancelled():
                break
            case, outcome = self.import_file(path, profile_id)
            {"added": result.added, "duplicate": result.duplicates, "failed": result.failed}[outcome].append(case)
            if progress is not None:
                progress(index + 1, len(paths))
        return result

    def _remember(self, case_id: int, loaded: LoadedCase) -> None:
        with self._lock:
            self._loaded[case_id] = loaded
            self._loaded.move_to_end(case_id)
            while len(self._loaded) > LOADED_CASE_CACHE:
                self._loaded.popitem(last=False)

    def load_case(self, case: Case) -> LoadedCase:
        """Decode a case from the project (embedded copy) or its source path."""
        assert case.id is not None
        with self._lock:
            if case.id in self._loaded:
                self._loaded.move_to_end(case.id)
                return self._loaded[case.id]
        if case.error and case.status == CaseStatus.ERROR and not case.blob_sha256:
            raise InspectionError(case.error)
        plugin = self.registry.modality(case.modality)
        try:
            if case.blob_sha256:
                loaded = self._read_embedded(case, plugin)
            else:
                loaded = plugin.read(Path(case.source_path))
        except (CaseReadError, StoreError) as exc:
            raise InspectionError(getattr(exc, "user_message", str(exc))) from exc
        self._remember(case.id, loaded)
        return loaded

    def _read_embedded(self, case: Case, plugin) -> LoadedCase:
        """Readers take paths; give them the embedded bytes through a temporary file."""
        import tempfile

        data = self.store.get_blob(case.blob_sha256)
        suffix = Path(case.name).suffix
        with tempfile.TemporaryDirectory(prefix="anomalens-") as tmp:
            tmp_path = Path(tmp) / f"case{suffix}"
            tmp_path.write_bytes(data)
            return plugin.read(tmp_path)

    # ----------------------------------------------------------------- references

    def add_reference_file(self, profile_id: int, path: str | Path) -> None:
        """Store a normal reference image inside the project (as PNG, so any format works)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InspectionError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
        try:
            rgb, _ = decode_image(data, path.name)
        except CaseReadError as exc:
            raise InspectionError(str(exc)) from exc
        self.add_reference_array(profile_id, path.name, rgb)

    def add_reference_array(self, profile_id: int, name: str, rgb: np.ndarray) -> None:
        self.store.add_reference(profile_id, name, encode_png(rgb), rgb.shape[1], rgb.shape[0])

    def reference_images(self, profile_id: int) -> list[tuple[str, np.ndarray, str]]:
        """(name, RGB array, blob hash) of the profile's references, in the order they were added."""
        out = []
        for ref in self.store.references(profile_id):
            rgb, _ = decode_image(self.store.get_blob(ref.blob_sha256), ref.name)
            out.append((ref.name, rgb, ref.blob_sha256))
        return out

    # ----------------------------------------------------------------- prompts

    def compose_prompt(self, case: Case, profile: Profile, switches: PromptSwitches | None = None,
                       text_override: str | None = None) -> ComposedPrompt:
        loaded = self.load_case(case)
        plugin = self.registry.modality(case.modality)
        views = plugin.render(loaded, {})
        switches = switches or PromptSwitches()
        references = []
        if switches.references and switches.max_references > 0:
            refs = self.reference_images(profile.id) if profile.id is not None else []
            references = [(name, rgb) for name, rgb, _ in refs[: switches.max_references]]
        prompt = compose(profile, views, references, switches=switches, preset=profile.domain_preset or None,
                         text_override=text_override)
        with self._lock:
            self._view_maps[prompt.sha256] = {view.label: view.view_map for view in views}
            while len(self._view_maps) > 256:
                self._view_maps.popitem(last=False)
        return prompt

    def _store_prompt(self, prompt: ComposedPrompt) -> int:
        return self.store.save_prompt(
            prompt.sha256, prompt.system, prompt.text, prompt.to_record(),
            [(img.role, img.label, img.png) for img in prompt.images],
        )

    # ----------------------------------------------------------------- VLM

    async def inspect_with_vlm(self, case: Case, prompt: ComposedPrompt, endpoint: EndpointSettings,
                               client=None) -> Verdict:
        """Ask the endpoint; store the prompt, the raw answer as it arrives, then the verdict."""
        from inspector.vlm.answers import parse_answer
        from inspector.vlm.client import VlmClient, VlmError

        assert case.id is not None
        prompt_id = self._store_prompt(prompt)
        params = {"temperature": endpoint.temperature, "max_tokens": endpoint.max_tokens,
                  "logprobs": endpoint.request_logprobs, "timeout_s": endpoint.timeout_s}
        own_client = client is None
        if client is None:
            client = VlmClient(endpoint, resolve_api_key(endpoint))
        try:
            answer = await client.ask(prompt)
        except VlmError as exc:
            self.store.save_answer(case.id, prompt_id, endpoint=endpoint.base_url, model=endpoint.model,
                                   params=params, raw_text="", response=None, status="error",
                                   error=exc.user_message)
            self.store.update_case(case.id, error=exc.user_message)
            raise InspectionError(exc.user_message) from exc
        except BaseException:  # cancelled: record that the request was abandoned, then re-raise
            self.store.save_answer(case.id, prompt_id, endpoint=endpoint.base_url, model=endpoint.model,
                                   params=params, raw_text="", response=None, status="cancelled")
            raise
        finally:
            if own_client:
                await client.aclose()
        answer_id = self.store.save_answer(
            case.id, prompt_id, endpoint=endpoint.base_url, model=answer.model or endpoint.model,
            params=params, raw_text=answer.raw_text, response=answer.response, status="ok",
            latency_s=answer.latency_s, prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
        )
        parsed = parse_answer(answer.raw_text, answer.logprobs)
        with self._lock:
            view_maps = self._view_maps.get(prompt.sha256, {})
        regions = [_region_from_answer(r, prompt, view_maps) for r in parsed.regions]
        explanation = parsed.explanation
        if parsed.status == ParseStatus.UNPARSED:
            explanation = ("The model's answer could not be read as a verdict; it is stored as unparsed "
                           "and not guessed. See the raw answer.")
        verdict = Verdict(
            case_id=case.id, source=VerdictSource.VLM, anomalous=parsed.anomalous, score=parsed.score,
            score_source=parsed.score_source, explanation=explanation, parse_status=parsed.status,
            model=answer.model or endpoint.model, regions=[r for r in regions if r is not None],
            answer_id=answer_id, prompt_id=prompt_id, raw_answer=answer.raw_text,
        )
        return self.store.save_verdict(verdict)

    # ----------------------------------------------------------------- offline detector

    def _fitted_detector(self, profile: Profile, progress: Callable[[float], None] | None,
                         is_cancelled: Callable[[], bool] | None):
        from inspector.detector.offline import OfflineDetector

        refs = self.reference_images(profile.id) if profile.id is not None else []
        if not refs:
            raise InspectionError(
                f"The offline detector compares a case with normal references, and the profile "
                f"{profile.name!r} has none. Add at least one normal reference image to the profile."
            )
        key = hashlib.sha256("|".join(sha for _, _, sha in refs).encode()).hexdigest()
        with self._lock:
            detector = self._detectors.get(key)
        if detector is None:
            detector = OfflineDetector()
            detector.fit([rgb for _, rgb, _ in refs], progress=progress, is_cancelled=is_cancelled)
            with self._lock:
                self._detectors = {key: detector}  # one profile's bank at a time keeps memory flat
        return detector

    def inspect_offline(self, case: Case, profile: Profile, progress: Callable[[float], None] | None = None,
                        is_cancelled: Callable[[], bool] | None = None) -> Verdict:
        """Score the case against the profile's references with the built-in detector (no VLM)."""
        assert case.id is not None
        plugin = self.registry.modality(case.modality)
        if plugin.offline_input is None:
            raise InspectionError(f"The offline detector does not support {plugin.title} cases yet.")
        loaded = self.load_case(case)
        started = time.perf_counter()
        detector = self._fitted_detector(profile, progress, is_cancelled)
        result = detector.score(plugin.offline_input(loaded))
        if is_cancelled is not None and is_cancelled():
            raise InspectionCancelledError("cancelled before the verdict was stored")
        heat_png = encode_png((np.clip(result.heatmap, 0, 1) * 255).astype(np.uint8))
        verdict = Verdict(
            case_id=case.id, source=VerdictSource.OFFLINE, anomalous=result.anomalous,
            score=float(result.score), score_source=ScoreSource.OFFLINE_CALIBRATED,
            explanation=result.explanation, parse_status=ParseStatus.PARSED,
            model="EfficientNet-Lite0 patch kNN (offline)", regions=list(result.regions),
            raw_answer=f"raw score {result.raw_score:.4f}, threshold {result.threshold:.4f}, "
                       f"{time.perf_counter() - started:.2f} s",
        )
        return self.store.save_verdict(verdict, heatmap_png=heat_png)

    def heatmap(self, verdict: Verdict) -> np.ndarray | None:
        if not verdict.heatmap_sha256:
            return None
        gray, _ = decode_image(self.store.get_blob(verdict.heatmap_sha256), "heatmap")
        return gray[:, :, 0].astype(np.float32) / 255.0


def _region_from_answer(item: object, prompt: ComposedPrompt, view_maps: dict[str, ViewMap]) -> Region | None:
    """A box the model drew on an image it was sent, mapped back to case pixels; else None.

    The model sees the downscaled PNG of a view, so a box is first scaled back to the view
    (`PromptImage.scale`), then through the view's map to the case. Boxes on images we did not send
    as queries, or that are not four numbers, are dropped rather than guessed.
    """
    if not isinstance(item, dict):
        return None
    box = item.get("box") or item.get("bbox")
    if box is None and all(k in item for k in ("x0", "y0", "x1", "y1")):
        box = [item["x0"], item["y0"], item["x1"], item["y1"]]
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    queries = [img for img in prompt.images if img.role == "query"]
    wanted = str(item.get("view", "")).strip()
    if wanted:
        image = next((img for img in queries if img.label == wanted), None)
    else:
        image = queries[0] if len(queries) == 1 else None  # unnamed boxes are unambiguous only with one view
    if image is None:
        return None
    view_map = view_maps.get(image.label)
    scale = image.scale or 1.0
    x0, x1 = sorted((max(0.0, min(x0, image.width)), max(0.0, min(x1, image.width))))
    y0, y1 = sorted((max(0.0, min(y0, image.height)), max(0.0, min(y1, image.height))))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    corners = [(x0 / scale, y0 / scale), (x1 / scale, y1 / scale)]
    if view_map is not None and view_map.kind == "pixel_scale":
        corners = [view_map.view_to_case_xy(x, y) for x, y in corners]
    (cx0, cy0), (cx1, cy1) = corners
    return Region(cx0, cy0, cx1, cy1, score=1.0, label=str(item.get("label", "")), reason=str(item.get("reason", "")))
