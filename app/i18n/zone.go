package i18n

import (
	"fmt"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones on machines and containers without a zoneinfo database
)

// DefaultZone is the time zone of a school that chose none.
const DefaultZone = "UTC"

// LoadZone checks a school's time zone: an IANA name such as
// "Africa/Nairobi", or "UTC". "Local" (the server's own zone) and names
// the zone database does not know are refused.
func LoadZone(name string) (*time.Location, error) {
	name = strings.TrimSpace(name)
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q: give an IANA name such as Africa/Nairobi, or UTC", name)
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name) // reads and parses the zone's file each time
	if err != nil {
		return nil, fmt.Errorf("time zone %q is not in the IANA time zone database (for example Africa/Nairobi, Europe/Paris, UTC)", name)
	}
	zones.Store(name, loc) // the known zones: a few hundred at most
	return loc, nil
}

// zones are the zones loaded so far, by name.
var zones sync.Map

// Zone is the school's zone, UTC for an empty or unknown name.
func Zone(name string) *time.Location {
	if loc, err := LoadZone(name); err == nil {
		return loc
	}
	return time.UTC
}

// months are the keys of the abbreviated month names.
var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// When writes a time for people in the zone, with the zone's abbreviation
// or offset: "6 Dec 2026, 21:20 EAT", "6 déc. 2026 à 21:20 EAT". The zero
// time is "".
func (l *Lang) When(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	return l.T("%[1]s %[2]s %[3]s, %[4]s %[5]s", fmt.Sprint(t.Day()), l.T(months[t.Month()-1]),
		fmt.Sprint(t.Year()), t.Format("15:04"), t.Format("MST"))
}
