/* tk-shim: enters a pod and monitors a container, in the spirit of Podman's conmon.
 *
 *   tk-shim [SETUP...] [-u UID] [-g GID] EXIT_FILE -- COMMAND [ARG...]   monitor mode
 *   tk-shim [SETUP...] [-u UID] [-g GID] -E -- COMMAND [ARG...]          exec mode (pause,
 *                                                                          kubectl exec)
 *
 * SETUP, done in this order, all on file descriptors the daemon opened and passed down:
 *   -c FD     join a cgroup: write "0" to FD (an open cgroup.procs), repeatable
 *   -K DIRFD  cgroup v2: the app's cgroup, an open directory. The app is created in it by
 *             clone3(CLONE_INTO_CGROUP) (Linux 5.7+), so no process is ever migrated and the
 *             shim itself stays where the daemon started it; where clone3 cannot do that
 *             (ENOSYS, E2BIG, EINVAL: older kernels) the child writes "0" to its cgroup.procs.
 *             Exec mode without -F has no child: the shim joins the cgroup itself that way.
 *   -n FD     setns(FD) (an open /proc/<pause>/ns/<type>), repeatable
 *   -U FLAGS  unshare(FLAGS) (decimal CLONE_* bits)
 *   -H NAME   sethostname(NAME)
 *   -L        bring up lo (a new network namespace starts with it down)
 *   -m FD     a private mount namespace, then the mount plan read from FD (see run_plan)
 *   -w DIR    chdir(DIR)
 *   -p        the app gets a PID namespace of its own: unshare(CLONE_NEWPID) before the fork,
 *             so the app is PID 1 there while the shim stays outside it as the monitor
 *   -F        exec mode only: fork and wait, so COMMAND lands in a PID namespace joined with -n
 *   -s FD     status pipe: a setup error is written there as text (and we exit 125); success
 *             closes it, so the daemon learns the outcome without waiting for anything else.
 *   -l DIRFD:NAME:MAXBYTES:MAXFILES   (monitor mode) the app's stdout+stderr go to a pipe that
 *             a thread of ours copies into our own stdout (the log file NAME in directory
 *             DIRFD, an O_PATH fd), rotating it at MAXBYTES: NAME -> NAME.1 -> ... ->
 *             NAME.<MAXFILES-1>, the oldest dropped (kubelet's containerLogMaxSize/MaxFiles).
 *             Without -l the app writes to our stdout directly, with no cap.
 *
 * ISOLATION, applied to the app (or exec'd command) just before exec (see enter_security):
 *   -C HEX    capability bounding set to keep (bit N = capability N); the inheritable and
 *             ambient sets are emptied. Without -C every capability stays (privileged).
 *   -Z        seccomp: the RuntimeDefault deny list (load_seccomp; libseccomp)
 *   -N        no_new_privs (allowPrivilegeEscalation: false)
 *   -G LIST   supplementary groups, comma-separated (supplementalGroups, fsGroup)
 * Order: bounding set, seccomp (still root, so no no_new_privs is needed to load it), groups,
 * gid, uid (a non-root uid thereby loses every capability, as under containerd), then
 * no_new_privs and exec.
 *
 * The daemon used to do SETUP in a Python preexec_fn, which forces a real fork() of the whole
 * daemon (~11 ms at its size, and growing with it); with the work here it spawns by vfork.
 *
 * Monitor mode forks and execs COMMAND (as UID/GID if given), forwards SIGTERM, SIGINT,
 * SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, waits for it, writes its exit code (128+N if
 * killed by signal N) to EXIT_FILE atomically (tmp file + rename) and exits with that code.
 * Because the shim, not the daemon, records the exit code, it survives a daemon restart. If
 * COMMAND cannot be executed, the child prints why on stderr and the code is 127.
 *
 * Signals are blocked and consumed with sigwaitinfo, so there is no handler race between
 * fork and the child's pid being known. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])
#define MAX_FDS 16

static int status_fd = -1;

/* The app's process, in cgroup `cgroup_dir` (-K) when that is >= 0. Like fork(): 0 in the
 * child. A raw clone3 runs no atfork handlers, so the child must not take libc locks a thread
 * of ours may hold: it only does syscalls and exec (as it did after fork, which is all the
 * copier thread is doing meanwhile). */
static void join_cgroup_dir(int cgroup_dir);
static pid_t fork_into(int cgroup_dir) {
    if (cgroup_dir < 0) return fork();
#ifdef CLONE_INTO_CGROUP
    struct clone_args args = {0};
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_dir;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) return (pid_t)pid;
    if (errno != ENOSYS && errno != E2BIG && errno != EINVAL) return -1;
#endif
    pid_t child = fork();
    if (child == 0) join_cgroup_dir(cgroup_dir);
    return child;
}

