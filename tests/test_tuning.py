"""Tuning: the default search space, tune() and its shared Optuna storages."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from types import SimpleNamespace

import keras
import numpy as np
import optuna
import pytest
import tensorflow as tf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import TrialState
from optuna_integration import OptunaSearchCV
from PIL import Image
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline

import pneumoclf.tuning as tuning
from pneumoclf import ImageLoader, PneumoniaCNNClassifier
from pneumoclf.architecture import build_cnn
from pneumoclf.datasets import patient_id
from pneumoclf.metrics import make_recall_weighted_scorer
from pneumoclf.tuning import default_search_space, limit_threads, tune

# What is tested here is the search around the networks, not the networks.
pytestmark = pytest.mark.usefixtures("eager_networks")

IMAGE_SIZE = 16
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# Pipeline settings small enough for a trial to train in about a second.
FAST = {"cnn__epochs": 2, "cnn__validation_fraction": 0.25}
TINY = {
    "load__image_size": CategoricalDistribution([IMAGE_SIZE]),
    "cnn__n_conv_blocks": CategoricalDistribution([1, 2]),
    "cnn__filters": CategoricalDistribution([4]),
    "cnn__dense_units": CategoricalDistribution([8]),
    "cnn__batch_size": CategoricalDistribution([16]),
}

# What each worker process of the shared-storage tests searches.
WORKER_SPACE = {
    "cnn__filters": IntDistribution(2, 8),
    "cnn__learning_rate": FloatDistribution(1e-3, 1e-2, log=True),
}
WORKER_FIXED = {
    "cnn__epochs": 1,
    "cnn__n_conv_blocks": 1,
    "cnn__dense_units": 8,
    "cnn__batch_size": 16,
    "cnn__validation_fraction": 0.25,
    "load__image_size": IMAGE_SIZE,
}
WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import tensorflow as tf
    from optuna.distributions import json_to_distribution

    from pneumoclf.tuning import tune

    folder, storage, study_name, n_trials, space, fixed, ready, go = sys.argv[1:]
    paths = sorted(str(path) for path in Path(folder).glob("*/*.png"))
    labels = [Path(path).parent.name for path in paths]
    space = {name: json_to_distribution(d) for name, d in json.loads(space).items()}
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.02)
    tune(paths, labels, storage=storage, study_name=study_name,
         n_trials=int(n_trials), search_space=space, fixed_params=json.loads(fixed),
         random_state=0, n_threads=1, refit=False, verbose=0)
    threading = tf.config.threading
    print(json.dumps([threading.get_intra_op_parallelism_threads(),
                      threading.get_inter_op_parallelism_threads()]))
    """
)


def write_xrays(folder, n_patients=15, images_per_patient=2, seed=0):
    """Write 16x16 images, several per patient, named as in the Kermany data.

    Pneumonia images carry a bright square on noise; normal ones are noise.
    Returns the paths and their "NORMAL"/"PNEUMONIA" labels.
    """
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for label in ("NORMAL", "PNEUMONIA"):
        (folder / label).mkdir(parents=True)
        for patient in range(n_patients):
            for image in range(images_per_patient):
                if label == "PNEUMONIA":
                    name = f"person{patient}_bacteria_{image}.png"
                else:
                    name = f"IM-{patient:04d}-0001-{image:04d}.png"
                pixels = rng.uniform(0, 120, (IMAGE_SIZE, IMAGE_SIZE))
                if label == "PNEUMONIA":
                    top, left = rng.integers(0, IMAGE_SIZE - 6, size=2)
                    pixels[top : top + 6, left : left + 6] = 255
                Image.fromarray(pixels.astype(np.uint8), mode="L").save(
                    folder / label / name
                )
                paths.append(str(folder / label / name))
                labels.append(label)
    return np.array(paths), np.array(labels)


