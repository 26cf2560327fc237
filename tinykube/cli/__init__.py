"""The `tinykube` command line, with kubectl's habits."""
