"""Search spaces: the default one, and checks of a user's."""

from ._storage import _import_optuna


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
