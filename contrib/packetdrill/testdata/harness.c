/*
 * harness.c: drives synack's packetdrill shared object the way packetdrill
 * does (dlopen, packetdrill_interface_init, calls through the function
 * table, packets as bare IP datagrams), without packetdrill. Used by
 * so_test.go. Prints "ok" lines and exits 0, or prints "FAIL: ..." and
 * exits 1.
 *
 *   harness /path/to/synack.so
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../pdiface.h"

static struct pd_iface ifc;
static void *U;

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); exit(1); } while (0)
#define CHECK(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

static const uint32_t LOCAL = 0xc0a80001;  /* 192.168.0.1, the object's default */
static const uint32_t REMOTE = 0xc0000201; /* 192.0.2.1 */

enum { F_FIN = 1, F_SYN = 2, F_RST = 4, F_PSH = 8, F_ACK = 16 };

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (n)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v); }
static uint16_t get16(const uint8_t *p) { return p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

/* inject builds an IPv4/TCP segment from REMOTE:rport to LOCAL:lport and
 * hands it to netdev_send. */
static void inject(uint16_t rport, uint16_t lport, uint32_t seq, uint32_t ack,
		   int flags, const char *data)
{
	uint8_t b[1500] = {0};
	size_t dl = data ? strlen(data) : 0, tl = 20 + dl, n = 20 + tl;
	b[0] = 0x45;
	put16(b + 2, n);
	b[8] = 64;
	b[9] = 6;
	put32(b + 12, REMOTE);
	put32(b + 16, LOCAL);
	put16(b + 10, csum(b, 20, 0));
	uint8_t *t = b + 20;
	put16(t, rport);
	put16(t + 2, lport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 65535);
	memcpy(t + 20, data ? data : "", dl);
	uint32_t pseudo = (REMOTE >> 16) + (REMOTE & 0xffff) + (LOCAL >> 16) +
			  (LOCAL & 0xffff) + 6 + tl;
	put16(t + 16, csum(t, tl, pseudo));
	CHECK(ifc.netdev_send(U, b, n) == 0, "netdev_send");
}

struct seg {
	uint32_t seq, ack;
	int flags;
	uint16_t sport, dport;
	char data[2048];
	int len;
	long long usecs;
};

/* sniff takes the next packet the stack sends (netdev_receive blocks on
 * virtual time until there is one) and parses it. */
static struct seg sniff(void)
{
	uint8_t b[4096];
	size_t n = sizeof b;
	struct seg s = {0};
	CHECK(ifc.netdev_receive(U, b, &n, &s.usecs) == 0, "netdev_receive");
	CHECK(n >= 40 && b[0] == 0x45 && b[9] == 6, "netdev_receive: not a bare IPv4/TCP datagram (%zu bytes, first byte %#x)", n, n ? b[0] : 0);
	CHECK(get16(b + 2) == n, "netdev_receive: IP length %u, count %zu", get16(b + 2), n);
	CHECK(get32(b + 12) == LOCAL && get32(b + 16) == REMOTE, "netdev_receive: addresses");
	const uint8_t *t = b + 20;
	int off = (t[12] >> 4) * 4;
	s.sport = get16(t);
	s.dport = get16(t + 2);
	s.seq = get32(t + 4);
	s.ack = get32(t + 8);
	s.flags = t[13];
	s.len = n - 20 - off;
	memcpy(s.data, t + off, s.len);
	return s;
}

/* sniffTo skips segments of other connections (the first connection's
 * FIN is retransmitted while the second one is set up). */
static struct seg sniffTo(uint16_t dport)
{
	for (int i = 0; i < 16; i++) {
		struct seg s = sniff();
		if (s.dport == dport)
			return s;
	}
	FAIL("no segment to port %u", dport);
}

/* sniffData skips pure ACKs (a delayed ACK may come first). */
static struct seg sniffData(void)
{
	for (int i = 0; i < 8; i++) {
		struct seg s = sniff();
		if (s.len > 0 || (s.flags & (F_SYN | F_FIN | F_RST)))
			return s;
	}
	FAIL("no data segment");
}

static long long now(void)
{
	struct timeval tv;
	CHECK(ifc.gettimeofday(U, &tv, NULL) == 0, "gettimeofday");
	return tv.tv_sec * 1000000LL + tv.tv_usec;
}

static struct sockaddr_in sin4(uint32_t a, uint16_t port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};
	s.sin_addr.s_addr = htonl(a);
	return s;
}

