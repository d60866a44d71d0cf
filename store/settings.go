package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// settingsDocID is the meta document holding the tenant's own settings.
// They live in the tenant's database, not in the registry: the app that
// serves the tenant reads them with the one database handle it has (no
// registry write rights, no other tenant's data in reach), and they move
// with the tenant's data in a backup or restore.
const settingsDocID = "settings"

// Settings are what a school's admins choose for their site.
type Settings struct {
	// PublicListStaffOnly hides the student list from anonymous visitors:
	// only logged-in staff see it.
	PublicListStaffOnly bool `bson:"public_list_staff_only"`

	// Language and time (SetLocale). Language is a code such as "en" or
	// "fr" ("" is the app's default); AcceptLanguage lets a visitor's
	// browser choose among the supported languages; TimeZone is an IANA
	// name ("" is UTC). Times are stored in UTC whatever the zone.
	Language       string `bson:"language,omitempty"`
	AcceptLanguage bool   `bson:"accept_language,omitempty"`
	TimeZone       string `bson:"time_zone,omitempty"`
	// PublicFields are the record's fields the public register shows
	// besides the registration number and names (PublicFieldChoices);
	// none by default.
	PublicFields []string `bson:"public_fields,omitempty"`
}

// PublicFieldChoices are the fields a school may publish besides the
// registration number and names, in the order pages show them. The
// guardian's contacts and the notes are never published.
var PublicFieldChoices = []string{"class", "status", "enrolled_on", "date_of_birth", "gender"}

// SetPublicFields sets the fields the public register shows besides the
// registration number and names; a field not in PublicFieldChoices is
// refused and nothing saved.
func (s *Store) SetPublicFields(ctx context.Context, fields []string) error {
	out := []string{}
	for _, c := range PublicFieldChoices { // in page order, each once
		if slices.Contains(fields, c) {
			out = append(out, c)
		}
	}
	for _, f := range fields {
		if !slices.Contains(PublicFieldChoices, f) {
			return fmt.Errorf("save settings: %q is not a field the public register may show", f)
		}
	}
	err := retryUpsert(func() error {
		_, err := s.col(colMeta).UpdateOne(ctx, d("_id", settingsDocID),
			d("$set", bson.D{{Key: "public_fields", Value: out}}), options.UpdateOne().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("save settings: %w", s.full(err))
	}
	return nil
}

// Settings returns the tenant's settings; a database without any gives
// the defaults (the list is public).
func (s *Store) Settings(ctx context.Context) (Settings, error) {
	var st Settings
	err := s.col(colMeta).FindOne(ctx, d("_id", settingsDocID)).Decode(&st)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read settings: %w", err)
	}
	return st, nil
}

// SetPublicListStaffOnly sets who may see the student list.
func (s *Store) SetPublicListStaffOnly(ctx context.Context, staffOnly bool) error {
	err := retryUpsert(func() error {
		_, err := s.col(colMeta).UpdateOne(ctx, d("_id", settingsDocID),
			d("$set", bson.D{{Key: "public_list_staff_only", Value: staffOnly}}),
			options.UpdateOne().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("save settings: %w", s.full(err))
	}
	return nil
}

// SetLocale saves the language and time settings. The caller (the app)
// checks the language against those it speaks and the zone against the
// zone database.
func (s *Store) SetLocale(ctx context.Context, language string, acceptLanguage bool, timeZone string) error {
	err := retryUpsert(func() error {
		_, err := s.col(colMeta).UpdateOne(ctx, d("_id", settingsDocID),
			d("$set", bson.D{{Key: "language", Value: language}, {Key: "accept_language", Value: acceptLanguage},
				{Key: "time_zone", Value: timeZone}}),
			options.UpdateOne().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("save language and time settings: %w", s.full(err))
	}
	return nil
}

// retryUpsert retries f on a duplicate key error: two upserts of one new
// document at once can both try to insert it, and one loses.
func retryUpsert(f func() error) error {
	var err error
	for range 3 {
		if err = f(); !mongo.IsDuplicateKeyError(err) {
			return err
		}
	}
	return err
}
