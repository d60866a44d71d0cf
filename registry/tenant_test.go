package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewTenant(t *testing.T) {
	tests := []struct {
		name        string
		tenant      string
		hosts       []string
		display     string
		want        Tenant
		wantErr     bool
		wantField   string // InvalidError.Field when wantErr
		wantMessage string // substring of the error when wantErr
	}{
		{
			name:   "defaults",
			tenant: "nairobi", hosts: []string{"nairobi.school.localhost"},
			want: Tenant{Name: "nairobi", DisplayName: "Nairobi", Hosts: []string{"nairobi.school.localhost"},
				PrimaryHost: "nairobi.school.localhost", Database: "nairobi", State: StateActive},
		},
		{
			name:   "hosts normalised, de-duplicated, first is primary",
			tenant: "accra", display: "  Accra Academy ",
			hosts: []string{"Accra.School.Localhost:8000", "accra.school.localhost.", " www.accra.example ", "ACCRA.school.localhost"},
			want: Tenant{Name: "accra", DisplayName: "Accra Academy",
				Hosts:       []string{"accra.school.localhost", "www.accra.example"},
				PrimaryHost: "accra.school.localhost", Database: "accra", State: StateActive},
		},
		{
			name:   "name trimmed",
			tenant: " default ", hosts: []string{"school.localhost"},
			want: Tenant{Name: "default", DisplayName: "Default", Hosts: []string{"school.localhost"},
				PrimaryHost: "school.localhost", Database: "default", State: StateActive},
		},
		{
			name:   "digits and hyphen in name",
			tenant: "st-mary-2", hosts: []string{"stmary.example"},
			want: Tenant{Name: "st-mary-2", DisplayName: "St-mary-2", Hosts: []string{"stmary.example"},
				PrimaryHost: "stmary.example", Database: "st-mary-2", State: StateActive},
		},
		{name: "reserved admin", tenant: "admin", hosts: []string{"a.example"}, wantErr: true, wantField: "name", wantMessage: "reserved"},
		{name: "reserved local", tenant: "local", hosts: []string{"a.example"}, wantErr: true, wantField: "name", wantMessage: "reserved"},
		{name: "reserved config", tenant: "config", hosts: []string{"a.example"}, wantErr: true, wantField: "name", wantMessage: "reserved"},
		{name: "empty name", tenant: "", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "upper case name", tenant: "Nairobi", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "leading hyphen", tenant: "-x", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "trailing hyphen", tenant: "x-", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "dot in name", tenant: "a.b", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "underscore", tenant: "a_b", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "unicode name", tenant: "shulé", hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "name of 64", tenant: strings.Repeat("a", 64), hosts: []string{"a.example"}, wantErr: true, wantField: "name"},
		{name: "no hosts", tenant: "x", hosts: nil, wantErr: true, wantField: "hosts"},
		{name: "bad host", tenant: "x", hosts: []string{"a..b"}, wantErr: true, wantField: "host"},
		{name: "empty host", tenant: "x", hosts: []string{"a.example", ""}, wantErr: true, wantField: "host"},
		{name: "ipv4 host", tenant: "x", hosts: []string{"127.0.0.1"}, wantErr: true, wantField: "hosts", wantMessage: "IP address"},
		{name: "ipv4 host with port", tenant: "x", hosts: []string{"a.example", "10.0.0.1:80"}, wantErr: true, wantField: "hosts", wantMessage: "IP address"},
		{name: "ipv6 host", tenant: "x", hosts: []string{"[::1]:8000"}, wantErr: true, wantField: "hosts", wantMessage: "IP address"},
		{name: "numeric top-level label", tenant: "x", hosts: []string{"999.1.1.1"}, wantErr: true, wantField: "hosts"},
		{name: "display name too long", tenant: "x", hosts: []string{"a.example"}, display: strings.Repeat("x", 201), wantErr: true, wantField: "display_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewTenant(tt.tenant, tt.hosts, tt.display)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewTenant = %+v, want an error", got)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want one wrapping ErrInvalid", err)
				}
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Field != tt.wantField {
					t.Fatalf("err = %#v, want an InvalidError on field %q", err, tt.wantField)
				}
				if !strings.Contains(err.Error(), tt.wantMessage) {
					t.Fatalf("err = %q, want it to mention %q", err, tt.wantMessage)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewTenant: %v", err)
			}
			if !sameTenant(got, tt.want) {
				t.Fatalf("NewTenant =\n %+v\nwant\n %+v", got, tt.want)
			}
			if !got.CreatedAt.IsZero() {
				t.Fatalf("CreatedAt = %v, want zero (the backend sets it)", got.CreatedAt)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := func() Tenant {
		return Tenant{ID: "0123456789abcdef0123456789abcdef", Name: "nairobi", DisplayName: "Nairobi", Hosts: []string{"nairobi.school.localhost", "n.example"},
			PrimaryHost: "n.example", Database: "nairobi", State: StateSuspended}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("valid tenant: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Tenant)
		field  string
	}{
		{"reserved name", func(t *Tenant) { t.Name = "admin" }, "name"},
		{"empty display name", func(t *Tenant) { t.DisplayName = "" }, "display_name"},
		{"no hosts", func(t *Tenant) { t.Hosts = nil }, "hosts"},
		{"host not normalised", func(t *Tenant) { t.Hosts[1] = "N.example" }, "hosts"},
		{"host with port", func(t *Tenant) { t.Hosts[1] = "n.example:80" }, "hosts"},
		{"host with trailing dot", func(t *Tenant) { t.Hosts[1] = "n.example." }, "hosts"},
		{"duplicate host", func(t *Tenant) { t.Hosts = append(t.Hosts, "n.example") }, "hosts"},
		{"ip host", func(t *Tenant) { t.Hosts = append(t.Hosts, "192.168.1.1") }, "hosts"},
		{"ipv6 host", func(t *Tenant) { t.Hosts = append(t.Hosts, "::1") }, "hosts"},
		{"primary not a host", func(t *Tenant) { t.PrimaryHost = "other.example" }, "primary_host"},
		{"empty primary", func(t *Tenant) { t.PrimaryHost = "" }, "primary_host"},
		{"reserved database", func(t *Tenant) { t.Database = "local" }, "database"},
		{"bad database", func(t *Tenant) { t.Database = "a/b" }, "database"},
		{"empty state", func(t *Tenant) { t.State = "" }, "state"},
		{"unknown state", func(t *Tenant) { t.State = "gone" }, "state"},
		{"no ID", func(t *Tenant) { t.ID = "" }, "id"},
		{"ID not hex", func(t *Tenant) { t.ID = "0123456789ABCDEF0123456789abcdef" }, "id"},
		{"ID too short", func(t *Tenant) { t.ID = "0123" }, "id"},
		{"deleted without timestamps", func(t *Tenant) { t.State = StateDeleted }, "state"},
		{"deleted, purge before delete", func(t *Tenant) {
			t.State, t.DeletedAt, t.PurgeAfter = StateDeleted, time.Now(), time.Now().Add(-time.Hour)
		}, "purge_after"},
		{"timestamps but not deleted", func(t *Tenant) { t.DeletedAt, t.PurgeAfter = time.Now(), time.Now() }, "state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := good()
			tt.change(&tn)
			err := tn.Validate()
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field != tt.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want an InvalidError on %q", err, tt.field)
			}
		})
	}
}

