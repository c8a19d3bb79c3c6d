"""tune(): an Optuna search of the recipe's pipeline, and its best model."""

import functools
import hashlib
import os
import socket
import warnings
from collections import Counter
from numbers import Integral, Real

import numpy as np
from sklearn.metrics import check_scoring, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import column_or_1d

from .._compat import HasMethods, Interval, validate_params
from ..model_selection import patient_groups, patient_split
from ..preprocessing import ImageLoader, check_paths
from ._spaces import (
    _check_search_space,
    _checked_draw,
    _draw_from,
    default_search_space,
)
from ._storage import (
    _FINISHED_STATES,
    _create_study,
    _import_optuna,
    _optuna_log_level,
    _QuietOnInterrupt,
)
from ._threads import limit_threads


@validate_params(
    {
        "paths": ["array-like"],
        "y": ["array-like"],
        "groups": ["array-like", None],
        "search_space": [dict, callable, None],
        "fixed_params": [dict, None],
        "n_trials": [Interval(Integral, 1, None, closed="left")],
        "timeout": [Interval(Real, 0, None, closed="neither"), None],
        "storage": [str, os.PathLike, HasMethods(["create_new_study"]), None],
        "study_name": [str, None],
        "scoring": [str, callable, None],
        "pruning": ["boolean", HasMethods(["prune"])],
        "sampler": [HasMethods(["sample_relative"]), None],
        "pipeline": [callable, None],
        "validation_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both"), None],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "refit": ["boolean"],
        "verbose": ["verbose"],
    },
    # The classifier must still check the parameters each trial gives it.
    prefer_skip_nested_validation=False,
)
def tune(
    paths,
    y,
    *,
    groups=None,
    search_space=None,
    fixed_params=None,
    n_trials=20,
    timeout=None,
    storage=None,
    study_name=None,
    scoring="roc_auc",
    pruning=True,
    sampler=None,
    pipeline=None,
    validation_size=0.2,
    random_state=None,
    n_threads=None,
    refit=True,
    verbose=1,
):
    """Tune an image-loading CNN pipeline with Optuna on a patient-grouped split.

    The pipeline is ``Pipeline([("load", ImageLoader()), ("cnn",
    PneumoniaCNNClassifier())])``. The images are split once, by patient and
    stratified, into a training and a validation part (see
    :func:`~pneumoclf.model_selection.patient_split`). Each trial of the study
    draws parameters from ``search_space``, trains the pipeline on the training
    part and scores it on the validation part. The best trial's pipeline is then
    trained again on all the images and returned.

    Each trial trains one network. The decision threshold is tuned with the
    rest at no extra cost: with ``threshold="auto"`` the classifier chooses it
    on its own validation part (a share of the training part) after training.

    With ``pruning``, each trial reports the AUC on the classifier's own
    validation part after every epoch (``val_auc``, through
    ``optuna_integration.KerasPruningCallback``) and the pruner stops trials
    that lag behind. That part exists whenever the classifier uses early
    stopping (its default) or ``threshold="auto"``.

    To share the work between processes or machines, start ``tune`` with the
    same ``storage``, ``study_name``, data and ``random_state`` in each of them:
    they run the trials of one study, each asking Optuna for its next trial.
    Finished trials are saved as they end, so a run that is killed loses only
    its running trial (left in the RUNNING state, not counted), and a new run
    with the same arguments resumes the study.

    Parameters
    ----------
    paths : array-like of str or os.PathLike, shape (n_images,)
        Image files.
    y : array-like of shape (n_images,)
        Two labels, for example 0/1 or ``"NORMAL"``/``"PNEUMONIA"``.
    groups : array-like of shape (n_images,), default=None
        Patient of each image. None means
        :func:`~pneumoclf.datasets.patient_id` of each path.
    search_space : dict of str to optuna.distributions.BaseDistribution, \
callable or None, default=None
        Optuna distributions (float, int or categorical) keyed by pipeline
        parameter (``"cnn__filters"``, ``"load__image_size"``, ...), or a
        define-by-run space: a function that takes the Optuna trial, draws with
        its ``suggest_*`` methods (conditionally if it likes) and returns the
        drawn pipeline parameters as a dict. None means
        :func:`default_search_space`.
    fixed_params : dict, default=None
        Pipeline parameters set in every trial, for example
        ``{"cnn__epochs": 10, "load__image_size": 64}``. They are taken out of
        the search space. ``cnn__callbacks`` given here run alongside the
        pruning callback.
    n_trials : int, default=20
        Finished (complete or pruned) trials the study must hold. It counts the
        trials of every process that shares the study, and those of earlier runs
        it resumes: two processes started with ``n_trials=10`` share 10 trials
        (each stops when the study holds 10, so up to one more per extra process
        may finish), and a rerun with ``n_trials=15`` adds 5. Failed trials and
        trials still running do not count.
    timeout : float, default=None
        Seconds after which this process starts no new trial. None means no
        limit.
    storage : str, os.PathLike, optuna storage or None, default=None
        Where the study lives:

        * None: in memory, for this process only;
        * a database URL, for processes on any number of machines:
          ``"postgresql://user:password@host/database"`` (needs
          ``pip install "pneumoclf[postgres]"``), ``"mysql://..."``, or
          ``"sqlite:///study.db"`` for a few processes on one machine (SQLite
          waits up to 30 seconds for another process's write);
        * any other string or path: a journal file (Optuna's
          ``JournalStorage``), which Optuna recommends for many processes on
          one machine or on a shared file system;
        * an Optuna storage object, used as it is.

        In a database, a worker that is killed mid-trial stops its heartbeat:
        after three minutes another worker marks that trial failed and tries
        its parameters again (at most twice). A journal file has no heartbeat,
        so such a trial stays ``RUNNING``; it does not count towards
        ``n_trials``.
    study_name : str, default=None
        Name of the study in ``storage``. The study is created if it does not
        exist and continued if it does. Needed with a database URL or a journal
        file, where a study is found again by its name; with ``storage=None`` or
        a storage object, None means a new study with a generated name.
    scoring : str, callable or None, default="roc_auc"
        Score of a trial on the validation part, greater is better: a
        scikit-learn scorer name or a scorer such as
        :func:`~pneumoclf.metrics.make_recall_weighted_scorer` ``()``. None
        means accuracy.
    pruning : bool or optuna.pruners.BasePruner, default=True
        Stop unpromising trials between epochs. True uses
        ``MedianPruner(n_startup_trials=5, n_warmup_steps=2)``: once 5 trials
        have completed, a trial whose validation AUC after its third or any
        later epoch is below the completed trials' median at that epoch is
        stopped.
        A pruner object is used as it is; False never stops a trial.
    sampler : optuna.samplers.BaseSampler, default=None
        How trials draw their parameters. None means Optuna's TPE sampler,
        seeded with ``random_state`` when ``storage`` is None.
    pipeline : callable, default=None
        A function that returns a new, unfitted pipeline to search: a
        :class:`~sklearn.pipeline.Pipeline` that takes image paths and ends in a
        :class:`~pneumoclf.PneumoniaCNNClassifier` step named ``"cnn"`` (the
        patient groups and the pruning callback reach it by that name). None
        means ``Pipeline([("load", ImageLoader()), ("cnn",
        PneumoniaCNNClassifier())])``.
    validation_size : float in (0, 1), default=0.2
        Share of the images, taken by whole patients, on which trials are
        scored.
    random_state : int or None, default=None
        Seeds the split, every network (so that trials differ only by their
        parameters) and, with ``storage=None``, the TPE sampler. Processes
        sharing a study must pass the same value, so that they score on the
        same patients; their sampler is then seeded by the system, so that
        they do not all try the same parameters.
    n_threads : int, default=None
        Caps TensorFlow's thread pools (see :func:`limit_threads`) and the
        loader's decoding threads. Only possible before TensorFlow has run in
        this process. None leaves them as they are.
    refit : bool, default=True
        Train the best trial's pipeline on all the images. Processes that only
        help a shared study can skip it.
    verbose : int, default=1
        0 is silent; 1 prints one line per finished trial (Optuna's log); 2
        also prints one line per epoch.

    Returns
    -------
    study : optuna.study.Study
        The study. Each trial holds the user attributes ``worker``
        (``"host:pid"`` of the process that ran it) and, when it completed,
        ``validation_auc`` (AUC on the validation part), ``threshold`` (the
        classifier's decision threshold) and ``n_epochs`` (epochs run).
    best_pipeline : sklearn.pipeline.Pipeline or None
        The pipeline with the best trial's parameters and ``fixed_params``,
        trained on all the images; None when ``refit=False``.

    Raises
    ------
    RuntimeError
        If ``refit`` is True and no trial of the study completed (all pruned or
        failed), or if ``n_threads`` comes too late.
    ValueError
        If ``search_space`` or ``fixed_params`` name parameters the pipeline
        does not have, or a search space entry is not an Optuna distribution.

    See Also
    --------
    default_search_space : The default search space.
    patient_split : The patient-grouped split used here.

    Examples
    --------
    A quick study on the bundled sample, in memory; give ``storage`` and
    ``study_name`` (and the same ``random_state``) to several processes to run
    one study together:

    >>> from pneumoclf.datasets import load_sample
    >>> from pneumoclf.metrics import make_recall_weighted_scorer
    >>> from pneumoclf.tuning import tune
    >>> data = load_sample()
    >>> study, pipe = tune(  # doctest: +SKIP
    ...     data.paths, data.target, n_trials=10, random_state=0,
    ...     fixed_params={"cnn__epochs": 10, "load__image_size": 64},
    ...     scoring=make_recall_weighted_scorer())
    >>> len(study.trials)  # doctest: +SKIP
    10
    >>> pipe.predict_proba(data.paths[:2]).shape  # doctest: +SKIP
    (2, 2)
    """
    optuna = _import_optuna()
    if isinstance(storage, (str, os.PathLike)) and study_name is None:
        raise ValueError(
            f"storage={os.fspath(storage)!r} needs a study_name: a stored study is "
            "found again by its name, so that a rerun or another worker continues "
            "it instead of starting a new one."
        )
    if n_threads is not None:
        limit_threads(n_threads)
    if storage is not None and random_state is None:
        warnings.warn(
            "A study kept in a storage should be tuned with a fixed random_state: "
            "without one, each process (and each resumed run) scores its trials "
            "on a different validation split, and their scores do not compare.",
            UserWarning,
            stacklevel=3,  # the caller, past the parameter validation wrapper
        )
    paths = np.asarray(check_paths(paths), dtype=object)
    y = column_or_1d(y)
    groups = patient_groups(paths, groups)
    train, validation, _ = patient_split(
        paths,
        y,
        groups=groups,
        sizes=(1.0 - validation_size, validation_size, 0.0),
        random_state=random_state,
    )
    fixed_params = dict(fixed_params or {})
    default_params = _default_params(random_state, n_threads, verbose)
    base_params = {**default_params, **fixed_params}
    make_pipe = _pipeline_factory(pipeline)
    scorer = check_scoring(make_pipe(base_params), scoring=scoring)
    if search_space is None:
        search_space = default_search_space()
    if callable(search_space):
        draw = _checked_draw(search_space, make_pipe)
    else:
        search_space = {
            name: distribution
            for name, distribution in search_space.items()
            if name not in fixed_params
        }
        _check_search_space(search_space, make_pipe)
        draw = functools.partial(_draw_from, search_space)

    quiet_on_interrupt = _QuietOnInterrupt()

    @quiet_on_interrupt.watch
    def objective(trial):
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        # fixed_params win over what a define-by-run space draws.
        params = {**default_params, **draw(trial), **fixed_params}
        if pruning is not False:
            params["cnn__callbacks"] = [
                *(params.get("cnn__callbacks") or []),
                _pruning_callback(trial),
            ]
        pipe = make_pipe(params).fit(paths[train], y[train], cnn__groups=groups[train])
        classifier = pipe.named_steps["cnn"]
        pneumonia = pipe.predict_proba(paths[validation])[:, 1]
        trial.set_user_attr(
            "validation_auc", float(roc_auc_score(y[validation], pneumonia))
        )
        trial.set_user_attr("threshold", classifier.decision_threshold())
        trial.set_user_attr("n_epochs", classifier.n_epochs_)
        return float(scorer(pipe, paths[validation], y[validation]))

    with (
        _optuna_log_level(optuna, verbose, quiet_on_interrupt),
        quiet_on_interrupt.noticing_ctrl_c(),
    ):
        study = _create_study(
            optuna, storage, study_name, random_state, pruning, sampler
        )
        _record_the_search(
            study,
            data=_describe_data(paths, y, groups, train, validation),
            space=search_space,
            fixed_params=fixed_params,
            scoring=scoring,
            random_state=random_state,
        )
        finished = tuple(optuna.trial.TrialState[state] for state in _FINISHED_STATES)
        n_missing = n_trials - len(study.get_trials(deepcopy=False, states=finished))
        if n_missing > 0:
            study.optimize(
                objective,
                n_trials=n_missing,
                timeout=timeout,
                # Stops this process once the study, shared or resumed, holds
                # n_trials finished trials, whoever ran them.
                callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=finished)],
                gc_after_trial=True,
            )
    if not refit:
        return study, None
    best = _best_trial(study)
    if callable(search_space):
        # The space run again on the best trial's draws gives its parameters.
        drawn = draw(optuna.trial.FixedTrial(best.params))
    else:
        drawn = best.params
    # fixed_params win over a trial's: a resumed study may have searched them.
    best_params = {**default_params, **drawn, **fixed_params}
    return study, make_pipe(best_params).fit(paths, y, cnn__groups=groups)


