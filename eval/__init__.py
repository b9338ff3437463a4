"""Benchmarks: labeling accuracy and speed on datasets with ground truth (``osed eval``)."""

from eval.labeling import LabelingResult, evaluate, format_calibration, format_table, reliability

__all__ = ["LabelingResult", "evaluate", "format_calibration", "format_table", "reliability"]
