#ifndef SSE_SLACK_H
#define SSE_SLACK_H
// sse_restore_host_slack gives the thread that loaded the library its own
// timer slack back (slack.c); later calls do nothing.
__attribute__((visibility("hidden"))) void sse_restore_host_slack(void);
// sse_go_timer_slack_ns is the slack the Go runtime's threads start with.
__attribute__((visibility("hidden"))) unsigned long sse_go_timer_slack_ns(void);
#endif
