import pathlib
import tempfile
import warnings

import pytest

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from tests.support import Platform, StoreServer, ensure_rabbitmq  # noqa: E402


@pytest.fixture(scope="session")
def log_dir():
    path = pathlib.Path(tempfile.mkdtemp(prefix="hcrm-test-logs-"))
    yield path


@pytest.fixture(scope="session")
def store_server(log_dir):
    """One NX-27017 process for the session; each test uses its own database names."""
    ensure_rabbitmq()
    server = StoreServer(log_dir)
    yield server
    server.close()


@pytest.fixture
def platform(store_server, log_dir):
    """An isolated installation: own vhost, own databases; processes stopped at the end."""
    installation = Platform(store_server, log_dir)
    yield installation
    installation.close()
