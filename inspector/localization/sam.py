"""Segment-anything (SAM) automatic masks as region proposals, from a checkpoint the operator provides.

SAM gives the best object outlines for Set-of-Mark marks, but its checkpoints are 375 MB to 2.5 GB
and licensed separately, so the workstation never downloads them: the operator downloads one and
sets its path in Settings. Everything that can go wrong with that file (missing, unreadable, not a
checkpoint, a checkpoint for another model size) becomes a `SamUnavailableError` whose message says
what to do, so the interface can show it as is.

Models are loaded on the CPU (the official builders call ``torch.load`` without ``map_location``,
which fails for checkpoints saved from a GPU on a machine without one, and would unpickle arbitrary
objects), and cached per (model type, path, modification time) since a load takes seconds.

`tiny_sam` builds a small SAM with random weights from the real model classes: it produces
meaningless masks and exists so the real automatic-mask-generator path can be tested without a
checkpoint.
"""

from __future__ import annotations

import logging
import pickle
import threading
import zipfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from inspector.localization.masks import Proposal
from inspector.localization.proposals import (
    ProposalCancelledError,
    RefineParams,
    as_rgb,
    rank_by_heatmap,
)

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

log = logging.getLogger(__name__)

# The official checkpoints (segment-anything README, "Model Checkpoints").
SAM_CHECKPOINTS = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
SAM_DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_README_URL = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
# image-encoder width of each official model: tells which model a checkpoint was saved from
_ENCODER_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_MODEL_ALIASES = {"default": "vit_h"}


class SamUnavailableError(Exception):
    """SAM cannot be used as configured; the message is written for the operator."""


def checkpoint_help(model_type: str | None = None) -> str:
    """Where the official checkpoints are and where to set the path (for error messages)."""
    names = ", ".join(f"{name} ({kind})" for kind, name in SAM_CHECKPOINTS.items())
    wanted = SAM_CHECKPOINTS.get(_MODEL_ALIASES.get(model_type or "", model_type or ""))
    hint = f" For model type {model_type} use {wanted}." if wanted else ""
    return (
        f"Download an official SAM checkpoint — {names} — from the segment-anything README "
        f"({SAM_README_URL}) or {SAM_DOWNLOAD_URL}<file name>, then set its path and model type in "
        f"Settings ▸ Localization (Set-of-Mark).{hint} The workstation never downloads checkpoints itself."
    )


def require_segment_anything() -> None:
    """Import segment-anything, or say plainly why this installation cannot run it.

    Importing it imports torchvision (its mask generator uses torchvision's NMS). A packaged build
    made with the CPU-only torch wheel and no matching CPU torchvision has none, and a torchvision
    built for another torch fails at import with "operator torchvision::nms does not exist".
    """
    try:
        import segment_anything  # noqa: F401
    except Exception as exc:  # ImportError, or RuntimeError from a torchvision built for another torch
        raise SamUnavailableError(
            "Segment Anything cannot run in this installation: it needs torchvision matching the installed "
            f"torch ({type(exc).__name__}: {exc}). Use the segments, heat-map or hybrid proposals, or a "
            "source install (scripts/setup.sh installs torch with torchvision)."
        ) from exc


def _builder(model_type: str) -> Callable[..., Sam]:
    require_segment_anything()
    from segment_anything import sam_model_registry

    builder = sam_model_registry.get(model_type)
    if builder is None:
        known = ", ".join(sorted(SAM_CHECKPOINTS))
        raise SamUnavailableError(f"Unknown SAM model type {model_type!r}: use one of {known}. " + checkpoint_help())
    return builder


