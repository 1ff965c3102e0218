"""Operations: metrics, health, alerts and status of a running service."""