/* A setup step failed: tell the daemon (status pipe, else stderr) and give up. */
static void fail(const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n >= (int)sizeof msg) n = sizeof msg - 1;
    if (status_fd >= 0) {
        if (write(status_fd, msg, (size_t)n) < 0) { /* nothing more we can do */ }
    } else {
        fprintf(stderr, "tk-shim: %s\n", msg);
    }
    _exit(125);
}

/* The exit file is written through a descriptor of its directory opened before the set-up:
 * inside the container's mount namespace the run directory is hidden. */
static int write_exit_file(int dir_fd, const char *name, int code) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, ".%s.tmp.%d", name, (int)getpid()) >= (int)sizeof tmp)
        return -1;
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    char text[16];
    int n = snprintf(text, sizeof text, "%d\n", code);
    if (write(fd, text, (size_t)n) != n) { close(fd); return -1; }
    if (close(fd) != 0) return -1;
    return renameat(dir_fd, tmp, dir_fd, name);
}

/* Join the cgroup whose directory is open as `cgroup_dir` (the fallback for clone3). */
static void join_cgroup_dir(int cgroup_dir) {
    int procs = openat(cgroup_dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (procs < 0 || write(procs, "0", 1) != 1)
        fail("joining cgroup (directory fd %d): %s", cgroup_dir, strerror(errno));
    close(procs);
}

static void usage(void) {
    fprintf(stderr, "usage: tk-shim [-c FD] [-K DIRFD] [-n FD] [-U FLAGS] [-H NAME] [-L] [-m FD] [-w DIR]"
                    " [-p] [-F] [-s FD] [-l DIRFD:NAME:MAXBYTES:MAXFILES] [-C HEX] [-Z] [-N] [-G LIST]"
                    " [-u UID] [-g GID]"
                    " (EXIT_FILE | -E) -- COMMAND [ARG...]\n");
    exit(125);
}

static void loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket(AF_INET): %s", strerror(errno));
    struct ifreq req;
    memset(&req, 0, sizeof req);
    strcpy(req.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &req) != 0) fail("ioctl(lo, SIOCGIFFLAGS): %s", strerror(errno));
    req.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &req) != 0) fail("ioctl(lo, SIOCSIFFLAGS): %s", strerror(errno));
    close(fd);
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                     const char *data) {
    if (mount(src, dst, type, flags, data) != 0)
        fail("mount(%s, %s, %s, 0x%lx): %s", src ? src : "none", dst, type ? type : "none",
             flags, strerror(errno));
}

/* ---- mount attributes (mount_setattr, Linux 5.12+): one call for a whole subtree ---------- */
struct tk_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define TK_MOUNT_ATTR_RDONLY 0x1

/* Set (readonly=1) or clear (0) the read-only flag of PATH's mount and every mount below it. */
static void set_readonly(const char *path, int readonly) {
    struct tk_mount_attr attr = {0};
    if (readonly) attr.attr_set = TK_MOUNT_ATTR_RDONLY;
    else attr.attr_clr = TK_MOUNT_ATTR_RDONLY;
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) != 0)
        fail("mount_setattr(%s, %s): %s", path, readonly ? "ro" : "rw", strerror(errno));
}

/* ---- the mount plan ----------------------------------------------------------------------
 * (runtime/spawn.py encode_plan): NUL-separated tokens, one op after another.
 *   bind SRC DST RO        bind-mount SRC (opened before any op ran, so SRC may lie under a
 *                          path hidden later) and make the subtree read-only (RO "1") or
 *                          writable ("0", only after "readonly": undoes the inherited flag)
 *   mkdir PATH | touch PATH   create a mount point on a tmpfs of ours
 *   mirror PATH MODE       tmpfs over PATH; the "entry" ops that follow bind PATH's host
 *   reroot STAGING MODE    entries back (for reroot, those of "/" into STAGING)
 *   entry NAME KIND LINK   KIND d|f|l: recreate NAME on the tmpfs, bound from the host
 *   umount PATH            detach (the copy of STAGING that a recursive bind brought along)
 *   finish STAGING         move STAGING onto / and chroot into it
 *   readonly               every mount in the namespace read-only (the host tree)
 *   tmpfs PATH OPTIONS     a fresh, empty tmpfs (the private /tmp, the pod's /dev/shm)
 *   rslave                 host mounts propagate in from now on (the pause's namespace)
 *   hide PATH              an empty read-only tmpfs over a directory, /dev/null over a file
 *                          (the daemon's state, run dir and socket); missing PATH: nothing
 *   seal PATH              remount PATH's own mount read-only (our mirror tmpfs, once filled)
 *   rw PATH                make PATH's subtree writable again (a missing PATH: nothing)
 *   child                  the ops after this run in the app's process, after the fork: only
 *                          it is in the app's PID namespace, which a new /proc must show
 *   proc                   a fresh procfs on /proc
 *   mask PATH              hide a /proc or /sys path (as "hide")
 *   robind PATH            bind PATH onto itself read-only (/proc/sys, /proc/bus, ...) */