struct reader {
	int fd;
	char buf[64];
	ssize_t n;
	int err;
	int done;
};

static void *blockingRead(void *p)
{
	struct reader *r = p;
	r->n = ifc.read(U, r->fd, r->buf, sizeof r->buf - 1);
	r->err = errno;
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void realSleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		FAIL("usage: harness SO");
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE | RTLD_DEEPBIND);
	CHECK(h, "dlopen: %s", dlerror());
	void (*init)(const char *, struct pd_iface *) = dlsym(h, "packetdrill_interface_init");
	CHECK(init, "dlsym packetdrill_interface_init: %s", dlerror());

	/* init fills the table. */
	memset(&ifc, 0, sizeof ifc);
	init("", &ifc);
	U = ifc.userdata;
	CHECK(ifc.free && ifc.socket && ifc.bind && ifc.listen && ifc.accept &&
	      ifc.connect && ifc.read && ifc.recv && ifc.write && ifc.send &&
	      ifc.fcntl && ifc.close && ifc.shutdown && ifc.getsockopt &&
	      ifc.setsockopt && ifc.poll && ifc.netdev_send &&
	      ifc.netdev_receive && ifc.usleep && ifc.gettimeofday,
	      "init left a needed entry NULL");
	printf("ok init fills the table\n");

	/* gettimeofday moves on every call; usleep advances the clock. */
	long long t0 = now(), t1 = now();
	CHECK(t1 > t0, "gettimeofday did not move: %lld %lld", t0, t1);
	CHECK(ifc.usleep(U, 250000) == 0, "usleep");
	long long t2 = now();
	CHECK(t2 - t1 >= 250000 && t2 - t1 < 260000, "usleep(250ms) moved the clock %lld us", t2 - t1);
	printf("ok gettimeofday moves, usleep advances\n");

	/* errno is set on the calling thread. */
	errno = 0;
	CHECK(ifc.close(U, 12345) == -1 && errno == EBADF, "close(bad fd): errno %d", errno);
	errno = 0;
	CHECK(ifc.socket(U, AF_INET, SOCK_DGRAM, 0) == -1 && errno != 0, "socket(SOCK_DGRAM) should fail");
	printf("ok errno\n");

	/* Passive open: socket, bind, listen, then a handshake by packets. */
	int ls = ifc.socket(U, AF_INET, SOCK_STREAM, IPPROTO_TCP);
	CHECK(ls >= 0, "socket: errno %d", errno);
	struct stat st;
	CHECK(fstat(ls, &st) == 0, "socket fd %d is not a real fd", ls);
	struct sockaddr_in la = sin4(LOCAL, 8080);
	CHECK(ifc.bind(U, ls, (struct sockaddr *)&la, sizeof la) == 0, "bind: errno %d", errno);
	CHECK(ifc.listen(U, ls, 4) == 0, "listen: errno %d", errno);
	errno = 0;
	CHECK(ifc.accept(U, 12345, NULL, NULL) == -1 && errno == EBADF, "accept(bad fd): errno %d", errno);
	int v = 0;
	socklen_t vl = sizeof v;
	CHECK(ifc.getsockopt(U, ls, SOL_SOCKET, SO_RCVBUF, &v, &vl) == 0 && v > 0, "getsockopt SO_RCVBUF");

	uint32_t iss = 1000;
	inject(40000, 8080, iss, 0, F_SYN, NULL);
	struct seg sa = sniff();
	CHECK(sa.flags == (F_SYN | F_ACK) && sa.ack == iss + 1 && sa.sport == 8080 && sa.dport == 40000,
	      "expected SYN,ACK ack %u, got flags %#x ack %u", iss + 1, sa.flags, sa.ack);
	uint32_t irs = sa.seq;
	inject(40000, 8080, iss + 1, irs + 1, F_ACK, NULL);
	struct sockaddr_in pa;
	socklen_t pal = sizeof pa;
	int cs = ifc.accept(U, ls, (struct sockaddr *)&pa, &pal);
	CHECK(cs >= 0 && cs != ls, "accept: %d errno %d", cs, errno);
	CHECK(fstat(cs, &st) == 0, "accepted fd %d is not a real fd", cs);
	CHECK(pa.sin_family == AF_INET && ntohs(pa.sin_port) == 40000 && ntohl(pa.sin_addr.s_addr) == REMOTE,
	      "accept: peer address not filled in");
	printf("ok socket/bind/listen/accept by injected packets\n");

	/* Data both ways. */
	inject(40000, 8080, iss + 1, irs + 1, F_PSH | F_ACK, "hello");
	char buf[64] = {0};
	ssize_t n = ifc.read(U, cs, buf, sizeof buf);
	CHECK(n == 5 && memcmp(buf, "hello", 5) == 0, "read: %zd %.*s", n, (int)(n > 0 ? n : 0), buf);
	CHECK(ifc.write(U, cs, "world", 5) == 5, "write: errno %d", errno);
	struct seg d = sniffData();
	CHECK(d.len == 5 && memcmp(d.data, "world", 5) == 0 && d.seq == irs + 1 && d.ack == iss + 6,
	      "expected data 'world' seq %u ack %u; got len %d seq %u ack %u", irs + 1, iss + 6, d.len, d.seq, d.ack);
	inject(40000, 8080, iss + 6, irs + 6, F_ACK, NULL);
	printf("ok read/write\n");

	/* A non-blocking read with nothing queued: EAGAIN. */
	CHECK(ifc.fcntl(U, cs, F_SETFL, O_RDWR | O_NONBLOCK) == 0, "fcntl F_SETFL");
	int fl = ifc.fcntl(U, cs, F_GETFL);
	CHECK(fl >= 0 && (fl & O_NONBLOCK), "fcntl F_GETFL %#x", fl);
	errno = 0;
	CHECK(ifc.read(U, cs, buf, sizeof buf) == -1 && errno == EAGAIN, "non-blocking read: errno %d", errno);
	CHECK(ifc.fcntl(U, cs, F_SETFL, O_RDWR) == 0, "fcntl F_SETFL");

	/* A blocking read blocks until a packet is injected from another
	 * thread (packetdrill's syscall thread and main thread). */
	struct reader r = {.fd = cs};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, blockingRead, &r) == 0, "pthread_create");
	realSleep(100);
	CHECK(!__atomic_load_n(&r.done, __ATOMIC_SEQ_CST), "blocking read returned with nothing to read: %zd errno %d", r.n, r.err);
	CHECK(ifc.usleep(U, 10000) == 0, "usleep");
	realSleep(20);
	CHECK(!__atomic_load_n(&r.done, __ATOMIC_SEQ_CST), "blocking read returned after usleep");
	inject(40000, 8080, iss + 6, irs + 6, F_PSH | F_ACK, "later");
	pthread_join(th, NULL);
	CHECK(r.n == 5 && memcmp(r.buf, "later", 5) == 0, "blocking read: %zd errno %d", r.n, r.err);
	printf("ok blocking read blocks until data\n");

	/* poll: readable once data is queued. */
	inject(40000, 8080, iss + 11, irs + 6, F_PSH | F_ACK, "x");
	struct pollfd pfd = {.fd = cs, .events = POLLIN | POLLOUT};
	CHECK(ifc.poll(U, &pfd, 1, 0) == 1 && (pfd.revents & POLLIN) && (pfd.revents & POLLOUT),
	      "poll revents %#x", pfd.revents);
	CHECK(ifc.read(U, cs, buf, sizeof buf) == 1, "read after poll");
	printf("ok poll\n");

	/* close sends a FIN. */
	CHECK(ifc.close(U, cs) == 0, "close: errno %d", errno);
	struct seg f = sniffData();
	CHECK(f.flags & F_FIN, "close: expected FIN, got flags %#x", f.flags);
	printf("ok close sends FIN\n");

	/* Active open on a non-blocking socket: EINPROGRESS, a SYN, and
	 * after usleep the retransmitted SYN, stamped with virtual time. */
	int as = ifc.socket(U, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK(as >= 0, "socket");
	struct sockaddr_in ra = sin4(REMOTE, 9000);
	errno = 0;
	CHECK(ifc.connect(U, as, (struct sockaddr *)&ra, sizeof ra) == -1 && errno == EINPROGRESS,
	      "connect: errno %d", errno);
	struct seg syn = sniffTo(9000);
	CHECK(syn.flags == F_SYN && syn.dport == 9000, "expected SYN, got flags %#x", syn.flags);
	CHECK(ifc.usleep(U, 1100000) == 0, "usleep");
	struct seg syn2 = sniffTo(9000);
	CHECK(syn2.flags == F_SYN && syn2.seq == syn.seq, "expected retransmitted SYN, got flags %#x", syn2.flags);
	CHECK(syn2.usecs - syn.usecs >= 900000 && syn2.usecs - syn.usecs <= 1100000,
	      "SYN retransmitted after %lld us", syn2.usecs - syn.usecs);
	/* netdev_receive blocks on virtual time: the third SYN comes after
	 * the backed-off timeout without any usleep. */
	struct seg syn3 = sniffTo(9000);
	CHECK(syn3.flags == F_SYN && syn3.usecs - syn2.usecs >= 1900000, "third SYN after %lld us", syn3.usecs - syn2.usecs);
	printf("ok connect, SYN retransmission on virtual time\n");

	/* The handshake completes: SO_ERROR 0, write works. */
	inject(9000, syn.sport, 5000, syn.seq + 1, F_SYN | F_ACK, NULL);
	struct seg ack = sniffTo(9000);
	CHECK(ack.flags == F_ACK && ack.ack == 5001, "expected ACK of SYN,ACK, got flags %#x ack %u", ack.flags, ack.ack);
	v = -1;
	vl = sizeof v;
	CHECK(ifc.getsockopt(U, as, SOL_SOCKET, SO_ERROR, &v, &vl) == 0 && v == 0, "SO_ERROR %d", v);
	CHECK(ifc.write(U, as, "hi", 2) == 2, "write after connect: errno %d", errno);
	printf("ok connect completes\n");

	ifc.free(U);
	printf("ok free\n");

	/* A new run reads the sysctls a stub recorded (run-real.sh), Linux's
	 * and FreeBSD's alike, through the one sysctl table: tcp_rmem's
	 * default is the receive buffer, keepidle (ms) a new socket's
	 * TCP_KEEPIDLE (s). */
	char path[] = "/tmp/synack-harness-sysctl.XXXXXX";
	int sf = mkstemp(path);
	CHECK(sf >= 0, "mkstemp");
	const char *lines = "net.ipv4.tcp_rmem=4096 540000 15728640\nnet.inet.tcp.keepidle=3000\n";
	CHECK(write(sf, lines, strlen(lines)) == (ssize_t)strlen(lines), "write sysctl file");
	close(sf);
	char flags[128];
	snprintf(flags, sizeof flags, "sysctl_file=%s", path);
	memset(&ifc, 0, sizeof ifc);
	init(flags, &ifc);
	U = ifc.userdata;
	int s2 = ifc.socket(U, AF_INET, SOCK_STREAM, IPPROTO_TCP);
	CHECK(s2 >= 0, "socket: errno %d", errno);
	v = 0;
	vl = sizeof v;
	CHECK(ifc.getsockopt(U, s2, SOL_SOCKET, SO_RCVBUF, &v, &vl) == 0 && v == 540000, "SO_RCVBUF %d, want 540000", v);
	v = 0;
	vl = sizeof v;
	CHECK(ifc.getsockopt(U, s2, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl) == 0 && v == 3, "TCP_KEEPIDLE %d, want 3", v);
	v = 1;
	CHECK(ifc.setsockopt(U, s2, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0, "TCP_NODELAY before connect: errno %d", errno);
	ifc.free(U);
	unlink(path);
	printf("ok sysctl file\n");
	return 0;
}
