"""Training: the recipe, checkpoints, optimiser and schedule; ``attncoach.train(...)`` trains from Python.

``attncoach.train`` is both this package and the public training function: the package is
callable (``attncoach.train(config_or_path, **overrides) -> Run``, see
:mod:`attncoach.train.run`), so importing a submodule such as ``attncoach.train.recipe``,
which rebinds the package attribute, never hides the function.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from attncoach.train.run import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
