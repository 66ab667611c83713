"""HCRM services: one package per service; none imports another (docs/ARCHITECTURE.md rule 1)."""
