/* tk-shim: enters a pod and monitors a container, in the spirit of Podman's conmon.
 *
 *   tk-shim [SETUP...] [-u UID] [-g GID] EXIT_FILE -- COMMAND [ARG...]   monitor mode
 *   tk-shim [SETUP...] [-u UID] [-g GID] -E -- COMMAND [ARG...]          exec mode (pause,
 *                                                                          kubectl exec)
 *
 * SETUP, done in this order, all on file descriptors the daemon opened and passed down:
 *   -c FD     join a cgroup: write "0" to FD (an open cgroup.procs), repeatable
 *   -n FD     setns(FD) (an open /proc/<pause>/ns/<type>), repeatable
 *   -U FLAGS  unshare(FLAGS) (decimal CLONE_* bits)
 *   -H NAME   sethostname(NAME)
 *   -L        bring up lo (a new network namespace starts with it down)
 *   -m FD     a private mount namespace, then the mount plan read from FD (see run_plan)
 *   -w DIR    chdir(DIR)
 *   -s FD     status pipe: a setup error is written there as text (and we exit 125); success
 *             closes it, so the daemon learns the outcome without waiting for anything else.
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
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])
#define MAX_FDS 16

static int status_fd = -1;

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

static int write_exit_file(const char *path, int code) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%d\n", code);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

static void usage(void) {
    fprintf(stderr, "usage: tk-shim [-c FD] [-n FD] [-U FLAGS] [-H NAME] [-L] [-m FD] [-w DIR]"
                    " [-s FD] [-u UID] [-g GID] (EXIT_FILE | -E) -- COMMAND [ARG...]\n");
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

/* The mount plan (runtime/spawn.py encode_plan): NUL-separated tokens, one op after another.
 *   bind SRC DST RO        bind-mount (RO "1": then remount read-only)
 *   mkdir PATH | touch PATH   create a mount point on a tmpfs of ours
 *   mirror PATH MODE       tmpfs over PATH; the "entry" ops that follow bind PATH's host
 *   reroot STAGING MODE    entries back (for reroot, those of "/" into STAGING)
 *   entry NAME KIND LINK   KIND d|f|l: recreate NAME on the tmpfs, bound from the host
 *   umount PATH            detach (the copy of STAGING that a recursive bind brought along)
 *   finish STAGING         move STAGING onto / and chroot into it */
static void run_plan(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) fail("reading the mount plan: %s", strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) fail("out of memory");
    ssize_t got = pread(fd, buf, (size_t)st.st_size, 0);
    if (got != st.st_size) fail("reading the mount plan: short read");
    buf[got] = '\0';
    char *tok[4096];
    size_t ntok = 0;
    for (char *p = buf; p < buf + got && ntok < 4096; p += strlen(p) + 1) tok[ntok++] = p;

    int source = -1;         /* the host directory whose entries are being bound back */
    const char *dest = NULL; /* the tmpfs they are recreated on */
    char path[4096], from[4096];
    for (size_t i = 0; i < ntok;) {
        const char *op = tok[i];
        size_t need = !strcmp(op, "bind") ? 4 : !strcmp(op, "entry") ? 4
                    : (!strcmp(op, "mirror") || !strcmp(op, "reroot")) ? 3 : 2;
        if (i + need > ntok) fail("mount plan: truncated at %s", op);
        const char **a = (const char **)&tok[i + 1];
        if (!strcmp(op, "bind")) {
            do_mount(a[0], a[1], NULL, MS_BIND | MS_REC, NULL);
            if (a[2][0] == '1') do_mount(NULL, a[1], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
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
            snprintf(from, sizeof from, "/proc/self/fd/%d/%s", source, a[0]);
            do_mount(from, path, NULL, MS_BIND | MS_REC, NULL);
        } else if (!strcmp(op, "umount")) {
            if (umount2(a[0], MNT_DETACH) != 0) fail("umount(%s): %s", a[0], strerror(errno));
        } else if (!strcmp(op, "finish")) {
            if (chdir(a[0]) != 0) fail("chdir(%s): %s", a[0], strerror(errno));
            do_mount(a[0], "/", NULL, MS_MOVE, NULL);
            if (chroot(".") != 0) fail("chroot: %s", strerror(errno));
            if (chdir("/") != 0) fail("chdir(/): %s", strerror(errno));
        } else {
            fail("mount plan: unknown op %s", op);
        }
        i += need;
    }
    if (source >= 0) close(source);
    free(buf);
}

