"""The operator's use cases, headless: what the window and `main.py --batch` both do.

Preparing a case to show it (`prepare_case`: its data, the prompt the model would get, the latest
verdict, heat map, decision and follow-up questions), inspecting what is pending (resuming each
unfinished batch with its own model and variant, then the rest; VLM or offline), and A/B
comparisons.

Before this layer the window and the command line each had their own copy of "inspect what is
pending", and the copies disagreed: the command line resumed an interrupted A/B batch with
today's model instead of the batch's own, and ignored the batch limits and prices of the settings
file. Both now call `InspectionSession`, so one project gives the same batches either way.

One batch runs at a time per project, across processes (`BatchLease`): a second window or
``--batch`` on the same project is refused with a message instead of asking every case twice.

The settings file's free-form sections (``batch_limits``, ``prices``, ``localization``) are read
once into `RunSettings`, with a warning per section that cannot be read (the defaults are used
then; a price table that cannot be read shows costs as unknown, never as zero).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from inspector.chat import ChatTurn, conversation
from inspector.inspection import InspectionCancelledError, InspectionError, InspectionService
from inspector.model import Case, CaseStatus, Decision, LoadedCase, Profile, Verdict, ViewerState
from inspector.prompt import ComposedPrompt, PromptSwitches
from inspector.settings import AppSettings, EndpointSettings
from inspector.store import StoreError
from inspector.vlm.batch import BatchProgress, PriceTable, resume_batch, run_batch
from inspector.vlm.ratelimit import BatchLimits

ProgressCallback = Callable[[BatchProgress], None]
IsCancelled = Callable[[], bool]


@dataclass(frozen=True)
class RunSettings:
    """The typed sections of the settings file that a batch needs, read once."""

    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    limits: BatchLimits = field(default_factory=BatchLimits)
    prices: PriceTable = field(default_factory=PriceTable)
    mark_settings: dict[str, Any] = field(default_factory=dict)  # Set-of-Mark: method, SAM checkpoint, limits
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: AppSettings, concurrency: int | None = None) -> RunSettings:
        """`concurrency` (the command line's ``--concurrency``) overrides the file's when given."""
        warnings: list[str] = []
        limits = _section(
            settings,
            "batch_limits",
            BatchLimits.from_dict,
            BatchLimits(),
            warnings,
            "The batch limits in the settings file cannot be read; using the defaults.",
        )
        if concurrency is not None:
            limits = replace(limits, concurrency=concurrency)
        prices = _section(
            settings,
            "prices",
            PriceTable.from_dict,
            PriceTable(),
            warnings,
            "The price table in the settings file cannot be read; costs are shown as unknown.",
        )
        return cls(settings.endpoint, limits, prices, mark_settings_of(settings), tuple(warnings))


def mark_settings_of(settings: AppSettings) -> dict[str, Any]:
    """The Set-of-Mark settings of the settings file (its key is still ``"localization"``)."""
    raw = settings.extra.get("localization")
    return dict(raw) if isinstance(raw, dict) else {}


def _section(
    settings: AppSettings, key: str, parse: Callable[[dict], Any], default: Any, warnings: list[str], warning: str
) -> Any:
    """One section of the settings file read with `parse`; the default (and the warning) when it is
    missing or cannot be read."""
    raw = settings.extra.get(key)
    if raw is None:
        return default
    try:
        if not isinstance(raw, dict):
            raise TypeError(f"{key} is not an object")
        return parse(raw)
    except (AttributeError, TypeError, ValueError):
        warnings.append(warning)
        return default


@dataclass(frozen=True)
class Variant:
    """One arm of an A/B comparison: a model ("" = the endpoint's) and the prompt switches."""

    model: str
    switches: PromptSwitches


def profile_resolver(store: Any, default: Profile) -> Callable[[Case], Profile]:
    """A case is inspected with the profile it was added under, else `default`."""

    def profile_for(case: Case) -> Profile:
        return store.profile(case.profile_id) if case.profile_id else default

    return profile_for


class BatchBusyError(InspectionError):
    """Another process (or window) is running a batch on this project."""


class BatchLease:
    """The project's batch lease, held by one session while it runs batches (re-entrant: an A/B
    comparison holds it across both variants). Two processes on one project would otherwise each take
    every pending case and ask about it twice; the second is refused with a message instead. The
    lease is renewed as the batch progresses; one left behind by a process that died on this machine
    is taken over at once, one from another machine after `STALE_AFTER_S` without renewal."""

    RENEW_EVERY_S = 20.0
    STALE_AFTER_S = 120.0

    def __init__(self, store: Any):
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.info = {"host": socket.gethostname(), "pid": os.getpid()}
        self._depth = 0
        self._renewed = 0.0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            holder = self.store.acquire_batch_lease(self.owner, self.info, self.STALE_AFTER_S)
            if holder is not None and _abandoned(holder):
                holder = self.store.acquire_batch_lease(self.owner, self.info, stale_after_s=0.0)
            if holder is not None:
                since = dt.datetime.fromtimestamp(float(holder.get("since", 0))).strftime("%H:%M:%S")
                raise BatchBusyError(
                    f"Another batch is running on this project (process {holder.get('pid')} on "
                    f"{holder.get('host')}, since {since}); its cases are not asked twice. Wait for it to "
                    "finish, or stop it, then start this one again."
                )
            self._renewed = time.monotonic()
            _ACTIVE_OWNERS.add(self.owner)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                _ACTIVE_OWNERS.discard(self.owner)
                # the project may have been closed under a cancelled batch: the lease is then left,
                # and taken over by this process's next batch (it is not active any more)
                with contextlib.suppress(StoreError):
                    self.store.release_batch_lease(self.owner)

    def watching(self, callback: ProgressCallback | None) -> ProgressCallback:
        """A progress callback that also renews the lease (at most every `RENEW_EVERY_S`)."""

        def report(progress: BatchProgress) -> None:
            if time.monotonic() - self._renewed >= self.RENEW_EVERY_S:
                self._renewed = time.monotonic()
                self.store.renew_batch_lease(self.owner)
            if callback is not None:
                callback(progress)

        return report


_ACTIVE_OWNERS: set[str] = set()  # the leases this process holds right now


def _abandoned(holder: dict[str, Any]) -> bool:
    """Whether a lease was left behind: by this process (no batch of it holds that lease now) or
    by a process of this machine that no longer runs."""
    if holder.get("host") != socket.gethostname():
        return False
    if holder.get("pid") == os.getpid():
        return holder.get("owner") not in _ACTIVE_OWNERS
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError, ValueError, TypeError):
        return False
    return False


class InspectionSession:
    """The use cases over one open project: pending cases, batches, A/B comparisons."""

    def __init__(self, service: InspectionService, settings: RunSettings):
        self.service = service
        self.store = service.store
        self.settings = settings
        self.lease = BatchLease(self.store)
        service.mark_settings = dict(settings.mark_settings)

    # ------------------------------------------------------------------ what to inspect

    def default_profile(self, preferred: Profile | None = None) -> Profile | None:
        """The profile for cases added without one: the one the operator has chosen, else the first."""
        if preferred is not None:
            return preferred
        profiles = self.store.profiles()
        return profiles[0] if profiles else None

    def pending_case_ids(self) -> list[int]:
        return [c.id for c in self.store.cases() if c.id is not None and c.status == CaseStatus.NOT_INSPECTED]

    # ------------------------------------------------------------------ batches

    async def inspect_pending(
        self,
        default: Profile,
        case_ids: Sequence[int] | None = None,
        progress_callback: ProgressCallback | None = None,
        is_cancelled: IsCancelled | None = None,
    ) -> list[BatchProgress]:
        """Finish every unfinished batch (each with its own model and prompt variant, today's address
        and key), then ask the VLM about the cases still not inspected (of `case_ids`, else all).

        Stops after a batch that did not finish (cancelled, or stopped on an endpoint problem): its
        cases stay pending for the next run. Returns each batch's final progress, in order.
        """
        endpoint = self.settings.endpoint
        if not endpoint.configured:
            raise InspectionError("Batch inspection with a VLM needs an endpoint address and model in Settings.")
        with self.lease.held():
            return await self._inspect_pending(default, case_ids, self.lease.watching(progress_callback), is_cancelled)

    async def _inspect_pending(
        self,
        default: Profile,
        case_ids: Sequence[int] | None,
        progress_callback: ProgressCallback,
        is_cancelled: IsCancelled | None,
    ) -> list[BatchProgress]:
        endpoint = self.settings.endpoint
        profile_for = profile_resolver(self.store, default)
        results: list[BatchProgress] = []
        for batch_id in self.store.unfinished_batches():
            stored_model = self.store.batch(batch_id).endpoint.get("model") or endpoint.model
            progress = await resume_batch(
                self.service,
                batch_id,
                profile_for,
                replace(endpoint, model=stored_model),
                self.settings.limits,
                progress_callback=progress_callback,
                is_cancelled=is_cancelled,
                prices=self.settings.prices,
            )
            results.append(progress)
            if progress.status != "done":
                return results
        wanted = set(case_ids) if case_ids is not None else None
        remaining = [i for i in self.pending_case_ids() if wanted is None or i in wanted]
        if remaining:
            results.append(await self.inspect_cases(remaining, default, progress_callback, is_cancelled))
        return results

    async def inspect_cases(
        self,
        case_ids: Sequence[int],
        default: Profile,
        progress_callback: ProgressCallback | None = None,
        is_cancelled: IsCancelled | None = None,
        variant: Variant | None = None,
    ) -> BatchProgress:
        """One new VLM batch over exactly these cases (an explicit selection: inspected again if
        they were before), with a variant's switches and model when given."""
        endpoint = self.settings.endpoint
        if variant is not None and variant.model:
            endpoint = replace(endpoint, model=variant.model)
        with self.lease.held():
            return await run_batch(
                self.service,
                list(case_ids),
                profile_resolver(self.store, default),
                endpoint,
                self.settings.limits,
                progress_callback=self.lease.watching(progress_callback),
                is_cancelled=is_cancelled,
                prices=self.settings.prices,
                switches=variant.switches if variant is not None else None,
            )

    async def ab_comparison(
        self,
        case_ids: Sequence[int],
        variants: Sequence[Variant],
        default: Profile,
        progress_callback: ProgressCallback | None = None,
        is_cancelled: IsCancelled | None = None,
    ) -> BatchProgress:
        """Variant A, then B, on the same cases; stops at a variant that did not finish."""
        if not variants:
            raise InspectionError("An A/B comparison needs at least one variant.")
        progress: BatchProgress | None = None
        with self.lease.held():
            for variant in variants:
                progress = await self.inspect_cases(case_ids, default, progress_callback, is_cancelled, variant)
                if progress.status != "done":
                    break
        assert progress is not None
        return progress

    def inspect_offline(
        self,
        case_ids: Sequence[int],
        default: Profile,
        progress_callback: ProgressCallback | None = None,
        is_cancelled: IsCancelled | None = None,
        on_error: Callable[[Case, str], None] | None = None,
    ) -> BatchProgress:
        """Score the cases with the offline detector, one after the other; a case that fails is
        counted (and reported to `on_error`) and the rest go on."""
        with self.lease.held():
            return self._inspect_offline(
                case_ids, default, self.lease.watching(progress_callback), is_cancelled, on_error
            )

    def _inspect_offline(
        self,
        case_ids: Sequence[int],
        default: Profile,
        progress_callback: ProgressCallback,
        is_cancelled: IsCancelled | None,
        on_error: Callable[[Case, str], None] | None,
    ) -> BatchProgress:
        profile_for = profile_resolver(self.store, default)
        progress = BatchProgress(batch_id=0, total=len(case_ids), cost=None)
        started = time.perf_counter()
        for case_id in case_ids:
            if is_cancelled is not None and is_cancelled():
                progress.status = "cancelled"
                break
            case = self.store.case(case_id)
            try:
                self.service.inspect_offline(case, profile_for(case), is_cancelled=is_cancelled)
                progress.done += 1
            except InspectionCancelledError:
                progress.status = "cancelled"
                break
            except InspectionError as exc:
                progress.failed += 1
                if on_error is not None:
                    on_error(case, str(exc))
            progress.elapsed_s = time.perf_counter() - started
            finished = progress.done + progress.failed
            progress.eta_s = progress.elapsed_s / finished * (progress.total - finished)
            progress_callback(progress)
        if progress.status == "running":
            progress.status = "done"
        return progress


# ---------------------------------------------------------------------------------- one case


@dataclass(frozen=True)
class PromptInputs:
    """What a composed prompt was made from. Inspect sends the previewed prompt when these are
    unchanged (the same profile as stored now, the same switches, what the viewer shows), instead of
    composing it a second time."""

    profile: Profile
    switches: PromptSwitches
    viewer: str  # `ViewerState.key`
    mark_settings: str  # the Set-of-Mark settings the marks were drawn with

    @classmethod
    def of(
        cls, service: InspectionService, profile: Profile, switches: PromptSwitches, viewer: ViewerState | None
    ) -> PromptInputs:
        return cls(profile, switches, (viewer or ViewerState()).key(), repr(sorted(service.mark_settings.items())))


@dataclass
class PreparedCase:
    """Everything shown for a case, computed off the GUI thread."""

    case: Case
    loaded: LoadedCase | None
    prompt: ComposedPrompt | None
    verdict: Verdict | None
    heatmap: np.ndarray | None
    decision: Decision | None
    problem: str | None = None
    display: Any = None  # the viewer's pre-converted content (e.g. a QImage), made off the GUI thread
    turns: list[ChatTurn] = field(default_factory=list)  # follow-up questions on the verdict
    prompt_inputs: PromptInputs | None = None  # what `prompt` was composed from


def prepare_case(
    service: InspectionService,
    case_id: int,
    profile: Profile | None,
    switches: PromptSwitches,
    viewer: ViewerState | None = None,
) -> PreparedCase:
    """Read the case and compose its prompt; a case that cannot be read, or a prompt that cannot be
    composed, is still prepared, with the `problem` said (the case stays visible)."""
    store = service.store
    case = store.case(case_id)
    prepared = PreparedCase(
        case=case,
        loaded=None,
        prompt=None,
        verdict=store.latest_verdict(case_id),
        heatmap=None,
        decision=store.latest_decision(case_id),
    )
    try:
        prepared.loaded = service.load_case(case)
    except InspectionError as exc:
        prepared.problem = str(exc)
        return prepared
    if prepared.verdict is not None:
        prepared.heatmap = service.heatmap(prepared.verdict)
        prepared.turns = conversation(store, prepared.verdict)
    if profile is not None:
        try:
            prepared.prompt = service.compose_prompt(case, profile, switches, viewer=viewer)
            prepared.prompt_inputs = PromptInputs.of(service, profile, switches, viewer)
        except Exception as exc:  # noqa: BLE001 - a prompt problem must not hide the case
            prepared.problem = f"The prompt could not be composed: {exc}"
    return prepared
