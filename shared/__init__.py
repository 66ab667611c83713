"""Code every HCRM service uses: event schemas, messaging, store, config, metrics, logging."""

import warnings

# nameko 2.14 needs eventlet, which warns at import that it is in maintenance mode; the
# warning is known and says nothing to an operator reading our logs or CLI output. The
# message starts with a newline, which ".*" does not cross: match it with \s*. Set here,
# in the package every process imports before eventlet (cli, runner, the gateway).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
