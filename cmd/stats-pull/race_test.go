//go:build race

package main

// raceEnabled builds the stats-pull binary under test with -race too, so that the integration
// tests also look for data races in the real program.
const raceEnabled = true
