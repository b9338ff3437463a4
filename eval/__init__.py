"""Benchmarks: labeling accuracy and speed on datasets with ground truth (``osed eval``)."""

from eval.labeling import LabelingResult, calibration, evaluate, format_calibration, format_table

__all__ = ["LabelingResult", "calibration", "evaluate", "format_calibration", "format_table"]
