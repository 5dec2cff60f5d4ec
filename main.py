"""Anomalens Workstation entry point.

python main.py                 start the workstation (last project, or the demo project)
python main.py PROJECT         open a project file (*.anomalens; created if missing)
python main.py --demo          open the demo project (built on first use)
python main.py --self-test     headless check: temporary project, offline inspection, exit 0
python main.py --batch PROJECT inspect every not-yet-inspected case of a project, headless
                               (exit 0: all inspected; 1: some failed; 2: nothing could run)
python main.py --egress PROJECT print every request the project sent, to which host, with which
                               images (CSV on stdout)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="anomalens", description="Anomalens Workstation")
    parser.add_argument("project", nargs="?", help="project file to open (*.anomalens)")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo project")
    parser.add_argument("--self-test", action="store_true", help="headless start-up check, exits 0 on success")
    parser.add_argument("--batch", action="store_true", help="inspect all not-inspected cases headless")
    parser.add_argument(
        "--egress", action="store_true", help="print what this project sent to which host (CSV), then exit"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="--batch: requests in flight at once (default: the settings' batch limits, else 4)",
    )
    parser.add_argument(
        "--allow-key-host",
        action="append",
        default=[],
        metavar="HOST",
        help="--batch: send a provider's key (e.g. $OPENAI_API_KEY) to this other host (asked once in the window)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def demo_project_path() -> Path:
    from inspector.paths import user_data_dir

    return user_data_dir() / "demo.anomalens"


def run_gui(args: argparse.Namespace) -> int:
    from PySide6.QtWidgets import QApplication

    from inspector.demo import build_demo_project
    from inspector.paths import resources_dir
    from inspector.plugins import discover
    from inspector.settings import load_settings
    from views.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Anomalens Workstation")
    app.setOrganizationName("Anomalens")
    style = resources_dir() / "style.qss"
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    registry = discover()
    settings = load_settings()
    window = MainWindow(settings, registry)
    window.restore_layout()
    project = args.project
    if project is None and not args.demo and settings.recent_projects:
        recent = Path(settings.recent_projects[0])
        project = str(recent) if recent.exists() else None
    if project is None:
        build_demo_project(demo_project_path(), registry).close()
        project = str(demo_project_path())
    window.show()
    window.open_project(project)
    return app.exec()


def run_batch(args: argparse.Namespace) -> int:
    """Inspect what is pending, as the window's Inspect ▸ Inspect selected cases does with nothing
    selected: finish interrupted batches (each with its own model and variant), then every case not
    inspected yet; with the configured endpoint, else offline. Exit 0: all inspected; 1: some
    failed; 2: nothing could run (no project, no profile, a configuration error)."""
    import asyncio

    from inspector.inspection import InspectionError, InspectionService
    from inspector.plugins import discover
    from inspector.session import InspectionSession, RunSettings
    from inspector.settings import PROVIDER_KEY_DOMAINS, key_host_problem, load_settings
    from inspector.store import ProjectStore, StoreError

    if not args.project:
        print("--batch needs a project file", file=sys.stderr)
        return 2
    settings = load_settings()
    problem = key_host_problem(settings) if settings.endpoint.configured else None
    if problem is not None and problem[1] not in args.allow_key_host:
        variable, host = problem
        print(
            f"The key in ${variable} belongs to {PROVIDER_KEY_DOMAINS[variable]}, but the endpoint is {host}: it would "
            f"be sent there. Run with --allow-key-host {host} to send it, or name another key variable in Settings.",
            file=sys.stderr,
        )
        return 2
    run_settings = RunSettings.from_settings(settings, concurrency=args.concurrency)
    for warning in run_settings.warnings:
        print(warning, file=sys.stderr)
    try:
        store = ProjectStore(args.project, create=False)
    except StoreError as exc:
        print(exc.user_message, file=sys.stderr)
        return 2
    with store:
        session = InspectionSession(InspectionService(store, discover()), run_settings)
        default = session.default_profile()
        if default is None:
            print("The project has no profile; create one first.", file=sys.stderr)
            return 2
        try:
            if not run_settings.endpoint.configured:
                return _offline_batch(session, default)
            return _report_batches(store, asyncio.run(session.inspect_pending(default)))
        except (InspectionError, StoreError) as exc:  # another batch holds the project, a lock, ...
            print(getattr(exc, "user_message", None) or str(exc), file=sys.stderr)
            return 2


def run_egress(args: argparse.Namespace) -> int:
    """Print the project's egress log: every request sent, to which host, with which images."""
    from inspector.egress import egress_log, to_csv
    from inspector.store import ProjectStore, StoreError

    if not args.project:
        print("--egress needs a project file", file=sys.stderr)
        return 2
    try:
        with ProjectStore(args.project, create=False) as store:
            sys.stdout.write(to_csv(egress_log(store)))
    except StoreError as exc:
        print(exc.user_message, file=sys.stderr)
        return 2
    return 0


def _offline_batch(session, default) -> int:
    """Score every pending case offline; each case's outcome on stdout."""

    def print_error(case, message: str) -> None:
        print(f"{case.name}\terror\t{message}")

    todo = session.pending_case_ids()
    progress = session.inspect_offline(todo, default, on_error=print_error)
    for case_id in todo:
        verdict = session.store.latest_verdict(case_id)
        if verdict is not None:
            _print_verdict(session.store.case(case_id), verdict)
    return 1 if progress.failed else 0


def _print_verdict(case, verdict) -> None:
    label = "unparsed" if verdict.anomalous is None else ("anomalous" if verdict.anomalous else "normal")
    score = "" if verdict.score is None else f"{verdict.score:.3f}"
    print(f"{case.name}\t{label}\t{score}\t{verdict.source.value}")


