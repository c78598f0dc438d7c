"""The `medgov` command: one-line errors with non-zero exits, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

MEDGOV = [str(Path(sys.executable).with_name("medgov"))]


def run(*args, env=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run(MEDGOV + list(args), capture_output=True, text=True, env=e, timeout=300)


@pytest.mark.parametrize("args,needle,code", [
    (["--no-such-option"], "No such option", 2),
    (["run", "--landing", "/no/such/dir", "--lake", "/tmp/x"], "landing folder not found", 1),
    (["report", "--lake", "/no/such/lake"], "lake folder not found", 1),
    (["generate", "--out", "/tmp/x", "--patients", "many"], "Invalid value", 2),
    (["run", "--lake", "/tmp/x"], "Missing option", 2),
    (["generate", "--out", "/tmp/x", "--style", "odd"], "--style must be sample or foreign", 1),
    (["run", "--landing", "/tmp", "--lake", "/tmp/x", "--config", "/no/such/config"],
     "site configuration folder not found", 1),
    (["terms", "accept", "H33030200001", "X"], "give ORG CODE LOINC", 1),
    (["terms", "--lake", "/no/such/lake"], "holds no lab results yet", 1),
    (["terms", "--lake", "/tmp", "--config", "/no/such/config"], "site configuration folder not found", 1),
])
def test_user_mistakes_are_one_line(args, needle, code):
    p = run(*args)
    assert p.returncode == code
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("medgov: error:")
    assert "Traceback" not in p.stderr


def test_run_without_key_is_an_error(tmp_path):
    (tmp_path / "landing").mkdir()
    p = run("run", "--landing", str(tmp_path / "landing"), "--lake", str(tmp_path / "lake"),
            env={"MEDGOV_PSEUDONYM_KEY": "", "MEDGOV_PSEUDONYM_KEY_FILE": ""})
    assert p.returncode == 1 and "no pseudonym key" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "lake").exists()


def test_revalidate_refuses_what_it_cannot_do_in_one_line(tmp_path):
    from medgov.storage import control
    from medgov.storage.lake import Lake

    p = run("revalidate", "--lake", str(tmp_path / "nolake"), "--batch", "H1/b1")
    assert p.returncode == 1 and "lake folder not found" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    lake = Lake.at(tmp_path / "lake")
    control.set_batches(lake, [{"batch_key": "H1/b1", "org_code": "H1", "batch_id": "b1", "fingerprint": "f",
                                "stage": "bronze", "updated_at": control.now(), "run_id": "r"}])
    p = run("revalidate", "--lake", str(tmp_path / "lake"), "--batch", "H1/b2")
    assert p.returncode == 1 and "no batch H1/b2" in p.stderr and "Traceback" not in p.stderr
    p = run("revalidate", "--lake", str(tmp_path / "lake"), "--batch", "H1/b1")
    assert p.returncode == 1 and "batch H1/b1 is bronze: it reaches the gate on its own" in p.stderr


def test_report_on_an_empty_folder(tmp_path):
    p = run("report", "--lake", str(tmp_path))
    assert p.returncode == 1 and "no medgov lake yet" in p.stderr


def test_generate_writes_ready_batches(tmp_path):
    p = run("generate", "--out", str(tmp_path / "l"), "--patients", "20", "--seed", "3")
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "l").glob("*/*.ready"))) == 7


def test_report_prints_the_summary(demo):
    p = run("report", "--lake", str(demo.lake), env={"COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "6 accepted" in out and "1 rejected" in out and "gold.ckd_registry" in out
    assert "Quality score per layer" in out and "index.html" in out and "events.jsonl" in out


def test_report_summary_numbers(demo):
    from medgov.report import summary

    s = summary(demo.lake)
    assert s["batches"] == {"accepted": 6, "rejected": 1, "deferred": 0, "by_stage": {"published": 6}}
    lab = next(t for t in s["tables"] if t["layer"] == "bronze" and t["table"] == "lab_result")
    assert lab["quarantined"] == 12 and lab["rows"] > 0
    assert set(s["quality"]) == {"ingest", "normalize", "bronze", "silver"}
    assert 0 < s["quality"]["silver"]["score"] <= 1
    assert s["quality"]["ingest"]["blocking_failures"] == 1  # the corrupt batch's sha256
    assert s["rejected"] == {"91350100M000100Y43/20230101-b9": s["rejected"]["91350100M000100Y43/20230101-b9"]}
    assert "sha256" in s["rejected"]["91350100M000100Y43/20230101-b9"]
    assert sum(q["rows"] for q in s["quarantine"] if q["table"] == "lab_result" and q["layer"] == "bronze") >= 12
    assert any(f["column"] == "id_no_valid" for f in s["failing_checks"])


def test_run_prints_what_it_did_and_logs_no_identifier(one_org, two_cli_runs):
    """What `medgov run` printed (two runs at once: one did the work, one found it done): what
    each stage did, and no raw identifier of the delivered data anywhere in it."""
    printed = ["".join(o[1:]) for o in two_cli_runs.outputs]
    worked = next(out for out in printed if "ingest: 2 batch(es) accepted, 0 rejected, 0 deferred, 0 unchanged" in out)
    assert "normalize: patient " in worked and "validate: " in worked and "publish: gold.ckd_registry" in worked
    assert any("ingest: 0 batch(es) accepted, 0 rejected, 0 deferred, 2 unchanged" in out for out in printed)
    for out in printed:
        assert "Traceback" not in out
        assert not [i for i in one_org.generated.identifiers if len(i) >= 2 and i in out]


def test_unexpected_error_is_one_line_too(tmp_path, monkeypatch, capsys):
    """An exception no one foresaw still ends as one line (the handler itself must not fail)."""
    from medgov import cli, report

    def boom(lake):
        raise RuntimeError("disk on fire\nsecond line with details")

    monkeypatch.setattr(report, "summary", boom)
    monkeypatch.setattr(sys, "argv", ["medgov", "report", "--lake", str(tmp_path)])
    monkeypatch.delenv("MEDGOV_DEBUG", raising=False)
    code = cli.dispatch()
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "medgov: error: RuntimeError: disk on fire (set MEDGOV_DEBUG=1 for details)"


_FINALISER = """
import atexit, os, sys
class AbortsInFinalisation:  # stands in for a native pool torn down at interpreter exit
    def __del__(self):
        os.abort()
held = AbortsInFinalisation()
atexit.register(lambda: print("exit handler ran", flush=True))
print("output written", flush=True)
"""


@pytest.mark.parametrize("ending, code", [("from medgov.cli import leave; leave(3)", 3),
                                          ("sys.exit(3)", -6)])
def test_a_finished_command_leaves_before_native_finalisation(ending, code):
    """`medgov` ends through `leave`: its output and Python's exit handlers come first, then the
    process exits without the finalisation where a live native thread pool can abort it. The
    plain `sys.exit` row shows the stand-in does abort a normal exit."""
    p = subprocess.run([sys.executable, "-c", _FINALISER + ending], capture_output=True, text=True, timeout=60)
    assert p.returncode == code, p.stderr[-500:]
    assert p.stdout.splitlines() == ["output written", "exit handler ran"]


def test_the_command_exit_code_reaches_the_shell(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "medgov.cli", "checks", "--format", "json"],
                        capture_output=True, text=True, timeout=120)
    bad = subprocess.run([sys.executable, "-m", "medgov.cli", "report", "--lake", str(tmp_path / "none"),
                          "--format", "nope"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.lstrip().startswith(("[", "{"))
    assert bad.returncode != 0 and bad.stderr.startswith("medgov: error:")
