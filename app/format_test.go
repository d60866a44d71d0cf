package app

import (
	"testing"
	"time"

	"github.com/campus-saas/campus/app/i18n"
)

func TestFormatCountAndTime(t *testing.T) {
	en, fr := localeFuncs(defaultLocale()), localeFuncs(&locale{lang: i18n.Get("fr"), zone: time.UTC})
	num := en["num"].(func(any) string)
	for in, want := range map[any]string{0: "0", 7: "7", 999: "999", 1000: "1,000", int64(123456): "123,456",
		int64(1234567): "1,234,567", -1234: "-1,234"} {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
	if got := fr["num"].(func(any) string)(5000); got != "5\u00a0000" {
		t.Errorf("French num(5000) = %q", got)
	}
	nairobi := i18n.Zone("Africa/Nairobi")
	at := time.Date(2026, 12, 6, 18, 20, 0, 0, time.UTC)
	cases := []struct {
		lang string
		loc  *time.Location
		want string
	}{
		{"en", time.UTC, "6 Dec 2026, 18:20 UTC"},
		{"en", nairobi, "6 Dec 2026, 21:20 EAT"},
		{"fr", nairobi, "6 déc. 2026 à 21:20 EAT"},
		{"fr", time.UTC, "6 déc. 2026 à 18:20 UTC"},
	}
	for _, c := range cases {
		if got := i18n.Get(c.lang).When(at, c.loc); got != c.want {
			t.Errorf("%s in %s: %q, want %q", c.lang, c.loc, got, c.want)
		}
	}
	if got := i18n.Get("en").When(time.Time{}, nairobi); got != "" {
		t.Errorf("zero time: %q", got)
	}
}
