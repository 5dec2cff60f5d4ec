"""Anomalens core: everything that is not a widget.

The package never imports Qt widgets, so the whole inspection flow (reading cases, composing
prompts, asking a VLM, running the offline detector, storing results) runs and is tested
headless. `views/` is the thin Qt layer on top.
"""

__version__ = "0.1.0"


def _keep_triton_out() -> None:
    """Make ``import triton`` fail fast, before anything imports torch's compiler stack.

    torchvision's ops (which segment-anything needs) import ``torch._dynamo``, which probes for
    Triton by importing it. The CUDA build of torch ships Triton with its own LLVM, and loading it
    into a process where Mesa's llvmpipe (VTK, Qt OpenGL on a machine without a GPU driver) has
    already loaded LLVM crashes the process (segmentation fault; reproduced with a VTK render
    followed by ``import torchvision.ops``). The workstation runs its models eagerly and never
    compiles them, so Triton is never needed; torch treats the ImportError as "not installed".
    """
    import sys

    sys.modules.setdefault("triton", None)  # type: ignore[arg-type]


_keep_triton_out()
