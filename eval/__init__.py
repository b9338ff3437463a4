"""Benchmarks: labeling accuracy and speed on datasets with ground truth (``osed eval``)."""

from eval.labeling import LabelingResult, evaluate, format_table

__all__ = ["LabelingResult", "evaluate", "format_table"]
