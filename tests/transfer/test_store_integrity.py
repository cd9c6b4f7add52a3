"""Stored runs are checked against their manifest on every reuse: a changed, added, removed or
swapped file is a one-line StoreIntegrityError naming the run directory and the file, never a
silent reuse."""
from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

from transfer.store import COMPLETE, RunRecord, RunSpec, RunStore, StoreIntegrityError
from w2s_common.errors import InputError


def _spec(**changes):
    base = dict(arm="weak", ladder="tiny", rung="r0", dataset="synthetic", dataset_fingerprint="f",
                seed=0, model="tiny-48x2", model_fingerprint="m", hparams={"lr": 0.01})
    return RunSpec(**{**base, **changes})


def _predictions(n=50):
    probs = [(i % 10) / 10 + 0.05 for i in range(n)]
    pred = [int(p > 0.5) for p in probs]
    correct = [int(i % 3 != 0) for i in range(n)]
    return pd.DataFrame({"example_id": [f"e{i}" for i in range(n)], "prob": probs, "pred": pred,
                         "correct": correct})


@pytest.fixture()
def stored(tmp_path):
    store = RunStore(tmp_path / "store")
    spec = _spec()
    predictions = _predictions()
    store.put(spec, predictions, {"accuracy": float(predictions["correct"].mean()),
                                  "n": len(predictions)},
              soft_labels=predictions[["example_id", "prob"]])
    return store, spec


def _assert_reuse_refused(store, spec, file_name):
    """get, find and records all refuse the run with one line naming its directory and file."""
    run_dir = store.path(spec)
    for reuse in (lambda: store.get(spec), lambda: store.find(spec.run_hash()),
                  lambda: store.records(), lambda: store.records("weak")):
        with pytest.raises(StoreIntegrityError) as caught:
            reuse()
        message = str(caught.value)
        assert "\n" not in message
        assert str(run_dir) in message and file_name in message, message
        assert isinstance(caught.value, InputError)  # the CLI's exit 2


def test_an_untouched_run_verifies_and_its_accuracy_is_rederived(stored):
    store, spec = stored
    record = store.get(spec)
    assert record is not None and store.find(spec.run_hash()) == record
    assert [r.spec for r in store.records()] == [spec]
    assert record.derived_accuracy() == pytest.approx(2 / 3, abs=0.02)
    assert record.checked_accuracy() == record.metrics["accuracy"]
    manifest = json.loads((record.path / COMPLETE).read_text())
    assert manifest["run_hash"] == spec.run_hash()
    assert set(manifest["files"]) == {"spec.json", "predictions.parquet", "soft_labels.parquet",
                                      "metrics.json", "config.json"}


def test_flipped_predictions_are_detected(stored):
    store, spec = stored
    path = store.path(spec) / "predictions.parquet"
    flipped = pd.read_parquet(path).assign(correct=1)  # every example "correct"
    flipped.to_parquet(path, index=False)
    _assert_reuse_refused(store, spec, "predictions.parquet")


def test_edited_metrics_are_detected(stored):
    store, spec = stored
    path = store.path(spec) / "metrics.json"
    metrics = json.loads(path.read_text())
    path.write_text(json.dumps({**metrics, "accuracy": 0.99}))
    _assert_reuse_refused(store, spec, "metrics.json")


def test_a_record_held_before_tampering_refuses_to_read_the_new_bytes(stored):
    store, spec = stored
    record = store.get(spec)
    assert record.metrics["accuracy"] < 0.7
    path = record.path / "metrics.json"
    path.write_text(path.read_text().replace('"accuracy": 0.', '"accuracy": 1.'))
    with pytest.raises(StoreIntegrityError, match="metrics.json"):
        _ = record.metrics
    with pytest.raises(StoreIntegrityError, match="metrics.json"):
        record.verify()


@pytest.mark.parametrize("change", ["missing", "old_format", "extra_file", "removed_file",
                                    "symlink", "other_spec", "manifest_edited"])
