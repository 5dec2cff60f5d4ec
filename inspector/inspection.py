"""The inspection flow, headless: file -> case -> prompt -> VLM or offline detector -> verdict.

`InspectionService` is what the GUI, the batch mode and the self-test all drive. Every result is
written to the project as soon as it exists (the answer before it is parsed, the verdict right
after), so closing or crashing the app loses at most the request in flight.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.files import require_regular_file
from inspector.imaging import CaseReadError, decode_image
from inspector.locate import locate_box
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
    View,
    ViewerState,
)
from inspector.plugins import (
    ModalityPlugin,
    OfflineContext,
    OfflineOutcome,
    PluginRegistry,
    QueryView,
    UnsupportedFileError,
)
from inspector.prompt import DEFAULT_MAX_SIDE, ComposedPrompt, PromptSwitches, compose, encode_png
from inspector.settings import EndpointSettings, resolve_api_key
from inspector.store import ProjectStore, StoreError, sha256_bytes
from inspector.store.project import EMBED_LIMIT_BYTES
from inspector.vlm.answers import ParsedAnswer
from inspector.vlm.extraction import EXTRACTION, Extraction, extraction_messages, extraction_request, needs_extraction

log = logging.getLogger(__name__)

LOADED_CASE_CACHE = 8  # decoded cases kept in memory (a 4096x4096 RGB image is 48 MB)
FOLDER_CASE = "folder"  # metadata["source_kind"] of a case that is a whole folder (series, frames)


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
        self._lock = threading.RLock()
        self._fit_lock = threading.Lock()
        # Set-of-Mark plans by what they were made from (the preview and the inspection share one)
        self._mark_plans: OrderedDict[str, object] = OrderedDict()
        self._case_locks: dict[int, threading.Lock] = {}
        # Set-of-Mark settings of the application (``AppSettings.extra["localization"]``: method,
        # SAM checkpoint, limits); a profile's ``settings["localization"]`` goes on top.
        self.mark_settings: dict = {}
        # Embedded sources are unpacked here for the readers, and kept while the project is open:
        # some readers keep the file open and decode lazily (a video container, a large series).
        self._unpack_dir = Path(tempfile.mkdtemp(prefix="anomalens-cases-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._unpack_dir, True)

    def close(self) -> None:
        """Forget decoded cases and delete unpacked copies of embedded sources."""
        with self._lock:
            self._loaded.clear()
            self._detectors.clear()
            self._mark_plans.clear()
        self._cleanup()

    # ----------------------------------------------------------------- cases

    def import_file(self, path: str | Path, profile_id: int | None = None) -> tuple[Case, str]:
        """Add one file as a case. Returns (case, outcome) with outcome "added", "duplicate" or "failed".

        A file that cannot be read still becomes a case with status ERROR and the reason, so the
        operator sees what went wrong in the case list instead of a vanished file.
        """
        path = Path(path)
        data: bytes | None = None
        sha = sha256_bytes(b"")
        try:
            if not path.is_dir():
                require_regular_file(path)  # never a device, a pipe or a socket
            data, sha = _folder_archive(path) if path.is_dir() else _file_source(path)
        except CaseReadError as exc:
            read_error: str | None = str(exc)
        except OSError as exc:
            read_error = f"{path.name}: cannot be read ({exc.strerror or exc})"
        else:
            read_error = None
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
                loaded = read_with(plugin, path)
                metadata = dict(loaded.metadata)
            except (CaseReadError, UnsupportedFileError) as exc:
                read_error = str(exc)
            except Exception as exc:
                log.exception("reader failed on %s", path)
                read_error = f"{path.name}: could not be read ({type(exc).__name__}: {exc})"
        if path.is_dir():
            metadata["source_kind"] = FOLDER_CASE
        # readers that know the truth (labelled datasets: Ped2 folders, NAB series) say so
        ground_truth = metadata.get("ground_truth") if metadata.get("ground_truth") in ("normal", "anomalous") else None
        case = Case(
            name=path.name,
            modality=modality,
            source_path=str(path.resolve()),
            source_sha256=sha,
            metadata=metadata,
            profile_id=profile_id,
            ground_truth=ground_truth,
            status=CaseStatus.ERROR if read_error else CaseStatus.NOT_INSPECTED,
            error=read_error,
        )
        case = self.store.add_case(case, source_bytes=data if read_error is None else None)
        if loaded is not None and case.id is not None:
            self._remember(case.id, loaded)
        return case, "failed" if read_error else "added"

    def import_files(
        self,
        paths: Sequence[str | Path],
        profile_id: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> ImportResult:
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
            case_lock = self._case_locks.setdefault(case.id, threading.Lock())
        # One decode per case: a preparing job and a prompt refresh asking at once share the result
        # (two open video containers, or a half-unpacked series seen by the second, otherwise).
        with case_lock:
            with self._lock:
                if case.id in self._loaded:
                    return self._loaded[case.id]
            return self._load_uncached(case)

    def _load_uncached(self, case: Case) -> LoadedCase:
        assert case.id is not None
        if case.error and case.status == CaseStatus.ERROR and not case.blob_sha256:
            raise InspectionError(case.error)
        plugin = self.registry.modality(case.modality)
        try:
            if case.blob_sha256:
                loaded = self._read_embedded(case, plugin)
            else:
                source = Path(case.source_path)
                if not source.is_dir():
                    require_regular_file(source)  # it may have been replaced since the import
                loaded = read_with(plugin, source)
        except (CaseReadError, StoreError) as exc:
            raise InspectionError(getattr(exc, "user_message", str(exc))) from exc
        # What the reader found at import (labels beside the original file, ground truth) and can
        # no longer find from an embedded copy fills the gaps; a fresh read wins where it has a value.
        loaded.metadata = {**{k: v for k, v in case.metadata.items() if k != "source_kind"}, **loaded.metadata}
        self._remember(case.id, loaded)
        return loaded

    def _read_embedded(self, case: Case, plugin: ModalityPlugin) -> LoadedCase:
        """Readers take paths; give them the embedded bytes as a file (or folder) of the same name."""
        assert case.blob_sha256 is not None
        target = self._unpack_dir / case.blob_sha256[:16] / case.name
        if not target.exists():
            # unpacked under a temporary name and renamed into place: a reader never sees half a copy
            data = self.store.get_blob(case.blob_sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=target.parent)) / case.name
            if case.metadata.get("source_kind") == FOLDER_CASE:
                try:
                    with zipfile.ZipFile(io.BytesIO(data)) as archive:
                        _safe_extract(archive, partial)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
                    raise CaseReadError(f"{case.name}: the copy kept in the project is damaged ({exc})") from None
            else:
                partial.write_bytes(data)
            try:
                partial.rename(target)
            except OSError:  # another service unpacked it first: keep theirs
                pass
            shutil.rmtree(partial.parent, ignore_errors=True)
        if plugin.read_copy is not None:
            return read_with(plugin, target, Path(case.source_path))
        return read_with(plugin, target)

    # ----------------------------------------------------------------- references

    def add_reference_file(self, profile_id: int, path: str | Path) -> int:
        """Store normal references from a file inside the project (as PNG, so any format works).

        Images are stored as they are. Other modalities contribute what their plugin makes of a
        normal case (a depth-render montage of a cloud, frames of a video, a windowed slice): the
        same kind of image the offline detector and the model compare cases with. Returns how many
        reference images were added.
        """
        path = Path(path)
        try:
            if not path.is_dir():
                require_regular_file(path)
            plugin = self.registry.modality_for_path(path)
        except (CaseReadError, UnsupportedFileError) as exc:
            raise InspectionError(str(exc)) from exc
        if plugin.reference_images is None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InspectionError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
            try:
                rgb, _ = decode_image(data, path.name)
            except CaseReadError as exc:
                raise InspectionError(str(exc)) from exc
            self.add_reference_array(profile_id, path.name, rgb)
            return 1
        try:
            images = plugin.reference_images(read_with(plugin, path))
        except CaseReadError as exc:
            raise InspectionError(str(exc)) from exc
        except Exception as exc:
            log.exception("reference conversion failed on %s", path)
            raise InspectionError(
                f"{path.name}: could not be used as a reference ({type(exc).__name__}: {exc})"
            ) from exc
        # which file they came from, for the detector's calibration (a hash: names can identify patients)
        source = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        for name, rgb in images:
            self.add_reference_array(profile_id, name, rgb, source=source)
        return len(images)

    def add_reference_array(self, profile_id: int, name: str, rgb: np.ndarray, source: str | None = None) -> None:
        self.store.add_reference(profile_id, name, encode_png(rgb), rgb.shape[1], rgb.shape[0], source=source)

    def reference_images(self, profile_id: int) -> list[tuple[str, np.ndarray, str]]:
        """(name, RGB array, blob hash) of the profile's references, in the order they were added."""
        out = []
        for ref in self.store.references(profile_id):
            rgb, _ = decode_image(self.store.get_blob(ref.blob_sha256), ref.name)
            out.append((ref.name, rgb, ref.blob_sha256))
        return out

    # ----------------------------------------------------------------- prompts

    def compose_prompt(
        self,
        case: Case,
        profile: Profile,
        switches: PromptSwitches | None = None,
        text_override: str | None = None,
        viewer: ViewerState | None = None,
    ) -> ComposedPrompt:
        """Render the case's views and compose the prompt.

        Render options: the profile's ``settings["render"]`` (e.g. the number of depth views), then
        the `viewer`'s (the current slice, a frame range) on top; its drawn regions become marks.
        """
        viewer = viewer or ViewerState()
        loaded = self.load_case(case)
        plugin = self.registry.modality(case.modality)
        options = dict(profile.settings.get("render", {})) if isinstance(profile.settings, dict) else {}
        options.update(viewer.render_options())
        views = plugin.render(loaded, options)
        switches = switches or PromptSwitches()
        references = []
        if switches.references and switches.max_references > 0:
            refs = self.reference_images(profile.id) if profile.id is not None else []
            references = [(name, rgb) for name, rgb, _ in refs[: switches.max_references]]
        marks = self._plan_marks(profile, views, references, viewer) if switches.set_of_mark else None
        prompt = compose(
            profile,
            views,
            references,
            switches=switches,
            preset=profile.domain_preset or None,
            text_override=text_override,
            marks=marks,
        )
        return prompt

    def localization_settings(self, profile: Profile) -> dict:
        """Set-of-Mark settings for a profile: defaults, the application's, the profile's."""
        from inspector.localization.set_of_mark import localization_settings

        own = profile.settings.get("localization") if isinstance(profile.settings, dict) else None
        return localization_settings(self.mark_settings, own if isinstance(own, dict) else None)

    def _plan_marks(self, profile: Profile, views: list, references: list[tuple[str, np.ndarray]], viewer: ViewerState):
        """Proposals and numbered marks on the current view (Set-of-Mark); operator-drawn boxes first.

        Drawn regions come from the viewer in case pixels (`ViewerState.drawn_regions`) and are
        mapped to the view through its scale (pixel and slice views have one; other maps do not
        take drawn regions).
        """
        from inspector.localization.sam import SamUnavailableError
        from inspector.localization.set_of_mark import SetOfMarkError, plan_marks

        settings = self.localization_settings(profile)
        index = _current_view_index(views)
        drawn = []
        view_map = views[index].view_map if views else None
        params = view_map.params if view_map is not None else {}
        on_drawn_view = bool(views) and views[index].shown is not False  # drawn on what the viewer shows
        if viewer.drawn_regions and on_drawn_view and "scale_x" in params and "scale_y" in params:
            sx, sy = float(params["scale_x"]) or 1.0, float(params["scale_y"]) or 1.0
            drawn = [[b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy] for b in viewer.drawn_regions]
        key = _marks_key(
            views[index].image if views else None,
            settings,
            drawn,
            references,
            index,
            [ref.blob_sha256 for ref in self.store.references(profile.id)] if profile.id else [],
        )
        with self._lock:
            cached = self._mark_plans.get(key)
        if cached is not None:  # the preview composed it already: SAM on a CPU takes a minute
            return cached
        try:
            plan = plan_marks(
                views,
                settings,
                max_side=DEFAULT_MAX_SIDE,
                detector=lambda: self._fitted_detector(profile, None, None),
                drawn_boxes=drawn,
                references=references,
                view_index=index,
            )
        except (SetOfMarkError, SamUnavailableError) as exc:
            raise InspectionError(str(exc)) from exc
        with self._lock:
            self._mark_plans[key] = plan
            while len(self._mark_plans) > 16:
                self._mark_plans.popitem(last=False)
        return plan

    def _store_prompt(self, prompt: ComposedPrompt) -> int:
        return self.store.save_prompt(
            prompt.sha256,
            prompt.system,
            prompt.text,
            prompt.to_record(),
            [(img.role, img.label, img.png) for img in prompt.images],
        )

    # ----------------------------------------------------------------- VLM

    async def inspect_with_vlm(
        self, case: Case, prompt: ComposedPrompt, endpoint: EndpointSettings, client=None
    ) -> Verdict:
        """Ask the endpoint; store the prompt, the raw answer as it arrives, then the verdict.

        An answer that cannot be read (and is not a refusal) gets one extraction turn in the same
        conversation (`inspector.vlm.extraction`), stored as its own answer, unless the endpoint's
        settings turn it off.
        """
        from inspector.vlm.client import VlmClient

        assert case.id is not None
        prompt_id = self._store_prompt(prompt)
        params = {
            "temperature": endpoint.temperature,
            "max_tokens": endpoint.max_tokens,
            "logprobs": endpoint.request_logprobs,
            "timeout_s": endpoint.timeout_s,
        }
        own_client = client is None
        if client is None:
            client = VlmClient(endpoint, resolve_api_key(endpoint))
        try:
            answer = await self._request(case, prompt_id, endpoint, params, client.ask(prompt))
            answer_id = self.store.save_answer(
                case.id,
                prompt_id,
                endpoint=endpoint.base_url,
                model=answer.model or endpoint.model,
                params=params,
                raw_text=answer.raw_text,
                response=answer.response,
                status="ok",
                latency_s=answer.latency_s,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
            )
            parsed = self.read_answer(prompt, answer.raw_text, answer.logprobs)
            extraction = None
            marks_judged = parsed.marks.judged if parsed.marks is not None else None
            if endpoint.extraction_turn and needs_extraction(parsed, prompt, marks_judged):
                extraction = await self._extraction_turn(
                    case, prompt, prompt_id, endpoint, params, client, answer.raw_text, answer_id
                )
        finally:
            if own_client:
                await client.aclose()
        verdict = self.verdict_from_answer(case, prompt, parsed, answer.raw_text, extraction)
        verdict.model = answer.model or endpoint.model
        verdict.answer_id, verdict.prompt_id = answer_id, prompt_id
        return self.store.save_verdict(_with_input_warnings(case, verdict))

    async def _request(self, case: Case, prompt_id: int, endpoint: EndpointSettings, params: dict, request):
        """Await one request; a failure or a cancellation is stored as an answer row, then raised."""
        from inspector.vlm.client import VlmError

        assert case.id is not None
        try:
            return await request
        except VlmError as exc:
            self.store.save_answer(
                case.id,
                prompt_id,
                endpoint=endpoint.base_url,
                model=endpoint.model,
                params=params,
                raw_text="",
                response=None,
                status="error",
                error=exc.user_message,
            )
            self.store.update_case(case.id, error=exc.user_message)
            raise InspectionError(exc.user_message) from exc
        except BaseException:  # cancelled: record that the request was abandoned, then re-raise
            self.store.save_answer(
                case.id,
                prompt_id,
                endpoint=endpoint.base_url,
                model=endpoint.model,
                params=params,
                raw_text="",
                response=None,
                status="cancelled",
            )
            raise

    async def _extraction_turn(
        self,
        case: Case,
        prompt: ComposedPrompt,
        prompt_id: int,
        endpoint: EndpointSettings,
        params: dict,
        client,
        first_answer: str,
        first_answer_id: int,
    ) -> Extraction:
        """Ask the model to restate its verdict; store the turn. A failed turn leaves the first answer."""
        from inspector.vlm.client import prompt_messages

        assert case.id is not None
        request = extraction_request(prompt, bool(getattr(client, "structured_output_enabled", True)))
        # a cached first answer is a copy: the turn belongs to the stored original, where the cache
        # (and the next run) looks for it
        of = getattr(client, "source_answer_id", None) or first_answer_id
        turn_params = {
            **params,
            "turn": EXTRACTION,
            "extraction_of": of,
            "question": request.question,
            "structured": request.schema is not None,
        }
        messages = extraction_messages(prompt_messages(prompt), first_answer, request)
        try:
            answer = await self._request(
                case, prompt_id, endpoint, turn_params, client.extract(messages, request.schema)
            )
        except InspectionError as exc:
            return Extraction(answer_id=None, parsed=None, raw_text="", error=str(exc))
        replayed = answer is getattr(client, "extraction", None)  # served from the cache: no request, no cost
        answer_id = self.store.save_answer(
            case.id,
            prompt_id,
            endpoint=endpoint.base_url,
            model=answer.model or endpoint.model,
            params={**turn_params, "extraction_of": first_answer_id} if replayed else turn_params,
            raw_text=answer.raw_text,
            response=answer.response,
            status="cached" if replayed else EXTRACTION,
            latency_s=answer.latency_s,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
        )
        parsed = self.read_answer(prompt, answer.raw_text, answer.logprobs)
        return Extraction(answer_id=answer_id, parsed=parsed, raw_text=answer.raw_text)

    @staticmethod
    def read_answer(prompt: ComposedPrompt, raw_text: str, logprobs: Any = None) -> ParsedAnswer:
        """Read an answer once: its verdict, score and regions, and (for a Set-of-Mark prompt) the
        marks it judged, carried on the parsed answer (`ParsedAnswer.marks`)."""
        from inspector.localization.mark_answers import parse_mark_answer
        from inspector.vlm.answers import parse_answer

        parsed = parse_answer(raw_text, logprobs)
        if prompt.localization:  # a Set-of-Mark prompt (possibly with no marks on a blank view)
            parsed.marks = parse_mark_answer(raw_text, [int(m["mark"]) for m in prompt.marks])
        return parsed

    def verdict_from_answer(
        self, case: Case, prompt: ComposedPrompt, parsed, raw_text: str, extraction: Extraction | None = None
    ) -> Verdict:
        """A parsed answer as a verdict: regions placed on the case, Set-of-Mark marks and hybrid score.

        With an extraction turn, its verdict, score and marks fill what the first answer lacked; a
        restated verdict that contradicts a readable first answer leaves the verdict unparsed.
        """
        assert case.id is not None
        details: dict = {}
        first = parsed
        if extraction is not None:
            details["extraction"] = extraction.record(first)
            parsed = extraction.merged(first)
        items = list(parsed.regions)
        score, anomalous, score_source = parsed.score, parsed.anomalous, parsed.score_source
        explanation = first.explanation if first.parsed else ""
        if first.refused:
            details["refused"] = True
        if parsed.status == ParseStatus.UNPARSED:
            if first.refused:
                explanation = (
                    "The model declined to judge this case (a refusal, stored as unparsed and "
                    "not guessed). See the raw answer."
                )
            elif extraction is not None and details["extraction"]["outcome"] == "contradicts":
                explanation = (
                    "The model's restated verdict contradicts what its first answer was read to "
                    "say; the verdict is left unparsed, not guessed. See both turns in the raw answer."
                )
            else:
                explanation = (
                    "The model's answer could not be read as a verdict; it is stored as unparsed "
                    "and not guessed. See the raw answer."
                )
        elif extraction is not None and extraction.used(first):
            explanation = (
                f"{raw_text.strip()}\n\n(Verdict restated by the model in a second turn: the first "
                "answer could not be read in full.)"
            ).strip()
        mark_regions: list[Region] = []
        if prompt.localization:  # a Set-of-Mark prompt (possibly with no marks on a blank view)
            from inspector.localization import hybrid

            items = [item for item in items if not (isinstance(item, dict) and "mark" in item)]
            mark_answer = first.marks if first.marks is not None else self.read_answer(prompt, raw_text).marks
            if not mark_answer.judged and extraction is not None and extraction.parsed is not None:
                if extraction.parsed.marks is not None:
                    mark_answer = extraction.parsed.marks
            outcome = _mark_outcome(prompt, mark_answer)
            p_vlm = (
                hybrid.vlm_probability(parsed.anomalous, parsed.score) if parsed.status == ParseStatus.PARSED else None
            )
            offline = prompt.localization.get("offline_score")
            weight = float(prompt.localization.get("vlm_weight", hybrid.DEFAULT_VLM_WEIGHT))
            mark_regions = self._locate_marks(case, prompt, mark_answer, p_vlm, weight)
            details["marks"] = outcome
            placed = {r.detail.get("mark") for r in mark_regions}
            details["mark_answer"] = {
                "said_none": mark_answer.said_none,
                "found": mark_answer.found,
                "unknown": mark_answer.unknown,
                "method": mark_answer.method,
                "proposals": prompt.localization.get("method", ""),
                "unplaced": [n for n in mark_answer.selected if n not in placed],
            }
            if offline is not None:
                combined = hybrid.combine(float(offline), p_vlm, weight)
                details["hybrid"] = combined.to_dict()
                score, anomalous, score_source = combined.score, combined.anomalous, ScoreSource.HYBRID
                explanation = f"{explanation}\n\n{combined.explain()}".strip()
        regions = mark_regions + self._locate(case, prompt, items)
        raw_answer = raw_text
        if extraction is not None and extraction.raw_text:
            raw_answer = f"{raw_text}\n\n--- extraction turn ---\n{extraction.raw_text}"
        return Verdict(
            case_id=case.id,
            source=VerdictSource.VLM,
            anomalous=anomalous,
            score=score,
            score_source=score_source,
            explanation=explanation,
            parse_status=parsed.status,
            model="",
            regions=regions,
            details=details,
            raw_answer=raw_answer,
        )

    def _locate_marks(
        self, case: Case, prompt: ComposedPrompt, answer, p_vlm: float | None, weight: float
    ) -> list[Region]:
        """The selected marks as regions of the case, through the modality's `locate`."""
        from inspector.localization.hybrid import region_score
        from inspector.localization.set_of_mark import mark_item

        regions = []
        for number in answer.selected:
            record = prompt.mark_record(number)
            if record is None:
                continue
            placed = self._locate(case, prompt, [mark_item(record, answer.reasons.get(number, ""))])
            for region in placed:
                region.detail = {**region.detail, "mark": number}
                region.label = region.label or f"mark {number}"
                region.score = (
                    region_score(p_vlm, record.get("offline_peak"), weight)
                    if p_vlm is not None
                    else float(region.score)
                )
                regions.append(region)
        return regions

    def _locate(self, case: Case, prompt: ComposedPrompt, items: list[dict]) -> list[Region]:
        """The boxes and ranges of an answer as regions of the case (unplaceable items dropped)."""
        if not items:
            return []
        queries = [QueryView(image, prompt.view_maps.get(image.label)) for image in prompt.queries]
        plugin = self.registry.modality(case.modality)
        loaded = self.load_case(case) if plugin.locate is not None else None
        regions: list[Region] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            try:
                region = plugin.locate(item, queries, loaded) if plugin.locate else locate_box(item, queries)
            except Exception:  # a model's odd item must not lose the verdict
                log.exception("could not place answer item %r on %s", item, case.name)
                region = None
            if region is not None:
                regions.append(region)
        return regions

    # ----------------------------------------------------------------- offline detector

    def _fitted_detector(
        self, profile: Profile, progress: Callable[[float], None] | None, is_cancelled: Callable[[], bool] | None
    ):
        from inspector.detector.offline import OfflineDetector

        refs = self.reference_images(profile.id) if profile.id is not None else []
        sources = self._reference_sources(profile)
        if not refs:
            raise InspectionError(
                f"The offline detector compares a case with normal references, and the profile "
                f"{profile.name!r} has none. Add at least one normal reference image to the profile."
            )
        key = hashlib.sha256(
            "|".join(f"{sha}/{src}" for (_, _, sha), src in zip(refs, sources, strict=False)).encode()
        ).hexdigest()
        with self._fit_lock:  # two composes or inspections at once fit once, the second waits
            with self._lock:
                detector = self._detectors.get(key)
            if detector is None:
                detector = OfflineDetector()
                detector.fit(
                    [rgb for _, rgb, _ in refs],
                    progress=progress,
                    is_cancelled=is_cancelled,
                    sources=sources if len(sources) == len(refs) else None,
                )
                with self._lock:
                    self._detectors = {key: detector}  # one profile's bank at a time keeps memory flat
        return detector

    def inspect_offline(
        self,
        case: Case,
        profile: Profile,
        progress: Callable[[float], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        viewer: ViewerState | None = None,
    ) -> Verdict:
        """Score the case against the profile's references with the built-in detector (no VLM).

        What the `viewer` shows (the current slice, a frame range) reaches a modality's own
        detector through `OfflineContext.render_options`.
        """
        assert case.id is not None
        plugin = self.registry.modality(case.modality)
        if plugin.offline_input is None and plugin.offline_detect is None:
            raise InspectionError(f"The offline detector does not support {plugin.title} cases yet.")
        loaded = self.load_case(case)
        started = time.perf_counter()
        if plugin.offline_detect is not None:
            context = OfflineContext(
                references=lambda: self._reference_list(profile),
                reference_sources=lambda: self._reference_sources(profile),
                image_detector=lambda: self._fitted_detector(profile, progress, is_cancelled),
                progress=progress or (lambda _f: None),
                is_cancelled=is_cancelled or (lambda: False),
                options=dict(profile.settings.get(case.modality, {})) if isinstance(profile.settings, dict) else {},
                render_options=(viewer or ViewerState()).render_options(),
            )
            outcome = plugin.offline_detect(loaded, context)
        else:
            detector = self._fitted_detector(profile, progress, is_cancelled)
            result = detector.score(plugin.offline_input(loaded))  # type: ignore[misc]
            outcome = OfflineOutcome(
                anomalous=result.anomalous,
                score=float(result.score),
                explanation=result.explanation,
                regions=list(result.regions),
                heatmap=result.heatmap,
                summary=f"raw score {result.raw_score:.4f}, threshold {result.threshold:.4f}",
            )
        if is_cancelled is not None and is_cancelled():
            raise InspectionCancelledError("cancelled before the verdict was stored")
        heat_png = None
        if outcome.heatmap is not None:
            heat_png = encode_png((np.clip(outcome.heatmap, 0, 1) * 255).astype(np.uint8))
        elapsed = time.perf_counter() - started
        verdict = Verdict(
            case_id=case.id,
            source=VerdictSource.OFFLINE,
            anomalous=bool(outcome.anomalous),
            score=float(outcome.score),
            score_source=ScoreSource.OFFLINE_CALIBRATED,
            explanation=outcome.explanation,
            parse_status=ParseStatus.PARSED,
            model=outcome.model or "EfficientNet-Lite0 patch kNN (offline)",
            regions=list(outcome.regions),
            details=dict(outcome.details),
            raw_answer=f"{outcome.summary}, {elapsed:.2f} s" if outcome.summary else f"{elapsed:.2f} s",
        )
        return self.store.save_verdict(_with_input_warnings(case, verdict), heatmap_png=heat_png)

    def _reference_sources(self, profile: Profile) -> list[str]:
        stored = self.store.references(profile.id) if profile.id is not None else []
        return [ref.source or ref.blob_sha256 for ref in stored]

    def _reference_list(self, profile: Profile) -> list[tuple[str, np.ndarray]]:
        refs = self.reference_images(profile.id) if profile.id is not None else []
        return [(name, rgb) for name, rgb, _ in refs]

    def heatmap(self, verdict: Verdict) -> np.ndarray | None:
        if not verdict.heatmap_sha256:
            return None
        gray, _ = decode_image(self.store.get_blob(verdict.heatmap_sha256), "heatmap")
        return gray[:, :, 0].astype(np.float32) / 255.0


def _marks_key(
    image: np.ndarray | None, settings: dict, drawn: list, references: list, index: int, reference_hashes: list[str]
) -> str:
    """What a marking plan depends on: the view's pixels, the settings, drawn boxes, references."""
    import json

    digest = hashlib.sha256()
    if image is not None:
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    digest.update(
        json.dumps(
            [settings, drawn, index, reference_hashes, [name for name, _ in references]], sort_keys=True, default=str
        ).encode()
    )
    return digest.hexdigest()


def _mark_outcome(prompt: ComposedPrompt, answer: Any) -> list[dict[str, Any]]:
    """One audit row per drawn mark: where it came from and what the answer said of it."""
    return [
        {
            "mark": int(m["mark"]),
            "source": m.get("source", ""),
            "proposal_score": m.get("score"),
            "offline_peak": m.get("offline_peak"),
            "selected": int(m["mark"]) in answer.selected,
            "rejected": int(m["mark"]) in answer.rejected,
            "mentioned": int(m["mark"]) in answer.mentioned,
            "reason": answer.reasons.get(int(m["mark"]), ""),
        }
        for m in prompt.marks
    ]


def _current_view_index(views: list[View]) -> int:
    """The view the viewer shows (the current slice among several sent), else the first."""
    return next((index for index, view in enumerate(views) if view.shown), 0)


def input_warnings(case: Case) -> list[str]:
    """What the reader found wrong with a case it could still decode (a truncated image)."""
    warnings = case.metadata.get("warnings") if isinstance(case.metadata, dict) else None
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def _with_input_warnings(case: Case, verdict: Verdict) -> Verdict:
    """A verdict on a damaged input says so: the judgement is about a picture that is not whole."""
    warnings = input_warnings(case)
    if warnings:
        verdict.details = {**(verdict.details or {}), "input_warnings": warnings}
    return verdict


# A reader that never returns (a hostile file sending a parser into a loop) must not hold an import
# or a batch for ever: after this the file is reported and the work goes on (the reader's thread is
# abandoned). Generous: a 300-slice series or a long video's index reads in seconds to a minute.
READ_TIME_LIMIT_S = 300.0


def read_with(plugin: ModalityPlugin, path: Path, origin: Path | None = None) -> LoadedCase:
    """A plugin's reader (its `read_copy` when `origin` is given), held to its contract: it returns a
    `LoadedCase` within `READ_TIME_LIMIT_S`, and a reader that exits (`SystemExit`), hangs or fails
    in any other way becomes an operator message naming the file, never a raw error, a stalled
    import or the end of the workstation."""
    outcome: list[tuple[str, Any]] = []

    def read() -> None:
        try:
            value = plugin.read_copy(path, origin) if origin is not None and plugin.read_copy else plugin.read(path)
            outcome.append(("ok", value))
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's bug is this file's problem only
            outcome.append(("error", exc))

    worker = threading.Thread(target=read, name=f"read {path.name}", daemon=True)
    worker.start()
    worker.join(READ_TIME_LIMIT_S)
    if not outcome:
        raise CaseReadError(f"{path.name}: the {plugin.title} reader did not finish within {READ_TIME_LIMIT_S:g} s")
    kind, value = outcome[0]
    if kind == "error":
        if isinstance(value, CaseReadError):
            raise value
        log.error("the %s reader failed on %s", plugin.name, path, exc_info=value)
        raise CaseReadError(
            f"{path.name}: the {plugin.title} reader failed ({type(value).__name__}: {value})"
        ) from None
    if not isinstance(value, LoadedCase):
        raise CaseReadError(f"{path.name}: the {plugin.title} reader returned {type(value).__name__}, not a case")
    return value


def _file_source(path: Path) -> tuple[bytes | None, str]:
    """A file's hash, and its bytes when small enough to embed; a 4 GB video is hashed in blocks,
    never held in memory."""
    if path.stat().st_size > EMBED_LIMIT_BYTES:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return None, digest.hexdigest()
    data = path.read_bytes()
    return data, sha256_bytes(data)


def _folder_archive(folder: Path) -> tuple[bytes | None, str]:
    """A folder case's identity and, when small enough to embed, its bytes as an uncompressed zip.

    The hash covers every file's relative path and content, so the same series or frame folder
    imported twice is recognised as a duplicate. Folders over the embedding limit are not zipped
    (None): the case then refers to the folder on disk.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    digest = hashlib.sha256(b"anomalens-folder-v1")
    total = 0
    for file in files:
        rel = file.relative_to(folder).as_posix()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
        total += file.stat().st_size
    if total > EMBED_LIMIT_BYTES:
        return None, digest.hexdigest()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in files:
            archive.write(file, file.relative_to(folder).as_posix())
    return buffer.getvalue(), digest.hexdigest()


# An embedded folder is written by `_folder_archive` (uncompressed, at most EMBED_LIMIT_BYTES); a
# project file from elsewhere may carry anything, so unpacking checks sizes and counts first.
MAX_ARCHIVE_BYTES = 2 * EMBED_LIMIT_BYTES
MAX_ARCHIVE_ENTRIES = 20_000


def _safe_extract(archive: zipfile.ZipFile, target: Path) -> None:
    """Unpack an embedded folder, refusing member names that would escape the target, and archives
    whose entries or unpacked size exceed what the workstation ever embeds (a zip bomb)."""
    members = archive.infolist()
    if len(members) > MAX_ARCHIVE_ENTRIES:
        raise CaseReadError(f"the embedded folder has {len(members):,} entries (at most {MAX_ARCHIVE_ENTRIES:,})")
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_ARCHIVE_BYTES:
        raise CaseReadError(
            f"the embedded folder would unpack to {unpacked / 1e6:,.0f} MB (at most {MAX_ARCHIVE_BYTES / 1e6:,.0f} MB)"
        )
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    for member in members:
        destination = (target / member.filename).resolve()
        if root not in destination.parents and destination != root:
            raise CaseReadError(f"embedded folder entry {member.filename!r} is not a safe path")
    archive.extractall(target)
