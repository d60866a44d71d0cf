package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Roles and permissions, as Django's auth: a user holds the union of the
// permissions of their groups; a superuser holds every permission.
// Managing users, groups and site settings is not a permission any group
// can give: it is the superuser's alone.
//
// Two groups are built in, defined here and never stored, so that nobody
// can change or delete them: "staff" (every student permission; the role
// every non-superuser had before groups) and "viewer" (view and export).
// Other groups live in the tenant's collection groups, so one school's
// groups never reach another. A user's groups are IDs in the user's
// document (field groups); Session reads the user and their groups on
// every request, so a change applies to sessions already open.
//
// The users from before groups (no groups field) are mapped by the
// migration step migrateUserGroups: non-superusers into "staff",
// superusers into none; until a database is migrated a non-superuser
// without the field counts as "staff", so nobody loses access.

// Permission is one right on students.
type Permission string

// The permissions on students (Django's codenames), and the superuser's
// own right to manage users, groups and settings.
const (
	PermView   Permission = "view_student"
	PermAdd    Permission = "add_student"
	PermChange Permission = "change_student"
	PermDelete Permission = "delete_student"
	PermImport Permission = "import_student"
	PermExport Permission = "export_student"
	// PermSuperuser is held by superusers only: users, groups, settings.
	PermSuperuser Permission = "superuser"
)

// StudentPermissions are the permissions a group can give, in form order.
var StudentPermissions = []Permission{PermView, PermAdd, PermChange, PermDelete, PermImport, PermExport}

// Label is the permission for people.
func (p Permission) Label() string {
	switch p {
	case PermView:
		return "Can view students"
	case PermAdd:
		return "Can add students"
	case PermChange:
		return "Can change students"
	case PermDelete:
		return "Can delete students"
	case PermImport:
		return "Can import students"
	case PermExport:
		return "Can export students"
	case PermSuperuser:
		return "Superuser (users, groups, settings)"
	}
	return string(p)
}

// Perms is a set of permissions.
type Perms uint16

func permBit(p Permission) Perms {
	if p == PermSuperuser {
		return 1 << len(StudentPermissions)
	}
	if i := slices.Index(StudentPermissions, p); i >= 0 {
		return 1 << i
	}
	return 0
}

// AllPerms is a superuser's set.
var AllPerms = PermsOf(append(slices.Clone(StudentPermissions), PermSuperuser)...)

// PermsOf is the set of ps (unknown names are ignored).
func PermsOf(ps ...Permission) Perms {
	var set Perms
	for _, p := range ps {
		set |= permBit(p)
	}
	return set
}

// Has reports whether p is in the set. The empty permission is always
// held (pages every logged-in user may see).
func (set Perms) Has(p Permission) bool {
	if p == "" {
		return true
	}
	b := permBit(p)
	return b != 0 && set&b == b
}

