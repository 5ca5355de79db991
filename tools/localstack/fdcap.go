package localstack

import (
	"fmt"
	"syscall"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/tools/envoyconfig"
)

// envoyFileReserve is what Envoy keeps open besides the streams' sockets:
// listeners, the admin port, logs, health checks, the ext_proc connections.
const envoyFileReserve = 1024

// connectionCap is the most downstream connections an Envoy with limit file
// descriptors can carry: on the HTTP/1.1 upstream leg each stream holds two,
// the client's and its own upstream connection.
func connectionCap(limit uint64) int64 {
	if limit <= 2*envoyFileReserve {
		return 1
	}
	return int64(limit-envoyFileReserve) / 2
}

// fitConnectionCap lowers the config's overload-manager cap on downstream
// connections to what this machine's RLIMIT_NOFILE lets Envoy carry. The
// configs assume Compose's 65,536; with fewer, a 10,000-stream storm made
// socket(2) fail with EMFILE and Envoy 1.37.0 crash (SIGSEGV) under a
// 20,000 limit. Over the cap Envoy refuses connections instead, which
// EventSource retries.
func fitConnectionCap(b *bootstrapv3.Bootstrap) error {
	configured, err := envoyconfig.DownstreamConnectionLimit(b)
	if err != nil || configured == 0 {
		return err
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if fit := connectionCap(lim.Cur); fit < configured {
		return envoyconfig.SetDownstreamConnectionLimit(b, fit)
	}
	return nil
}