struct plan {
    char *buf;
    char **tok;
    size_t ntok;
    int *src_fds;   /* per token: an O_PATH fd of a bind's source, else -1 */
    size_t child_at; /* index of the first token after "child" (ntok if none) */
};

static size_t op_arity(const char *op) {
    if (!strcmp(op, "bind") || !strcmp(op, "entry")) return 4;
    if (!strcmp(op, "mirror") || !strcmp(op, "reroot") || !strcmp(op, "tmpfs")) return 3;
    if (!strcmp(op, "readonly") || !strcmp(op, "child") || !strcmp(op, "proc")
        || !strcmp(op, "rslave")) return 1;
    return 2;
}

static void read_plan(int fd, struct plan *plan) {
    struct stat st;
    if (fstat(fd, &st) != 0) fail("reading the mount plan: %s", strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) fail("out of memory");
    ssize_t got = pread(fd, buf, (size_t)st.st_size, 0);
    if (got != st.st_size) fail("reading the mount plan: short read");
    buf[got] = '\0';
    size_t cap = 1;
    for (ssize_t k = 0; k < got; k++) cap += buf[k] == '\0';
    plan->tok = malloc(cap * sizeof *plan->tok);
    plan->src_fds = malloc(cap * sizeof *plan->src_fds);
    if (!plan->tok || !plan->src_fds) fail("out of memory");
    plan->ntok = 0;
    for (char *p = buf; p < buf + got; p += strlen(p) + 1) plan->tok[plan->ntok++] = p;
    plan->buf = buf;
    plan->child_at = plan->ntok;
    /* Open every bind source now, while the host's paths are all still visible. */
    for (size_t i = 0; i < plan->ntok;) {
        const char *op = plan->tok[i];
        size_t need = op_arity(op);
        if (i + need > plan->ntok) fail("mount plan: truncated at %s", op);
        plan->src_fds[i] = -1;
        if (!strcmp(op, "bind")) {
            plan->src_fds[i] = open(plan->tok[i + 1], O_PATH | O_CLOEXEC);
            if (plan->src_fds[i] < 0) fail("open(%s): %s", plan->tok[i + 1], strerror(errno));
        } else if (!strcmp(op, "child") && plan->child_at == plan->ntok) {
            plan->child_at = i + 1;
        }
        i += need;
    }
}

/* An empty read-only tmpfs over a directory, /dev/null over anything else. */
static void hide_path(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return;
        fail("stat(%s): %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        do_mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 "size=4k,mode=0555");
    } else if (!S_ISLNK(st.st_mode)) {
        do_mount("/dev/null", path, NULL, MS_BIND, NULL);
        set_readonly(path, 1);
    }
}

