//go:build ignore

// HTTP/1.x statistics per process, counted in the kernel from syscall tracepoints: requests
// by method (the first bytes a read(2)/recvfrom(2) returns on an accepted socket) and
// responses by status code (the first bytes given to write(2)/sendto(2)/writev(2)/sendmsg(2)
// on one). Two tp_btf programs on sys_enter and sys_exit switch on the x86_64 syscall number:
// no kprobes (absent from our kernels), no fentry (blocked), no tracefs, and loadable with
// CAP_BPF+CAP_PERFMON only (ebpf.md §3.2, §4).
//
// The maps stats-pull reads are pinned by name; their key types carry BTF, so the generic
// ebpf-maps decoder names every field, and enum http_status names the codes that have their
// own path (Scope's list): a code without a name in the enum is an "other" response.
//
// Regenerate the Go bindings with scripts/gen-ebpf (clang 14, libbpf-dev); the output is
// committed so that go build needs no clang.

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// The response codes with their own path: the Weave Scope http-statistics plugin's list, with
// the true codes of its C enum (its Python table mislabels 202 as 102 and 503 as 501).
enum http_status {
	HTTP_100 = 100,
	HTTP_200 = 200,
	HTTP_201 = 201,
	HTTP_202 = 202,
	HTTP_204 = 204,
	HTTP_308 = 308,
	HTTP_400 = 400,
	HTTP_401 = 401,
	HTTP_403 = 403,
	HTTP_404 = 404,
	HTTP_408 = 408,
	HTTP_451 = 451,
	HTTP_500 = 500,
	HTTP_501 = 501,
	HTTP_502 = 502,
	HTTP_503 = 503,
};

struct req_key {
	__u32 pid;       // the thread group id: the process
	char method[8];  // "GET", "POST", … (NUL padded)
};

struct resp_key {
	__u32 pid;
	enum http_status code; // the exact code, 100 to 599; listed codes have a name
};

// Why an event was not counted: its map was full (max_entries distinct keys).
enum drop_reason {
	REQUESTS_MAP_FULL = 0,
	RESPONSES_MAP_FULL = 1,
	DROP_REASONS = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct req_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} http_requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct resp_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} http_responses SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASONS);
	__type(key, enum drop_reason);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} http_drops SEC(".maps");

// A read(2)/recvfrom(2) on an accepted socket, from enter to exit, by thread. LRU: a syscall
// whose exit was never seen cannot fill it.
struct read_args {
	__u64 buf;
	__u32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct read_args);
} pending_reads SEC(".maps");

// The first bytes of a request that came in a read of fewer than 8 bytes, by tgid<<32|fd,
// until the next read on that socket. Go's net/http reads 1 byte in the background while a
// handler runs: when the next request arrives then, that byte is its first.
struct partial {
	__u64 bytes; // little-endian: the first byte lowest
	__u32 n;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct partial);
} partial_reads SEC(".maps");

// Sockets returned by accept(2)/accept4(2) since the program was attached, by tgid<<32|fd,
// until close(2); an inet address (or none) at accept. Only these are looked at: without
// it, a client printing a response's headers to a terminal counts as a server.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, __u8);
} accepted_fds SEC(".maps");

// The sockaddr pointer of an accept in progress, by thread.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} pending_accepts SEC(".maps");

// Set by the loader before loading: 0 looks at every file descriptor (counts clients and
// pipes too; for tests of the tracer itself).
volatile const __u8 only_accepted = 1;

// The registers the syscall's arguments are in (x86_64); CO-RE relocates the offsets against
// the running kernel's BTF, so no vmlinux.h is needed.
struct pt_regs {
	unsigned long di, si, dx, orig_ax;
} __attribute__((preserve_access_index));

struct iovec_user {
	__u64 base;
	__u64 len;
};

#define SYS_READ 0
#define SYS_WRITE 1
#define SYS_CLOSE 3
#define SYS_WRITEV 20
#define SYS_ACCEPT 43
#define SYS_SENDTO 44
#define SYS_RECVFROM 45
#define SYS_SENDMSG 46
#define SYS_ACCEPT4 288

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

static __always_inline void drop(enum drop_reason r)
{
	__u32 k = r;
	__u64 *n = bpf_map_lookup_elem(&http_drops, &k);
	if (n)
		*n += 1; // per CPU: no atomic needed
}

