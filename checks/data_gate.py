"""The data gate: schema, values and drift of a training dataset, checked with Great Expectations.

What is checked, derived from `data:` and `gates:` in `launchbay.yaml`:

* the file can be read, has at least `min_rows` rows and exactly the expected columns;
* per feature: its type, its nulls (at most `max_null_fraction`), its range or allowed values;
* the target has no nulls and fits `model.task` (two classes, several, or numbers); the id
  column (if any) is unique;
* drift of every feature against the reference data: PSI over `gates.drift.threshold` and beyond
  sampling noise at these sample sizes (`checks.drift.drift_test`).

Every problem becomes one line of the report; the gate never stops at the first one, because a
data scientist fixing an export wants the whole list at once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from launchbay import storage
from launchbay.checks import drift
from launchbay.checks.report import CheckResult, GateReport
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.config.model import FeatureSpec

GATE = "data gate"
_TYPES = {
    "float": ["float64", "float32", "int64", "int32", "Float64", "Int64"],
    "int": ["int64", "int32", "int16", "int8", "Int64", "Int32", "uint8", "uint16", "uint32"],
    "bool": ["bool", "boolean"],
}
_EXAMPLES = 5


class DataUnreadable(Exception):
    """The data file is missing or cannot be parsed as CSV or Parquet."""


def read_frame(path: str) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by extension) into a DataFrame."""
    remote = storage.is_remote(path)
    if not remote and not Path(path).exists():
        raise DataUnreadable(f"file not found: {path}")
    suffix = Path(path.split("?")[0]).suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise DataUnreadable(f"{path}: unsupported file type {suffix!r} (expected .csv or .parquet)")
    try:
        if remote:  # an object store (s3://, gs://) or any fsspec URL
            fs, inner = storage.filesystem(path)
            if not fs.exists(inner):
                raise DataUnreadable(f"not found: {path}")
            with fs.open(inner, "rb") as fh:
                return pd.read_csv(fh) if suffix == ".csv" else pd.read_parquet(fh)
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except DataUnreadable:
        raise
    except Exception as exc:  # pandas/pyarrow/the store raise many types; all mean "unreadable"
        raise DataUnreadable(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def check_data(path: str, cfg: LaunchbayConfig) -> tuple[GateReport, pd.DataFrame | None]:
    """Run the data gate on the file at `path`.

    Returns:
        The report, and the frame when it could be read (for the caller to train on).
    """
    report = GateReport(GATE, summary={"data": path})
    try:
        frame = read_frame(path)
    except DataUnreadable as exc:
        report.checks.append(CheckResult("data file is readable", Verdict.FAIL, detail=str(exc)))
        return report, None
    report.summary["rows"] = len(frame)
    report.summary["columns"] = len(frame.columns)
    report.checks += _expectations(frame, cfg)
    report.checks += _drift_checks(frame, cfg, report.checks)
    return report, frame


def _expected_columns(cfg: LaunchbayConfig) -> list[str]:
    cols = [*cfg.data.features, cfg.data.target]
    if cfg.data.id_column:
        cols.insert(0, cfg.data.id_column)
    return cols


def _expectations(frame: pd.DataFrame, cfg: LaunchbayConfig) -> list[CheckResult]:
    """Build a suite for this frame, validate it with Great Expectations, translate the results."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite_items: list[tuple[Any, str, Any, str | None]] = []  # (expectation, name, expected, column)

    def add(exp: Any, name: str, expected: Any, column: str | None = None) -> None:
        suite_items.append((exp, name, expected, column))

    expected_cols = _expected_columns(cfg)
    add(
        gxe.ExpectTableColumnsToMatchSet(column_set=expected_cols, exact_match=True),
        "columns match the schema",
        expected_cols,
    )
    add(
        gxe.ExpectTableRowCountToBeBetween(min_value=cfg.data.min_rows),
        "enough rows",
        f">= {cfg.data.min_rows}",
    )

    present = set(frame.columns)
    mostly = 1.0 - cfg.gates.max_null_fraction
    for name, spec in cfg.data.features.items():
        if name not in present:
            continue  # reported once, by the column-set check
        if spec.type in _TYPES:
            add(
                gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=_TYPES[spec.type]),
                f"{name}: type is {spec.type}",
                spec.type,
                name,
            )
        if not spec.nullable:
            add(
                gxe.ExpectColumnValuesToNotBeNull(column=name, mostly=mostly),
                f"{name}: no nulls" if mostly == 1.0 else f"{name}: nulls <= {1 - mostly:.1%}",
                f"null fraction <= {1 - mostly:g}",
                name,
            )
        if not _type_ok(frame[name], spec):
            continue  # a range check on text would only repeat the type failure, less clearly
        if spec.type == "category":
            add(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=spec.values),
                f"{name}: allowed values",
                spec.values,
                name,
            )
        elif spec.min is not None or spec.max is not None:
            add(
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=spec.min, max_value=spec.max),
                f"{name}: values in range",
                f"[{_num(spec.min)}, {_num(spec.max)}]",
                name,
            )

    target = cfg.data.target
    if target in present:
        add(
            gxe.ExpectColumnValuesToNotBeNull(column=target),
            f"{target} (target): no nulls",
            "no nulls",
            target,
        )
        task = cfg.model.task
        if task == "regression":
            add(
                gxe.ExpectColumnValuesToBeInTypeList(column=target, type_list=_TYPES["float"]),
                f"{target} (target): values are numbers",
                "float",
                target,
            )
        else:
            # Any labels (0/1, "spam"/"ham", "red"/"green"/"blue"); the model needs each class to learn.
            most = 2 if task == "binary" else None
            add(
                gxe.ExpectColumnUniqueValueCountToBeBetween(column=target, min_value=2, max_value=most),
                f"{target} (target): {'two classes' if most else 'at least two classes'}",
                "2" if most else ">= 2",
                target,
            )
    id_col = cfg.data.id_column
    if id_col and id_col in present:
        add(gxe.ExpectColumnValuesToBeUnique(column=id_col), f"{id_col}: unique", "unique", id_col)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("launchbay")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="launchbay-data-gate"))
    for i, (exp, *_rest) in enumerate(suite_items):
        exp.meta = {"launchbay_index": i}
        suite.add_expectation(exp)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="launchbay-data-gate", data=batch, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": frame})

    out: list[CheckResult | None] = [None] * len(suite_items)
    for r in result.results:
        i = int((r.expectation_config.meta or {})["launchbay_index"])
        _exp, name, expected, column = suite_items[i]
        out[i] = _translate(r, name, expected, column)
    return [c for c in out if c is not None]


def _translate(r: Any, name: str, expected: Any, column: str | None) -> CheckResult:
    """Turn one Great Expectations result into a check line with observed values and examples."""
    info = r.exception_info or {}
    if info.get("raised_exception"):
        return CheckResult(
            name,
            Verdict.ERROR,
            expected=expected,
            column=column,
            detail=f"check could not run: {info.get('exception_message')}",
        )
    res = r.result or {}
    verdict = Verdict.PASS if r.success else Verdict.FAIL
    details = (res.get("details") or {}).get("mismatched")
    if details:
        parts = []
        if details.get("missing"):
            parts.append(f"missing: {', '.join(map(str, details['missing']))}")
        if details.get("unexpected"):
            parts.append(f"unexpected: {', '.join(map(str, details['unexpected']))}")
        return CheckResult(name, verdict, observed="; ".join(parts), expected=expected, column=column)
    if "unexpected_count" in res:
        count, pct = res.get("unexpected_count") or 0, res.get("unexpected_percent") or 0.0
        observed = f"{count} bad rows ({pct:.2f}%)"
        found = (res.get("partial_unexpected_list") or [])[:_EXAMPLES]
        # A missing value is no example ("e.g. nan, nan, nan" tells nobody anything).
        examples = [_short(v) for v in found if not _missing(v)]
        detail = ""
        if not r.success and examples:
            detail = f"e.g. {', '.join(examples)}"
        elif not r.success and found:
            detail = "the rows have no value there"
        return CheckResult(name, verdict, observed=observed, expected=expected, detail=detail, column=column)
    value = res.get("observed_value")
    detail = (
        ""
        if r.success
        else ("no result (the column's values could not be compared)" if value is None else "")
    )
    return CheckResult(name, verdict, observed=value, expected=expected, detail=detail, column=column)


def _drift_checks(frame: pd.DataFrame, cfg: LaunchbayConfig, schema: list[CheckResult]) -> list[CheckResult]:
    """Compare each feature with the reference data, unless its schema checks already failed."""
    if not cfg.data.reference:
        return []
    ref_path = cfg.resolve_path(cfg.data.reference)
    try:
        reference = read_frame(ref_path)
    except DataUnreadable as exc:
        return [CheckResult("reference data is readable", Verdict.ERROR, detail=str(exc))]
    settings = cfg.gates.drift
    threshold, bins = settings.threshold, settings.bins
    # Bonferroni: every feature is a chance of a false alarm; together they stay under 1 - confidence.
    level = (1 - settings.confidence) / max(1, len(cfg.data.features))
    # Enough resamples that a p-value can get under the level at all (the smallest is 1/(B+1)).
    resamples = max(settings.resamples, math.ceil(2 / level))
    failed_columns = {c.column for c in schema if c.verdict is not Verdict.PASS and c.column}
    checks = []
    for name, spec in cfg.data.features.items():
        label = f"{name}: drift (PSI) vs reference"
        expected = f"<= {threshold:g}, or within noise (p >= {level:.2g})"
        if name not in frame.columns or name in failed_columns:
            checks.append(
                CheckResult(
                    label,
                    Verdict.INCONCLUSIVE,
                    expected=expected,
                    column=name,
                    detail="not measured: the column failed its schema checks",
                )
            )
            continue
        if name not in reference.columns:
            checks.append(
                CheckResult(
                    label,
                    Verdict.ERROR,
                    expected=expected,
                    column=name,
                    detail=f"column missing from the reference data {ref_path}",
                )
            )
            continue
        try:
            test = drift.drift_test(
                reference[name],
                frame[name],
                categorical=spec.type in ("category", "bool"),
                bins=bins,
                resamples=resamples,
            )
        except (ValueError, TypeError) as exc:
            checks.append(
                CheckResult(
                    label, Verdict.ERROR, expected=expected, column=name, detail=f"could not compute: {exc}"
                )
            )
            continue
        large, beyond_noise = test.psi > threshold, test.p_value < level
        verdict = Verdict.FAIL if large and beyond_noise else Verdict.PASS
        sizes = f"p = {test.p_value:.2g} at {test.current_rows} rows vs {test.reference_rows} reference rows"
        if verdict is Verdict.FAIL:
            detail = f"{_drift_detail(reference[name], frame[name], spec)}; {sizes}"
        elif large:
            detail = f"PSI over {threshold:g} but within sampling noise: {sizes}"
        else:
            detail = ""
        checks.append(
            CheckResult(
                label, verdict, observed=round(test.psi, 4), expected=expected, column=name, detail=detail
            )
        )
    return checks


def _drift_detail(ref: pd.Series, cur: pd.Series, spec: FeatureSpec) -> str:
    """Say in words how the distribution moved (median for numbers, top value for categories)."""
    if spec.type in ("category", "bool"):
        r, c = ref.astype(str).value_counts(normalize=True), cur.astype(str).value_counts(normalize=True)
        moved = (
            (
                c.reindex(r.index.union(c.index), fill_value=0)
                - r.reindex(r.index.union(c.index), fill_value=0)
            )
            .abs()
            .sort_values(ascending=False)
        )
        top = moved.index[0]
        return f"share of {top!r} moved from {r.get(top, 0.0):.1%} to {c.get(top, 0.0):.1%}"
    return f"median moved from {ref.median():.4g} to {cur.median():.4g}"


def _type_ok(series: pd.Series, spec: FeatureSpec) -> bool:
    if spec.type == "category":
        return True
    if spec.type == "bool":
        return bool(pd.api.types.is_bool_dtype(series))
    if spec.type == "int":
        return bool(pd.api.types.is_integer_dtype(series))
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def _missing(value: object) -> bool:
    """None, NaN or NaT: a missing value rather than a wrong one."""
    return value is None or (isinstance(value, float) and value != value) or str(value) in _MISSING


_MISSING = ("NaT", "nan", "<NA>")


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."
