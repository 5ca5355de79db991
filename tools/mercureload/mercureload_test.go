package mercureload

import (
	"testing"

	"example.com/sse-on-envoy/internal/sse"
)

// The accounting against a real hub is tested in upstream/server
// (TestMercureLoadClientAgainstTheHub): nothing under internal/ imports
// upstream/.

func TestParseStamp(t *testing.T) {
	for data, want := range map[string]int64{
		"sent=1700000000000000000 seq=3 xxxx": 1700000000000000000,
		"sent=42":                             42,
		"seq=3 sent=42":                       0,
		"sent=oops seq=1":                     0,
		"":                                    0,
	} {
		if got := ParseStamp(sse.Event{Data: data}); got != want {
			t.Errorf("ParseStamp(%q) = %d, want %d", data, got, want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Subscribers: 3, Topics: 10}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if c.Topics != 3 || c.Publishers != 8 || c.Topic(2) != DefaultTopicPrefix+"2" {
		t.Errorf("defaults: %+v", c)
	}
	c = Config{Subscribers: 3, Topics: 1, Rate: 5}
	if err := c.defaults(); err != nil || c.Publishers != 64 {
		t.Errorf("with a rate: %+v, %v", c, err)
	}
	if err := (&Config{Topics: 1}).defaults(); err == nil {
		t.Error("no subscribers accepted")
	}
}
