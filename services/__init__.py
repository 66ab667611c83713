"""HCRM services: one package per service; none imports another (ARCHITECTURE.md rule 1)."""