// List is the set's student permissions in form order.
func (set Perms) List() []Permission {
	var out []Permission
	for _, p := range StudentPermissions {
		if set.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// Group is a named set of student permissions.
type Group struct {
	ID          string       `bson:"_id"`
	Name        string       `bson:"name"`
	Permissions []Permission `bson:"permissions"`
	BuiltIn     bool         `bson:"-"`
}

// Perms is the group's set.
func (g Group) Perms() Perms { return PermsOf(g.Permissions...) }

// The built-in groups' IDs (stored groups have ObjectID hex IDs).
const (
	GroupStaff  = "staff"
	GroupViewer = "viewer"
)

// builtInGroups are defined in code, never stored.
var builtInGroups = []Group{
	{ID: GroupStaff, Name: "Staff", Permissions: StudentPermissions, BuiltIn: true},
	{ID: GroupViewer, Name: "Viewer", Permissions: []Permission{PermView, PermExport}, BuiltIn: true},
}

func builtInGroup(id string) (Group, bool) {
	for _, g := range builtInGroups {
		if g.ID == id {
			g.Permissions = slices.Clone(g.Permissions)
			return g, true
		}
	}
	return Group{}, false
}

// groupDoc is a Group as stored: name_lower carries the unique index.
type groupDoc struct {
	Group     `bson:",inline"`
	NameLower string `bson:"name_lower"`
}

// Errors of groups.
var (
	ErrGroupExists  = errors.New("a group with this name already exists")
	ErrBuiltInGroup = errors.New("built-in groups cannot be changed or deleted")
)

// MaxGroupNameLen is the longest group name, in characters.
const MaxGroupNameLen = 150

func groupsIndexes() []index {
	return []index{{collection: colGroups, model: mongo.IndexModel{
		Keys:    d("name_lower", 1),
		Options: options.Index().SetName("name_lower_unique").SetUnique(true),
	}}}
}

// normalizeGroup trims and checks a group's name and permissions.
func normalizeGroup(name string, perms []Permission) (string, []Permission, FieldErrors) {
	name = strings.TrimSpace(name)
	fe := FieldErrors{}
	switch {
	case name == "":
		fe["name"] = "is required"
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxGroupNameLen:
		fe["name"] = "must be at most 150 characters of text"
	default:
		if msg := checkName(name); msg != "" {
			fe["name"] = msg
		}
		for _, g := range builtInGroups {
			if strings.EqualFold(g.Name, name) {
				fe["name"] = "is the name of a built-in group"
			}
		}
	}
	var out []Permission
	for _, p := range StudentPermissions { // form order, no duplicates
		if slices.Contains(perms, p) {
			out = append(out, p)
		}
	}
	for _, p := range perms {
		if !slices.Contains(StudentPermissions, p) {
			fe["permissions"] = fmt.Sprintf(msgUnknownPermission, p)
		}
	}
	if len(fe) > 0 {
		return name, out, fe
	}
	if out == nil {
		out = []Permission{}
	}
	return name, out, nil
}

// Groups lists the built-in groups, then the school's own by name.
func (s *Store) Groups(ctx context.Context) ([]Group, error) {
	out := make([]Group, 0, len(builtInGroups)+4)
	for _, g := range builtInGroups {
		g, _ := builtInGroup(g.ID)
		out = append(out, g)
	}
	cur, err := s.col(colGroups).Find(ctx, bson.D{}, options.Find().SetSort(d("name_lower", 1)))
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	var stored []Group
	if err := cur.All(ctx, &stored); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return append(out, stored...), nil
}

// GroupByID returns a group (ErrNotFound for an id that names none here).
func (s *Store) GroupByID(ctx context.Context, id string) (Group, error) {
	if g, ok := builtInGroup(id); ok {
		return g, nil
	}
	var g Group
	err := s.col(colGroups).FindOne(ctx, d("_id", id)).Decode(&g)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Group{}, fmt.Errorf("group %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Group{}, fmt.Errorf("read group %q: %w", id, err)
	}
	return g, nil
}

// CreateGroup stores a new group (FieldErrors for a bad name or an unknown
// permission, ErrGroupExists for a name taken regardless of case).
func (s *Store) CreateGroup(ctx context.Context, name string, perms []Permission) (Group, error) {
	name, perms, fe := normalizeGroup(name, perms)
	if fe != nil {
		return Group{}, fe
	}
	g := Group{ID: bson.NewObjectID().Hex(), Name: name, Permissions: perms}
	if _, err := s.col(colGroups).InsertOne(ctx, groupDoc{Group: g, NameLower: strings.ToLower(name)}); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return Group{}, fmt.Errorf("create group %q: %w", name, ErrGroupExists)
		}
		return Group{}, fmt.Errorf("create group %q: %w", name, err)
	}
	return g, nil
}

// UpdateGroup renames a stored group and sets its permissions; built-in
// groups are refused (ErrBuiltInGroup).
func (s *Store) UpdateGroup(ctx context.Context, id, name string, perms []Permission) (Group, error) {
	if _, ok := builtInGroup(id); ok {
		return Group{}, fmt.Errorf("update group %q: %w", id, ErrBuiltInGroup)
	}
	name, perms, fe := normalizeGroup(name, perms)
	if fe != nil {
		return Group{}, fe
	}
	set := bson.D{{Key: "name", Value: name}, {Key: "name_lower", Value: strings.ToLower(name)}, {Key: "permissions", Value: perms}}
	res, err := s.col(colGroups).UpdateOne(ctx, d("_id", id), d("$set", set))
	switch {
	case mongo.IsDuplicateKeyError(err):
		return Group{}, fmt.Errorf("rename group to %q: %w", name, ErrGroupExists)
	case err != nil:
		return Group{}, fmt.Errorf("update group %q: %w", name, err)
	case res.MatchedCount == 0:
		return Group{}, fmt.Errorf("update group %q: %w", id, ErrNotFound)
	}
	return Group{ID: id, Name: name, Permissions: perms}, nil
}

