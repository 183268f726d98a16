/*
 * EAGAIN mode (`make test-eagain`): preloaded into nginx (LD_PRELOAD), it
 * makes every write to a TCP socket (write, writev, send, sendfile) answer
 * EAGAIN until nginx has polled the socket writable again, and then take
 * at most EAGAIN_BYTES bytes (default 1). So every response goes out in
 * short writes, each after a wait for the write event: the paths that a
 * slow client, a full socket buffer or a congested network take, on every
 * request of every test.
 *
 * nginx must use the poll event method (`events { use poll; }`, as
 * TEST_NGINX_EVENT_TYPE=poll asks): poll reports a writable socket every
 * time it is asked, while epoll's edge-triggered mode would never report
 * again a socket the kernel never saw full. Other descriptors (files, the
 * master's channel, the module's eventfd) are left alone.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

/* Set when poll reported the socket writable: its next write may go. */
static unsigned char writable[MAX_FD];

static size_t
max_bytes(void)
{
    static size_t n;

    if (n == 0) {
        const char *v = getenv("EAGAIN_BYTES");
        n = v && atol(v) > 0 ? (size_t) atol(v) : 1;
    }
    return n;
}

static void *
real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);

    if (f == NULL) {
        abort();
    }
    return f;
}

static int
is_tcp(int fd)
{
    struct stat st;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int type;
    socklen_t type_len = sizeof(type);

    if (fd < 0 || fd >= MAX_FD || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        return 0;
    }
    if (getsockname(fd, (struct sockaddr *) &sa, &len) != 0
        || (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
    {
        return 0;
    }
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0
           && type == SOCK_STREAM;
}

/* How many of `want` bytes a write to `fd` may take; -1 with EAGAIN. */
static ssize_t
allow(int fd, size_t want)
{
    if (want == 0 || !is_tcp(fd)) {
        return (ssize_t) want;
    }
    if (!writable[fd]) {
        errno = EAGAIN;
        return -1;
    }
    writable[fd] = 0;
    return (ssize_t) (want < max_bytes() ? want : max_bytes());
}

ssize_t
write(int fd, const void *buf, size_t count)
{
    static ssize_t (*next)(int, const void *, size_t);
    ssize_t n = allow(fd, count);

    if (next == NULL) {
        next = real("write");
    }
    return n < 0 ? -1 : next(fd, buf, (size_t) n);
}

ssize_t
send(int fd, const void *buf, size_t count, int flags)
{
    static ssize_t (*next)(int, const void *, size_t, int);
    ssize_t n = allow(fd, count);

    if (next == NULL) {
        next = real("send");
    }
    return n < 0 ? -1 : next(fd, buf, (size_t) n, flags);
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
    static ssize_t (*next)(int, const struct iovec *, int);
    struct iovec cut[IOV_MAX];
    size_t total = 0, left;
    ssize_t n;
    int i, cnt = 0;

    if (next == NULL) {
        next = real("writev");
    }
    for (i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    n = allow(fd, total);
    if (n < 0) {
        return -1;
    }
    if ((size_t) n == total) {
        return next(fd, iov, iovcnt);
    }
    /* The first n bytes of the vector. */
    for (left = (size_t) n, i = 0; i < iovcnt && left > 0 && cnt < IOV_MAX; i++) {
        cut[cnt] = iov[i];
        if (cut[cnt].iov_len > left) {
            cut[cnt].iov_len = left;
        }
        left -= cut[cnt].iov_len;
        cnt++;
    }
    return next(fd, cut, cnt);
}

ssize_t
sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    static ssize_t (*next)(int, int, off_t *, size_t);
    ssize_t n = allow(out_fd, count);

    if (next == NULL) {
        next = real("sendfile");
    }
    return n < 0 ? -1 : next(out_fd, in_fd, offset, (size_t) n);
}

ssize_t
sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    static ssize_t (*next)(int, int, off64_t *, size_t);
    ssize_t n = allow(out_fd, count);

    if (next == NULL) {
        next = real("sendfile64");
    }
    return n < 0 ? -1 : next(out_fd, in_fd, offset, (size_t) n);
}

int
poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    static int (*next)(struct pollfd *, nfds_t, int);
    nfds_t i;
    int rc;

    if (next == NULL) {
        next = real("poll");
    }
    rc = next(fds, nfds, timeout);
    for (i = 0; rc > 0 && i < nfds; i++) {
        if ((fds[i].revents & POLLOUT) && fds[i].fd >= 0 && fds[i].fd < MAX_FD) {
            writable[fds[i].fd] = 1;
        }
    }
    return rc;
}
