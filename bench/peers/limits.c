/* limits.c -- the machine's own limits, measured before the peers (`make bench-peers`).
 *
 *   build/peers/limits --dir DIR [--seconds S] [--seq-mib N]
 *
 * Prints one line per limit, "key value unit", in the order below:
 *   limit_fdatasync  4 KiB pwrite appended to a file in DIR + fdatasync, in a loop for S
 *                    seconds: the rate of durable commits one writer can make (ops/s)
 *   limit_seqwrite   N MiB written in 1 MiB writes to a new file in DIR + one fdatasync:
 *                    the durable bandwidth of the disk (MB/s, 10^6 bytes)
 *   limit_memcpy     memcpy of a 64 MiB buffer (larger than any cache), one thread (MB/s)
 *   limit_loopback   one TCP stream over 127.0.0.1, 1 MiB writes, S seconds (MB/s)
 *   limit_flush36_random, limit_flush36_contig
 *                    one commit's worth of B-tree pages made durable: 36 pages of 4 KiB
 *                    (what an LMDB commit of single-event appends to 64 sessions writes,
 *                    docs/BENCHMARKS.md session 12) written at random places of a 64 MiB
 *                    file, or as one contiguous 144 KiB write, then one fdatasync; the
 *                    mean time of one such flush over S seconds (us, lower is better):
 *                    how much a disk charges per write request rather than per byte
 * DIR must be on the disk the stores write to (never a tmpfs). Its scratch files are
 * removed. Every figure is one run; the driver repeats the program for medians.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "limits: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int scratch(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s.%d", dir, name, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        die(path);
    return fd;
}

/* Appending (not overwriting) so every fdatasync also commits a size change, as a log
 * or a growing LMDB file does. */
static double fdatasync_rate(const char *dir, double secs)
{
    char path[4096], block[4096];
    memset(block, 'f', sizeof block);
    int fd = scratch(dir, "limits-fsync", path, sizeof path);
    long n = 0;
    double t0 = now_s(), t;
    do {
        if (pwrite(fd, block, sizeof block, (off_t)n * (off_t)sizeof block) != (ssize_t)sizeof block)
            die("pwrite");
        if (fdatasync(fd) != 0)
            die("fdatasync");
        n++;
        t = now_s();
    } while (t - t0 < secs);
    close(fd);
    unlink(path);
    return n / (t - t0);
}

static double seqwrite_mbs(const char *dir, long mib)
{
    char path[4096];
    char *buf = malloc(MIB);
    if (!buf)
        die("malloc");
    for (int i = 0; i < MIB; i++) /* not zeros: a filesystem may special-case them */
        buf[i] = (char)(i * 131 + 7);
    int fd = scratch(dir, "limits-seq", path, sizeof path);
    double t0 = now_s();
    for (long i = 0; i < mib; i++)
        if (write(fd, buf, MIB) != MIB)
            die("write");
    if (fdatasync(fd) != 0)
        die("fdatasync");
    double t = now_s() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return mib * (double)MIB / t / 1e6;
}

static double memcpy_mbs(void)
{
    size_t len = 64 * (size_t)MIB;
    char *a = malloc(len), *b = malloc(len);
    if (!a || !b)
        die("malloc");
    memset(a, 1, len);
    memset(b, 2, len); /* fault every page in before the clock starts */
    int rounds = 0;
    double t0 = now_s(), t;
    do {
        memcpy(rounds & 1 ? a : b, rounds & 1 ? b : a, len);
        rounds++;
        t = now_s();
    } while (t - t0 < 1.0);
    volatile char sink = a[len / 2] + b[len / 3]; /* keep the copies observable */
    (void)sink;
    free(a);
    free(b);
    return rounds * (double)len / (t - t0) / 1e6;
}

/* Mean microseconds of writing 36 pages (at random page offsets, or contiguous at a random
 * offset) into an allocated 64 MiB file and flushing them; both kinds alternate for 'secs'
 * seconds, so that the disk's state is the same for both. */
