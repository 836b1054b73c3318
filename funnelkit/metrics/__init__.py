"""The funnel metrics, one module per family (definitions: docs/metrics.md).

Every public metric is re-exported here, so ``fk.metrics.<TAB>`` lists them all:

>>> import funnelkit as fk
>>> sorted(n for n in fk.metrics.__all__ if n.startswith("fun"))
['funnel']

Modules: :mod:`.stages` (snapshots, funnel, stage flow), :mod:`.stage_time` (time in stage, stuck
deals), :mod:`.closing` (days to close, Kaplan-Meier), :mod:`.size` (win rate, deal size, velocity),
:mod:`.breakdown` (amount by source, product, owner, ...), :mod:`.forecast` (win forecast and its
backtest), :mod:`.landing` (where the period will land, coverage, pacing), :mod:`.accuracy` (the
landing forecast's record, rebuilt for past periods), :mod:`.summary` (everything for one period, as ``funnelkit metrics`` prints it).
"""

from .accuracy import ForecastAccuracy, default_accuracy_periods, forecast_accuracy
from .breakdown import amount_by
from .categories import forecast_categories
from .closing import CloseTimeSurvival, close_time_survival, closed_in_period, days_to_close, size_band
from .cohorts import cohort_conversion
from .landing import LandingForecast, coverage, landing_by_week, landing_forecast, pacing, won_between
from .forecast import (ForecastBacktest, NotEnoughHistory, backtest_forecast, default_backtest_dates,
                       expected_won_by, forecast_range, win_forecast)
from .movement import PipelineWaterfall, pipeline_at, pipeline_waterfall, stage_movement, waterfall_fields
from .slippage import date_changes, expected_to_close, lost_reasons, slipping_deals, win_rate_by_pushes
from .size import deal_size, deal_size_by_month, outlier_deals, sales_velocity, target_plan, win_rate
from .stage_time import ended_visits, stage_thresholds, stuck_deals, time_in_stage, win_rate_by_time_in_stage
from .stages import (bottleneck, cohort_outcomes, funnel, snapshot, stage_flow, unvisited_stages,
                     weekly_snapshots, week_ends)
from .summary import amount_coverage, format_summary, metrics_summary

__all__ = [
    # stages
    "snapshot", "weekly_snapshots", "week_ends", "funnel", "cohort_outcomes", "stage_flow", "bottleneck",
    "unvisited_stages",
    # time in stage
    "time_in_stage", "ended_visits", "stage_thresholds", "stuck_deals", "win_rate_by_time_in_stage",
    # closing
    "closed_in_period", "days_to_close", "size_band", "close_time_survival", "CloseTimeSurvival",
    # deal size and win rate
    "win_rate", "deal_size", "deal_size_by_month", "outlier_deals", "target_plan", "sales_velocity",
    # breakdowns
    "amount_by",
    # forecast
    "win_forecast", "expected_won_by", "forecast_range", "backtest_forecast", "default_backtest_dates",
    "ForecastBacktest", "NotEnoughHistory",
    # will we hit the number
    "landing_forecast", "LandingForecast", "landing_by_week", "coverage", "pacing", "won_between",
    "forecast_accuracy", "ForecastAccuracy", "default_accuracy_periods", "forecast_categories",
    # where the pipeline went
    "pipeline_at", "pipeline_waterfall", "stage_movement", "PipelineWaterfall", "waterfall_fields",
    # cohort conversion over time
    "cohort_conversion",
    # slipping deals
    "date_changes", "slipping_deals", "expected_to_close", "win_rate_by_pushes", "lost_reasons",
    # everything for one period
    "metrics_summary", "format_summary", "amount_coverage",
]
