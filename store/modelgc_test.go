package store

import "testing"

// The collector's setting follows the models held: the start's setting
// up to gcHeadroom of models, lowered past it (never below gcMinPercent,
// never above the start's), relaxed during loads, left off when off.
func TestGCPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base, relaxed int
		held          int64
		want          int
	}{
		{100, 0, 0, 100},
		{100, 0, 2 << 20, 100},          // a school of ~15,000
		{100, 0, 5 << 20, 100},          // up to gcHeadroom of models
		{100, 0, 13 << 20, 26},          // ~100,000: about gcHeadroom of garbage, of the models and the rest
		{100, 0, 11 << 20, 29},          // ~100,000, every schema 3 field filled, sealed
		{100, 0, 22 << 20, 17},          // … unsealed
		{100, 0, 1 << 30, gcMinPercent}, // never below
		{50, 0, 6 << 20, 20},            // proportional to the start's setting
		{8, 0, 8 << 20, 8},              // … and a low one is never raised
		{100, 1, 13 << 20, gcLoadPct},   // a load from the saved copy runs
		{1000, 1, 0, 1000},              // never lowered by a load
		{-1, 1, 13 << 20, -1},           // off stays off
		{-1, 0, 13 << 20, -1},
	} {
		if got := gcPercent(tc.base, tc.relaxed, tc.held); got != tc.want {
			t.Errorf("gcPercent(%d, %d, %d) = %d, want %d", tc.base, tc.relaxed, tc.held, got, tc.want)
		}
	}
}
