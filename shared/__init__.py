"""Code every HCRM service uses: event schemas, messaging, store, config, metrics, logging."""
