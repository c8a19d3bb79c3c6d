"""Optuna's studies and storages: databases shared by workers, heartbeats, logs."""

import functools
import logging
import os
import time
import warnings
from contextlib import contextmanager

from .._utils import recording_ctrl_c

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
        """``objective``, stopping the study for good once the user interrupted.

        TensorFlow may turn a ``KeyboardInterrupt`` raised inside its own code
        into another error, or swallow it; :meth:`noticing_ctrl_c` records the
        signal itself, so that the trial ends with a ``KeyboardInterrupt`` all the
        same, and no trial starts after it.
        """

        @functools.wraps(objective)
        def watched(trial):
            if self.interrupted:
                raise KeyboardInterrupt
            try:
                value = objective(trial)
            except KeyboardInterrupt:
                self.interrupted = True
                raise
            except Exception:
                if self.interrupted:
                    raise KeyboardInterrupt from None
                raise
            if self.interrupted:
                raise KeyboardInterrupt
            return value

        return watched

    def noticing_ctrl_c(self):
        """Record Ctrl-C as it arrives (:func:`pneumoclf._utils.recording_ctrl_c`)."""
        return recording_ctrl_c(self._record_interrupt)

    def _record_interrupt(self):
        self.interrupted = True

    def filter(self, record):
        return not self.interrupted
