"""Pure analysis of Observations and Pairs: no I/O."""

from cutover.analysis.summary import TargetSummary, percentiles, summarize

__all__ = ["TargetSummary", "percentiles", "summarize"]
