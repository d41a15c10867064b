/*
 * The pod sandbox's process (what registry.k8s.io/pause does): hold the pod's namespaces open,
 * reap orphans, exit on SIGINT or SIGTERM. Built with `gcc -static` into a FROM-scratch image by
 * test/tools/build-image.sh, since no registry is reachable to pull the upstream one.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int signal_number) {
  (void)signal_number;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

static void leave(int signal_number) {
  (void)signal_number;
  _exit(0);
}

int main(void) {
  signal(SIGINT, leave);
  signal(SIGTERM, leave);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