def _report_batches(store, results) -> int:
    """Each case's outcome on stdout, each batch's summary on stderr; the exit code of the run."""
    failures = 0
    for progress in results:
        for item in store.batch_items(progress.batch_id):
            case = store.case(item.case_id)
            if item.state == "failed":
                print(f"{case.name}\terror\t{item.error}")
            elif item.verdict_id is not None and (verdict := store.latest_verdict(case.id)) is not None:
                _print_verdict(case, verdict)
        failures += progress.failed
        cost = "cost unknown" if progress.cost is None else f"cost ${progress.cost:.4f}"
        print(
            f"batch {progress.batch_id}: {progress.status}, {progress.done} done ({progress.cached} cached), "
            f"{progress.failed} failed, {progress.pending} pending, {progress.tokens_in} tokens in, "
            f"{progress.tokens_out} out, {cost}",
            file=sys.stderr,
        )
        if progress.message:
            print(progress.message, file=sys.stderr)
            return 2
    return 1 if failures else 0


def _check_every_modality(service) -> tuple[list[str], dict[str, int]]:
    """Open and render one demo case of every modality: in a packaged app this is where a library
    the bundle lacks (a codec, a DICOM decoder, VTK's renderer) shows up."""
    problems: list[str] = []
    rendered: dict[str, int] = {}
    for case in service.store.cases():
        if case.modality in rendered:
            continue
        if case.error:
            problems.append(f"demo case {case.name} ({case.modality}) could not be read: {case.error}")
            continue
        try:
            loaded = service.load_case(case)
            rendered[case.modality] = len(service.registry.modality(case.modality).render(loaded, {}))
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the self-test
            problems.append(f"demo case {case.name} ({case.modality}): {type(exc).__name__}: {exc}")
    builtin = {"image", "dicom", "point_cloud", "time_series", "video"}
    problems += [f"modality {name} is not available" for name in sorted(builtin - set(service.registry.modalities))]
    problems += [
        f"no demo case of modality {name} could be rendered"
        for name in sorted((builtin & set(service.registry.modalities)) - set(rendered))
    ]
    return problems, rendered


def _check_set_of_mark(service, case, profile) -> tuple[list[str], str]:
    """Marks on a demo case (segments), and segment-anything's automatic mask generator on a small
    randomly initialised model: in a packaged app this is where torchvision's ops or the mark font
    would be missing. No checkpoint is needed (the masks of random weights are meaningless)."""
    problems: list[str] = []
    summary = ""
    try:
        from inspector.prompt import PromptSwitches

        prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True))
        summary = f"{len(prompt.marks)} marks"
        if not prompt.marks:
            problems.append("Set-of-Mark drew no marks on the demo case")
        import numpy as np

        from inspector.localization.sam import SamProposals, SamUnavailableError, tiny_sam

        try:
            sam = SamProposals(
                tiny_sam(image_size=64), points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
            )
        except SamUnavailableError:  # a build without torchvision: SAM is an option, not a requirement
            summary += ", SAM unavailable in this build (no torchvision)"
        else:
            sam.propose(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
            summary += ", SAM mask generator ran"
    except Exception as exc:  # noqa: BLE001 - every failure is reported by the self-test
        problems.append(f"Set-of-Mark: {type(exc).__name__}: {exc}")
    return problems, summary


def run_self_test() -> int:
    """Start-up check for the packaged app: core, weights, plugins, Qt platform, one inspection."""
    import tempfile
    import time

    from inspector.demo import build_demo_project
    from inspector.inspection import InspectionService
    from inspector.plugins import discover

    started = time.perf_counter()
    registry = discover()
    if "image" not in registry.modalities:
        print(f"self-test FAILED: image modality missing; plugin errors: {registry.errors}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="anomalens-selftest-") as tmp:
        store = build_demo_project(Path(tmp) / "selftest.anomalens", registry)
        service = InspectionService(store, registry)
        profile = store.profiles()[0]
        cases = store.cases()
        anomalous = next(c for c in cases if c.ground_truth == "anomalous")
        verdict = service.inspect_offline(anomalous, profile)
        problems, rendered = _check_every_modality(service)
        mark_problems, marks_summary = _check_set_of_mark(service, anomalous, profile)
        problems += mark_problems
        if problems:
            print("self-test FAILED: " + "; ".join(problems), file=sys.stderr)
            return 1
        store.close()
        from inspector.store import ProjectStore

        with ProjectStore(Path(tmp) / "selftest.anomalens", create=False) as again:
            stored = again.latest_verdict(anomalous.id)
        if stored is None or stored.score is None:
            print("self-test FAILED: verdict not stored", file=sys.stderr)
            return 1
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtWidgets import QApplication

        from inspector.settings import AppSettings
        from views.main_window import MainWindow

        app = QApplication.instance() or QApplication([])
        window = MainWindow(AppSettings(), registry, settings_file=Path(tmp) / "settings.json")
        window.show()
        app.processEvents()
        window.force_close = True
        window.close()
    print(
        f"self-test OK: plugins {registry.loaded}; views rendered per modality {rendered}; "
        f"offline verdict on {anomalous.name}: "
        f"{'anomalous' if verdict.anomalous else 'normal'} score {verdict.score:.3f}; "
        f"Set-of-Mark: {marks_summary}; {time.perf_counter() - started:.1f} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.self_test:
        return run_self_test()
    if args.batch:
        return run_batch(args)
    if args.egress:
        return run_egress(args)
    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
