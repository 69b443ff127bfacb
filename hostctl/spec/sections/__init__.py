"""The inventory sections (gateway, logging, metrics, k3s): typed values, schemas, cross-checks."""