/* Run the plan's ops in [from, to). */
static void run_ops(struct plan *plan, size_t from, size_t to) {
    char **tok = plan->tok;
    int source = -1;         /* the host directory whose entries are being bound back */
    const char *dest = NULL; /* the tmpfs they are recreated on */
    int readonly_host = 0;
    char path[4096], from_path[4096];
    for (size_t i = from; i < to;) {
        const char *op = tok[i];
        size_t need = op_arity(op);
        const char **a = (const char **)&tok[i + 1];
        if (!strcmp(op, "bind")) {
            snprintf(from_path, sizeof from_path, "/proc/self/fd/%d", plan->src_fds[i]);
            do_mount(from_path, a[1], NULL, MS_BIND | MS_REC, NULL);
            close(plan->src_fds[i]);
            plan->src_fds[i] = -1;
            if (a[2][0] == '1' || readonly_host) set_readonly(a[1], a[2][0] == '1');
        } else if (!strcmp(op, "mkdir")) {
            if (mkdir(a[0], 0755) != 0) fail("mkdir(%s): %s", a[0], strerror(errno));
        } else if (!strcmp(op, "touch")) {
            int f = open(a[0], O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            if (f < 0) fail("creating %s: %s", a[0], strerror(errno));
            close(f);
        } else if (!strcmp(op, "mirror") || !strcmp(op, "reroot")) {
            if (source >= 0) close(source);
            const char *host = !strcmp(op, "reroot") ? "/" : a[0];
            source = open(host, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (source < 0) fail("open(%s): %s", host, strerror(errno));
            char data[32];
            snprintf(data, sizeof data, "mode=%s", a[1]);
            do_mount("tmpfs", a[0], "tmpfs", 0, data);
            dest = a[0];
        } else if (!strcmp(op, "entry")) {
            if (!dest) fail("mount plan: entry before mirror");
            snprintf(path, sizeof path, "%s/%s", dest, a[0]);
            if (a[1][0] == 'l') {
                if (symlink(a[2], path) != 0) fail("symlink(%s): %s", path, strerror(errno));
                i += need;
                continue;
            }
            if (a[1][0] == 'd') {
                if (mkdir(path, 0755) != 0) fail("mkdir(%s): %s", path, strerror(errno));
            } else {
                int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                if (f < 0) fail("creating %s: %s", path, strerror(errno));
                close(f);
            }
            snprintf(from_path, sizeof from_path, "/proc/self/fd/%d/%s", source, a[0]);
            do_mount(from_path, path, NULL, MS_BIND | MS_REC, NULL);
        } else if (!strcmp(op, "umount")) {
            if (umount2(a[0], MNT_DETACH) != 0) fail("umount(%s): %s", a[0], strerror(errno));
        } else if (!strcmp(op, "finish")) {
            if (chdir(a[0]) != 0) fail("chdir(%s): %s", a[0], strerror(errno));
            do_mount(a[0], "/", NULL, MS_MOVE, NULL);
            if (chroot(".") != 0) fail("chroot: %s", strerror(errno));
            if (chdir("/") != 0) fail("chdir(/): %s", strerror(errno));
        } else if (!strcmp(op, "readonly")) {
            set_readonly("/", 1);
            readonly_host = 1;
        } else if (!strcmp(op, "tmpfs")) {
            do_mount("tmpfs", a[0], "tmpfs", MS_NOSUID | MS_NODEV, a[1]);
        } else if (!strcmp(op, "rslave")) {
            do_mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL);
        } else if (!strcmp(op, "hide") || !strcmp(op, "mask")) {
            hide_path(a[0]);
        } else if (!strcmp(op, "seal")) {
            do_mount(NULL, a[0], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
        } else if (!strcmp(op, "rw")) {
            if (access(a[0], F_OK) == 0) set_readonly(a[0], 0);
        } else if (!strcmp(op, "child")) {
            break;
        } else if (!strcmp(op, "proc")) {
            do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        } else if (!strcmp(op, "robind")) {
            if (access(a[0], F_OK) == 0) {
                do_mount(a[0], a[0], NULL, MS_BIND | MS_REC, NULL);
                set_readonly(a[0], 1);
            }
        } else {
            fail("mount plan: unknown op %s", op);
        }
        i += need;
    }
    if (source >= 0) close(source);
}

/* ---- isolation of the app: capabilities, seccomp, no_new_privs, user ---------------------- */
struct security {
    int limit_caps;     /* -C given */
    uint64_t caps;      /* the bounding set to keep */
    int seccomp;        /* -Z */
    int no_new_privs;   /* -N */
    long uid, gid;
    gid_t groups[64];
    int ngroups;        /* -1: not given */
};

static int has_cap(const struct security *sec, int cap) {
    return !sec->limit_caps || (sec->caps >> cap) & 1;
}

static void limit_capabilities(const struct security *sec) {
    for (int cap = 0; cap < 64; cap++) {
        if (has_cap(sec, cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) break;  /* past the kernel's last capability */
            fail("dropping capability %d from the bounding set: %s", cap, strerror(errno));
        }
    }
    /* Empty inheritable and ambient sets: a non-root app must not regain capabilities from a
     * file's inheritable bits (containerd's fix for CVE-2022-24769). */
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) fail("capget: %s", strerror(errno));
    data[0].inheritable = data[1].inheritable = 0;
    if (syscall(SYS_capset, &hdr, data) != 0) fail("capset: %s", strerror(errno));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/* RuntimeDefault, in the spirit of containerd's profile: containerd allow-lists and gates
 * the syscalls below on capabilities; a deny list of the same calls (EPERM) keeps the filter
 * short and lets every other, newer syscall through. Calls the kernel already refuses without
 * a capability are denied here only when the container lacks that capability, as there. */
struct deny { const char *name; int unless_cap; };
static const struct deny denied[] = {
    {"keyctl", -1}, {"add_key", -1}, {"request_key", -1},
    {"io_uring_setup", -1}, {"io_uring_enter", -1}, {"io_uring_register", -1},
    {"uselib", -1}, {"ustat", -1}, {"sysfs", -1}, {"_sysctl", -1}, {"nfsservctl", -1},
    {"vm86", -1}, {"vm86old", -1}, {"create_module", -1}, {"get_kernel_syms", -1},
    {"query_module", -1}, {"lookup_dcookie", -1},
    {"kexec_load", CAP_SYS_BOOT}, {"kexec_file_load", CAP_SYS_BOOT}, {"reboot", CAP_SYS_BOOT},
    {"init_module", CAP_SYS_MODULE}, {"finit_module", CAP_SYS_MODULE},
    {"delete_module", CAP_SYS_MODULE},
    {"acct", CAP_SYS_PACCT},
    {"settimeofday", CAP_SYS_TIME}, {"stime", CAP_SYS_TIME}, {"clock_settime", CAP_SYS_TIME},
    {"clock_adjtime", CAP_SYS_TIME},
    {"iopl", CAP_SYS_RAWIO}, {"ioperm", CAP_SYS_RAWIO},
    {"open_by_handle_at", CAP_DAC_READ_SEARCH},
    {"syslog", CAP_SYSLOG}, {"vhangup", CAP_SYS_TTY_CONFIG},
    {"get_mempolicy", CAP_SYS_NICE}, {"set_mempolicy", CAP_SYS_NICE}, {"mbind", CAP_SYS_NICE},
    {"move_pages", CAP_SYS_NICE},
    {"kcmp", CAP_SYS_PTRACE}, {"userfaultfd", CAP_SYS_PTRACE},
    {"bpf", CAP_SYS_ADMIN}, {"perf_event_open", CAP_SYS_ADMIN}, {"fanotify_init", CAP_SYS_ADMIN},
    {"mount", CAP_SYS_ADMIN}, {"umount", CAP_SYS_ADMIN}, {"umount2", CAP_SYS_ADMIN},
    {"pivot_root", CAP_SYS_ADMIN}, {"swapon", CAP_SYS_ADMIN}, {"swapoff", CAP_SYS_ADMIN},
    {"quotactl", CAP_SYS_ADMIN}, {"quotactl_fd", CAP_SYS_ADMIN}, {"setns", CAP_SYS_ADMIN},
    {"name_to_handle_at", CAP_SYS_ADMIN}, {"sethostname", CAP_SYS_ADMIN},
    {"setdomainname", CAP_SYS_ADMIN},
    {"fsopen", CAP_SYS_ADMIN}, {"fsconfig", CAP_SYS_ADMIN}, {"fsmount", CAP_SYS_ADMIN},
    {"fspick", CAP_SYS_ADMIN}, {"open_tree", CAP_SYS_ADMIN}, {"move_mount", CAP_SYS_ADMIN},
    {"mount_setattr", CAP_SYS_ADMIN},
};
/* New namespaces need CAP_SYS_ADMIN, except a user namespace, which the kernel grants to
 * anyone: containerd denies all of them without the capability. */
static const uint64_t ns_flags[] = {CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, 0x80 /* TIME */};

static void load_seccomp(const struct security *sec) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) fail("seccomp_init failed");
    /* Loading needs CAP_SYS_ADMIN or no_new_privs; we are still root, so leave no_new_privs
     * to allowPrivilegeEscalation (libseccomp would set it by default). */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    /* The other x86 ABIs too: a 32-bit or x32 call must not slip past the filter. */
    if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
        seccomp_arch_add(ctx, SCMP_ARCH_X86);
        seccomp_arch_add(ctx, SCMP_ARCH_X32);
    }
    int rc;
    for (size_t k = 0; k < sizeof denied / sizeof denied[0]; k++) {
        if (denied[k].unless_cap >= 0 && has_cap(sec, denied[k].unless_cap)) continue;
        int nr = seccomp_syscall_resolve_name(denied[k].name);
        if (nr == __NR_SCMP_ERROR) continue;  /* not on this architecture */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc < 0 && rc != -EDOM) fail("seccomp rule %s: %s", denied[k].name, strerror(-rc));
    }
    if (!has_cap(sec, CAP_SYS_ADMIN)) {
        for (size_t k = 0; k < sizeof ns_flags / sizeof ns_flags[0]; k++) {
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[k], ns_flags[k]));
            if (rc == 0)
                rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                      SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[k], ns_flags[k]));
            if (rc < 0) fail("seccomp rule for namespace flags: %s", strerror(-rc));
        }
        /* clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall
         * back to clone, which the rules above see (containerd does the same). */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        if (rc < 0 && rc != -EDOM) fail("seccomp rule clone3: %s", strerror(-rc));
    }
    rc = seccomp_load(ctx);
    if (rc < 0) fail("loading the seccomp filter: %s", strerror(-rc));
    seccomp_release(ctx);
}