// count adds one to *key in m; a new key in a full map is counted as a drop instead.
static __always_inline void count(void *m, void *key, enum drop_reason full)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(m, key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	long err = bpf_map_update_elem(m, key, &one, BPF_NOEXIST);
	if (err == -17 /* EEXIST: another CPU made it */) {
		n = bpf_map_lookup_elem(m, key);
		if (n)
			__sync_fetch_and_add(n, 1);
	} else if (err)
		drop(full); // E2BIG: the map is full
}

static __always_inline int tracked(__u32 tgid, __u64 fd)
{
	if (!only_accepted)
		return 1;
	__u64 k = ((__u64)tgid << 32) | (fd & 0xffffffff);
	return bpf_map_lookup_elem(&accepted_fds, &k) != 0;
}

static __always_inline int is_method(const char *b, const char *m, int n)
{
	for (int i = 0; i < n; i++)
		if (b[i] != m[i])
			return 0;
	return 1;
}

// method_is says whether the first bytes of w (little-endian) are m, n bytes long.
static __always_inline int method_is(__u64 w, const char *m, int n)
{
	__u64 want = 0;
	for (int i = n - 1; i >= 0; i--)
		want = want << 8 | (__u8)m[i];
	__u64 mask = n == 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
	return (w & mask) == want;
}

// request counts the request whose first 8 bytes are w (little-endian), when it starts with
// a method and a space: a known method only, so that the keys per process stay few.
static __always_inline void request(__u32 tgid, __u64 w)
{
	struct req_key k = {.pid = tgid};
	if (method_is(w, "GET ", 4))
		__builtin_memcpy(k.method, "GET", 3);
	else if (method_is(w, "POST ", 5))
		__builtin_memcpy(k.method, "POST", 4);
	else if (method_is(w, "PUT ", 4))
		__builtin_memcpy(k.method, "PUT", 3);
	else if (method_is(w, "HEAD ", 5))
		__builtin_memcpy(k.method, "HEAD", 4);
	else if (method_is(w, "DELETE ", 7))
		__builtin_memcpy(k.method, "DELETE", 6);
	else if (method_is(w, "PATCH ", 6))
		__builtin_memcpy(k.method, "PATCH", 5);
	else if (method_is(w, "OPTIONS ", 8))
		__builtin_memcpy(k.method, "OPTIONS", 7);
	else if (method_is(w, "CONNECT ", 8))
		__builtin_memcpy(k.method, "CONNECT", 7);
	else if (method_is(w, "TRACE ", 6))
		__builtin_memcpy(k.method, "TRACE", 5);
	else
		return;
	count(&http_requests, &k, REQUESTS_MAP_FULL);
}

// received looks at what a read returned: ret bytes at buf, after the bytes an earlier short
// read on the socket kept.
static __always_inline void received(__u32 tgid, __u32 fd, __u64 buf, long ret)
{
	__u64 k = ((__u64)tgid << 32) | fd;
	__u64 w = 0;
	if (bpf_probe_read_user(&w, sizeof(w), (void *)buf)) {
		// A short read at the end of a page: read just what it returned.
		if (ret >= 8 || bpf_probe_read_user(&w, ret & 7, (void *)buf))
			return;
	}
	struct partial *p = bpf_map_lookup_elem(&partial_reads, &k);
	if (p) {
		__u32 n = p->n & 7;
		__u64 head = p->bytes;
		bpf_map_delete_elem(&partial_reads, &k);
		if (n > 0 && n + ret >= 8) {
			request(tgid, head | w << (8 * n));
			return;
		}
		if (n + ret < 8) { // still short: keep both
			struct partial np = {.bytes = head | (w & ((1ULL << (8 * ret)) - 1)) << (8 * n), .n = n + ret};
			bpf_map_update_elem(&partial_reads, &k, &np, BPF_ANY);
			return;
		}
	}
	if (ret >= 8) {
		request(tgid, w);
		return;
	}
	struct partial np = {.bytes = w & ((1ULL << (8 * ret)) - 1), .n = ret};
	bpf_map_update_elem(&partial_reads, &k, &np, BPF_ANY);
}

