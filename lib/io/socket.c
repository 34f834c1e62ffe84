/* SPDX-License-Identifier: MIT */
/* Nonblocking TCP sockets from "ip:port" text. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hbone/connect.h>
#include <hbone/error.h>
#include <hbone/io.h>

#define ADDRESS_MAX 64 /* "[" 45-byte IPv6 "]:65535" fits */

/* Turn "1.2.3.4:80" or "[::1]:80" into a socket address; no name lookups.
 * With @p any_port, port 0 (the system picks) is allowed too. */
static int to_sockaddr(const char *text, size_t len, int any_port, struct sockaddr_storage *ss,
                       socklen_t *ss_len)
{
    const char *host;
    size_t host_len;
    uint16_t port;
    int kind;
    char copy[ADDRESS_MAX];
    if (!text || len >= sizeof(copy))
        return HBONE_ERR_AUTHORITY;
    memcpy(copy, text, len);
    /* The CONNECT grammar has no port 0; read ":0" as ":1", then put 0 back. */
    int zero = any_port && len >= 2 && copy[len - 2] == ':' && copy[len - 1] == '0';
    if (zero)
        copy[len - 1] = '1';
    if (hbone_authority_parse(copy, len, 0, &host, &host_len, &port, &kind, NULL) != 0)
        return HBONE_ERR_AUTHORITY;
    if (zero)
        port = 0;
    char buf[ADDRESS_MAX];
    memcpy(buf, host, host_len); /* shorter than the whole address */
    buf[host_len] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (kind == HBONE_AUTHORITY_IPV4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        if (inet_pton(AF_INET, buf, &sin->sin_addr) != 1)
            return HBONE_ERR_AUTHORITY;
        *ss_len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
            return HBONE_ERR_AUTHORITY;
        *ss_len = sizeof(*sin6);
    }
    return 0;
}

/* Nonblocking, close-on-exec, and (for TCP data sockets) no Nagle delay:
 * HBONE frames are already batched into full records. */
static int prepare(int fd, int nodelay)
{
    int one = 1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return HBONE_ERR_IO;
    if (nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        return HBONE_ERR_IO;
    return 0;
}

static void close_keeping_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

int hbone_io_listen(const char *address, size_t len, int backlog, int *fd_out, uint16_t *port_out)
{
    if (!fd_out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *fd_out = -1;
    struct sockaddr_storage ss;
    socklen_t ss_len;
    int r = to_sockaddr(address, len, 1, &ss, &ss_len);
    if (r < 0)
        return r;
    int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        return HBONE_ERR_IO;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (struct sockaddr *)&ss, ss_len) < 0 || listen(fd, backlog) < 0 ||
        prepare(fd, 0) < 0 || getsockname(fd, (struct sockaddr *)&ss, &ss_len) < 0) {
        close_keeping_errno(fd);
        return HBONE_ERR_IO;
    }
    if (port_out)
        *port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *fd_out = fd;
    return 0;
}

int hbone_io_accept(int listen_fd, int *fd_out)
{
    if (!fd_out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *fd_out = -1;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? HBONE_ERR_AGAIN
                                                                         : HBONE_ERR_IO;
    if (prepare(fd, 1) < 0) {
        close_keeping_errno(fd);
        return HBONE_ERR_IO;
    }
    *fd_out = fd;
    return 0;
}

int hbone_io_connect(const char *address, size_t len, int *fd_out)
{
    if (!fd_out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *fd_out = -1;
    struct sockaddr_storage ss;
    socklen_t ss_len;
    int r = to_sockaddr(address, len, 0, &ss, &ss_len);
    if (r < 0)
        return r;
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return HBONE_ERR_IO;
    if (prepare(fd, 1) < 0 ||
        (connect(fd, (struct sockaddr *)&ss, ss_len) < 0 && errno != EINPROGRESS)) {
        close_keeping_errno(fd);
        return HBONE_ERR_IO;
    }
    *fd_out = fd;
    return 0;
}

int hbone_io_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return HBONE_ERR_IO;
    if (err) {
        errno = err;
        return HBONE_ERR_IO;
    }
    return 0;
}

uint64_t hbone_io_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
