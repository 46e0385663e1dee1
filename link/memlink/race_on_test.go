//go:build race

package memlink

// sync.Pool drops items at random under the race detector.
const raceEnabled = true