func TestHostTakenError(t *testing.T) {
	var err error = &HostTakenError{Host: "a.example", Owner: "accra"}
	wrapped := errors.Join(errors.New("create tenant"), err)
	if !errors.Is(wrapped, ErrHostTaken) {
		t.Fatal("errors.Is(HostTakenError, ErrHostTaken) = false")
	}
	if errors.Is(wrapped, ErrExists) || errors.Is(wrapped, ErrInvalid) {
		t.Fatal("HostTakenError matches an unrelated sentinel")
	}
	var ht *HostTakenError
	if !errors.As(wrapped, &ht) || ht.Owner != "accra" || ht.Host != "a.example" {
		t.Fatalf("errors.As = %+v", ht)
	}
	if !strings.Contains(err.Error(), "accra") || !strings.Contains(err.Error(), "a.example") {
		t.Fatalf("message %q should name host and owner", err)
	}
}

func TestStateValid(t *testing.T) {
	for s, want := range map[State]bool{StateActive: true, StateSuspended: true, StateCreating: true, StateDeleted: true, "": false, "Active": false, "gone": false} {
		if got := s.Valid(); got != want {
			t.Errorf("State(%q).Valid() = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[State]bool{StateActive: true, StateSuspended: true, StateCreating: false, StateDeleted: false, "": false} {
		if got := s.Routed(); got != want {
			t.Errorf("State(%q).Routed() = %v, want %v", s, got, want)
		}
	}
}

func TestNewIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if err := ValidateID(id); err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %s", id)
		}
		seen[id] = true
	}
	a, _ := NewTenant("lagos", []string{"lagos.example"}, "")
	b, _ := NewTenant("lagos", []string{"lagos.example"}, "")
	if a.ID == "" || a.ID == b.ID {
		t.Fatalf("NewTenant IDs %q and %q: want two different IDs for the same input", a.ID, b.ID)
	}
}

