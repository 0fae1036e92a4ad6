"""The step sweep's table as ``cabench time --quality`` prints it and writes ``sweep.md``: ms per frame,
PSNR and SSIM with their intervals, and the paired difference to the LoRA-off row where there is one
(the values: :func:`benchmark.results.sweep.sweep_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.tables import markdown_escape, markdown_grid


def _interval(value: float, low: float, high: float, digits: int, signed: bool = False) -> str:
    if not np.isfinite(value):
        return ""
    form = f"{'+' if signed else ''}.{digits}f"
    return f"{value:{form}} [{low:{form}}, {high:{form}}]"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The sweep table as printed and written to ``sweep.md``: ms per frame, PSNR and SSIM with their
    intervals, and the paired difference to the reference row where there is one."""
    shown = pd.DataFrame({
        "row": table["label"], "steps": table["steps"],
        "ms/frame": [f"{v:.1f}" if np.isfinite(v) else "" for v in table["total_ms"]],
        "PSNR dB [95% CI]": [_interval(*r, 2) for r in table[["psnr", "psnr_low", "psnr_high"]].to_numpy(float)],
        "SSIM [95% CI]": [_interval(*r, 3) for r in table[["ssim", "ssim_low", "ssim_high"]].to_numpy(float)],
    })
    if table["reference"].astype(bool).any():
        shown["vs"] = table["reference"]
        shown["ΔPSNR dB"] = [_interval(*r, 2, True) for r in
                             table[["psnr_diff", "psnr_diff_low", "psnr_diff_high"]].to_numpy(float)]
        shown["ΔSSIM"] = [_interval(*r, 3, True) for r in
                          table[["ssim_diff", "ssim_diff_low", "ssim_diff_high"]].to_numpy(float)]
    return shown


def markdown(shown: pd.DataFrame) -> str:
    """A Markdown table of :func:`display_table`'s rows."""
    return markdown_grid([str(c) for c in shown.columns],
                         [[markdown_escape(v) for v in row] for row in shown.astype(str).to_numpy()])
