// Package mercureload is a load on a Mercure hub (the upstream's, or any
// other that speaks the protocol): N subscribers spread over M topics (each
// subscriber follows one), and a publisher at R publishes/s across the
// topics whose every update carries its send time in its data. It measures
// publish-to-receive latency, publishes acknowledged per second, lost
// deliveries and errors. The subscribers are tools/loadtest's
// streams (opening, statuses, reading); this package adds the topics and the
// publisher.
package mercureload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/loadtest"
)

// HubPath is the protocol's hub path.
const HubPath = "/.well-known/mercure"

// DefaultTopicPrefix names the topics: prefix + index.
const DefaultTopicPrefix = "https://example.com/bench/"

// Config says what to run.
type Config struct {
	// HubURL is the hub, such as http://127.0.0.1:8080/.well-known/mercure.
	HubURL string
	// Subscribers spread over Topics: subscriber i follows topic i%Topics.
	Subscribers, Topics int
	// OpenRate is subscribers opened per second; 0: as fast as possible.
	OpenRate float64
	// Rate is publishes per second, topic after topic; 0 publishes as fast
	// as Publishers concurrent requests allow (a throughput test).
	Rate float64
	// Publishers caps the publishes in flight (default 64 with a Rate, 8
	// without). A publish due while the cap is reached is not sent and is
	// counted in Result.Behind: the hub did not keep up with the rate.
	Publishers int
	// Token is the publisher's JWT (Authorization: Bearer), see Token.
	Token string
	// TopicPrefix defaults to DefaultTopicPrefix.
	TopicPrefix string
	// Payload pads each update's data to about this many bytes.
	Payload int
	// Bystanders are subscriptions opened beside the subscribers (after
	// them), each asking for BystanderSelectors(i), which match none of the
	// load's topics: what they cost the hub shows in the subscribers'
	// latency.
	Bystanders         int
	BystanderSelectors func(i int) []string
}