def _describe_data(paths, y, groups, train, validation):
    """Counts and a digest of the files a study is tuned on, JSON-ready.

    The digest covers the file names (not their folders, which differ between
    machines) and labels, in order: workers of one study must tune on the same.
    """
    positive = np.unique(y)[-1]
    listing = hashlib.sha256()
    names = [os.path.basename(path) for path in paths]
    for path, label in sorted(zip(names, map(str, y), strict=True)):
        listing.update(f"{path}\t{label}\n".encode("utf-8", "surrogateescape"))
    return {
        "n_images": len(paths),
        "n_pneumonia": int(np.count_nonzero(y == positive)),
        "n_patients": len(set(groups)),
        "n_train": len(train),
        "n_validation": len(validation),
        "files_sha256": listing.hexdigest(),
    }


def _record_the_search(study, *, data, space, fixed_params, scoring, random_state):
    """Keep the data and settings in the study; refuse to join one on other data."""
    recorded = study.user_attrs.get("data")
    if recorded is not None and recorded != data:
        raise ValueError(
            f"Study {study.study_name!r} was tuned on other data "
            f"({recorded['n_images']} images, files digest "
            f"{recorded['files_sha256'][:12]}) than these ({data['n_images']} "
            f"images, {data['files_sha256'][:12]}): its trials' scores would not "
            "compare. Use the same data folder, or another study name."
        )
    study.set_user_attr("data", data)
    study.set_user_attr(
        "search_space",
        "define-by-run function"
        if callable(space)
        else {name: repr(distribution) for name, distribution in space.items()},
    )
    study.set_user_attr(
        "fixed_params", {name: repr(v) for name, v in fixed_params.items()}
    )
    study.set_user_attr(
        "scoring", scoring if isinstance(scoring, str) else repr(scoring)
    )
    seed = random_state if random_state is None else repr(random_state)
    study.set_user_attr("random_state", seed)


