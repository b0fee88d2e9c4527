/* GETATTR round trips as seen by an application: stat() one path in a loop for a fixed time.
 * Usage: stat-loop PATH SECONDS -> prints the number of successful stats. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PATH SECONDS\n", argv[0]);
    return 2;
  }
  double end = now() + atof(argv[2]);
  long n = 0;
  struct stat st;
  while (now() < end) {
    /* 64 stats per clock read keeps the timing cost out of the loop. */
    for (int i = 0; i < 64; i++) {
      if (stat(argv[1], &st) != 0) {
        perror("stat");
        return 1;
      }
      n++;
    }
  }
  printf("%ld\n", n);
  return 0;
}
