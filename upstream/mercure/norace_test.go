//go:build !race

package mercure

const raceEnabled = false