func (c *Config) defaults() error {
	if c.Subscribers < 1 || c.Topics < 1 {
		return errors.New("mercureload: at least one subscriber and one topic")
	}
	if c.Topics > c.Subscribers {
		c.Topics = c.Subscribers
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.Publishers <= 0 {
		c.Publishers = 64
		if c.Rate == 0 {
			c.Publishers = 8
		}
	}
	return nil
}

// Topic is topic i's IRI.
func (c Config) Topic(i int) string { return c.TopicPrefix + strconv.Itoa(i) }

// Load is the subscribers, open or opening, and the publisher's client.
type Load struct {
	cfg        Config
	subs       *loadtest.Load
	bystanders *loadtest.Load // nil without Config.Bystanders
	pub        *http.Client
}

// stampPrefix starts every update's data: "sent=<unix ns> seq=<n> pad".
const stampPrefix = "sent="

// ParseStamp reads an update's send time from its data; 0 if it has none.
func ParseStamp(e sse.Event) int64 {
	rest, ok := strings.CutPrefix(e.Data, stampPrefix)
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	n, _ := strconv.ParseInt(rest, 10, 64)
	return n
}

// Start begins opening the subscribers.
func Start(cfg Config) (*Load, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	base, err := url.Parse(cfg.HubURL)
	if err != nil {
		return nil, fmt.Errorf("mercureload: hub URL: %w", err)
	}
	topicURLs := make([]string, cfg.Topics)
	for i := range topicURLs {
		u := *base
		u.RawQuery = url.Values{"topic": {cfg.Topic(i)}}.Encode()
		topicURLs[i] = u.String()
	}
	subs, err := loadtest.Start(loadtest.Config{
		URL:       topicURLs[0],
		Streams:   cfg.Subscribers,
		OpenRate:  cfg.OpenRate,
		StreamURL: func(i int) string { return topicURLs[i%cfg.Topics] },
		Stamp:     ParseStamp,
	})
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: cfg.Publishers,
		MaxConnsPerHost:     cfg.Publishers,
		IdleConnTimeout:     time.Minute,
	}
	return &Load{cfg: cfg, subs: subs, pub: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}

// OpenBystanders opens Config.Bystanders subscriptions; call it once the
// subscribers are answered, and wait for them with WaitBystanders.
func (l *Load) OpenBystanders() error {
	if l.cfg.Bystanders <= 0 || l.cfg.BystanderSelectors == nil {
		return nil
	}
	base, err := url.Parse(l.cfg.HubURL)
	if err != nil {
		return fmt.Errorf("mercureload: hub URL: %w", err)
	}
	bystanders, err := loadtest.Start(loadtest.Config{
		URL:      l.cfg.HubURL,
		Streams:  l.cfg.Bystanders,
		OpenRate: l.cfg.OpenRate,
		StreamURL: func(i int) string {
			u := *base
			u.RawQuery = url.Values{"topic": l.cfg.BystanderSelectors(i)}.Encode()
			return u.String()
		},
	})
	if err != nil {
		return err
	}
	l.bystanders = bystanders
	return nil
}

// WaitBystanders waits until every bystander has its status, or ctx ends.
func (l *Load) WaitBystanders(ctx context.Context) {
	if l.bystanders != nil {
		l.bystanders.WaitAnswered(ctx)
	}
}

// CloseBystanders ends the bystanders and returns their fate (zero without
// any).
func (l *Load) CloseBystanders() loadtest.Summary {
	if l.bystanders == nil {
		return loadtest.Summary{}
	}
	s := l.bystanders.Close()
	l.bystanders = nil
	return s
}

// Subscribers are the subscriber streams (statuses, gaps, ends).
func (l *Load) Subscribers() *loadtest.Load { return l.subs }

// WaitAnswered waits until every subscriber has its status, or ctx ends.
func (l *Load) WaitAnswered(ctx context.Context) int { return l.subs.WaitAnswered(ctx) }

// Close ends the subscribers and returns their fate.
func (l *Load) Close() loadtest.Summary {
	l.pub.CloseIdleConnections()
	l.CloseBystanders()
	return l.subs.Close()
}

// Result is one publishing window's figures.
type Result struct {
	// Published publishes were answered 200; Behind were due but not sent
	// (Publishers in flight already); PublishErrors counts the others by
	// status or error.
	Published     int64
	Behind        int64
	PublishErrors map[string]int
	// PublishSeconds is the publishing time; PublishRate is Published over
	// it.
	PublishSeconds float64
	PublishRate    float64
	// Expected deliveries: for each acknowledged publish, the subscribers
	// of its topic (all of them, as asked: failed subscribers show in the
	// subscribers' statuses). Received is what they read, Lost the
	// difference (never negative).
	Expected, Received, Lost int64
	// Unstamped events carried no send time (not ours).
	Unstamped int64
	// Latencies, publish sent to update read, one per stamped delivery;
	// AckLatencies, publish sent to its 200.
	Latencies    []time.Duration
	AckLatencies []time.Duration
}

// Run publishes for d, waits grace for the last deliveries, and returns the
// figures. Only what Run published is counted.
func (l *Load) Run(ctx context.Context, d, grace time.Duration) Result {
	perTopic := make([]int64, l.cfg.Topics)
	for i := range l.cfg.Subscribers {
		perTopic[i%l.cfg.Topics]++
	}
	var (
		mu     sync.Mutex
		res    = Result{PublishErrors: map[string]int{}}
		acks   []time.Duration
		seq    atomic.Int64
		wg     sync.WaitGroup
		sem    = make(chan struct{}, l.cfg.Publishers)
		pubCtx context.Context
		cancel context.CancelFunc
	)
	pubCtx, cancel = context.WithTimeout(ctx, d)
	defer cancel()
	publish := func() {
		n := seq.Add(1) - 1
		topic := int(n % int64(l.cfg.Topics))
		sent := time.Now()
		status, err := l.publish(ctx, topic, n, sent)
		took := time.Since(sent)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			res.PublishErrors["error: "+loadtest.Classify(err)]++
		case status != http.StatusOK:
			res.PublishErrors[strconv.Itoa(status)]++
		default:
			res.Published++
			res.Expected += perTopic[topic]
			acks = append(acks, took)
		}
	}

	l.subs.StartWindow()
	start := time.Now()
	if l.cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	pace:
		for i := 0; ; i++ {
			// Paced against the start, so a late wake-up catches up.
			due := start.Add(time.Duration(i) * interval)
			if !due.Before(start.Add(d)) {
				break
			}
			if d := time.Until(due); d > 0 {
				select {
				case <-pubCtx.Done():
					break pace
				case <-time.After(d):
				}
			}
			if pubCtx.Err() != nil {
				break
			}
			select {
			case sem <- struct{}{}:
				wg.Go(func() {
					defer func() { <-sem }()
					publish()
				})
			default:
				mu.Lock()
				res.Behind++
				mu.Unlock()
			}
		}
	} else {
		for range l.cfg.Publishers {
			wg.Go(func() {
				for pubCtx.Err() == nil {
					publish()
				}
			})
		}
	}
	<-pubCtx.Done()
	res.PublishSeconds = time.Since(start).Seconds()
	wg.Wait()
	select {
	case <-ctx.Done():
	case <-time.After(grace):
	}
	w := l.subs.EndWindow()

	res.PublishRate = float64(res.Published) / res.PublishSeconds
	res.Received, res.Unstamped, res.Latencies = w.Events-w.Unstamped, w.Unstamped, w.Latencies
	res.Lost = max(res.Expected-res.Received, 0)
	res.AckLatencies = acks
	if len(res.PublishErrors) == 0 {
		res.PublishErrors = nil
	}
	return res
}

// publish posts one update to topic; its data carries sent.
func (l *Load) publish(ctx context.Context, topic int, seq int64, sent time.Time) (int, error) {
	data := stampPrefix + strconv.FormatInt(sent.UnixNano(), 10) + " seq=" + strconv.FormatInt(seq, 10)
	if pad := l.cfg.Payload - len(data) - 1; pad > 0 {
		data += " " + strings.Repeat("x", pad)
	}
	form := url.Values{"topic": {l.cfg.Topic(topic)}, "data": {data}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.HubURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+l.cfg.Token)
	resp, err := l.pub.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
