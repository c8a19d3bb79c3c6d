"""Hyper-parameter tuning with Optuna, on patient-grouped splits.

:func:`tune` scores each of its trials on patients that the trial's network never
saw; :func:`default_search_space` is the space it searches unless told otherwise,
and :func:`limit_threads` shares a machine's cores between several workers.

Tuning needs the ``tune`` extra: ``pip install "pneumoclf[tune]"``.
"""

import functools
import logging
import os
import socket
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.metrics import check_scoring, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import column_or_1d

from ._compat import HasMethods, Interval, validate_params
from .model_selection import patient_groups, patient_split
from .preprocessing import ImageLoader, check_paths

__all__ = ["default_search_space", "limit_threads", "tune"]


#: Trial states that count towards ``n_trials`` in :func:`tune`.
_FINISHED_STATES = ("COMPLETE", "PRUNED")

#: Seconds SQLite waits for another process's write before failing.
_SQLITE_LOCK_TIMEOUT = 30

# A worker of a database study records a heartbeat this often while its trial
# runs; a running trial without one for the grace period is taken for a killed
# worker's: it is marked failed, and its parameters are tried again, at most
# that many times.
_HEARTBEAT_INTERVAL = 60
_HEARTBEAT_GRACE_PERIOD = 180
_MAX_RETRIES = 2


def _import_optuna():
    """Return the ``optuna`` module, or say which extra installs it."""
    try:
        import optuna
        import optuna_integration  # noqa: F401
    except ImportError as error:
        raise ImportError(
            'Tuning needs Optuna and optuna-integration: pip install "pneumoclf[tune]"'
        ) from error
    return optuna


def default_search_space(prefix="cnn__", loader_prefix="load__"):
    """Optuna search space over the CNN, its training, the image size and threshold.

    The space covers, with ranges that suit pediatric chest X-rays:

    * architecture: ``n_conv_blocks`` 1 to 4, ``filters`` 8 to 64 and
      ``dense_units`` 16 to 256 (both log-uniform), ``kernel_size`` 3, 5 or 7,
      ``dropout`` 0 to 0.5, ``batch_norm`` on or off;
    * optimisation: ``learning_rate`` 1e-4 to 1e-2 (log-uniform), ``batch_size``
      16, 32 or 64;
    * augmentation: ``rotation`` up to 0.05 of a turn (18 degrees), ``zoom`` up to
      0.2, ``shift`` up to 0.1, ``contrast`` up to 0.3;
    * image size: ``image_size`` of the loader 32, 64, 96 or 128 pixels;
    * threshold rule: ``threshold`` is always ``"auto"`` and ``target_recall`` is
      one of None, 0.9, 0.95, 0.98 or 0.99.

    Every combination is valid: small images that many large kernels would shrink
    to nothing get ``"same"`` padding through the classifier's
    ``padding="auto"``.

    The threshold rule costs no extra training: with ``threshold="auto"`` the
    classifier chooses its threshold on its own validation part after training,
    by the best F2 with a specificity guard (``target_recall=None``) or by the
    best specificity at the target recall (see
    :func:`pneumoclf.metrics.choose_threshold`). It matters only to scorers on
    predicted labels, such as
    :func:`~pneumoclf.metrics.make_recall_weighted_scorer`; with a ranking
    scorer such as ``"roc_auc"`` it is left to chance, so fix it instead (for
    example ``fixed_params={"cnn__target_recall": 0.95}`` in :func:`tune`).

    Parameters
    ----------
    prefix : str, default="cnn__"
        Prefix of the classifier's parameters: ``"cnn__"`` for the step named
        ``"cnn"`` of a :class:`~sklearn.pipeline.Pipeline`, ``""`` for a bare
        :class:`~pneumoclf.PneumoniaCNNClassifier`.
    loader_prefix : str or None, default="load__"
        Prefix of the :class:`~pneumoclf.ImageLoader`'s parameters. None leaves
        the image size out, for a classifier fed with arrays.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution
        Distributions keyed by parameter name, ready for
        :func:`tune` or ``optuna_integration.OptunaSearchCV``. It is a new dict
        on each call: update or delete entries freely.

    See Also
    --------
    tune : Run a patient-grouped Optuna study over this space.

    Examples
    --------
    >>> from pneumoclf.tuning import default_search_space
    >>> space = default_search_space()
    >>> space["cnn__learning_rate"]
    FloatDistribution(high=0.01, log=True, low=0.0001, step=None)
    >>> space["load__image_size"]
    IntDistribution(high=128, log=False, low=32, step=32)
    >>> sorted(default_search_space(prefix="", loader_prefix=None))[:4]
    ['batch_norm', 'batch_size', 'contrast', 'dense_units']

    Restrict it with fixed values before a search, for example with
    ``optuna_integration.OptunaSearchCV``:

    >>> from optuna.distributions import CategoricalDistribution
    >>> space["load__image_size"] = CategoricalDistribution([64])
    """
    _import_optuna()
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    classifier_space = {
        "n_conv_blocks": IntDistribution(1, 4),
        "filters": IntDistribution(8, 64, log=True),
        "kernel_size": IntDistribution(3, 7, step=2),
        "dense_units": IntDistribution(16, 256, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "batch_norm": CategoricalDistribution([False, True]),
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64]),
        "rotation": FloatDistribution(0.0, 0.05),
        "zoom": FloatDistribution(0.0, 0.2),
        "shift": FloatDistribution(0.0, 0.1),
        "contrast": FloatDistribution(0.0, 0.3),
        "threshold": CategoricalDistribution(["auto"]),
        "target_recall": CategoricalDistribution([None, 0.9, 0.95, 0.98, 0.99]),
    }
    space = {prefix + name: value for name, value in classifier_space.items()}
    if loader_prefix is not None:
        space[loader_prefix + "image_size"] = IntDistribution(32, 128, step=32)
    return space


