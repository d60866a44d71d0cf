package commonpasswords

import "testing"

func TestContains(t *testing.T) {
	if n := Len(); n < 19000 {
		t.Fatalf("list has %d passwords, want Django's ~20,000", n)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"password", true},
		{"PassWord", true}, // compared lower-cased, as Django does
		{" qwertyuiop ", true},
		{"12345678", true},
		{"correct-horse-42", false},
		{"Zq7!vB3#kLm9", false},
		{"", false},
	} {
		if got := Contains(tc.pw); got != tc.want {
			t.Errorf("Contains(%q) = %v, want %v", tc.pw, got, tc.want)
		}
	}
}
