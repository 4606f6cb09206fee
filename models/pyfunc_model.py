"""The model code MLflow logs with every version (models-from-code): MLflow runs this file when it logs
or loads the model, and `set_model` hands it the pyfunc, which finds its bundle in the model's artifacts.

Nothing else imports this module: running `set_model` on import is the mechanism, not a side effect to
avoid (https://mlflow.org/docs/latest/ml/model/models-from-code/). Logging the pyfunc by path instead of
as an object is also what keeps MLflow from pickling it (and from warning that it did).
"""

import mlflow.models

from models.pyfunc import EtaPyfunc

mlflow.models.set_model(EtaPyfunc())
