package registry

import (
	"net"
	"strings"
	"testing"
	"unicode"
)

func TestNormalizeHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 4 labels of 63 plus 3 dots = 255 > 253; 3 labels of 63 + "a.b" fits.
	long := strings.Join([]string{label63, label63, label63, label63}, ".")
	max := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".") // 253

	tests := []struct {
		name string
		in   string
		want string // "" means an error is expected
	}{
		{"plain", "school.localhost", "school.localhost"},
		{"upper case", "Nairobi.School.LOCALHOST", "nairobi.school.localhost"},
		{"port", "nairobi.school.localhost:8000", "nairobi.school.localhost"},
		{"upper case and port", "ACCRA.school.localhost:443", "accra.school.localhost"},
		{"trailing dot", "school.localhost.", "school.localhost"},
		{"trailing dot and port", "school.localhost.:8000", "school.localhost"},
		{"single label", "localhost", "localhost"},
		{"digits and hyphens", "a-1.b2-c.example", "a-1.b2-c.example"},
		{"ipv4", "127.0.0.1", "127.0.0.1"},
		{"ipv4 with port", "127.0.0.1:8000", "127.0.0.1"},
		{"ipv6 bracketed", "[::1]", "::1"},
		{"ipv6 with port", "[::1]:8000", "::1"},
		{"ipv6 upper case, long form", "[FE80:0:0:0:0:0:0:1]:80", "fe80::1"},
		{"ipv6 bare", "::1", "::1"},
		{"ipv6 bare upper case", "2001:DB8::1", "2001:db8::1"},
		{"max port", "a.example:65535", "a.example"},
		{"label of 63", label63 + ".example", label63 + ".example"},
		{"total of 253", max, max},

		{"empty", "", ""},
		{"only a dot", ".", ""},
		{"only a port", ":80", ""},
		{"two trailing dots", "a.example..", ""},
		{"leading dot", ".example", ""},
		{"empty label", "a..b", ""},
		{"space", "a b.example", ""},
		{"surrounding space", " a.example", ""},
		{"underscore", "a_b.example", ""},
		{"slash", "a.example/x", ""},
		{"at sign", "user@a.example", ""},
		{"percent", "a%2e.example", ""},
		{"unicode", "shule.éxample", ""},
		{"unicode dot lookalike", "a。example", ""},
		{"port zero", "a.example:0", ""},
		{"port too big", "a.example:99999", ""},
		{"port 65536", "a.example:65536", ""},
		{"port letters", "a.example:abc", ""},
		{"port empty", "a.example:", ""},
		{"port signed", "a.example:+80", ""},
		{"two ports", "a.example:80:80", ""},
		{"leading hyphen", "-a.example", ""},
		{"label leading hyphen", "a.-b.example", ""},
		{"trailing hyphen", "a-.example", ""},
		{"trailing hyphen at end", "a.example-", ""},
		{"label over 63", strings.Repeat("a", 64) + ".example", ""},
		{"total over 253", long, ""},
		{"way too long", strings.Repeat("a.", 200), ""},
		{"ipv6 unterminated", "[::1", ""},
		{"ipv6 bad port", "[::1]:0", ""},
		{"ipv6 junk after bracket", "[::1]x", ""},
		{"ipv6 empty brackets", "[]", ""},
		{"ipv6 bracketed ipv4", "[127.0.0.1]", ""},
		{"ipv6 mapped ipv4", "[::ffff:127.0.0.1]", ""},
		{"ipv6 zone", "[fe80::1%eth0]", ""},
		{"ipv6 bare bad", "1:2:3", ""},
		{"nul byte", "a\x00.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NormalizeHost(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeHost(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := NormalizeHost(got)
			if err != nil || again != got {
				t.Fatalf("NormalizeHost(%q) = %q, %v; output is not a fixed point", got, again, err)
			}
		})
	}
}

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{
		"school.localhost", "Nairobi.School.LOCALHOST:8000", "a.example.", "a..b", "[::1]:80", "::1",
		"2001:DB8::1", "127.0.0.1:8000", "-a", "a.example:0", "é.example", strings.Repeat("a", 64), "a.:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeHost(in)
		if err != nil {
			return
		}
		if out == "" {
			t.Fatalf("NormalizeHost(%q) = \"\" without an error", in)
		}
		again, err := NormalizeHost(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: NormalizeHost(%q) = %q; NormalizeHost(%q) = %q, %v", in, out, out, again, err)
		}
		if strings.HasSuffix(out, ".") {
			t.Fatalf("NormalizeHost(%q) = %q ends with '.'", in, out)
		}
		for _, r := range out {
			if unicode.IsUpper(r) || r > unicode.MaxASCII {
				t.Fatalf("NormalizeHost(%q) = %q contains %q", in, out, r)
			}
		}
		if strings.Contains(out, ":") {
			// Only an IPv6 literal may keep colons, and then without brackets.
			if ip := net.ParseIP(out); ip == nil || ip.To4() != nil {
				t.Fatalf("NormalizeHost(%q) = %q has ':' but is not an IPv6 address", in, out)
			}
		} else if len(out) > 253 {
			t.Fatalf("NormalizeHost(%q) = %q is longer than 253", in, out)
		}
	})
}

// The request path normalises every Host header: lowercase names, with or
// without a port, must not allocate.
func TestNormalizeHostDoesNotAllocate(t *testing.T) {
	for _, in := range []string{"nairobi.school.localhost", "nairobi.school.localhost:8000", "school.localhost.", "127.0.0.1:80"} {
		var out string
		if n := testing.AllocsPerRun(100, func() { out, _ = NormalizeHost(in) }); n != 0 {
			t.Errorf("NormalizeHost(%q) = %q: %v allocations, want 0", in, out, n)
		}
	}
	if got, _ := NormalizeHost("Nairobi.School.Localhost"); got != "nairobi.school.localhost" {
		t.Errorf("upper case not lowered: %q", got)
	}
}

func BenchmarkNormalizeHost(b *testing.B) {
	for _, in := range []string{"nairobi.school.localhost", "nairobi.school.localhost:8000", "Nairobi.School.Localhost"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeHost(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
