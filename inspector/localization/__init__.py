"""Localization: region proposals, Set-of-Mark prompts and localization metrics.

Set-of-Mark prompting (Yang et al., 2023; used for anomaly localization by Cao et al., 2023)
draws numbered marks on candidate regions and asks the VLM which marks are anomalous: models
name a number far more reliably than they draw a box. The pieces:

- `masks`: the `Proposal` every proposal method returns and the run-length mask encoding used to
  store masks with prompts and regions.
- `proposals`: proposal methods (classical segments, the offline detector's heat map, regions the
  operator draws), filtering, duplicate merging and ranking.
- `sam`: segment-anything automatic masks from a checkpoint the operator provides (never downloaded).
- `marks`: drawing the numbered marks and the mark -> mask map.
- `metrics`: pixel AUROC, AUPRO and region precision / recall against ground-truth masks.
"""
