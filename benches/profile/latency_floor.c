// The kernel's share of send-to-deliver latency in this project's latency
// test (docs/measurements.md, "The latency floor"): a writer pinned to core 0
// sends one 137-byte message (the size of an SSE delivery) to each of N
// loopback TCP sockets every PERIOD_US, one send per socket, as a chat server
// fans out; a reader pinned to core 1 drains every socket through epoll, as
// the load generator does. Latency is the reader's clock when a message is
// complete minus the stamp the writer took before its first send. No
// framework and no parsing on either side: what is left is the kernel.
// WRITER_NS and READER_NS add that much busy work per send and per delivery,
// standing in for what a server and a client do besides the system calls.
// REQUEST_BYTES > 0 makes it long polling's: after each message the reader
// sends a request of that size back (its next poll), and the writer reads
// each socket's request before it sends the next message.
//
//   benches/profile/latency_floor.sh [N=1000] [MESSAGES=1000] [PERIOD_US=10000] [WRITER_NS=0] [READER_NS=0] [REQUEST_BYTES=0]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE_BYTES 137

static int clients = 1000, messages = 1000, period_us = 10000;
static long writer_ns = 0, reader_ns = 0;
static int request_bytes = 0;
static char request[4096];
static int *client_fd, *server_fd;
static volatile int sending_done = 0;
static unsigned *latency_us;
static long deliveries = 0;
static double reader_cpu_s = 0;

static long now_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// Busy work standing in for a program's own per-delivery cost.
static void work(long ns) {
  if (ns <= 0) return;
  long until = now_ns(CLOCK_THREAD_CPUTIME_ID) + ns;
  while (now_ns(CLOCK_THREAD_CPUTIME_ID) < until) {
  }
}

static int by_value(const void *a, const void *b) {
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return x < y ? -1 : x > y;
}

// Drains every client socket; a message may arrive in pieces or several to a read.
static void *reader(void *unused) {
  (void)unused;
  pin(1);
  int ep = epoll_create1(0);
  for (int i = 0; i < clients; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, client_fd[i], &e);
  }
  static char buf[65536];
  struct epoll_event events[256];
  int *have = calloc(clients, sizeof(int));
  char (*partial)[MESSAGE_BYTES] = calloc(clients, MESSAGE_BYTES);
  long expected = (long)clients * messages, cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  while (deliveries < expected) {
    int n = epoll_wait(ep, events, 256, 1000);
    if (n == 0 && sending_done) break;  // a second of silence after the last send: give up
    for (int k = 0; k < n; k++) {
      int i = (int)events[k].data.u32;
      ssize_t got;
      while ((got = recv(client_fd[i], buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        long at = now_ns(CLOCK_MONOTONIC);
        for (ssize_t off = 0; off < got;) {
          int take = MESSAGE_BYTES - have[i];
          if (take > got - off) take = (int)(got - off);
          memcpy(partial[i] + have[i], buf + off, take);
          have[i] += take;
          off += take;
          if (have[i] == MESSAGE_BYTES) {
            long stamp;
            memcpy(&stamp, partial[i], sizeof stamp);
            latency_us[deliveries++] = (unsigned)((at - stamp) / 1000);
            have[i] = 0;
            work(reader_ns);
            if (request_bytes > 0) send(client_fd[i], request, request_bytes, MSG_DONTWAIT);
          }
        }
      }
    }
  }
  reader_cpu_s = (now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e9;
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1) clients = atoi(argv[1]);
  if (argc > 2) messages = atoi(argv[2]);
  if (argc > 3) period_us = atoi(argv[3]);
  if (argc > 4) writer_ns = atol(argv[4]);
  if (argc > 5) reader_ns = atol(argv[5]);
  if (argc > 6) request_bytes = atoi(argv[6]);
  if (request_bytes > (int)sizeof request) request_bytes = sizeof request;
  memset(request, 'r', sizeof request);
  pin(0);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t addr_len = sizeof addr;
  if (bind(listener, (void *)&addr, sizeof addr) || listen(listener, 4096) ||
      getsockname(listener, (void *)&addr, &addr_len)) {
    perror("listen");
    return 1;
  }
  client_fd = malloc(clients * sizeof(int));
  server_fd = malloc(clients * sizeof(int));
  latency_us = malloc(sizeof(unsigned) * (long)clients * messages);
  for (int i = 0; i < clients; i++) {
    client_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client_fd[i], (void *)&addr, sizeof addr) ||
        (server_fd[i] = accept(listener, 0, 0)) < 0) {
      perror("connect");
      return 1;
    }
    int one = 1;  // as actix-web sets it
    setsockopt(server_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  pthread_t reader_thread;
  pthread_create(&reader_thread, 0, reader, 0);
  usleep(200000);
  char message[MESSAGE_BYTES];
  static char request_in[4096];
  memset(message, 'x', sizeof message);
  long start = now_ns(CLOCK_MONOTONIC) + 10000000L, cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), sends = 0;
  for (int m = 0; m < messages; m++) {
    long due = start + (long)m * period_us * 1000L;
    while (now_ns(CLOCK_MONOTONIC) < due) {
      struct timespec nap = {0, 50000};
      nanosleep(&nap, 0);
    }
    long stamp = now_ns(CLOCK_MONOTONIC);
    memcpy(message, &stamp, sizeof stamp);
    for (int i = 0; i < clients; i++) {
      work(writer_ns);
      // Long polling: the answer goes to a poll that is waiting; take it.
      if (request_bytes > 0 && m > 0) recv(server_fd[i], request_in, sizeof request_in, MSG_DONTWAIT);
      if (send(server_fd[i], message, MESSAGE_BYTES, MSG_DONTWAIT) == MESSAGE_BYTES) sends++;
    }
  }
  double writer_cpu_s = (now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e9;
  sending_done = 1;
  pthread_join(reader_thread, 0);
  if (deliveries == 0) {
    fprintf(stderr, "nothing was delivered\n");
    return 1;
  }
  qsort(latency_us, deliveries, sizeof(unsigned), by_value);
  printf("%d sockets, %d messages every %d us, busy work %ld/%ld ns, requests of %d bytes: %ld "
         "of %ld delivered; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; writer %.2f us of CPU "
         "per send, reader %.2f us per delivery\n",
         clients, messages, period_us, writer_ns, reader_ns, request_bytes, deliveries,
         (long)clients * messages,
         latency_us[deliveries / 2] / 1000.0, latency_us[(long)(deliveries * 0.99)] / 1000.0,
         latency_us[deliveries - 1] / 1000.0, writer_cpu_s * 1e6 / sends,
         reader_cpu_s * 1e6 / deliveries);
  return deliveries == (long)clients * messages ? 0 : 1;
}
