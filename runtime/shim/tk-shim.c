/* tk-shim: a tiny container monitor, in the spirit of Podman's conmon.
 *
 *   tk-shim [-u UID] [-g GID] EXIT_FILE -- COMMAND [ARG...]
 *
 * Forks and execs COMMAND (as UID/GID if given), forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT,
 * SIGUSR1 and SIGUSR2 to it, waits for it, writes its exit code (128+N if killed by signal N)
 * to EXIT_FILE atomically (tmp file + rename) and exits with that code. Because the shim, not
 * the daemon, records the exit code, it survives a daemon restart. If COMMAND cannot be
 * executed, the child prints why on stderr and the code is 127.
 *
 * Signals are blocked and consumed with sigwaitinfo, so there is no handler race between
 * fork and the child's pid being known. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

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
    fprintf(stderr, "usage: tk-shim [-u UID] [-g GID] EXIT_FILE -- COMMAND [ARG...]\n");
    exit(125);
}

int main(int argc, char **argv) {
    long uid = -1, gid = -1;
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] && !argv[i][2]; i += 2) {
        if (argv[i][1] == 'u') uid = strtol(argv[i + 1], NULL, 10);
        else if (argv[i][1] == 'g') gid = strtol(argv[i + 1], NULL, 10);
        else usage();
    }
    if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0) usage();
    const char *exit_file = argv[i];
    char **command = &argv[i + 2];

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