static void become_user(const struct security *sec) {
    if (sec->gid >= 0 || sec->ngroups >= 0) {
        gid_t groups[65];
        int n = 0;
        if (sec->gid >= 0) groups[n++] = (gid_t)sec->gid;
        for (int k = 0; k < sec->ngroups; k++) groups[n++] = sec->groups[k];
        if (setgroups((size_t)n, groups) != 0) fail("setgroups: %s", strerror(errno));
    }
    if (sec->gid >= 0 && setgid((gid_t)sec->gid) != 0)
        fail("setgid %ld: %s", sec->gid, strerror(errno));
    if (sec->uid >= 0 && setuid((uid_t)sec->uid) != 0)
        fail("setuid %ld: %s", sec->uid, strerror(errno));
}

/* Everything the app's process does to itself between the fork and exec. */
static void enter_security(const struct security *sec) {
    if (sec->limit_caps) limit_capabilities(sec);
    if (sec->seccomp) load_seccomp(sec);
    become_user(sec);
    if (sec->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail("no_new_privs: %s", strerror(errno));
}

static void parse_groups(const char *text, struct security *sec) {
    sec->ngroups = 0;
    char *end;
    for (const char *p = text; *p;) {
        long g = strtol(p, &end, 10);
        if (end == p || g < 0 || sec->ngroups == 64) usage();
        sec->groups[sec->ngroups++] = (gid_t)g;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') usage();
    }
}

/* ---- the log copier (-l) ------------------------------------------------------------------
 * A file the app holds open cannot be rotated under it, so the app writes to a pipe and this
 * thread writes the file. It only ever touches NAME and NAME.<k> in DIRFD, with *at() calls
 * and O_NOFOLLOW, whatever mount namespace we are in. A slow disk throttles the app through
 * the pipe (as with conmon); a full disk drops output instead of failing the app. */
static int parse_fd(const char *text);
static int log_dir = -1;
static char log_name[256];
static long long log_max = 0;   /* rotate at this size (bytes) */
static int log_files = 1;       /* files kept, the current one included */
static int log_pipe = -1;       /* read end */
static atomic_int app_exited;

static void parse_log_option(char *val) {
    char *name = strchr(val, ':');
    char *max = name ? strchr(name + 1, ':') : NULL;
    char *files = max ? strchr(max + 1, ':') : NULL;
    if (!files) usage();
    *name++ = '\0'; *max++ = '\0'; *files++ = '\0';
    log_dir = parse_fd(val);
    if (!*name || strchr(name, '/') || strlen(name) >= sizeof log_name - 8) usage();
    strcpy(log_name, name);
    log_max = strtoll(max, NULL, 10);
    log_files = (int)strtol(files, NULL, 10);
    if (log_max < 0 || log_files < 1 || log_files > 1000) usage();
    fcntl(log_dir, F_SETFD, FD_CLOEXEC);
}

static void rotate_log(void) {
    if (log_files > 1) {
        char from[300], to[300];
        for (int k = log_files - 1; k >= 1; k--) {
            if (k == 1) snprintf(from, sizeof from, "%s", log_name);
            else snprintf(from, sizeof from, "%s.%d", log_name, k - 1);
            snprintf(to, sizeof to, "%s.%d", log_name, k);
            renameat(log_dir, from, log_dir, to);  /* replaces the oldest; ENOENT is fine */
        }
        int fd = openat(log_dir, log_name,
                        O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);  /* our own messages: not into a file we just dropped */
            close(fd);
            return;
        }
    }
    if (ftruncate(STDOUT_FILENO, 0) != 0) { /* the cap holds either way: nothing more to do */ }
}

