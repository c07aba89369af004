"""Parts ``equality_fp32`` and ``equality_bf16``: the fast routes equal their naive twins on the device.

    equality.py pytest [--cpu] --out OUT -- --device cuda tests/...   # the tests themselves, on the device (fp32)
    equality.py bf16 [--cpu] --out OUT                                # every route combination in bf16 autocast

The float32 part runs the project's own equality tests with ``--device`` (tests/conftest.py), with their own
tolerances (1e-5 on losses, metrics and parameters after one step; tokens equal for the decode). The bf16 part runs
one SGD step of every combination of tests/training/test_route_matrix.py under bf16 autocast and compares it with
the naive route's step, with the tolerances :data:`METRIC_RTOL` and :data:`PARAM_ATOL` (bf16 keeps 8 bits of
mantissa: 4e-3 relative per rounding; a step's losses pass through many).
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from common import ROOT, Report, parser

METRIC_RTOL = 3e-2  # |route - naive| <= METRIC_RTOL * max(1, |naive|), every logged metric
PARAM_ATOL = 1e-2  # every parameter after one SGD step (learning rate 0.5)


def run_pytest(args, pytest_args: list[str]) -> int:
    report = Report(args.out, "equality_fp32", command=["pytest", *pytest_args])
    xml = args.out / "equality_fp32.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *pytest_args]
    rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    suite = ET.parse(xml).getroot().find("testsuite") if xml.exists() else None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} if suite is not None else {}
    failed = [
        f"{c.get('classname')}::{c.get('name')}"
        for c in (suite if suite is not None else [])
        if c.find("failure") is not None or c.find("error") is not None
    ]
    report["counts"], report["failed"], report["rc"] = counts, failed, rc
    report.line(
        f"`pytest {' '.join(pytest_args)}`: {counts.get('tests', 0)} tests, {counts.get('failures', 0)} "
        f"failed, {counts.get('errors', 0)} errors, {counts.get('skipped', 0)} skipped (the tests' own "
        "tolerances, float32)."
    )
    for name in failed[:20]:
        report.line(f"- FAILED {name}")
    return rc


def _step(tokenizer, tmp, routes, dev_cpu: bool):
    from tests.training.helpers import one_sgd_step, param_snapshot, varied_pairs
    from tests.training.test_route_matrix import _options

    trainer, _ = one_sgd_step(
        tokenizer,
        tmp,
        data=varied_pairs(4),
        bf16=True,
        use_cpu=dev_cpu,
        dataloader_pin_memory=False,
        **_options(*routes),
    )
    log = {k: v for k, v in trainer.state.log_history[0].items() if not k.startswith("time/")}
    return log, {n: p.float().cpu() for n, p in param_snapshot(trainer.model).items()}


def compare(log, params, naive_log, naive_params) -> tuple[float, float, str]:
    """(largest metric difference relative to max(1, |naive|), largest parameter difference, worst metric)."""
    rel = {k: abs(log[k] - naive_log[k]) / max(1.0, abs(naive_log[k])) for k in naive_log}
    worst = max(rel, key=rel.get)
    param = max(float((params[n] - naive_params[n]).abs().max()) for n in naive_params)
    return rel[worst], param, worst


def run_bf16(args) -> int:
    import tempfile

    from tests.tiny import make_tokenizer
    from tests.training.test_route_matrix import COMBINATIONS, NAIVE

    report = Report(args.out, "equality_bf16", metric_rtol=METRIC_RTOL, param_atol=PARAM_ATOL, rows=[])
    combos = COMBINATIONS[:3] if args.cpu else COMBINATIONS  # the CPU mode only checks that the part runs
    tokenizer, rows, start = make_tokenizer(), [], time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        from pathlib import Path

        naive = {ref: _step(tokenizer, Path(tmp) / "n", routes, args.cpu) for ref, routes in NAIVE.items()}
        for routes in combos:
            rel, param, worst = compare(*_step(tokenizer, Path(tmp) / "r", routes, args.cpu), *naive[routes[3]])
            ok = rel <= METRIC_RTOL and param <= PARAM_ATOL
            rows.append({"routes": routes, "metric_rel": rel, "worst_metric": worst, "param_abs": param, "ok": ok})
            report["rows"] = rows
    bad = [r for r in rows if not r["ok"]]
    report.line(
        f"bf16 autocast, {len(rows)} route combinations against the naive route, one SGD step each "
        f"({time.monotonic() - start:.0f} s): {len(rows) - len(bad)} within tolerance (metrics "
        f"{METRIC_RTOL} relative, parameters {PARAM_ATOL} absolute); largest metric difference "
        f"{max(r['metric_rel'] for r in rows):.1e}, largest parameter difference "
        f"{max(r['param_abs'] for r in rows):.1e}."
    )
    for r in bad:
        report.line(
            f"- OUTSIDE: {' / '.join(r['routes'])}: {r['worst_metric']} {r['metric_rel']:.1e}, "
            f"parameters {r['param_abs']:.1e}"
        )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mode, rest = argv[0], argv[1:]
    own, pytest_args = (rest[: rest.index("--")], rest[rest.index("--") + 1 :]) if "--" in rest else (rest, [])
    args = parser(__doc__).parse_args(own)
    args.out.mkdir(parents=True, exist_ok=True)
    return run_pytest(args, pytest_args) if mode == "pytest" else run_bf16(args)


if __name__ == "__main__":
    raise SystemExit(main())