@validate_params(
    {"n_threads": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def limit_threads(n_threads):
    """Cap the CPU threads TensorFlow uses in this process.

    Sets both of TensorFlow's thread pools, the one inside each operation and
    the one running independent operations side by side, to ``n_threads``, so
    that several training processes on one machine share its cores instead of
    each taking all of them (for example 4 workers of :func:`tune` with
    ``n_threads=4`` on 16 cores).

    TensorFlow fixes its thread pools when it runs its first operation, so call
    this first thing in the process, before any training, prediction or tensor.
    Calling it again with the same number is harmless.

    Parameters
    ----------
    n_threads : int
        Threads of each pool, at least 1.

    Raises
    ------
    RuntimeError
        If TensorFlow has already started with other pool sizes.
    """
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(n_threads)
        threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot limit TensorFlow to {n_threads} thread(s): it has already run "
            "in this process, which fixed its thread pools at "
            f"{threading.get_intra_op_parallelism_threads()} and "
            f"{threading.get_inter_op_parallelism_threads()} threads (0 means one "
            "per core). Call limit_threads first, before anything trains, predicts "
            "or makes a tensor."
        ) from error


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

    with _optuna_log_level(optuna, verbose, quiet_on_interrupt):
        study = _create_study(
            optuna, storage, study_name, random_state, pruning, sampler
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
    from .classifier import PneumoniaCNNClassifier  # loads TensorFlow

    return Pipeline([("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier())])


def _pipeline_factory(pipeline):
    """A function of ``params`` that makes the searched pipeline with them set."""
    from .classifier import PneumoniaCNNClassifier

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


def _unknown_params_message(unknown, where):
    return (
        f"{where} names parameters the pipeline does not have: {unknown}. "
        "Names start with 'load__' (ImageLoader) or 'cnn__' "
        "(PneumoniaCNNClassifier), for example 'cnn__filters'."
    )


def _checked_draw(space, make_pipe):
    """The define-by-run ``space``, refusing what is not pipeline parameters."""
    known = make_pipe({}).get_params(deep=True)

    def draw(trial):
        drawn = space(trial)
        if not isinstance(drawn, dict):
            raise TypeError(
                f"search_space(trial) must return a dict of pipeline parameters, "
                f"got {drawn!r}."
            )
        unknown = sorted(name for name in drawn if name not in known)
        if unknown:
            raise ValueError(_unknown_params_message(unknown, "search_space(trial)"))
        return drawn

    return draw


def _draw_from(search_space, trial):
    return {
        name: _suggest(trial, name, distribution)
        for name, distribution in search_space.items()
    }


def _check_search_space(search_space, make_pipe):
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    known = make_pipe({}).get_params(deep=True)
    unknown = sorted(name for name in search_space if name not in known)
    if unknown:
        raise ValueError(_unknown_params_message(unknown, "search_space"))
    supported = (CategoricalDistribution, FloatDistribution, IntDistribution)
    for name, distribution in search_space.items():
        if not isinstance(distribution, supported):
            raise ValueError(
                f"search_space[{name!r}] must be an Optuna FloatDistribution, "
                f"IntDistribution or CategoricalDistribution; got {distribution!r}."
            )


def _suggest(trial, name, distribution):
    """Draw one parameter; Optuna's Trial has no public method taking a distribution."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name,
            distribution.low,
            distribution.high,
            step=distribution.step,
            log=distribution.log,
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name,
            distribution.low,
            distribution.high,
            step=distribution.step,
            log=distribution.log,
        )
    return trial.suggest_categorical(name, distribution.choices)


def _pruning_callback(trial):
    from optuna_integration import KerasPruningCallback

    return KerasPruningCallback(trial, "val_auc")


def _create_study(optuna, storage, study_name, random_state, pruning, sampler):
    """Create the study, or load it when ``storage`` already holds ``study_name``."""
    if pruning is True:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    elif pruning is False:
        pruner = optuna.pruners.NopPruner()
    else:
        pruner = pruning
    return optuna.create_study(
        storage=_open_storage(storage),
        study_name=study_name,
        load_if_exists=True,
        direction="maximize",
        sampler=(
            sampler
            if sampler is not None
            else optuna.samplers.TPESampler(
                seed=random_state if storage is None else None
            )
        ),
        pruner=pruner,
    )


def _open_storage(storage):
    """Turn ``tune``'s ``storage`` argument into what ``optuna.create_study`` takes."""
    if not isinstance(storage, (str, os.PathLike)):
        return storage  # None (in memory) or an Optuna storage object
    storage = os.fspath(storage)
    if "://" not in storage:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(storage))
    if storage.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": _SQLITE_LOCK_TIMEOUT}}
    else:
        # Trials last minutes; check that a pooled connection is still alive.
        engine_kwargs = {"pool_pre_ping": True}
    return _rdb_storage(storage, engine_kwargs)


def _rdb_storage(url, engine_kwargs, attempts=3):
    import optuna
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():
                # Optuna marks the heartbeat experimental; tune documents it.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url, engine_kwargs=engine_kwargs, **_heartbeat_settings()
                )
        except ImportError as error:
            scheme = url.split("://", 1)[0]
            raise ImportError(
                f"No database driver for {scheme!r} storage URLs could be imported "
                f'({error.__cause__ or error}). pip install "pneumoclf[postgres]" '
                "installs the PostgreSQL driver; SQLAlchemy reads 'postgresql://' as "
                "psycopg 3 and 'postgresql+psycopg2://' as psycopg2."
            ) from error
        except SQLAlchemyError:
            # Processes started together on a new database race to create its
            # tables; the loser finds them made when it tries again.
            if attempt == attempts:
                raise
            time.sleep(attempt)


def _heartbeat_settings():
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return {
        "heartbeat_interval": _HEARTBEAT_INTERVAL,
        "grace_period": _HEARTBEAT_GRACE_PERIOD,
        "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
            max_retry=_MAX_RETRIES
        ),
    }


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


@contextmanager
def _optuna_log_level(optuna, verbose, log_filter):
    """Show Optuna's line per finished trial if ``verbose``, then restore its level.

    ``log_filter`` is added to Optuna's handlers meanwhile: a logger's own
    filters do not see its children's records.
    """
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(
        optuna.logging.INFO if verbose else optuna.logging.WARNING
    )
    handlers = logging.getLogger("optuna").handlers
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
        optuna.logging.set_verbosity(previous)


class _QuietOnInterrupt(logging.Filter):
    """Hold back Optuna's failed-trial warnings once the user has interrupted.

    The ``KeyboardInterrupt`` itself reaches the caller; Optuna would first log
    the interrupted trial as failed, with a traceback.
    """

    interrupted = False

    def watch(self, objective):
        @functools.wraps(objective)
        def watched(trial):
            try:
                return objective(trial)
            except KeyboardInterrupt:
                self.interrupted = True
                raise

        return watched

    def filter(self, record):
        return not self.interrupted