def _read_state_dict(path: Path, model_type: str) -> dict[str, Any]:
    """The checkpoint's state dict, loaded on the CPU with ``weights_only`` (no arbitrary objects)."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as exc:
        raise SamUnavailableError(
            f"The SAM checkpoint {path} could not be read as a PyTorch checkpoint ({type(exc).__name__}); "
            f"the file may be incomplete or not a checkpoint. " + checkpoint_help(model_type)
        ) from exc
    if isinstance(loaded, Mapping) and not any(str(k).startswith("image_encoder.") for k in loaded):
        for key in ("model", "state_dict"):  # fine-tuning scripts often wrap the weights
            inner = loaded.get(key)
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise SamUnavailableError(
            f"The file {path} is not a SAM checkpoint (no model weights inside). " + checkpoint_help(model_type)
        )
    return dict(loaded)


def _guess_model_type(state: Mapping[str, Any]) -> str | None:
    weight = state.get("image_encoder.patch_embed.proj.weight")
    shape = getattr(weight, "shape", None)
    return _ENCODER_WIDTH.get(int(shape[0])) if shape else None


def _load_checkpoint(builder: Callable[..., Sam], path: Path, model_type: str) -> Sam:
    """Build with random weights (no file access by the builder), then load the state dict on the CPU."""
    state = _read_state_dict(path, model_type)
    model = builder(checkpoint=None)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        guessed = _guess_model_type(state)
        if guessed and guessed != _MODEL_ALIASES.get(model_type, model_type):
            why = f"it looks like a {guessed} checkpoint ({SAM_CHECKPOINTS[guessed]}): set the model type to {guessed}"
        else:
            why = "its weights do not match the model (wrong file, or a modified SAM)"
        raise SamUnavailableError(
            f"The SAM checkpoint {path} does not fit model type {model_type}: {why}. " + checkpoint_help(model_type)
        ) from exc
    model.eval()
    return model


_CACHE: dict[tuple[str, str, int, int], Sam] = {}
_CACHE_LOCK = threading.Lock()


def clear_sam_cache() -> None:
    """Forget loaded models (they hold hundreds of MB)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def load_sam(model_type: str, checkpoint: str | Path) -> Sam:
    """A SAM model on the CPU from an operator-provided checkpoint; never downloads anything.

    Cached per (model type, resolved path, modification time, size): a replaced file is reloaded,
    and only the latest version of a path is kept. Raises `SamUnavailableError` for an unknown model
    type or a missing, unreadable, non-checkpoint or mismatched file.
    """
    model_type = str(model_type or "").strip().lower()
    builder = _builder(model_type)
    raw = str(checkpoint or "").strip()
    if not raw:
        raise SamUnavailableError("No SAM checkpoint is set. " + checkpoint_help(model_type))
    path = Path(raw).expanduser()
    try:
        path = path.resolve()
        stat = path.stat()
    except OSError as exc:
        raise SamUnavailableError(
            f"The SAM checkpoint {path} does not exist or cannot be opened. " + checkpoint_help(model_type)
        ) from exc
    if not path.is_file():
        raise SamUnavailableError(f"The SAM checkpoint path {path} is not a file. " + checkpoint_help(model_type))
    key = (model_type, str(path), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        model = _load_checkpoint(builder, path, model_type)
        for old in [k for k in _CACHE if k[:2] == key[:2]]:
            del _CACHE[old]
        _CACHE[key] = model
    log.info("loaded SAM %s from %s", model_type, path)
    return model


def tiny_sam(image_size: int = 256, seed: int = 0) -> Sam:
    """A small SAM with random weights built from segment-anything's real model classes.

    It produces meaningless masks. It exists so the real `SamAutomaticMaskGenerator` code path
    (resizing, point grids, mask decoding, stability scores, NMS) can be exercised in tests and in
    an offline smoke check without a checkpoint. `image_size` must be a multiple of 16 (the patch
    size); the prompt encoder's embedding grid is image_size // 16, as the generator expects.
    """
    import torch

    require_segment_anything()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if image_size < 32 or image_size % 16:
        raise ValueError(f"tiny_sam image_size must be a multiple of 16 and at least 32, got {image_size}")
    dim, patch = 64, 16
    grid = image_size // patch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam(
            image_encoder=ImageEncoderViT(
                img_size=image_size,
                patch_size=patch,
                embed_dim=dim,
                depth=2,
                num_heads=2,
                mlp_ratio=4.0,
                out_chans=dim,
                qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=max(1, min(8, grid)),
                global_attn_indexes=(1,),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=dim,
                image_embedding_size=(grid, grid),
                input_image_size=(image_size, image_size),
                mask_in_chans=16,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=128, num_heads=2),
                transformer_dim=dim,
                iou_head_depth=3,
                iou_head_hidden_dim=dim,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
        with torch.no_grad():
            # The default init leaves positional embeddings and relative positions at zero: give
            # them a little noise so the masks vary with the point prompt.
            for name, param in model.named_parameters():
                if "pos_embed" in name or "rel_pos" in name:
                    param.normal_(0.0, 0.02)
            # Random decoders give mask logits within ±1 of the threshold everywhere, so every
            # stability score is 0 and all scores tie; a gain on the hypernetwork output spreads them.
            for mlp in model.mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(20.0)
    model.eval()
    return model


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """The mask without holes or islands smaller than `min_area` pixels.

    What `SamAutomaticMaskGenerator`'s ``min_mask_region_area`` does, but with scipy: the
    generator needs OpenCV for it, which the workstation does not ship.
    """
    if min_area <= 0:
        return mask
    out = mask.copy()
    holes, n = ndimage.label(~out)
    if n:
        sizes = np.bincount(holes.ravel())
        small = np.flatnonzero(sizes < min_area)
        small = small[small > 0]
        if small.size:
            out |= np.isin(holes, small)
    islands, n = ndimage.label(out)
    if n:
        sizes = np.bincount(islands.ravel())
        small = np.flatnonzero(sizes < min_area)
        small = small[small > 0]
        if small.size and small.size < n:  # never remove every island
            out &= ~np.isin(islands, small)
    return out


class SamProposals:
    """SAM automatic masks as proposals: score = predicted IoU × stability, or the heat map's ranking.

    The generator's parameters are SAM's own (see `SamAutomaticMaskGenerator`); its defaults are
    tuned for vit_h. ``min_mask_region_area`` is applied here with scipy (the generator would need
    OpenCV). `is_cancelled`, when given, is polled before each crop's image encoding and each point
    batch; a True answer raises `ProposalCancelledError`.
    """

    name = "sam"
    needs_heatmap = False

    def __init__(
        self,
        model: Sam,
        *,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        crop_n_layers: int = 0,
        min_mask_region_area: int = 0,
        box_nms_thresh: float = 0.7,
        refine: RefineParams | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> None:
        if points_per_side < 1 or points_per_batch < 1 or crop_n_layers < 0 or min_mask_region_area < 0:
            raise ValueError(
                "SAM parameters out of range (points_per_side >= 1, points_per_batch >= 1, "
                "crop_n_layers >= 0, min_mask_region_area >= 0)"
            )
        self.model = model
        self.amg_params: dict[str, Any] = {
            "points_per_side": int(points_per_side),
            "points_per_batch": int(points_per_batch),
            "pred_iou_thresh": float(pred_iou_thresh),
            "stability_score_thresh": float(stability_score_thresh),
            "crop_n_layers": int(crop_n_layers),
            "box_nms_thresh": float(box_nms_thresh),
        }
        self.min_mask_region_area = int(min_mask_region_area)
        self.refine = refine or RefineParams()
        self.is_cancelled = is_cancelled

    def _generator(self) -> Any:
        require_segment_anything()
        from segment_anything import SamAutomaticMaskGenerator

        is_cancelled = self.is_cancelled

        def check() -> None:
            if is_cancelled is not None and is_cancelled():
                raise ProposalCancelledError("SAM proposals cancelled")

        class _Generator(SamAutomaticMaskGenerator):
            # the image encoder runs once per crop (the slow part), the decoder once per batch
            def _process_crop(self, *args: Any, **kwargs: Any) -> Any:
                check()
                return super()._process_crop(*args, **kwargs)

            def _process_batch(self, *args: Any, **kwargs: Any) -> Any:
                check()
                return super()._process_batch(*args, **kwargs)

        return _Generator(self.model, output_mode="binary_mask", min_mask_region_area=0, **self.amg_params)

    def propose(self, image: np.ndarray, heatmap: np.ndarray | None = None) -> list[Proposal]:
        """Refined SAM masks in image pixels, best first."""
        rgb = as_rgb(image)
        shape = rgb.shape[:2]
        records = self._generator().generate(rgb)
        found = []
        for rec in records:
            mask = np.asarray(rec["segmentation"], dtype=bool)
            mask = remove_small_regions(mask, self.min_mask_region_area)
            score = float(rec.get("predicted_iou", 0.0)) * float(rec.get("stability_score", 0.0))
            found.append(Proposal(mask=mask, score=float(np.clip(score, 0.0, 1.0)), source="sam", label="segment"))
        found.sort(key=lambda p: -p.score)
        if heatmap is not None:
            found = rank_by_heatmap(found, heatmap)
        return self.refine.apply(found, shape)
