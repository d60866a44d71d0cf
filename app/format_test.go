package app

import "testing"

func TestFormatCount(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {5000, "5,000"}, {int64(123456), "123,456"},
		{int64(1234567), "1,234,567"}, {-1234, "-1,234"}, {"x", "x"},
	}
	for _, c := range cases {
		if got := formatCount(c.in); got != c.want {
			t.Errorf("formatCount(%v) = %q, want %q", c.in, got, c.want)
		}
	}
	for n, want := range map[int64]string{0: "0 students", 1: "1 student", 2: "2 students", 5000: "5,000 students"} {
		if got := studentCount(n); got != want {
			t.Errorf("studentCount(%d) = %q, want %q", n, got, want)
		}
	}
}
