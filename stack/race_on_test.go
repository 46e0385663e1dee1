//go:build race

package stack

// The race detector makes the million-SYN flood test slow: it floods less.
const raceEnabled = true