/* Each write under an exclusive flock: the kernel grows a file's size page by page during
 * one write, and the daemon's reader takes the size under a shared flock, so it sees whole
 * writes (whole lines) only. */
static void write_all(const char *data, ssize_t n) {
    int locked = flock(STDOUT_FILENO, LOCK_EX) == 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(STDOUT_FILENO, data + off, (size_t)(n - off));
        if (w <= 0) break;  /* ENOSPC and the like: drop the rest of this chunk */
        off += w;
    }
    if (locked) flock(STDOUT_FILENO, LOCK_UN);
}

/* While output streams in, the file gets whole lines only: what follows the last newline
 * waits in `buf` for the rest of its line, so `logs --tail` of a busy app never ends in half
 * a line (containerd buffers likewise). Once the app pauses (LOG_IDLE_POLLS polls of 100 ms
 * find nothing: long enough that a writer merely starved of CPU between two pieces of a line
 * does not count) the unfinished line goes out as it is, so a prompt without a newline still
 * shows, as with conmon. A line longer than LOG_LINE_MAX (containerd's default
 * max_container_log_line_size) goes out in pieces, and what is pending at exit goes out. */
#define LOG_LINE_MAX 16384
#define LOG_READ_SIZE 65536
#define LOG_IDLE_POLLS 5

static void write_lines(const char *data, ssize_t n, long long *size) {
    ssize_t head = n;  /* what goes into the current file */
    int full = log_max > 0 && *size + n >= log_max;
    if (full) {
        /* Rotate at a line boundary, so every file starts with a whole line (a line
         * longer than LOG_LINE_MAX is the exception). */
        const char *nl = memrchr(data, '\n', (size_t)n);
        if (nl) head = nl - data + 1;
    }
    write_all(data, head);
    *size += head;
    if (full) {
        rotate_log();
        *size = 0;
    }
    if (head < n) {
        write_all(data + head, n - head);
        *size += n - head;
    }
}