@pytest.fixture(scope="module")
def xrays(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuning_xrays")
    paths, labels = write_xrays(folder)
    return SimpleNamespace(folder=folder, paths=paths, y=labels)


def tiny_space():
    return {**default_search_space(), **TINY}


def states(study):
    return [trial.state for trial in study.trials]


# --- default_search_space ------------------------------------------------------------


def test_default_search_space_covers_every_tuned_setting():
    space = default_search_space()

    classifier_names = {
        "n_conv_blocks",
        "filters",
        "kernel_size",
        "dense_units",
        "dropout",
        "batch_norm",
        "learning_rate",
        "batch_size",
        "rotation",
        "zoom",
        "shift",
        "contrast",
        "threshold",
        "target_recall",
    }
    assert set(space) == {f"cnn__{name}" for name in classifier_names} | {
        "load__image_size"
    }
    assert all(isinstance(value, BaseDistribution) for value in space.values())
    assert space["cnn__learning_rate"].log
    assert space["cnn__threshold"].choices == ("auto",)
    assert len(space["cnn__target_recall"].choices) > 1
    assert set(default_search_space(prefix="", loader_prefix=None)) == classifier_names
    assert default_search_space() is not default_search_space()


def test_every_point_of_the_default_space_is_a_valid_pipeline():
    space = default_search_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        params = study.ask(space).params
        pipe = Pipeline([("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier())])
        pipe.set_params(**params)
        for _, step in pipe.steps:
            step._validate_params()

    # The smallest images still pass through the deepest net of the largest
    # kernels (padding="auto" turns to "same").
    smallest = space["load__image_size"].low
    model = build_cnn(
        (smallest, smallest, 1),
        n_conv_blocks=space["cnn__n_conv_blocks"].high,
        kernel_size=space["cnn__kernel_size"].high,
        filters=space["cnn__filters"].low,
        dense_units=space["cnn__dense_units"].low,
    )
    assert model.output_shape == (None, 1)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:.*optuna.terminator.*:FutureWarning")
def test_optuna_search_cv_accepts_the_default_space(xrays):
    pipe = Pipeline(
        [("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier(**strip(FAST)))]
    )
    search = OptunaSearchCV(
        pipe,
        tiny_space(),
        cv=StratifiedGroupKFold(2),
        n_trials=2,
        scoring="roc_auc",
        random_state=0,
    )
    search.fit(xrays.paths, xrays.y, groups=[patient_id(p) for p in xrays.paths])

    assert states(search.study_) == [TrialState.COMPLETE] * 2
    assert np.isfinite(search.best_score_)
    assert set(search.best_params_) == set(tiny_space())
    assert search.predict_proba(xrays.paths[:3]).shape == (3, 2)


class _PruneOddTrials(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number % 2 == 1


@pytest.mark.slow
def test_optuna_search_cv_prunes_the_classifier_epoch_by_epoch(xrays):
    # enable_pruning calls partial_fit, which a pipeline lacks: load once, then
    # search the classifier on the arrays.
    X = ImageLoader(image_size=IMAGE_SIZE).transform(xrays.paths)
    classifier = PneumoniaCNNClassifier(
        epochs=2, filters=4, dense_units=8, batch_size=16, random_state=0
    )
    search = OptunaSearchCV(
        classifier,
        {"learning_rate": FloatDistribution(1e-3, 1e-2, log=True)},
        enable_pruning=True,
        max_iter=3,
        cv=StratifiedGroupKFold(2),
        n_trials=3,
        scoring="roc_auc",
        random_state=0,
        study=optuna.create_study(direction="maximize", pruner=_PruneOddTrials()),
    )
    search.fit(X, xrays.y, groups=[patient_id(p) for p in xrays.paths])

    completed, pruned, _ = search.study_.trials
    complete, pruned_state = TrialState.COMPLETE, TrialState.PRUNED
    assert states(search.study_) == [complete, pruned_state, complete]
    # One partial_fit epoch per step, scored after each; pruned after the first.
    assert sorted(completed.intermediate_values) == [0, 1, 2]
    assert sorted(pruned.intermediate_values) == [0]
    assert all(np.isfinite(v) for v in completed.intermediate_values.values())
    # The best trial is refitted with fit: its epochs, not max_iter.
    assert search.best_estimator_.n_epochs_ == 2


def strip(params, prefix="cnn__"):
    return {name.removeprefix(prefix): value for name, value in params.items()}


# --- tune in memory -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned(xrays):
    """A 3-trial study, counting the networks trained and the files loaded."""
    trainings, loads = [], []
    keras_fit, transform = keras.Model.fit, ImageLoader.transform

    def counting_fit(model, *args, **kwargs):
        trainings.append(model.name)
        return keras_fit(model, *args, **kwargs)

    def recording_transform(loader, X):
        loads.append([str(path) for path in X])
        return transform(loader, X)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", counting_fit)
        patch.setattr(ImageLoader, "transform", recording_transform)
        study, pipe = tune(
            xrays.paths,
            xrays.y,
            search_space=tiny_space(),
            fixed_params=FAST,
            n_trials=3,
            scoring=make_recall_weighted_scorer(),
            random_state=0,
            verbose=0,
        )
    return SimpleNamespace(study=study, pipe=pipe, trainings=trainings, loads=loads)


@pytest.mark.slow
def test_tune_runs_the_trials_and_refits_the_best(tuned, xrays):
    study, pipe = tuned.study, tuned.pipe

    assert states(study) == [TrialState.COMPLETE] * 3
    for trial in study.trials:
        assert -0.5 <= trial.value <= 1
        assert 0 <= trial.user_attrs["validation_auc"] <= 1
        assert 0 <= trial.user_attrs["threshold"] <= 1
        assert trial.user_attrs["n_epochs"] == FAST["cnn__epochs"]
        assert trial.user_attrs["worker"].endswith(f":{os.getpid()}")
    params = pipe.get_params()
    assert {name: params[name] for name in study.best_params} == study.best_params
    assert params["cnn__epochs"] == FAST["cnn__epochs"]
    assert params["cnn__callbacks"] is None  # no pruning callback left behind
    proba = pipe.predict_proba(xrays.paths)
    assert proba.shape == (len(xrays.paths), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # The refit saw every image.
    assert sorted(tuned.loads[-1]) == sorted(xrays.paths)


@pytest.mark.slow
def test_tune_scores_each_trial_on_patients_it_did_not_train_on(tuned, xrays):
    # Per trial: the training images, then the validation images (predict_proba
    # for the AUC, then the scorer's predict); last, the refit.
    assert len(tuned.loads) == 3 * 3 + 1
    per_trial = [tuned.loads[3 * trial : 3 * trial + 3] for trial in range(3)]
    train, validation = set(per_trial[0][0]), set(per_trial[0][1])
    for training_images, validation_images, scored_images in per_trial:
        assert set(training_images) == train
        assert set(validation_images) == set(scored_images) == validation

    assert train | validation == set(xrays.paths)
    assert {patient_id(p) for p in train}.isdisjoint(patient_id(p) for p in validation)
    assert len(validation) == pytest.approx(0.2 * len(xrays.paths), abs=2)
    labels = dict(zip(xrays.paths, xrays.y, strict=True))
    assert {labels[p] for p in validation} == {"NORMAL", "PNEUMONIA"}


@pytest.mark.slow
def test_tune_trains_one_network_per_trial_whatever_the_threshold_rules(tuned):
    n_rules = len(tiny_space()["cnn__target_recall"].choices)
    assert n_rules > 1
    assert len(tuned.trainings) == len(tuned.study.trials) + 1  # + the refit


# --- pruning ------------------------------------------------------------------------


class PruneOddTrials(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number % 2 == 1


@pytest.mark.slow
def test_pruned_trials_stop_after_their_first_epoch(xrays):
    study, _ = tune(
        xrays.paths,
        xrays.y,
        search_space=tiny_space(),
        fixed_params=FAST,
        n_trials=2,
        pruning=PruneOddTrials(),
        random_state=0,
        refit=False,
        verbose=0,
    )

    assert states(study) == [TrialState.COMPLETE, TrialState.PRUNED]
    complete, pruned = study.trials
    assert list(complete.intermediate_values) == [0, 1]  # val_auc per epoch
    assert list(pruned.intermediate_values) == [0]
    assert "n_epochs" not in pruned.user_attrs
    assert study.best_trial.number == complete.number


@pytest.mark.slow
def test_tune_says_so_when_every_trial_was_pruned(xrays):
    storage = optuna.storages.InMemoryStorage()
    arguments = dict(
        search_space=tiny_space(),
        fixed_params=FAST,
        n_trials=2,
        pruning=optuna.pruners.ThresholdPruner(lower=2.0),  # AUC never reaches 2
        storage=storage,
        study_name="all-pruned",
        random_state=0,
        verbose=0,
    )
    study, pipe = tune(xrays.paths, xrays.y, refit=False, **arguments)
    assert states(study) == [TrialState.PRUNED] * 2
    assert pipe is None

    # The study already holds its 2 trials: nothing is trained before the error.
    with pytest.raises(RuntimeError, match=r"No trial .* completed \(2 PRUNED\)"):
        tune(xrays.paths, xrays.y, **arguments)
    assert len(study.trials) == 2


# --- arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"search_space": {"cnn__colour": CategoricalDistribution([1])}}, "colour"),
        ({"search_space": {"cnn__filters": [4, 8]}}, "Optuna FloatDistribution"),
        ({"fixed_params": {"load__colour": 1}}, "colour"),
    ],
)
def test_tune_rejects_unknown_parameters_before_training(xrays, arguments, message):
    with pytest.raises(ValueError, match=message):
        tune(xrays.paths, xrays.y, n_trials=1, verbose=0, **arguments)


def test_tune_warns_that_a_stored_study_needs_a_fixed_split(xrays):
    with (
        pytest.warns(UserWarning, match="fixed random_state"),
        pytest.raises(ValueError, match="colour"),  # stops it before training
    ):
        tune(
            xrays.paths,
            xrays.y,
            storage=optuna.storages.InMemoryStorage(),
            fixed_params={"load__colour": 1},
            verbose=0,
        )


def conditional_space(trial):
    """Batch normalisation is searched only for networks of two blocks."""
    params = {"cnn__n_conv_blocks": trial.suggest_int("cnn__n_conv_blocks", 1, 2)}
    if params["cnn__n_conv_blocks"] == 2:
        params["cnn__batch_norm"] = trial.suggest_categorical(
            "cnn__batch_norm", [False, True]
        )
    return params


@pytest.mark.slow
def test_a_define_by_run_space_with_a_sampler_of_ones_own(xrays):
    sampler = optuna.samplers.RandomSampler(seed=0)
    study, best = tune(
        xrays.paths, xrays.y, search_space=conditional_space, sampler=sampler,
        fixed_params=_no(WORKER_FIXED, "cnn__n_conv_blocks"),
        n_trials=4, pruning=False, random_state=0, verbose=0,
    )  # fmt: skip

    assert study.sampler is sampler
    for trial in study.trials:
        assert ("cnn__batch_norm" in trial.params) == (
            trial.params["cnn__n_conv_blocks"] == 2
        )
    expected = conditional_space(optuna.trial.FixedTrial(study.best_params))
    assert {name: best.get_params()[name] for name in expected} == expected


def _no(params, *names):
    return {name: value for name, value in params.items() if name not in names}


@pytest.mark.slow
def test_a_pipeline_of_ones_own_is_searched_and_refitted(xrays):
    def equalizing_pipeline():
        return Pipeline(
            [
                ("load", ImageLoader(normalize="equalize")),
                ("cnn", PneumoniaCNNClassifier()),
            ]
        )

    _, best = tune(
        xrays.paths, xrays.y, search_space=TINY, fixed_params=FAST,
        pipeline=equalizing_pipeline, n_trials=1, random_state=0, verbose=0,
    )  # fmt: skip

    assert best.named_steps["load"].normalize == "equalize"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pipeline": lambda: Pipeline([("model", PneumoniaCNNClassifier())])},
         "a PneumoniaCNNClassifier step named 'cnn'"),
        ({"search_space": lambda trial: {"cnn__colour": 1}},
         r"search_space\(trial\) names parameters .* \['cnn__colour'\]"),
        ({"search_space": lambda trial: [("cnn__filters", 4)]},
         r"must return a dict of pipeline parameters"),
    ],
    ids=["no-cnn-step", "unknown-parameter", "not-a-dict"],
)  # fmt: skip
def test_an_open_search_that_cannot_work_is_refused(xrays, arguments, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tune(xrays.paths, xrays.y, n_trials=1, verbose=0, **arguments)


@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/s.db", "{tmp}/journal.log"])
def test_a_stored_study_needs_a_name_to_be_found_again(xrays, tmp_path, storage):
    storage = storage.format(tmp=tmp_path)
    with pytest.raises(ValueError, match="needs a study_name"):
        tune(xrays.paths, xrays.y, storage=storage, random_state=0, verbose=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask
def test_a_trial_of_a_killed_worker_is_tried_again(xrays, tmp_path, monkeypatch):
    monkeypatch.setattr(tuning._storage, "_HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(tuning._storage, "_HEARTBEAT_GRACE_PERIOD", 1)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    arguments = dict(
        search_space=WORKER_SPACE, fixed_params=WORKER_FIXED, storage=storage,
        study_name="s", random_state=0, refit=False, verbose=0,
    )  # fmt: skip
    # A worker that started a trial, beat once, and was killed.
    study = optuna.create_study(
        storage=tuning._storage._open_storage(storage),
        study_name="s",
        direction="maximize",
    )
    orphan = study.ask(WORKER_SPACE)
    study._storage.record_heartbeat(orphan._trial_id)
    time.sleep(2)

    study, _ = tune(xrays.paths, xrays.y, n_trials=1, **arguments)

    assert states(study) == [TrialState.FAIL, TrialState.COMPLETE]
    retried = study.trials[1]
    assert retried.params == orphan.params
    assert retried.system_attrs["failed_trial"] == orphan.number


def test_an_interruption_logs_no_failed_trial(xrays, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    optuna_logger = logging.getLogger("optuna")
    monkeypatch.setattr(optuna_logger, "handlers", [*optuna_logger.handlers, handler])
    monkeypatch.setattr(PneumoniaCNNClassifier, "fit", interrupted)

    with pytest.raises(KeyboardInterrupt):
        tune(xrays.paths, xrays.y, n_trials=1, search_space=TINY, verbose=0)

    assert not [record for record in records if record.exc_info]
    # The filter is gone afterwards: Optuna logs as it otherwise would.
    assert all(not handler.filters for handler in optuna_logger.handlers)


def test_limit_threads_refuses_once_tensorflow_has_started():
    tf.constant(1.0)  # starts TensorFlow's runtime
    other = tf.config.threading.get_intra_op_parallelism_threads() + 1
    with pytest.raises(RuntimeError, match="Call limit_threads first"):
        limit_threads(other)


# --- scikit-learn searches in processes ---------------------------------------------


@pytest.mark.slow
def test_grid_search_runs_in_parallel_processes_on_file_paths(xrays):
    pipe = Pipeline(
        [
            ("load", ImageLoader(image_size=IMAGE_SIZE)),
            ("cnn", PneumoniaCNNClassifier(**strip(FAST), random_state=0)),
        ]
    )
    search = GridSearchCV(
        pipe,
        {"cnn__filters": [4, 8]},
        cv=StratifiedGroupKFold(2),
        scoring=make_recall_weighted_scorer(),
        n_jobs=2,
    )
    search.fit(xrays.paths, xrays.y, groups=[patient_id(p) for p in xrays.paths])

    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,)
    assert np.all((scores >= -0.5) & (scores <= 1))
    assert search.predict_proba(xrays.paths[:3]).shape == (3, 2)


# --- shared storages ----------------------------------------------------------------


def _journal_study(tmp_path, name):
    """Arguments of tune for a small study kept in a journal file, without refit."""
    return dict(
        search_space=WORKER_SPACE,
        fixed_params=WORKER_FIXED,
        storage=tmp_path / "study.log",
        study_name=name,
        random_state=0,
        refit=False,
        verbose=0,
    )


@pytest.mark.slow
def test_a_journal_file_study_resumes(xrays, tmp_path):
    arguments = _journal_study(tmp_path, "resumed")
    first, _ = tune(xrays.paths, xrays.y, n_trials=1, **arguments)
    (trial,) = first.trials
    study, _ = tune(xrays.paths, xrays.y, n_trials=2, **arguments)

    assert states(study) == [TrialState.COMPLETE] * 2
    assert (study.trials[0].params, study.trials[0].value) == (
        trial.params,
        trial.value,
    )


def test_a_study_records_its_data_and_refuses_other_data(xrays, tmp_path):
    arguments = _journal_study(tmp_path, "recorded")
    study, _ = tune(xrays.paths, xrays.y, n_trials=1, **arguments)
    data = study.user_attrs["data"]
    assert data["n_images"] == len(xrays.paths)
    assert data["n_train"] + data["n_validation"] == len(xrays.paths)
    assert len(data["files_sha256"]) == 64
    assert set(study.user_attrs["search_space"]) == set(WORKER_SPACE)

    with pytest.raises(ValueError, match="'recorded' was tuned on other data"):
        tune(xrays.paths[:-2], xrays.y[:-2], n_trials=2, **arguments)


def run_two_workers(xrays, storage, study_name, n_trials, folder):
    """Run tune in two processes that start together; return their pids."""
    go = folder / "go"
    workers = []
    for index in range(2):
        ready = folder / f"ready{index}"
        log = folder / f"worker{index}.log"
        command = [
            sys.executable,
            "-c",
            WORKER,
            str(xrays.folder),
            storage,
            study_name,
            str(n_trials),
            json.dumps({k: distribution_to_json(d) for k, d in WORKER_SPACE.items()}),
            json.dumps(WORKER_FIXED),
            str(ready),
            str(go),
        ]
        with open(log, "w") as stderr:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )
        workers.append((process, ready, log))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for _, ready, _ in workers):
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(process.poll() is None for process, _, _ in workers), read_logs(
            workers
        )
        time.sleep(0.05)
    go.touch()
    for process, _, _ in workers:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, read_logs(workers)
        assert json.loads(output.splitlines()[-1]) == [1, 1]  # n_threads=1 took hold
    return {process.pid for process, _, _ in workers}


def read_logs(workers):
    return "\n---\n".join(log.read_text()[-3000:] for _, _, log in workers)


def check_shared_study(xrays, storage, tmp_path):
    """Two workers share a 4-trial study; a rerun asks for one trial more."""
    study_name = f"shared-{uuid.uuid4().hex}"
    pids = run_two_workers(xrays, storage, study_name, 4, tmp_path)

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.trials
    assert 4 <= len(trials) <= 5  # a worker may finish one trial past the target
    assert [trial.number for trial in trials] == list(range(len(trials)))
    assert all(trial.state in FINISHED for trial in trials)
    workers = {int(trial.user_attrs["worker"].rsplit(":", 1)[1]) for trial in trials}
    assert workers == pids

    resumed, _ = tune(
        xrays.paths,
        xrays.y,
        storage=storage,
        study_name=study_name,
        n_trials=len(trials) + 1,
        search_space=WORKER_SPACE,
        fixed_params=WORKER_FIXED,
        random_state=0,
        refit=False,
        verbose=0,
    )
    assert len(resumed.trials) == len(trials) + 1
    assert all(trial.state in FINISHED for trial in resumed.trials)
    kept = [(t.number, t.params, t.value) for t in resumed.trials[: len(trials)]]
    assert kept == [(t.number, t.params, t.value) for t in trials]
    return study_name


@pytest.mark.slow
def test_two_processes_share_a_sqlite_study(xrays, tmp_path):
    check_shared_study(xrays, f"sqlite:///{tmp_path / 'study.db'}", tmp_path)


@pytest.fixture
def postgres_url():
    url = os.environ.get("PNEUMOCLF_TEST_POSTGRES_URL")
    if not url:
        reason = "PNEUMOCLF_TEST_POSTGRES_URL names no PostgreSQL database to test on"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide one.")
        pytest.skip(reason)
    return url


@pytest.mark.slow
def test_two_processes_share_a_postgresql_study(xrays, tmp_path, postgres_url):
    study_name = check_shared_study(xrays, postgres_url, tmp_path)
    optuna.delete_study(study_name=study_name, storage=postgres_url)


def test_an_interrupt_that_tensorflow_turned_or_swallowed_still_stops_the_study():
    from pneumoclf.tuning._storage import _QuietOnInterrupt

    quiet = _QuietOnInterrupt()

    def turned(trial):  # TensorFlow raised another error for the interrupt
        quiet.interrupted = True
        raise TypeError("Failed to convert elements of (None,) to Tensor")

    def swallowed(trial):  # ... or went on
        quiet.interrupted = True
        return 0.9

    for objective in (turned, swallowed):
        quiet.interrupted = False
        with pytest.raises(KeyboardInterrupt):
            quiet.watch(objective)(None)
        with pytest.raises(KeyboardInterrupt):  # and no trial starts after it
            quiet.watch(lambda trial: 0.5)(None)
    quiet.interrupted = False
    with pytest.raises(TypeError):  # an error of its own stays what it is
        quiet.watch(lambda trial: int([]))(None)


def test_ctrl_c_is_recorded_while_a_study_runs_and_the_handler_restored():
    import signal

    from pneumoclf.tuning._storage import _QuietOnInterrupt

    quiet = _QuietOnInterrupt()
    with pytest.raises(KeyboardInterrupt), quiet.noticing_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert quiet.interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_lost_in_a_finalizer_prints_no_traceback(capsys):
    from pneumoclf._utils import recording_ctrl_c

    class RaisesWhenCollected:
        def __del__(self):
            raise KeyboardInterrupt

    with recording_ctrl_c(lambda: None):
        RaisesWhenCollected()
    assert "KeyboardInterrupt" not in capsys.readouterr().err


def test_blocks_that_record_ctrl_c_nest():
    import signal

    from pneumoclf._utils import recording_ctrl_c

    outer, inner = [], []
    with pytest.raises(KeyboardInterrupt), recording_ctrl_c(lambda: outer.append(1)):
        with recording_ctrl_c(lambda: inner.append(1)):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert outer == inner == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