def test_every_kind_of_change_is_refused(stored, tmp_path, change):
    store, spec = stored
    run_dir = store.path(spec)
    named = {"missing": COMPLETE, "old_format": COMPLETE, "extra_file": "notes.txt",
             "removed_file": "soft_labels.parquet", "symlink": "predictions.parquet",
             "other_spec": "spec.json", "manifest_edited": "spec.json"}[change]
    if change == "missing":
        (run_dir / COMPLETE).unlink()
    elif change == "old_format":  # what earlier versions wrote: the hash alone
        (run_dir / COMPLETE).write_text(spec.run_hash() + "\n")
    elif change == "extra_file":
        (run_dir / "notes.txt").write_text("gold labels")
    elif change == "removed_file":
        (run_dir / "soft_labels.parquet").unlink()
    elif change == "symlink":
        target = tmp_path / "elsewhere.parquet"
        (run_dir / "predictions.parquet").rename(target)
        os.symlink(target, run_dir / "predictions.parquet")
    elif change in ("other_spec", "manifest_edited"):
        # Another spec's content under this hash; for manifest_edited the manifest is updated to
        # the new file's digest as well, so only the hash binding catches it.
        other = _spec(seed=7)
        (run_dir / "spec.json").write_text(other.model_dump_json(indent=2))
        if change == "manifest_edited":
            from transfer.manifest import sha256_file

            manifest = json.loads((run_dir / COMPLETE).read_text())
            manifest["files"]["spec.json"] = sha256_file(run_dir / "spec.json")
            (run_dir / COMPLETE).write_text(json.dumps(manifest))
    _assert_reuse_refused(store, spec, named)


def test_put_never_replaces_a_complete_run_and_refuses_a_bad_one(stored):
    store, spec = stored
    before = (store.path(spec) / COMPLETE).stat().st_ino
    other = _predictions().assign(correct=1)
    record = store.put(spec, other, {"accuracy": 1.0})
    assert (store.path(spec) / COMPLETE).stat().st_ino == before  # first copy won
    assert record.metrics["accuracy"] < 1.0
    assert store.discarded == [spec]
    (store.path(spec) / "metrics.json").write_text("{}")
    with pytest.raises(StoreIntegrityError, match="metrics.json"):
        store.put(spec, other, {"accuracy": 1.0})


def test_checked_accuracy_catches_an_inconsistent_run(tmp_path):
    store = RunStore(tmp_path)
    predictions = _predictions()
    record = store.put(_spec(), predictions, {"accuracy": 0.9, "n": len(predictions)})
    with pytest.raises(StoreIntegrityError, match="accuracy 0.9 but the predictions give"):
        record.checked_accuracy()


def test_a_record_built_by_hand_verifies_on_first_use(stored):
    store, spec = stored
    record = RunRecord(spec, store.path(spec))
    assert len(record.predictions()) == 50
    (store.path(spec) / "config.json").write_text("{\"lr\": 1}")
    with pytest.raises(StoreIntegrityError, match="config.json"):
        _ = RunRecord(spec, store.path(spec)).metrics


def test_staging_directories_are_not_runs(stored):
    store, spec = stored
    staging = store.path(spec).parent / f".{spec.run_hash()}.abc.tmp"
    staging.mkdir()
    (staging / COMPLETE).write_text("partial")
    store.lease_path(spec).write_text("{}")
    assert [r.spec for r in store.records()] == [spec]