// DeleteGroup removes a stored group and takes it off every user;
// built-in groups are refused (ErrBuiltInGroup).
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	if _, ok := builtInGroup(id); ok {
		return fmt.Errorf("delete group %q: %w", id, ErrBuiltInGroup)
	}
	// Users first: a user never names a group that is gone and could be
	// made again under the same ID (it cannot: ObjectIDs), and a failure
	// here leaves the group in place to try again.
	if _, err := s.col(colUsers).UpdateMany(ctx, d("groups", id), d("$pull", d("groups", id))); err != nil {
		return fmt.Errorf("delete group %q: take it off its users: %w", id, err)
	}
	res, err := s.col(colGroups).DeleteOne(ctx, d("_id", id))
	if err != nil {
		return fmt.Errorf("delete group %q: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete group %q: %w", id, ErrNotFound)
	}
	return nil
}

// GroupMembers counts the users of each group ID.
func (s *Store) GroupMembers(ctx context.Context) (map[string]int, error) {
	users, err := s.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("count group members: %w", err)
	}
	out := map[string]int{}
	for _, u := range users {
		for _, g := range u.GroupIDs() {
			out[g]++
		}
	}
	return out, nil
}

// checkGroupIDs keeps the IDs of existing groups in the order of Groups
// and reports the first unknown one.
func (s *Store) checkGroupIDs(ctx context.Context, ids []string) ([]string, error) {
	all, err := s.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, g := range all {
		if slices.Contains(ids, g.ID) {
			out = append(out, g.ID)
		}
	}
	for _, id := range ids {
		if !slices.Contains(out, id) {
			return nil, FieldErrors{"groups": fmt.Sprintf(msgNoSuchGroup, id)}
		}
	}
	return out, nil
}

// SetUserGroups replaces a user's groups (FieldErrors{"groups"} for an
// ID that names no group here, ErrNotFound for an unknown user).
func (s *Store) SetUserGroups(ctx context.Context, userID string, groupIDs []string) (User, error) {
	u, err := s.UserByID(ctx, userID)
	if err != nil {
		return User{}, fmt.Errorf("set groups: %w", err)
	}
	ids, err := s.checkGroupIDs(ctx, groupIDs)
	if err != nil {
		return User{}, err
	}
	if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$set", d("groups", ids))); err != nil {
		return User{}, fmt.Errorf("set groups of %q: %w", u.Username, err)
	}
	u.Groups = ids
	return u, nil
}

// GroupIDs are the user's groups; a non-superuser from before groups (no
// groups field: nil, where a stored empty list decodes as empty) is staff.
func (u User) GroupIDs() []string {
	if u.Groups == nil && !u.IsSuperuser {
		return []string{GroupStaff}
	}
	return u.Groups
}

// PermsOf is what u may do: everything for a superuser, else the union
// of u's groups' permissions (groups that no longer exist give nothing).
func (s *Store) PermsOf(ctx context.Context, u User) (Perms, error) {
	if u.IsSuperuser {
		return AllPerms, nil
	}
	var set Perms
	var stored []string
	for _, id := range u.GroupIDs() {
		if g, ok := builtInGroup(id); ok {
			set |= g.Perms()
		} else {
			stored = append(stored, id)
		}
	}
	if len(stored) == 0 {
		return set, nil
	}
	cur, err := s.col(colGroups).Find(ctx, d("_id", d("$in", stored)))
	if err != nil {
		return 0, fmt.Errorf("read groups of %q: %w", u.Username, err)
	}
	var gs []Group
	if err := cur.All(ctx, &gs); err != nil {
		return 0, fmt.Errorf("read groups of %q: %w", u.Username, err)
	}
	for _, g := range gs {
		set |= g.Perms()
	}
	return set, nil
}

// migrateUserGroups gives every user from before groups an explicit
// list: non-superusers "staff" (what they could do), superusers none.
// Idempotent and resumable: it touches only users without the field.
func (s *Store) migrateUserGroups(ctx context.Context) error {
	missing := d("groups", nil) // no field, or null
	staff := append(bson.D{{Key: "is_superuser", Value: false}}, missing...)
	if _, err := s.col(colUsers).UpdateMany(ctx, staff, d("$set", d("groups", []string{GroupStaff}))); err != nil {
		return fmt.Errorf("put staff into the staff group: %w", err)
	}
	if _, err := s.col(colUsers).UpdateMany(ctx, missing, d("$set", d("groups", []string{}))); err != nil {
		return fmt.Errorf("give superusers an empty group list: %w", err)
	}
	return nil
}
