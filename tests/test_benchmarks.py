"""CI smoke-runs every benchmark script at its --quick size: they are not tests of speed
(numbers on a shared CI machine mean little), but they must keep running and print
their tables. No test asserts a wall-clock time: the compile-time budgets are checked
by running ``benchmarks/compile_time.py --strict`` by hand, on an idle machine."""
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks")


def run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), "--quick", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_compile_time_prints_its_tables():
    out = run("compile_time.py")
    assert "over the 300 ms budget:" in out
    assert "over the 2.0 s model budget:" in out


def test_graph_size_prints_the_ratio():
    out = run("graph_size.py")
    assert "sgd" in out and "adam" in out and "x " in out


@pytest.mark.slow
def test_train_throughput_smoke():
    out = run("train_throughput.py", "--threads", "1", "--reps", "1")
    assert "mlp784-256-10" in out and "fit/fused" in out


def test_runtime_matrix_runs_and_agrees():
    out = run("runtime_matrix.py")
    assert "| mse | train_step |" in out and "cells that did not run: 0" in out


def test_fused_ce_prints_both_lowerings():
    out = run("fused_ce.py")
    assert "fused" in out and "portable / fused" in out


def test_rnn_lowering_smoke():
    out = run("rnn_lowering.py", "--threads", "1")
    assert "Scan infer steps/s" in out and "\n8 | " in out