static void *copy_logs(void *unused) {
    (void)unused;
    static char buf[LOG_LINE_MAX + LOG_READ_SIZE];
    ssize_t pending = 0;  /* bytes of an unfinished line at the start of buf */
    struct stat st;
    long long size = fstat(STDOUT_FILENO, &st) == 0 ? (long long)st.st_size : 0;
    int drains = 0, idle_polls = 0;
    for (;;) {
        int exited = atomic_load(&app_exited);
        /* Once the app is gone, take what is buffered (bounded: a grandchild that keeps the
         * pipe open and writes forever must not keep the exit code from being written). */
        if (exited && ++drains > 64) break;
        struct pollfd p = {log_pipe, POLLIN, 0};
        int r = poll(&p, 1, exited ? 0 : 100);
        if (r == 0) {
            if (exited) break;
            if (pending > 0 && ++idle_polls >= LOG_IDLE_POLLS) {
                write_lines(buf, pending, &size);
                pending = 0;
            }
            continue;
        }
        idle_polls = 0;
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        ssize_t n = read(log_pipe, buf + pending, LOG_READ_SIZE);
        if (n == 0) break;  /* every writer has closed it */
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            break;
        }
        n += pending;
        const char *nl = memrchr(buf, '\n', (size_t)n);
        ssize_t complete = nl ? nl - buf + 1 : 0;
        if (n - complete > LOG_LINE_MAX) complete = n;
        write_lines(buf, complete, &size);
        pending = n - complete;
        memmove(buf, buf + complete, (size_t)pending);
    }
    if (pending > 0) write_lines(buf, pending, &size);
    return NULL;
}

/* With every signal blocked, so signals stay with the main thread's sigwaitinfo. */
static int start_copier(pthread_t *thread) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int ok = pthread_create(thread, NULL, copy_logs, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

static int parse_fd(const char *text) {
    char *end;
    long v = strtol(text, &end, 10);
    if (*end || v < 0 || v > 1 << 20) usage();
    return (int)v;
}

/* Forward signals to the child until it exits; returns its exit code (128+N if killed). */
static int monitor(pid_t child, sigset_t *waitset) {
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(waitset, &info);
        if (sig < 0) continue;  /* EINTR */
        if (sig != SIGCHLD) { kill(child, sig); continue; }
        int status;
        pid_t got = waitpid(child, &status, WNOHANG);
        if (got == child) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        }
    }
}

