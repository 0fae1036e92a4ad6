"""Registry entry of the runtime column ``time_s``: seconds of rendering per frame.

Runtime is not computed from frames: an adapter that renders measures its wall time (models
loaded beforehand, device synchronised) and the runner records it beside the frames' metrics.
It is registered so that tables, plots and summaries read its direction, unit and precision
from the same registry as every metric's; asking for it as a metric is an error.
"""

from __future__ import annotations

import math
from typing import Any

from metrics.errors import CabenchError
from metrics.registry import Evaluator, MetricSpec, register

TIME_COLUMN = "time_s"


def _measured_not_computed(**_: Any) -> Evaluator:
    raise CabenchError(f"{TIME_COLUMN} is measured while a method renders, not computed from frames")


register(MetricSpec(TIME_COLUMN, higher_is_better=False, unit="s",
                    description="wall time of rendering per frame, models loaded beforehand (the paper's Time)",
                    factory=_measured_not_computed, kind="runtime", paper_format=".2f", value_range=(0.0, math.inf)))