func TestStateChanges(t *testing.T) {
	now := time.Now()
	active, err := NewTenant("lagos", []string{"lagos.example"}, "")
	if err != nil {
		t.Fatal(err)
	}
	del, err := CheckMarkDeleted(active, now, now.Add(time.Hour))
	if err != nil || del.State != StateDeleted || !del.DeletedAt.Equal(now) || del.ID != active.ID || del.Validate() != nil {
		t.Fatalf("CheckMarkDeleted = %+v, %v", del, err)
	}
	if _, err := CheckMarkDeleted(del, now, now.Add(time.Hour)); !errors.Is(err, ErrWrongState) {
		t.Errorf("deleting a deleted tenant: %v, want ErrWrongState", err)
	}
	if past, err := CheckMarkDeleted(active, now, now.Add(-time.Hour)); err != nil || !past.PurgeAfter.Equal(now) {
		t.Errorf("purge_after in the past: %+v, %v; want purge_after = now", past, err)
	}
	if _, err := CheckSetState(del, StateActive); !errors.Is(err, ErrWrongState) {
		t.Errorf("resuming a deleted tenant: %v, want ErrWrongState", err)
	}
	if _, err := CheckSetState(active, StateDeleted); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetState(deleted): %v, want ErrInvalid", err)
	}
	back, err := CheckRestore(del)
	if err != nil || !back.Equal(active) {
		t.Fatalf("CheckRestore = %+v, %v; want %+v", back, err, active)
	}
	if _, err := CheckRestore(active); !errors.Is(err, ErrWrongState) {
		t.Errorf("restoring an active tenant: %v, want ErrWrongState", err)
	}
	creating := active
	creating.State = StateCreating
	if _, err := CheckMarkDeleted(creating, now, now.Add(time.Hour)); !errors.Is(err, ErrWrongState) {
		t.Errorf("deleting a tenant being created: %v, want ErrWrongState", err)
	}
	if got, err := CheckSetState(creating, StateActive); err != nil || got.State != StateActive {
		t.Errorf("activating a created tenant: %+v, %v", got, err)
	}
	moved := active
	moved.ID = NewID()
	if err := CheckUpdate(active, moved); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckUpdate with another ID: %v, want ErrInvalid", err)
	}
}

func sameTenant(a, b Tenant) bool {
	return ValidateID(a.ID) == nil && a.Name == b.Name && a.DisplayName == b.DisplayName && slices.Equal(a.Hosts, b.Hosts) &&
		a.PrimaryHost == b.PrimaryHost && a.Database == b.Database && a.State == b.State && a.CreatedAt.Equal(b.CreatedAt)
}