// response counts a buffer of at least 12 bytes that starts with "HTTP/1.x NNN".
static __always_inline void response(__u32 tgid, __u64 buf, __u64 len)
{
	char b[12];
	if (len < 12 || bpf_probe_read_user(b, sizeof(b), (void *)buf))
		return;
	if (!is_method(b, "HTTP/1.", 7) || (b[7] != '0' && b[7] != '1') || b[8] != ' ')
		return;
	if (b[9] < '1' || b[9] > '5' || b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9')
		return;
	struct resp_key k = {.pid = tgid};
	k.code = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	count(&http_responses, &k, RESPONSES_MAP_FULL);
}

// first_iovec reads the first element of a user iovec array.
static __always_inline int first_iovec(__u64 iov, struct iovec_user *v)
{
	return bpf_probe_read_user(v, sizeof(*v), (void *)iov);
}

SEC("tp_btf/sys_enter")
int sys_enter(unsigned long long *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long id = (long)ctx[1];
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;

	switch (id) {
	case SYS_READ:
	case SYS_RECVFROM: {
		if (regs->dx < 1 || !tracked(tgid, regs->di))
			return 0;
		struct read_args a = {.buf = regs->si, .fd = regs->di};
		bpf_map_update_elem(&pending_reads, &pid_tgid, &a, BPF_ANY);
		return 0;
	}
	case SYS_WRITE:
	case SYS_SENDTO:
		if (tracked(tgid, regs->di))
			response(tgid, regs->si, regs->dx);
		return 0;
	case SYS_WRITEV: {
		struct iovec_user v;
		if (regs->dx < 1 || !tracked(tgid, regs->di) || first_iovec(regs->si, &v))
			return 0;
		response(tgid, v.base, v.len);
		return 0;
	}
	case SYS_SENDMSG: {
		__u64 iov = 0, iovlen = 0;
		struct iovec_user v;
		if (!tracked(tgid, regs->di))
			return 0;
		// struct user_msghdr: msg_name, msg_namelen (padded), msg_iov at 16, msg_iovlen at 24.
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(regs->si + 16)) ||
		    bpf_probe_read_user(&iovlen, sizeof(iovlen), (void *)(regs->si + 24)) ||
		    iovlen < 1 || first_iovec(iov, &v))
			return 0;
		response(tgid, v.base, v.len);
		return 0;
	}
	case SYS_ACCEPT:
	case SYS_ACCEPT4: {
		__u64 addr = regs->si;
		bpf_map_update_elem(&pending_accepts, &pid_tgid, &addr, BPF_ANY);
		return 0;
	}
	case SYS_CLOSE: {
		__u64 k = ((__u64)tgid << 32) | (regs->di & 0xffffffff);
		bpf_map_delete_elem(&accepted_fds, &k);
		bpf_map_delete_elem(&partial_reads, &k);
		return 0;
	}
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int sys_exit(unsigned long long *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long ret = (long)ctx[1];
	long id = regs->orig_ax;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;

	switch (id) {
	case SYS_READ:
	case SYS_RECVFROM: {
		struct read_args *a = bpf_map_lookup_elem(&pending_reads, &pid_tgid);
		if (!a)
			return 0;
		struct read_args args = *a;
		bpf_map_delete_elem(&pending_reads, &pid_tgid);
		if (ret > 0)
			received(tgid, args.fd, args.buf, ret);
		return 0;
	}
	case SYS_ACCEPT:
	case SYS_ACCEPT4: {
		__u64 *addr = bpf_map_lookup_elem(&pending_accepts, &pid_tgid);
		if (!addr)
			return 0;
		__u64 a = *addr;
		bpf_map_delete_elem(&pending_accepts, &pid_tgid);
		if (ret < 0)
			return 0;
		// TCP only, as far as the address tells: a caller that asked for no address (libuv
		// does) is taken as a TCP server.
		if (a) {
			__u16 family = 0;
			if (bpf_probe_read_user(&family, sizeof(family), (void *)a))
				return 0;
			if (family != AF_INET && family != AF_INET6)
				return 0;
		}
		__u64 k = ((__u64)tgid << 32) | ((__u64)ret & 0xffffffff);
		__u8 one = 1;
		bpf_map_update_elem(&accepted_fds, &k, &one, BPF_ANY);
		return 0;
	}
	}
	return 0;
}
