"""Cluster mode: Node and Lease objects, the scheduler, node lifecycle, agents (issue #21)."""