int main(int argc, char **argv) {
    long unshare_flags = 0;
    int cgroup_fds[MAX_FDS], ns_fds[MAX_FDS], ncgroup = 0, nns = 0, plan_fd = -1;
    int lo_up = 0, exec_mode = 0, new_pidns = 0, exec_fork = 0, cgroup_dir = -1;
    const char *hostname = NULL, *workdir = NULL;
    struct security sec = {.uid = -1, .gid = -1, .ngroups = -1};
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] && !argv[i][2]; i++) {
        char opt = argv[i][1];
        if (opt == 'L') { lo_up = 1; continue; }
        if (opt == 'E') { exec_mode = 1; continue; }
        if (opt == 'p') { new_pidns = 1; continue; }
        if (opt == 'F') { exec_fork = 1; continue; }
        if (opt == 'Z') { sec.seccomp = 1; continue; }
        if (opt == 'N') { sec.no_new_privs = 1; continue; }
        if (opt == '-') break;
        if (i + 1 >= argc) usage();
        const char *val = argv[++i];
        switch (opt) {
        case 'u': sec.uid = strtol(val, NULL, 10); break;
        case 'g': sec.gid = strtol(val, NULL, 10); break;
        case 'G': parse_groups(val, &sec); break;
        case 'C': sec.limit_caps = 1; sec.caps = strtoull(val, NULL, 16); break;
        case 'c': if (ncgroup == MAX_FDS) usage(); cgroup_fds[ncgroup++] = parse_fd(val); break;
        case 'K': cgroup_dir = parse_fd(val); fcntl(cgroup_dir, F_SETFD, FD_CLOEXEC); break;
        case 'n': if (nns == MAX_FDS) usage(); ns_fds[nns++] = parse_fd(val); break;
        case 'U': unshare_flags = strtol(val, NULL, 10); break;
        case 'H': hostname = val; break;
        case 'm': plan_fd = parse_fd(val); break;
        case 'w': workdir = val; break;
        case 's': status_fd = parse_fd(val); fcntl(status_fd, F_SETFD, FD_CLOEXEC); break;
        case 'l': parse_log_option(argv[i]); break;
        default: usage();
        }
    }
    const char *exit_file = NULL;
    if (!exec_mode) {
        if (i >= argc) usage();
        exit_file = argv[i++];
    }
    if (i + 1 >= argc || strcmp(argv[i], "--") != 0) usage();
    char **command = &argv[i + 1];

    int exit_dir = -1;
    char exit_name[4096] = "";
    if (exit_file) {  /* before the mount plan can hide it */
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", exit_file);
        exit_dir = open(dirname(copy), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (exit_dir < 0) fail("open(%s): %s", copy, strerror(errno));
        snprintf(copy, sizeof copy, "%s", exit_file);
        snprintf(exit_name, sizeof exit_name, "%s", basename(copy));
    }

    for (int k = 0; k < ncgroup; k++) {
        if (write(cgroup_fds[k], "0", 1) != 1) fail("joining cgroup (fd %d): %s", cgroup_fds[k],
                                                    strerror(errno));
        close(cgroup_fds[k]);
    }
    if (cgroup_dir >= 0 && exec_mode && !exec_fork) {  /* no child to create in the cgroup */
        join_cgroup_dir(cgroup_dir);
        close(cgroup_dir);
        cgroup_dir = -1;
    }
    for (int k = 0; k < nns; k++) {
        if (setns(ns_fds[k], 0) != 0) fail("setns(fd %d): %s", ns_fds[k], strerror(errno));
        close(ns_fds[k]);
    }
    if (unshare_flags && unshare((int)unshare_flags) != 0)
        fail("unshare(0x%lx): %s", unshare_flags, strerror(errno));
    if (hostname && sethostname(hostname, strlen(hostname)) != 0)
        fail("sethostname(%s): %s", hostname, strerror(errno));
    if (lo_up) loopback_up();
    struct plan plan = {0};
    if (plan_fd >= 0) {
        /* Bind sources are opened after the unshare: a mount may only be bound from the
         * namespace it belongs to. */
        if (unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS): %s", strerror(errno));
        read_plan(plan_fd, &plan);
        close(plan_fd);
        /* Private, so nothing of ours reaches the host; "rslave" first: the host's reach us. */
        if (plan.ntok == 0 || strcmp(plan.tok[0], "rslave") != 0)
            do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        run_ops(&plan, 0, plan.child_at);
    }
    if (workdir && chdir(workdir) != 0) fail("chdir(%s): %s", workdir, strerror(errno));
    /* The log copier thread starts here: no thread can be created once CLONE_NEWPID is
     * unshared (clone(CLONE_THREAD) is EINVAL then). If it cannot start, the app writes to
     * the log file directly (uncapped) rather than into a pipe nobody reads. */
    int log_write = -1;
    pthread_t copier;
    int copying = 0;
    if (log_dir >= 0 && !exec_mode) {
        int ends[2];
        if (pipe2(ends, O_CLOEXEC) != 0) fail("pipe: %s", strerror(errno));
        log_pipe = ends[0];
        copying = start_copier(&copier);
        if (copying) {
            log_write = ends[1];
        } else {
            close(ends[0]);
            close(ends[1]);
        }
    }
    if (new_pidns && unshare(CLONE_NEWPID) != 0) fail("unshare(CLONE_NEWPID): %s", strerror(errno));

    if (exec_mode && !exec_fork) {  /* status_fd is close-on-exec: a successful exec reports success */
        enter_security(&sec);
        execvp(command[0], command);
        fail("exec %s: %s", command[0], strerror(errno));
    }

    sigset_t waitset;
    sigemptyset(&waitset);
    for (size_t k = 0; k < NFORWARDED; k++) sigaddset(&waitset, forwarded[k]);
    sigaddset(&waitset, SIGCHLD);
    sigprocmask(SIG_BLOCK, &waitset, NULL);

    pid_t child = fork_into(cgroup_dir);
    if (child < 0) fail("%s: %s", cgroup_dir >= 0 ? "clone3 into the cgroup" : "fork",
                        strerror(errno));
    if (child == 0) {
        if (log_write >= 0 && (dup2(log_write, STDOUT_FILENO) < 0
                               || dup2(log_write, STDERR_FILENO) < 0))
            fail("dup2 of the log pipe: %s", strerror(errno));
        /* The app starts with no signal blocked, whatever the spawning thread had blocked. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (exec_mode) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  /* killed with the shim */
        if (plan.child_at < plan.ntok) run_ops(&plan, plan.child_at, plan.ntok);
        /* Set-up errors up to here reach the daemon (status pipe); from here on they are
         * the app's: its stderr (the log) and an exit code. */
        enter_security(&sec);
        if (status_fd >= 0 && !exec_mode) { close(status_fd); status_fd = -1; }
        execvp(command[0], command);
        if (exec_mode) fail("exec %s: %s", command[0], strerror(errno));
        fprintf(stderr, "tk-shim: exec %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    if (cgroup_dir >= 0) close(cgroup_dir);
    /* The child holds the status pipe until its exec (or its set-up error). */
    if (status_fd >= 0) { close(status_fd); status_fd = -1; }

    if (log_write >= 0) close(log_write);  /* the app holds the only write end: its exit is EOF */
    int code = monitor(child, &waitset);
    if (copying) {
        atomic_store(&app_exited, 1);
        pthread_join(copier, NULL);  /* the log is complete before the exit code appears */
    }
    if (exit_dir >= 0 && write_exit_file(exit_dir, exit_name, code) != 0)
        fprintf(stderr, "tk-shim: writing exit file %s: %s\n", exit_file, strerror(errno));
    return code;
}
