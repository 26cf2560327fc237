"""tinykube's own integration tests use the pytest plugin's daemon: one implementation, in
tinykube.testing.daemon (this module only re-exports it, so tests keep their imports)."""

from tinykube.testing.daemon import (
    CONTROLLER_KINDS,
    POD_FILE_TARGETS,
    Daemon,
    PodWatch,
    assert_no_leaks,
    container_pid,
    free_port,
    is_ready,
    mount_snapshot,
    new_mount_points,
    pod_cgroups,
    wait_for,
)

__all__ = ["CONTROLLER_KINDS", "POD_FILE_TARGETS", "Daemon", "PodWatch", "assert_no_leaks",
           "container_pid", "free_port", "is_ready", "mount_snapshot", "new_mount_points",
           "pod_cgroups", "wait_for"]
