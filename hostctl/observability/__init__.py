"""Observability: log shipping (gelf -> Logstash -> Elasticsearch), the per-host metrics
exporter, and the Prometheus/Grafana files rendered from the inventory and specs."""
