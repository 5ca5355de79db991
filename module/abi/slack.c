// Go's timer slack inside Envoy.
//
// Every Envoy worker that has called into Go keeps a P (the Go scheduler's
// right to run Go code) parked as if in a system call while it runs C, and
// Go's monitor thread, sysmon, takes such a P back once it has not been
// scheduled for 10 ms. Each take-back sets sysmon polling every 20 µs again
// for at least a millisecond, and under a steady stream of requests that is
// most of the time: on the bench's token streams, sysmon's wake-ups were
// about 10% of Envoy's CPU with the module, as much as all of the module's
// own work (docs/llm-streams.md, "Where does the module's time go?"). Go
// has no setting for it.
//
// Linux lets a thread's sleeps run late by its timer slack, and a thread
// starts with its creator's. So the module's first constructor raises the
// loading thread's slack before Go's runtime starts: the runtime's threads,
// sysmon among them, inherit it, and the kernel may let sysmon's 20 µs
// sleeps run up to SSE_GO_TIMER_SLACK_NS late. The module's Go code sleeps nowhere else (no
// timers, no network), and Envoy's threads keep their own slack: the
// loading thread gets its own back at program init, the first call Envoy
// makes after loading the library. TestModuleRaisesOnlyGosTimerSlack (e2e)
// reads every thread's slack in Envoy.
#include <sys/prctl.h>

#include "sse_abi.h"
#include "slack.h"

// module/abiinfo.GoTimerSlack (a test keeps them equal). With it, sysmon's
// share of Envoy's samples on the token-stream bench fell from 410 to 60 in
// 10 s (perf; docs/llm-streams.md).
#define SSE_GO_TIMER_SLACK_NS 10000000UL

static unsigned long host_slack;
static int raised;

// Priority 101, the first there is: before the Go runtime's own initializer,
// which creates the runtime's first thread.
__attribute__((constructor(101))) static void raise_slack_for_go(void) {
  // Only inside Envoy, whose callbacks are resolved before any constructor
  // runs: a Go program that links package abi (a test, a tool) and the
  // processes it starts keep their slack.
  if (envoy_dynamic_module_callback_log == NULL) return;
  int s = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  if (s < 0) return;
  host_slack = (unsigned long)s;
  raised = prctl(PR_SET_TIMERSLACK, SSE_GO_TIMER_SLACK_NS, 0, 0, 0) == 0;
}

void sse_restore_host_slack(void) {
  if (!raised) return;
  prctl(PR_SET_TIMERSLACK, host_slack, 0, 0, 0);
  raised = 0;
}

unsigned long sse_go_timer_slack_ns(void) { return SSE_GO_TIMER_SLACK_NS; }