def test_run_arm_cli_refuses_a_tampered_store_with_one_line(tmp_path):
    """End to end: a stored weak run whose predictions were edited makes `run-arm` exit 2 with
    one line naming the file, and the run is not silently recomputed either."""
    from typer.testing import CliRunner

    from flows.cli import app

    store = tmp_path / "store"
    args = ["run-arm", "--ladder", "micro", "--rung", "m0", "--arm", "weak", "--seed", "0",
            "--store", str(store)]
    runner = CliRunner()
    first = runner.invoke(app, args + ["--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    [predictions] = store.glob("weak/*/predictions.parquet")
    frame = pd.read_parquet(predictions).assign(correct=1)
    frame.to_parquet(predictions, index=False)
    again = runner.invoke(app, args + ["--out", str(tmp_path / "b")])
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert again.exit_code == 2, again.output
    assert len(lines) == 1 and lines[0].startswith("error: "), again.stderr
    assert str(predictions) in lines[0] and "sha256" in lines[0]
    assert pd.read_parquet(predictions)["correct"].eq(1).all()  # left as found, for inspection


def test_verify_command_lists_and_quarantines_bad_runs(stored, capsys):
    from transfer.store import main

    store, spec = stored
    assert main(["verify", str(store.root)]) == 0
    (store.path(spec) / "metrics.json").write_text("{}")
    assert main(["verify", str(store.root)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "metrics.json" in out[0]
    assert main(["verify", str(store.root), "--quarantine"]) == 2
    assert store.get(spec) is None  # moved aside: the next campaign recomputes it
    assert len(list((store.root / ".quarantine").iterdir())) == 1
    assert main(["verify", str(store.root)]) == 0


def test_sweep_removes_only_old_leftovers(stored):
    store, spec = stored
    arm_dir = store.path(spec).parent
    old, fresh = arm_dir / ".old.x.tmp", arm_dir / ".fresh.y.tmp"
    old.mkdir(), fresh.mkdir()
    os.utime(old, (0, 0))
    assert store.sweep() == [old]
    assert fresh.exists() and store.get(spec) is not None


def test_sweep_removes_audit_scratch_stores_untouched_for_a_day(stored):
    """STORE/.canary/<digest> (a multi-process group's audit runs) is removed once nothing in
    it changed for a day; one with a recent file deep inside stays, as does the real store."""
    store, spec = stored
    scratch = store.root / ".canary"
    old, busy = scratch / "a", scratch / "b"
    for directory in (old, busy):
        (directory / "student" / "run").mkdir(parents=True)
        (directory / "student" / "run" / "metrics.json").write_text("{}")
        for path in [directory, *directory.rglob("*")]:
            os.utime(path, (0, 0))
    os.utime(busy / "student" / "run" / "metrics.json")  # written just now
    assert store.sweep() == [old]
    assert not old.exists() and (busy / "student" / "run" / "metrics.json").exists()
    assert store.get(spec) is not None


def test_a_worker_refusing_a_tampered_run_ends_the_cli_with_one_line(tmp_path, capsys):
    """validate runs arms in worker processes; one that exits 2 on a StoreIntegrityError must end
    the command with that one line and exit 2; a crashed worker ends it with its line and exit 1
    (the traceback stays in the worker's log)."""
    import typer

    from flows.commands._errors import user_errors
    from flows.execute import GroupFailed

    line = (f"worker for rung m1 seeds [0, 1] exited 2: error: {tmp_path}/ceiling/abc/"
            "predictions.parquet: integrity check failed: sha256 ...")
    with pytest.raises(typer.Exit) as caught, user_errors():
        raise GroupFailed(line, 2, tmp_path / "group.log")
    assert caught.value.exit_code == 2
    assert capsys.readouterr().err.strip() == f"error: {line}"
    with pytest.raises(typer.Exit) as caught, user_errors():
        raise GroupFailed("worker exited -9", -9, tmp_path / "group.log")
    assert caught.value.exit_code == 1
    assert capsys.readouterr().err.strip() == "error: worker exited -9"


def test_a_student_learns_from_the_weak_record_it_was_handed_not_a_swapped_copy(
        micro_ctx) -> None:
    """Review 2026-12-05 (R3, F1): a writer of the store swapped a seed's weak run (rewritten
    soft labels, valid manifest) between the worker's report of it and a student's re-read, then
    put it back. A worker now hands every student of the seed the weak record it holds, whose
    reads are checked against the manifest it reported: the swapped copy is refused."""
    import shutil

    from transfer.arms import run_arm

    def vanilla(data, trainer):
        return trainer.fit(data.weak_probs).predict_test()

    vanilla.fingerprint = "v" * 64
    held = run_arm(micro_ctx, "m0", "weak", 0)
    soft, predictions = held.soft_labels(), held.predictions()
    metrics = {k: v for k, v in held.metrics.items() if k != "versions"}
    config = json.loads(held.read_bytes("config.json"))
    soft["prob"] = 1.0 - soft["prob"]
    forged = RunStore(held.path.parent.parent.parent / "side").put(
        held.spec, predictions, metrics, soft_labels=soft, config=config)
    shutil.rmtree(held.path)
    shutil.copytree(forged.path, held.path)  # the store's copy is now the forgery

    with pytest.raises(StoreIntegrityError, match="soft_labels.parquet"):
        run_arm(micro_ctx, "m0", "student", 0, method="vanilla", method_fn=vanilla, weak=held)
    # Without the held record the student would read, and learn from, the forgery.
    assert run_arm(micro_ctx, "m0", "weak", 0).soft_labels()["prob"].equals(soft["prob"])


def test_put_vouches_only_for_the_bytes_it_wrote(tmp_path, monkeypatch) -> None:
    """Review R3 F2: a writer of the store rewrote a staged run (and its manifest, hashed from
    disk) between the manifest and the rename; ``put`` then re-read the published copy and
    reported the forgery as its own. Now the manifest is the digest of the bytes ``put``
    serialised and the record it returns reads against it: the forgery is refused."""
    import transfer.store as store_module
    from transfer.manifest import write_manifest as rewrite

    real_fsync = store_module.fsync_tree
    spec = _spec()

    def tamper_then_fsync(staged):
        forged = pd.DataFrame({"example_id": ["a", "b"], "prob": [0.9, 0.9],
                               "pred": [1, 1], "correct": [True, True]})
        forged.to_parquet(staged / "predictions.parquet", index=False)
        (staged / COMPLETE).unlink()  # a valid manifest of the forgery, hashed from disk
        rewrite(staged, COMPLETE, extra={"run_hash": spec.run_hash(),
                                         "spec_sha256": store_module.spec_sha256(spec)})
        real_fsync(staged)

    monkeypatch.setattr(store_module, "fsync_tree", tamper_then_fsync)
    honest = pd.DataFrame({"example_id": ["a", "b"], "prob": [0.2, 0.9], "pred": [0, 1],
                           "correct": [True, True]})
    record = RunStore(tmp_path / "store").put(spec, honest, {"accuracy": 1.0, "n": 2})
    with pytest.raises(StoreIntegrityError, match="predictions.parquet"):
        record.predictions()
    # The copy on disk is a valid-looking forgery; the digest the worker reports is not its.
    assert record.content_digest() != RunRecord(spec, record.path).content_digest()


def test_a_pinned_run_whose_copy_changed_is_refused_by_every_read(stored, tmp_path) -> None:
    """``RunStore(pins=...)``: a copy replaced with a valid manifest passes the file checks, but
    not the digest the campaign pinned when a worker first used the run."""
    store, spec = stored
    pinned = {spec.run_hash(): store.get(spec).content_digest()}
    assert RunStore(store.root, pins=pinned).get(spec) is not None  # the same copy: fine
    forged = _predictions()
    forged["correct"] = 1 - forged["correct"]
    shutil.rmtree(store.path(spec))
    store.put(spec, forged, {"accuracy": float(forged["correct"].mean()), "n": len(forged)},
              soft_labels=forged[["example_id", "prob"]])
    assert store.get(spec) is not None  # without pins the forgery reads as a good run
    pinned_store = RunStore(store.root, pins=pinned)
    for read in (lambda: pinned_store.get(spec), lambda: pinned_store.find(spec.run_hash()),
                 lambda: pinned_store.records("weak")):
        with pytest.raises(StoreIntegrityError, match="changed in the store after its worker "
                                                      "used it") as caught:
            read()
        assert str(store.path(spec)) in str(caught.value)
    # Other runs are not affected by a pin they do not have.
    assert RunStore(store.root, pins={"0" * 20: "x"}).get(spec) is not None
