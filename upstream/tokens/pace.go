package tokens

import (
	"context"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/stream"
)

// event is one SSE event of an answer (stream.Item).
type event struct {
	pos  uint64
	wire []byte
}

func (e *event) Position() uint64 { return e.pos }
func (e *event) Encoded() []byte  { return e.wire }

// feed hands an answer's events to the serve loop at the token rate
// (stream.Feed). Done closes with stream.ErrComplete after the last one,
// or with the request's error if it ends first.
type feed struct {
	c    chan *event
	done chan struct{}
	err  error // set before done closes
}

func (f *feed) C() <-chan *event      { return f.c }
func (f *feed) Done() <-chan struct{} { return f.done }
func (f *feed) Err() error            { return f.err }

// pace starts the answer's events, one every 1/rate seconds from now (the
// role first, at once), paced against the start so a late wake-up catches
// up; the last two (finish, usage) and [DONE] follow the last token at once.
func (a answer) pace(ctx context.Context, rate float64, stamp bool) *feed {
	evs := a.events()
	f := &feed{c: make(chan *event, len(evs)), done: make(chan struct{})}
	interval := time.Duration(float64(time.Second) / rate)
	go func() {
		defer close(f.done)
		start := time.Now()
		for i, e := range evs {
			tok := min(i, len(a.tokens)) // events after the last token are not paced
			if d := time.Until(start.Add(time.Duration(tok) * interval)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					f.err = ctx.Err()
					return
				case <-t.C:
				}
			}
			if stamp {
				e.wire = append(sse.AppendSentComment(make([]byte, 0, len(e.wire)+32), time.Now()), e.wire...)
			}
			f.c <- e // buffered for every event: never blocks
		}
		f.err = stream.ErrComplete
	}()
	return f
}