#define FLUSH_PAGES 36
static void flush36_us(const char *dir, double secs, double *random_us, double *contig_us)
{
    char path[4096];
    const size_t file = 64 * (size_t)MIB, pages = file / 4096;
    char *buf = malloc(MIB);
    if (!buf)
        die("malloc");
    for (int i = 0; i < MIB; i++)
        buf[i] = (char)(i * 37 + 11);
    int fd = scratch(dir, "limits-flush", path, sizeof path);
    for (size_t off = 0; off < file; off += MIB) /* allocated: a flush commits no size change */
        if (pwrite(fd, buf, MIB, (off_t)off) != MIB)
            die("pwrite");
    if (fdatasync(fd) != 0)
        die("fdatasync");
    unsigned seed = 12345;
    double t_r = 0, t_c = 0, t0 = now_s();
    long n = 0;
    do {
        double a = now_s();
        for (int i = 0; i < FLUSH_PAGES; i++) {
            off_t off = (off_t)(rand_r(&seed) % pages) * 4096;
            if (pwrite(fd, buf + (size_t)i * 4096, 4096, off) != 4096)
                die("pwrite");
        }
        if (fdatasync(fd) != 0)
            die("fdatasync");
        double b = now_s();
        off_t off = (off_t)(rand_r(&seed) % (pages - FLUSH_PAGES)) * 4096;
        if (pwrite(fd, buf, FLUSH_PAGES * 4096, off) != FLUSH_PAGES * 4096)
            die("pwrite");
        if (fdatasync(fd) != 0)
            die("fdatasync");
        t_r += b - a, t_c += now_s() - b, n++;
    } while (now_s() - t0 < secs);
    close(fd);
    unlink(path);
    free(buf);
    *random_us = t_r / n * 1e6, *contig_us = t_c / n * 1e6;
}

struct sink_arg {
    int fd;
    long long bytes;
};

static void *drain(void *p)
{
    struct sink_arg *s = p;
    char *buf = malloc(MIB);
    ssize_t r;
    while (buf && (r = read(s->fd, buf, MIB)) > 0)
        s->bytes += r;
    free(buf);
    return NULL;
}

static double loopback_mbs(double secs)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &alen))
        die("listen");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a))
        die("connect");
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sink_arg s = {.fd = accept(ls, NULL, NULL)};
    if (s.fd < 0)
        die("accept");
    pthread_t th;
    pthread_create(&th, NULL, drain, &s);
    char *buf = malloc(MIB);
    if (!buf)
        die("malloc");
    memset(buf, 'l', MIB);
    double t0 = now_s(), t;
    do {
        if (write(c, buf, MIB) < 0)
            die("write");
        t = now_s();
    } while (t - t0 < secs);
    shutdown(c, SHUT_WR);
    pthread_join(th, NULL); /* the bytes still in flight count, and so does their time */
    t = now_s();
    close(c);
    close(s.fd);
    close(ls);
    free(buf);
    return s.bytes / (t - t0) / 1e6;
}

static void usage(FILE *f)
{
    fputs("usage: limits --dir DIR [--seconds S] [--seq-mib N]\n"
          "Measures fdatasync rate, sequential write, memcpy and loopback TCP bandwidth, and\n"
          "the time to flush 36 random or 36 contiguous pages;\n"
          "prints 'key value unit' lines (see bench/peers/limits.c).\n",
          f);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    double secs = 2;
    long mib = 512;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seq-mib") && i + 1 < argc)
            mib = atol(argv[++i]);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!dir || secs <= 0 || mib <= 0) {
        usage(stderr);
        return 2;
    }
    printf("limit_fdatasync %.0f ops/s\n", fdatasync_rate(dir, secs));
    fflush(stdout);
    printf("limit_seqwrite %.0f MB/s\n", seqwrite_mbs(dir, mib));
    fflush(stdout);
    printf("limit_memcpy %.0f MB/s\n", memcpy_mbs());
    fflush(stdout);
    printf("limit_loopback %.0f MB/s\n", loopback_mbs(secs));
    fflush(stdout);
    double r, c;
    flush36_us(dir, secs, &r, &c);
    printf("limit_flush36_random %.0f us\nlimit_flush36_contig %.0f us\n", r, c);
    return 0;
}
