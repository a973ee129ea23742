/*
 * ffprobe_fork_server.c: one ffprobe process that answers many probes.
 *
 * ffprobe spends about 70 ms of CPU before it reads a byte: Debian's binary links some 200
 * shared libraries and its dynamic linker binds all their symbols at start (BIND_NOW). A scan
 * of 20,000 files paid that 20,000 times. This library, preloaded into ffprobe (LD_PRELOAD)
 * with EPHYRA_FFPROBE_FORK_SERVER=1 set, runs once the libraries are bound and before ffprobe's
 * own main: it reads requests (an ffprobe command line) on stdin and, for each, forks a child
 * that runs ffprobe's unchanged main with those arguments. The child starts from the bound,
 * untouched process, so it answers exactly as a fresh ffprobe would, in a few milliseconds;
 * a file that crashes ffprobe kills only its child.
 *
 * It must not: change what ffprobe prints, let a child read the request channel, hold more
 * than a bounded answer in memory, or act at all without EPHYRA_FFPROBE_FORK_SERVER=1 (any
 * other program the variable leaks to runs untouched). The Rust side is
 * server/src/scan/prober.rs; it falls back to one ffprobe per file when the greeting below
 * does not come (a static ffprobe, a noexec folder, a libc without this entry point).
 *
 * The wire, all integers little-endian u32:
 *   greeting: the line GREETING below;
 *   request:  timeout_seconds, argc, then argc times (length, bytes): the arguments after
 *             argv[0];
 *   answer:   how (0 exited, 1 killed by a signal), code (exit status or signal),
 *             stdout length and bytes, stderr length and bytes (each cut at its limit).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GREETING "ephyra-ffprobe-fork-server 1\n"
#define MAX_ARGS 64
#define MAX_ARG_BYTES 65536
#define MAX_STDOUT (16u << 20)
#define MAX_STDERR (64u << 10)

typedef int (*main_fn)(int, char **, char **);
typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
                        void *);

static main_fn ffprobe_main;
static char *program_name;

static int read_full(int fd, void *buf, size_t len) {
    char *at = buf;
    while (len > 0) {
        ssize_t n = read(fd, at, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        at += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
    const char *at = buf;
    while (len > 0) {
        ssize_t n = write(fd, at, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        at += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_u32(int fd, uint32_t *value) {
    unsigned char b[4];
    if (read_full(fd, b, 4))
        return -1;
    *value = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int write_u32(int fd, uint32_t value) {
    unsigned char b[4] = {value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, value >> 24};
    return write_full(fd, b, 4);
}

/* What a child printed on one of its streams, kept up to `max` bytes; the rest is read and
 * dropped so the child never blocks on a full pipe. */
struct capture {
    int fd;
    char *data;
    size_t len, cap, max;
};

static void capture_read(struct capture *c) {
    char chunk[16384];
    ssize_t n = read(c->fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        close(c->fd);
        c->fd = -1;
        return;
    }
    size_t keep = (size_t)n;
    if (keep > c->max - c->len)
        keep = c->max - c->len;
    if (c->len + keep > c->cap) {
        size_t cap = c->cap ? c->cap : 16384;
        while (cap < c->len + keep)
            cap *= 2;
        char *grown = realloc(c->data, cap);
        if (!grown)
            return;
        c->data = grown;
        c->cap = cap;
    }
    memcpy(c->data + c->len, chunk, keep);
    c->len += keep;
}

/* Runs ffprobe's main on `argv` in a child and writes the answer to `answers`. Returns -1
 * when the answer cannot be written (the server is gone). */
static int run_one(char **argv, int argc, uint32_t timeout, char **envp, int requests,
                   int answers) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC))
        return -1;
    if (pipe2(err, O_CLOEXEC)) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(125);
        close(requests);
        close(answers);
        signal(SIGPIPE, SIG_DFL);
        /* The time limit is the child's own: a stuck probe dies without the server's help. */
        alarm(timeout);
        /* What ffprobe printed is flushed; its libraries' destructors, which only free what
         * the kernel takes back at exit anyway, are skipped: they were half a child's time. */
        int status = ffprobe_main(argc, argv, envp);
        fflush(NULL);
        _exit(status);
    }
    close(out[1]);
    close(err[1]);
    uint32_t how = 0, code = 125;
    struct capture captured[2] = {{out[0], NULL, 0, 0, MAX_STDOUT}, {err[0], NULL, 0, 0, MAX_STDERR}};
    if (pid > 0) {
        while (captured[0].fd >= 0 || captured[1].fd >= 0) {
            struct pollfd fds[2] = {{captured[0].fd, POLLIN, 0}, {captured[1].fd, POLLIN, 0}};
            if (poll(fds, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            for (int i = 0; i < 2; i++)
                if (captured[i].fd >= 0 && fds[i].revents)
                    capture_read(&captured[i]);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (WIFSIGNALED(status)) {
            how = 1;
            code = (uint32_t)WTERMSIG(status);
        } else {
            code = (uint32_t)WEXITSTATUS(status);
        }
    }
    for (int i = 0; i < 2; i++)
        if (captured[i].fd >= 0)
            close(captured[i].fd);
    int failed = write_u32(answers, how) || write_u32(answers, code) ||
                 write_u32(answers, (uint32_t)captured[0].len) ||
                 write_full(answers, captured[0].data, captured[0].len) ||
                 write_u32(answers, (uint32_t)captured[1].len) ||
                 write_full(answers, captured[1].data, captured[1].len);
    free(captured[0].data);
    free(captured[1].data);
    return failed ? -1 : 0;
}

/* Takes ffprobe's place as main: greets, then answers requests until stdin closes. */
static int serve(int argc0, char **argv0, char **envp) {
    (void)argc0;
    (void)argv0;
    unsetenv("LD_PRELOAD");
    unsetenv("EPHYRA_FFPROBE_FORK_SERVER");
    /* Requests and answers move off 0 and 1, which each child gets fresh. */
    int requests = fcntl(0, F_DUPFD_CLOEXEC, 3);
    int answers = fcntl(1, F_DUPFD_CLOEXEC, 3);
    if (requests < 0 || answers < 0)
        return 125;
    signal(SIGPIPE, SIG_IGN);
    if (write_full(answers, GREETING, strlen(GREETING)))
        return 0;
    for (;;) {
        uint32_t timeout, argc;
        if (read_u32(requests, &timeout))
            return 0; /* the server closed the channel: done */
        if (read_u32(requests, &argc) || argc == 0 || argc > MAX_ARGS)
            return 2;
        char *argv[MAX_ARGS + 2] = {program_name};
        int ok = 1;
        for (uint32_t i = 0; i < argc; i++) {
            uint32_t len;
            if (read_u32(requests, &len) || len > MAX_ARG_BYTES ||
                !(argv[i + 1] = malloc((size_t)len + 1)) || read_full(requests, argv[i + 1], len)) {
                ok = 0;
                break;
            }
            argv[i + 1][len] = '\0';
        }
        int answered = ok ? run_one(argv, (int)argc + 1, timeout, envp, requests, answers) : -1;
        for (uint32_t i = 1; i <= argc; i++)
            free(argv[i]);
        if (answered)
            return 2;
    }
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end) {
    start_fn next = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    const char *wanted = getenv("EPHYRA_FFPROBE_FORK_SERVER");
    if (wanted && strcmp(wanted, "1") == 0) {
        ffprobe_main = main;
        program_name = argv[0];
        return next(serve, argc, argv, init, fini, rtld_fini, stack_end);
    }
    return next(main, argc, argv, init, fini, rtld_fini, stack_end);
}
