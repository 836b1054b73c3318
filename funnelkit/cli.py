"""The ``funnelkit`` command line: a thin layer over the library, with no logic of its own.

Commands: ``validate``, ``sample-data``, ``metrics``, ``report``, ``import``. Bad input ends with a
clear message on stderr and a non-zero exit, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .errors import ArgumentError, FunnelkitError

__all__ = ["main", "build_parser"]

EXIT_PROBLEMS = 1   # validate found problems
EXIT_USAGE = 2      # bad input, bad arguments


def _period_args(p: argparse.ArgumentParser, allow_all: bool = False) -> None:
    g = p.add_argument_group("period (a quarter, or start and end dates)")
    g.add_argument("--quarter", help="a calendar quarter such as 2026Q3")
    g.add_argument("--start", help="first day of the period, YYYY-MM-DD")
    g.add_argument("--end", help="last day of the period (inclusive), YYYY-MM-DD")
    g.add_argument("--as-of", dest="as_of",
                   help="see the data as it stood at this instant (default: the day after --end, 00:00, or the "
                        "end of the data's last day when the data ends inside the period)")
    if allow_all:
        g.add_argument("--all-quarters", action="store_true",
                       help="every quarter present in the data, plus an index.html linking them")


def _load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lenient", action="store_true",
                   help="drop invalid rows instead of failing; the accounting (rows read = loaded + "
                        "rejected, and why) is printed to stderr, and `report` also writes the rejected "
                        "rows with their reasons to a CSV in --out")
    p.add_argument("--currency", help="use only the deals in this currency (for data sets with several)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnelkit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"funnelkit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a data set against the contract")
    p.add_argument("path", metavar="DATA_DIR")
    p.add_argument("--lenient", action="store_true",
                   help="keep going: drop bad rows, write them to a rejected-rows CSV, print the accounting")
    p.add_argument("--out", default="reports",
                   help="folder for the rejected-rows CSV in --lenient mode (never the input folder; default: reports)")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = sub.add_parser("sample-data", help="write a realistic synthetic data set")
    p.add_argument("out", metavar="OUT_DIR")
    p.add_argument("--deals", type=int, default=3000, help="number of deals (default 3000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    p.add_argument("--start", default=None, help="first creation date, YYYY-MM-DD (default 2024-10-01)")
    p.add_argument("--days", type=int, default=None, help="length of the creation window in days (default 730)")
    p.add_argument("--format", choices=["csv", "parquet", "xlsx"], default="csv", dest="table_format")
    p.add_argument("--force", action="store_true", help="replace a data set already in OUT_DIR")
    p.add_argument("--lang", choices=["en", "zh"], default="en",
                   help="language of the stage, source, product and owner names (zh: Chinese, amounts in CNY)")
    p.add_argument("--with-changes", action="store_true",
                   help="also write deal_changes.csv (pushed close dates, amount edits, forecast categories)")

    p = sub.add_parser("metrics", help="compute the funnel metrics for a period")
    p.add_argument("path", metavar="DATA_DIR")
    _period_args(p)
    _load_args(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--target", type=float, default=None, help="revenue target for the target planner")
    p.add_argument("--stuck-quantile", type=float, default=0.9,
                   help="quantile of past visits beyond which an open deal is stuck (default 0.9)")
    p.add_argument("--accuracy-quarters", type=int, default=4,
                   help="latest ended quarters whose landing forecasts are rebuilt week by week for the "
                        "forecast_accuracy block (default 4; 0 skips it, the slowest part)")

    p = sub.add_parser("report", help="render the quarterly report notebook to self-contained HTML")
    p.add_argument("path", metavar="DATA_DIR")
    _period_args(p, allow_all=True)
    _load_args(p)
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--with-code", action="store_true", help="keep the code cells in the HTML")
    p.add_argument("--target", type=float, default=None, help="revenue target for the target planner")
    p.add_argument("--stuck-quantile", type=float, default=0.9)
    p.add_argument("--title", default=None)
    p.add_argument("--locale", default=None,
                   help="write numbers, money, percents, days and dates as this locale does, e.g. zh_CN, "
                        "de_DE, en_US, ja_JP (default: funnelkit's plain style, 1,234 EUR)")
    p.add_argument("--lang", default=None,
                   help="language of the report's text: en (default) or zh (Simplified Chinese); numbers "
                        "follow --locale")
    p.add_argument("--timeout", type=int, default=300,
                   help="execution timeout per notebook cell, seconds (default 300; never unlimited)")

    p = sub.add_parser("import", help="turn a CRM export into a data set in the contract")
    p.add_argument("format", metavar="FORMAT", help="hubspot, salesforce or table")
    p.add_argument("sources", metavar="SRC", nargs="+", help="export file(s)")
    p.add_argument("--out", required=True, help="data set folder to write")
    p.add_argument("--map", dest="column_map",
                   help="YAML column map (table format); a shipped map name such as 'maven_crm' also works")
    p.add_argument("--stage-map", dest="stage_map",
                   help="YAML mapping of CRM stage labels to pipeline stages, 'won' or 'lost'")
    p.add_argument("--rates", help="CSV of currency,rate to convert amounts into --currency")
    p.add_argument("--currency", help="currency to convert into (with --rates)")
    p.add_argument("--encoding", help="source encoding (default: detected)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")
    p.add_argument("--strict-dates", action="store_true",
                   help="reject won/lost deals whose close date is before their creation date "
                        "(default: keep them for counts and amounts, flagged dates_estimated)")
    p.add_argument("--escape-formulas", action="store_true",
                   help="prefix text cells starting with =, +, - or @ with ' (for files opened in a spreadsheet)")
    return parser


def _version() -> str:
    from . import __version__
    return __version__


def _load(args):
    from .loading import load
    ds = load(args.path, errors="report" if getattr(args, "lenient", False) else "raise")
    if getattr(args, "lenient", False):
        print(ds.report.summary(), file=sys.stderr)
    if getattr(args, "currency", None):
        ds = ds.in_currency(args.currency)
    return ds


def _period(args, ds=None):
    """The period of --quarter/--start/--end/--as-of; without --as-of and given the data set, seen at
    the end of the data when the data ends inside the period (as the report does)."""
    from .metrics.summary import as_of_within_data
    from .period import Period
    period = Period.parse(start=args.start, end=args.end, quarter=args.quarter, as_of=args.as_of)
    return period if ds is None or args.as_of else as_of_within_data(ds, period)


def _cmd_validate(args) -> int:
    from .io import is_inside
    from .loading import validate
    report = validate(args.path)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
    if args.lenient:
        if is_inside(args.out, args.path):
            raise ArgumentError(f"--out {args.out} is inside the input folder {args.path}: "
                             "input folders are never written to; choose another folder")
        target = Path(args.out) / f"{Path(args.path).resolve().name or 'dataset'}.rejected.csv"
        if len(report.rejected):
            print(f"rejected rows with their reasons: {report.write_rejected(target)}")
        elif target.exists():
            target.unlink()      # from an earlier run: it no longer describes the data
            print(f"no rows rejected; removed the earlier {target}")
    # Exit 0 only for a clean data set, in lenient mode too (its CSV is written all the same).
    return 0 if report.ok else EXIT_PROBLEMS


def _cmd_sample(args) -> int:
    from .sample import write_sample
    out = write_sample(args.out, deals=args.deals, seed=args.seed, start=args.start, days=args.days,
                       table_format=args.table_format, force=args.force, lang=args.lang,
                       with_changes=args.with_changes)
    print(f"wrote a sample data set of {args.deals} deals (seed {args.seed}) to {out}"
          + (" with a change log" if args.with_changes else ""))
    return 0


def _cmd_metrics(args) -> int:
    from .metrics.summary import format_summary, metrics_summary
    ds = _load(args)
    summary = metrics_summary(ds, _period(args, ds), target=args.target, stuck_quantile=args.stuck_quantile,
                              accuracy_quarters=max(args.accuracy_quarters, 0))
    if args.format == "json":
        print(json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(format_summary(summary))
    return 0


def _cmd_report(args) -> int:
    from .report import render_all_quarters, render_report
    params = dict(target=args.target, stuck_quantile=args.stuck_quantile, title=args.title,
                  lenient=args.lenient, currency=args.currency, locale=args.locale,
                  lang=args.lang)
    if args.all_quarters:
        if args.quarter or args.start or args.end or args.as_of:
            raise ArgumentError("--all-quarters renders every quarter in the data: leave out --quarter, "
                             "--start, --end and --as-of (or drop --all-quarters)")
        index = render_all_quarters(args.path, args.out, with_code=args.with_code,
                                    timeout=args.timeout, **params)
        print(f"wrote {index}")
    else:
        result = render_report(args.path, _period(args), args.out, with_code=args.with_code,
                               timeout=args.timeout, **params)
        print(f"wrote {result}")
    return 0


def _cmd_import(args) -> int:
    from .importers import import_export
    result = import_export(args.format, args.sources, args.out, column_map=args.column_map,
                           stage_map=args.stage_map, rates=args.rates, currency=args.currency,
                           encoding=args.encoding, force=args.force, strict_dates=args.strict_dates,
                           escape_formulas=args.escape_formulas)
    print(result.summary())
    return 0


COMMANDS = {"validate": _cmd_validate, "sample-data": _cmd_sample, "metrics": _cmd_metrics,
            "report": _cmd_report, "import": _cmd_import}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    if not args.debug:
        warnings.showwarning = lambda message, *rest, **kw: print(
            f"funnelkit {args.command}: note: {message}", file=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader went away (e.g. `funnelkit metrics ... | head`): not an error worth a traceback.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FunnelkitError as exc:   # funnelkit's own errors: the message says what and why
        if args.debug:
            raise
        print(f"funnelkit {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # A missing file, a full disk, a read-only folder, an I/O error: "PATH: reason" (outputs
        # are atomic, so nothing half-written is left).
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        why = exc.strerror.lower() if exc.strerror else str(exc)   # not "[Errno 17] ..."
        print(f"funnelkit {args.command}: {where}{why}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
