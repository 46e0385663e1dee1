//go:build !race

package memlink

const raceEnabled = false
