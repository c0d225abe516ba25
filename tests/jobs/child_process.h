/*
 * child_process.h — runs this test binary again as a child process (its
 * --child-* modes: a worker to kill mid-job, a submitter to kill), reads its
 * stdout line by line with a time limit, and kills it by PID.
 */
#ifndef INFERD_TESTS_JOBS_CHILD_PROCESS_H
#define INFERD_TESTS_JOBS_CHILD_PROCESS_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct child_process {
    pid_t pid;
    int out; /* read end of the child's stdout */
    char buffer[4096];
    size_t buffered;
} child_process;

/* args: NULL-terminated, after the program name */
static bool child_start(child_process *child, const char *const *args)
{
    memset(child, 0, sizeof(*child));
    child->pid = -1;
    child->out = -1;
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        const char *argv[16] = {"child"};
        for (int i = 0; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    child->pid = pid;
    child->out = fds[0];
    return true;
}

/* One line (without the newline) within `seconds`; false on timeout or EOF. */
static bool child_read_line(child_process *child, char *line, size_t size, double seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        char *newline = memchr(child->buffer, '\n', child->buffered);
        if (newline) {
            size_t n = (size_t)(newline - child->buffer);
            snprintf(line, size, "%.*s", (int)n, child->buffer);
            memmove(child->buffer, newline + 1, child->buffered - n - 1);
            child->buffered -= n + 1;
            return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = seconds - ((double)(now.tv_sec - start.tv_sec) +
                                 (double)(now.tv_nsec - start.tv_nsec) * 1e-9);
        if (left <= 0 || child->buffered == sizeof(child->buffer))
            return false;
        struct pollfd pfd = {.fd = child->out, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t n = read(child->out, child->buffer + child->buffered,
                         sizeof(child->buffer) - child->buffered);
        if (n <= 0)
            return false;
        child->buffered += (size_t)n;
    }
}

static void child_kill(child_process *child, int sig)
{
    if (child->pid > 0) {
        kill(child->pid, sig);
        waitpid(child->pid, NULL, 0);
        child->pid = -1;
    }
    if (child->out >= 0) {
        close(child->out);
        child->out = -1;
    }
}

#endif /* INFERD_TESTS_JOBS_CHILD_PROCESS_H */
