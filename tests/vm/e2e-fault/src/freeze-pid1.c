/* e2e fault "pid1-frozen": stop PID 1 the way a deadlocked manager stops, so it never
 * pings the watchdog again. kill -STOP 1 does nothing (the kernel drops signals to init
 * that it has no handler for); a ptrace stop does not depend on init's handlers.
 * Built static on the host by e2e.sh; runs inside the guest as root. */
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    if (ptrace(PTRACE_SEIZE, 1, 0, 0) != 0) { perror("PTRACE_SEIZE 1"); return 1; }
    if (ptrace(PTRACE_INTERRUPT, 1, 0, 0) != 0) { perror("PTRACE_INTERRUPT 1"); return 1; }
    int st;
    if (waitpid(1, &st, __WALL) != 1) { perror("waitpid 1"); return 1; }
    FILE *c = fopen("/dev/ttyS0", "w");
    if (c) { fputs("E2E-FAULT: PID 1 stopped\n", c); fclose(c); }
    /* the tracer stays: PID 1 stays stopped until the watchdog resets the machine */
    for (;;) pause();
}
