//go:build cgo && linux

// Command packetdrill (built with -buildmode=c-shared) is synack as a
// shared object for packetdrill's --so_filename option: packetdrill then
// drives synack instead of the kernel. See README.md for how to build and
// run it (run-real.sh) and what the real packetdrill binary makes of it.
package main

/*
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <poll.h>
#include <unistd.h>

#include "pdiface.h"

// Go functions return a result >= 0 or -errno; these wrappers turn that
// into the C convention, setting errno on the calling thread.
extern long long sdSocket(int, int, int);
extern long long sdBind(int, void *, socklen_t);
extern long long sdListen(int, int);
extern long long sdAccept(int, void *, socklen_t *);
extern long long sdConnect(int, void *, socklen_t);
extern long long sdRead(int, void *, size_t);
extern long long sdRecv(int, void *, size_t, int);
extern long long sdWrite(int, void *, size_t);
extern long long sdFcntl(int, int, long);
extern long long sdClose(int);
extern long long sdShutdown(int, int);
extern long long sdGetsockopt(int, int, int, void *, socklen_t *);
extern long long sdSetsockopt(int, int, int, void *, socklen_t);
extern long long sdPoll(struct pollfd *, nfds_t, int);
extern long long sdNetdevSend(void *, size_t);
extern long long sdNetdevReceive(void *, size_t *, long long *);
extern long long sdUsleep(unsigned int);
extern long long sdGettimeofday(struct timeval *);
extern void sdFree(void);

static long long ret(long long r) { if (r < 0) { errno = (int)-r; return -1; } return r; }

static void w_free(void *u) { sdFree(); }
static int w_socket(void *u, int d, int t, int p) { return ret(sdSocket(d, t, p)); }
static int w_bind(void *u, int fd, const struct sockaddr *a, socklen_t l) { return ret(sdBind(fd, (void *)a, l)); }
static int w_listen(void *u, int fd, int b) { return ret(sdListen(fd, b)); }
static int w_accept(void *u, int fd, struct sockaddr *a, socklen_t *l) { return ret(sdAccept(fd, a, l)); }
static int w_connect(void *u, int fd, const struct sockaddr *a, socklen_t l) { return ret(sdConnect(fd, (void *)a, l)); }
static ssize_t w_read(void *u, int fd, void *b, size_t n) { return ret(sdRead(fd, b, n)); }
static ssize_t w_recv(void *u, int fd, void *b, size_t n, int f) { return ret(sdRecv(fd, b, n, f)); }
static ssize_t w_write(void *u, int fd, const void *b, size_t n) { return ret(sdWrite(fd, (void *)b, n)); }
static ssize_t w_send(void *u, int fd, const void *b, size_t n, int f) { return ret(sdWrite(fd, (void *)b, n)); }
static int w_fcntl(void *u, int fd, int cmd, ...) {
	va_list ap;
	long arg = 0;
	va_start(ap, cmd);
	if (cmd == 4) arg = va_arg(ap, int); // F_SETFL; packetdrill passes F_GETFL (3) no argument
	va_end(ap);
	return ret(sdFcntl(fd, cmd, arg));
}
static int w_close(void *u, int fd) { return ret(sdClose(fd)); }
static int w_shutdown(void *u, int fd, int how) { return ret(sdShutdown(fd, how)); }
static int w_getsockopt(void *u, int fd, int lv, int n, void *v, socklen_t *l) { return ret(sdGetsockopt(fd, lv, n, v, l)); }
static int w_setsockopt(void *u, int fd, int lv, int n, const void *v, socklen_t l) { return ret(sdSetsockopt(fd, lv, n, (void *)v, l)); }
static int w_poll(void *u, struct pollfd *f, nfds_t n, int t) { return ret(sdPoll(f, n, t)); }
static int w_netdev_send(void *u, const void *b, size_t n) { return ret(sdNetdevSend((void *)b, n)); }
static int w_netdev_receive(void *u, void *b, size_t *n, long long *t) { return ret(sdNetdevReceive(b, n, t)); }
static int w_usleep(void *u, useconds_t us) { return ret(sdUsleep(us)); }
static int w_gettimeofday(void *u, struct timeval *tv, void *tz) { return ret(sdGettimeofday(tv)); }

void sdFill(void *p) {
	struct pd_iface *i = p;
	i->userdata = NULL;
	i->free = w_free;
	i->socket = w_socket;
	i->bind = w_bind;
	i->listen = w_listen;
	i->accept = w_accept;
	i->connect = w_connect;
	i->read = w_read;
	i->recv = w_recv;
	i->write = w_write;
	i->send = w_send;
	i->fcntl = w_fcntl;
	i->close = w_close;
	i->shutdown = w_shutdown;
	i->getsockopt = w_getsockopt;
	i->setsockopt = w_setsockopt;
	i->poll = w_poll;
	i->netdev_send = w_netdev_send;
	i->netdev_receive = w_netdev_receive;
	i->usleep = w_usleep;
	i->gettimeofday = w_gettimeofday;
}
*/
import "C"

func main() {}
