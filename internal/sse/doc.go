// Package sse implements the text/event-stream wire format of the WHATWG HTML
// standard ("Server-sent events", section 9.2): an encoder for servers, an
// incremental scanner for proxies that watch a stream go by, and a reader for
// clients.
//
// The scanner never holds more than a fixed number of bytes whatever the
// peer sends, because a proxy filter must not let one upstream line grow its
// memory. Every adapter counts with it: the golang filter (filter/ssefilter)
// and the ext_proc server (extproc/processor) through internal/ssestream, and
// the dynamic module (module/ssemodule) through its C twin in module/abi,
// held equal to it by a fuzz test.
package sse