static int parse_fd(const char *text) {
    char *end;
    long v = strtol(text, &end, 10);
    if (*end || v < 0 || v > 1 << 20) usage();
    return (int)v;
}

int main(int argc, char **argv) {
    long uid = -1, gid = -1, unshare_flags = 0;
    int cgroup_fds[MAX_FDS], ns_fds[MAX_FDS], ncgroup = 0, nns = 0, plan_fd = -1;
    int lo_up = 0, exec_mode = 0;
    const char *hostname = NULL, *workdir = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] && !argv[i][2]; i++) {
        char opt = argv[i][1];
        if (opt == 'L') { lo_up = 1; continue; }
        if (opt == 'E') { exec_mode = 1; continue; }
        if (opt == '-') break;
        if (i + 1 >= argc) usage();
        const char *val = argv[++i];
        switch (opt) {
        case 'u': uid = strtol(val, NULL, 10); break;
        case 'g': gid = strtol(val, NULL, 10); break;
        case 'c': if (ncgroup == MAX_FDS) usage(); cgroup_fds[ncgroup++] = parse_fd(val); break;
        case 'n': if (nns == MAX_FDS) usage(); ns_fds[nns++] = parse_fd(val); break;
        case 'U': unshare_flags = strtol(val, NULL, 10); break;
        case 'H': hostname = val; break;
        case 'm': plan_fd = parse_fd(val); break;
        case 'w': workdir = val; break;
        case 's': status_fd = parse_fd(val); fcntl(status_fd, F_SETFD, FD_CLOEXEC); break;
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

    for (int k = 0; k < ncgroup; k++) {
        if (write(cgroup_fds[k], "0", 1) != 1) fail("joining cgroup (fd %d): %s", cgroup_fds[k],
                                                    strerror(errno));
        close(cgroup_fds[k]);
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
    if (plan_fd >= 0) {
        if (unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS): %s", strerror(errno));
        do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        run_plan(plan_fd);
        close(plan_fd);
    }
    if (workdir && chdir(workdir) != 0) fail("chdir(%s): %s", workdir, strerror(errno));

    if (exec_mode) {  /* status_fd is close-on-exec: a successful exec reports success */
        if (gid >= 0) {
            gid_t g = (gid_t)gid;
            if (setgroups(1, &g) != 0 || setgid(g) != 0)
                fail("setgid %ld: %s", gid, strerror(errno));
        }
        if (uid >= 0 && setuid((uid_t)uid) != 0) fail("setuid %ld: %s", uid, strerror(errno));
        execvp(command[0], command);
        fail("exec %s: %s", command[0], strerror(errno));
    }
    if (status_fd >= 0) { close(status_fd); status_fd = -1; }

    sigset_t waitset;
    sigemptyset(&waitset);
    for (size_t k = 0; k < NFORWARDED; k++) sigaddset(&waitset, forwarded[k]);
    sigaddset(&waitset, SIGCHLD);
    sigprocmask(SIG_BLOCK, &waitset, NULL);

    pid_t child = fork();
    if (child < 0) { perror("tk-shim: fork"); return 125; }
    if (child == 0) {
        /* The app starts with no signal blocked, whatever the spawning thread had blocked. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (gid >= 0) {
            gid_t g = (gid_t)gid;
            if (setgroups(1, &g) != 0 || setgid(g) != 0) {
                fprintf(stderr, "tk-shim: setgid %ld: %s\n", gid, strerror(errno));
                _exit(126);
            }
        }
        if (uid >= 0 && setuid((uid_t)uid) != 0) {
            fprintf(stderr, "tk-shim: setuid %ld: %s\n", uid, strerror(errno));
            _exit(126);
        }
        execvp(command[0], command);
        fprintf(stderr, "tk-shim: exec %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }

    int code = 125;
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&waitset, &info);
        if (sig < 0) continue;  /* EINTR */
        if (sig != SIGCHLD) { kill(child, sig); continue; }
        int status;
        pid_t got = waitpid(child, &status, WNOHANG);
        if (got == child) {
            if (WIFEXITED(status)) code = WEXITSTATUS(status);
            else if (WIFSIGNALED(status)) code = 128 + WTERMSIG(status);
            break;
        }
    }
    if (write_exit_file(exit_file, code) != 0)
        fprintf(stderr, "tk-shim: writing exit file %s: %s\n", exit_file, strerror(errno));
    return code;
}