def _default_params(random_state, n_threads, verbose):
    """Pipeline parameters that ``tune``'s own arguments set."""
    params = {
        "cnn__random_state": random_state,
        "cnn__verbose": 2 if verbose >= 2 else 0,
    }
    if n_threads is not None:
        params["load__n_jobs"] = n_threads
    return params


def _default_pipeline():
    from ..classifier import PneumoniaCNNClassifier  # loads TensorFlow

    return Pipeline([("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier())])


def _pipeline_factory(pipeline):
    """A function of ``params`` that makes the searched pipeline with them set."""
    from ..classifier import PneumoniaCNNClassifier

    make = _default_pipeline if pipeline is None else pipeline
    sample = make()
    if not (
        isinstance(sample, Pipeline)
        and isinstance(sample.named_steps.get("cnn"), PneumoniaCNNClassifier)
    ):
        raise ValueError(
            "pipeline must return a Pipeline with a PneumoniaCNNClassifier step "
            f"named 'cnn'; it returned {sample!r}."
        )
    return lambda params: make().set_params(**params)


def _pruning_callback(trial):
    from optuna_integration import KerasPruningCallback

    return KerasPruningCallback(trial, "val_auc")


def _best_trial(study):
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        states = Counter(trial.state.name for trial in study.get_trials(deepcopy=False))
        summary = ", ".join(f"{count} {state}" for state, count in states.items())
        raise RuntimeError(
            f"No trial of study {study.study_name!r} completed ({summary or 'none'}), "
            "so there is no best pipeline to train. Prune less (pruning=False or a "
            "milder pruner), run more trials, or look at the failed trials' errors."
        )
    return study.best_trial
