//go:build race

package mercure

// raceEnabled: the race detector is on, and sync.Pool (which regexp keeps
// its matchers in) drops items at random, so allocation counts are its own.
const raceEnabled = true
