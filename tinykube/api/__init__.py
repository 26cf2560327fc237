"""Kubernetes API compatibility pieces the API server routes to: TLS and authentication,
discovery, OpenAPI, tables, patches, watch options, dry-run. Each module has one job;
`tinykube.apiserver` only hooks them in."""
