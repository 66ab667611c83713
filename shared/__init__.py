"""Code every HCRM service uses: event schemas, messaging, store, config, metrics, logging."""
import warnings

# nameko 2.14 needs eventlet, which warns at import that it is in maintenance mode; the
# warning is known and says nothing to an operator reading our logs or CLI output.
warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
