package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

const manageHelp = `Usage: campus manage TENANT COMMAND [flags] [args]

Per-tenant management, like Django's manage.py: every command touches exactly
the named tenant's database, found through the registry, and refuses a
database stamped for another tenant ID. On a deleted tenant (data kept) only
'migrate' and 'students export' work; none works on a tenant being created.

Commands:
  migrate                       create collections and indexes; record the schema version;
                                stamp the database with the tenant's ID (refused if it is
                                stamped for another tenant)
  createsuperuser               create an admin user (interactive; or --username U with the
                                password on standard input (--password-stdin) or in
                                $CAMPUS_SUPERUSER_PASSWORD (--noinput))
  changepassword USERNAME       set a user's password (asks twice)
  unlock USERNAME               lift every login lock-out that stops a user (from every
                                address, address locks included), say what was lifted
  resetlink USERNAME            print a one-time password reset link for the user (--expires 24h)
  history                       write the history of students (who did what, when) to standard
                                output (--format csv|json)
  students import FILE         import students from a .csv or .xlsx file (header: registration_no,
                                first_name,second_name; other columns ignored; --sheet NAME);
                                any bad row is reported with its line number and nothing is imported;
                                --update changes students already there, --dry-run writes nothing
  students export               write students as CSV or .xlsx to standard output or -o FILE
                                (--format csv|xlsx, else by FILE's extension; --no-bom, --search Q)

Run 'campus manage TENANT COMMAND --help' for a command's flags.
`

// manageCtx is what every manage command has: the tenant and its store.
type manageCtx struct {
	e      *env
	tenant registry.Tenant
	store  *store.Store
	public publicURL // where the tenant's site is reached
}

type manageCommand struct {
	args string
	desc string
	run  func(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error
	// flags registers command-specific flags.
	flags func(fs *flag.FlagSet)
}

func runManage(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, manageHelp)
		if len(args) == 0 {
			return usageErr("TENANT and COMMAND are required")
		}
		return errHelp
	}
	if len(args) < 2 {
		fmt.Fprint(e.stderr, manageHelp)
		return usageErr("a COMMAND is required after the tenant name")
	}
	name, cmdName, rest := args[0], args[1], args[2:]
	if isHelpArg(cmdName) || cmdName == "students" && len(rest) > 0 && isHelpArg(rest[0]) {
		fmt.Fprint(e.stdout, manageHelp)
		return errHelp
	}
	if cmdName == "students" {
		if len(rest) == 0 {
			return usageErr("students: want `import FILE.csv` or `export`")
		}
		cmdName, rest = "students "+rest[0], rest[1:]
	}
	cmds := manageCommands()
	staffManageCommands(cmds) // resetlink, history (cmd_manage_staff.go)
	mc, ok := cmds[cmdName]
	if !ok {
		fmt.Fprint(e.stderr, manageHelp)
		return usageErr("unknown manage command %q%s", cmdName, didYouMean(cmdName, slices.Collect(maps.Keys(cmds))))
	}
	fs := newFlags("manage TENANT "+cmdName, mc.args, mc.desc)
	var lo logOptions
	var ro registryOptions
	var mo mongoOptions
	var pu publicURLOptions
	lo.register(fs)
	ro.register(fs)
	mo.register(fs)
	pu.register(fs)
	ro.mustExist = true // manage only works on tenants that are there
	if mc.flags != nil {
		mc.flags(fs)
	}
	if err := parseFlags(fs, rest, e); err != nil {
		return err
	}
	if err := registry.ValidateName(name); err != nil {
		return tenantNameError(name, err, func(s string) string {
			return fmt.Sprintf("%s manage %s %s", cliName, s, strings.Join(args[1:], " "))
		})
	}
	public, err := pu.resolve(ro.data)
	if err != nil {
		return err
	}
	reg, _, err := ro.openLogged(ctx, e, &lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	t, err := reg.Tenant(ctx, name)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("unknown tenant %q %s (see `campus tenant list`)", name, ro.where(e))
		}
		return fmt.Errorf("look up tenant %q %s: %w", name, ro.where(e), err)
	}
	// A deleted tenant's students can be exported and its database
	// migrated; migrate stamps an unstamped database (and refuses another
	// tenant's); every other command needs the stamp to be this tenant's.
	lm := &tenancy.Manager{Registry: reg, Database: mo.address(ro.data)}
	st, err := lm.Open(ctx, t, cmdName == "students export" || cmdName == "migrate", cmdName == "migrate")
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	err = mc.run(ctx, &manageCtx{e: e, tenant: t, store: st, public: public}, fs)
	if store.IsStorageFull(err) {
		// Worded in words.go with the folder whose disk is full.
		full := &diskFullError{Err: err}
		uri, _, _ := mo.address(ro.data).Resolve()
		if dev, ok := tenancy.ReadDevState(ro.data); ok && dev.MongoURI != "" && strings.TrimSuffix(dev.MongoURI, "/") == strings.TrimSuffix(uri, "/") {
			full.DataDir, _ = filepath.Abs(ro.data) // campus dev's embedded database
		}
		return full
	}
	return err
}

func manageCommands() map[string]manageCommand {
	var (
		username, email string
		noinput         bool
		passwordStdin   bool
		update, dryRun  bool
		sheet, output   string
		export          store.ExportOptions
	)
	return map[string]manageCommand{
		"migrate": {
			desc: "Create collections and indexes in the tenant's database and record the schema version. Safe to run again.",
			run:  manageMigrate,
		},
		"createsuperuser": {
			desc: "Create an admin user of this tenant: asks for the username, email and password (twice). Without a terminal, " +
				"give --username and the password on standard input with --password-stdin, or in $CAMPUS_SUPERUSER_PASSWORD with --noinput " +
				"(a password is never a flag: ps would show it).",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&username, "username", "", "username")
				fs.StringVar(&email, "email", "", "email address (optional)")
				fs.BoolVar(&noinput, "noinput", false, "do not prompt; needs --username and $CAMPUS_SUPERUSER_PASSWORD")
				fs.BoolVar(&passwordStdin, "password-stdin", false, "do not prompt; read the password from the first line of standard input (needs --username)")
			},
			run: func(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
				return manageCreateSuperuser(ctx, m, fs, username, email, noinput, passwordStdin)
			},
		},
		"changepassword": {
			args: "USERNAME",
			desc: "Set a user's password. Asks for it twice.",
			run:  manageChangePassword,
		},
		"unlock": {
			args: "USERNAME",
			desc: "Lift every login lock-out that stops a user, from all addresses (address locks included), and forget the user's " +
				"failed logins; prints what it lifted. An address's own count stays, for the other usernames that failed from it.",
			run: manageUnlock,
		},
		"students import": {
			args: "FILE",
			desc: "Import students from a CSV file or an Excel workbook (.xlsx: its first sheet, or --sheet; - for standard input) " +
				"with the header registration_no,first_name,second_name (or Reg No, First Name, Surname…; in a CSV separated by " +
				"commas, semicolons or tabs, UTF-8 or Windows-1252). Other columns are ignored (and named). " +
				"Every bad row is reported with its line number (a sheet's row), and then nothing is imported.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&sheet, "sheet", "", "the sheet of an .xlsx workbook to read (default: the first)")
				fs.BoolVar(&update, "update", false, "update students whose registration number is in the file (otherwise such rows are errors)")
				fs.BoolVar(&dryRun, "dry-run", false, "check the file against the database and print what would change; write nothing")
			},
			run: func(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
				return manageImport(ctx, m, fs, update, dryRun, sheet)
			},
		},
		"students export": {
			desc: "Write students, sorted by registration number, to standard output or a file: as CSV with a UTF-8 byte order mark " +
				"(for Excel) and formula-like cells guarded with a leading quote, or as an Excel workbook (.xlsx) whose cells " +
				"are all text (never a formula).",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&output, "o", "", "write to this file instead of standard output (FILE.xlsx: a workbook, unless --format says otherwise)")
				fs.StringVar(&export.Format, "format", "", "csv or xlsx (default: by -o's extension, else csv)")
				fs.BoolVar(&export.NoBOM, "no-bom", false, "leave out the UTF-8 byte order mark")
				fs.StringVar(&export.Query, "search", "", "only students matching this search (as the admin list's search box)")
			},
			run: func(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
				return manageExport(ctx, m, fs, export, output)
			},
		},
	}
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments: %s", joinArgs(fs.Args()))
	}
	return nil
}

func manageMigrate(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
	if err := noArgs(fs); err != nil {
		return err
	}
	from, to, err := m.store.MigrateTenant(ctx, m.tenant.ID)
	if errors.Is(err, store.ErrRegNoConflicts) {
		fmt.Fprintf(m.e.stdout, "Tenant %s: migrated database %q from schema version %d to %d, but registration numbers are not yet unique regardless of case.\n",
			m.tenant.Name, m.tenant.Database, from, to)
		return fmt.Errorf("tenant %s: %w", m.tenant.Name, err)
	}
	if err != nil {
		return tenancy.DatabaseError(m.tenant, fmt.Errorf("migrate database %q: %w", m.tenant.Database, err))
	}
	if from == to {
		fmt.Fprintf(m.e.stdout, "Tenant %s: database %q already at schema version %d; nothing to do.\n", m.tenant.Name, m.tenant.Database, to)
	} else {
		fmt.Fprintf(m.e.stdout, "Tenant %s: migrated database %q from schema version %d to %d.\n", m.tenant.Name, m.tenant.Database, from, to)
	}
	return nil
}

// superuserPasswordEnv is read by createsuperuser --noinput, as Django reads
// DJANGO_SUPERUSER_PASSWORD.
const superuserPasswordEnv = "CAMPUS_SUPERUSER_PASSWORD"

// readPasswordLine reads a password from the first line of r
// (--password-stdin): never from the command line, where ps shows it.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageErr("--password-stdin: standard input is empty; pipe the password into it (printf '%%s\\n' \"$PASSWORD\" | …)")
	}
	return pw, nil
}

func manageCreateSuperuser(ctx context.Context, m *manageCtx, fs *flag.FlagSet, username, email string, noinput, passwordStdin bool) error {
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := m.store.CheckSchema(ctx); err != nil {
		return fmt.Errorf("tenant %q: %w", m.tenant.Name, err)
	}
	var password string
	if noinput {
		if username == "" {
			return usageErr("--noinput needs --username")
		}
		password = m.e.getenv(superuserPasswordEnv)
		if password == "" {
			return usageErr("--noinput needs the password in $%s", superuserPasswordEnv)
		}
	} else if passwordStdin {
		if username == "" {
			return usageErr("--password-stdin needs --username (nothing is asked)")
		}
		var err error
		if password, err = readPasswordLine(m.e.stdin); err != nil {
			return err
		}
	} else {
		var err error
		if username, email, password, err = askSuperuser(ctx, m, username, email); err != nil {
			var none *noAnswerError
			if errors.As(err, &none) && !none.terminal {
				return fmt.Errorf("%w.\nWithout a terminal, give the answers as flags and the password on standard input or in $%s:\n"+
					"  printf '%%s\\n' \"$PASSWORD\" | %s manage %s createsuperuser --username USER --password-stdin\n"+
					"  %s=… %s manage %s createsuperuser --username USER --noinput",
					err, superuserPasswordEnv, cliName, m.tenant.Name, superuserPasswordEnv, cliName, m.tenant.Name)
			}
			return err
		}
	}
	u, err := m.store.CreateSuperuser(ctx, username, email, password)
	if err != nil {
		return describeUserError(err)
	}
	fmt.Fprintf(m.e.stdout, "Superuser %q created for tenant %s. Log in at %s\n", u.Username, m.tenant.Name, m.public.TenantURL(m.tenant.PrimaryHost, "/admin/"))
	return nil
}

func manageChangePassword(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
	if fs.NArg() != 1 {
		return usageErr("changepassword takes exactly one USERNAME")
	}
	username := fs.Arg(0)
	password, err := newPrompter(m.e).newPassword()
	if err != nil {
		return err
	}
	if err := m.store.SetPassword(ctx, username, password); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tenant %s has no user %q", m.tenant.Name, username)
		}
		return describeUserError(err)
	}
	fmt.Fprintf(m.e.stdout, "Password changed for %q at tenant %s.\n", username, m.tenant.Name)
	return nil
}

func manageUnlock(ctx context.Context, m *manageCtx, fs *flag.FlagSet) error {
	if fs.NArg() != 1 {
		return usageErr("unlock takes exactly one USERNAME")
	}
	username := fs.Arg(0)
	l, err := m.store.Unlock(ctx, username)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tenant %s has no user %q", m.tenant.Name, username)
		}
		return fmt.Errorf("unlock %q at tenant %s: %w", username, m.tenant.Name, err)
	}
	if len(l.Addresses) == 0 && l.UserFailures == 0 {
		fmt.Fprintf(m.e.stdout, "Unlocked %q at tenant %s: nothing to lift (no failed logins, no lock-out).\n", username, m.tenant.Name)
		return nil
	}
	fmt.Fprintf(m.e.stdout, "Unlocked %q at tenant %s:\n", username, m.tenant.Name)
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	for _, a := range l.Addresses {
		fmt.Fprintf(m.e.stdout, "  from %s: %d failed logins forgotten", a.Address, a.Failures)
		if !a.PairUntil.IsZero() {
			fmt.Fprintf(m.e.stdout, "; lifted: %s's lock-out from that address (until %s)", l.Username, stamp(a.PairUntil))
		}
		if !a.AddressUntil.IsZero() {
			fmt.Fprintf(m.e.stdout, "; lifted for %s: the lock of that address (until %s), which stays for the other usernames that failed from it",
				l.Username, stamp(a.AddressUntil))
		}
		fmt.Fprintln(m.e.stdout)
	}
	if l.UserFailures > 0 {
		fmt.Fprintf(m.e.stdout, "  from every address: %d failed logins forgotten", l.UserFailures)
		if !l.UserUntil.IsZero() {
			fmt.Fprintf(m.e.stdout, "; lifted: %s's lock-out from every address (until %s)", l.Username, stamp(l.UserUntil))
		}
		fmt.Fprintln(m.e.stdout)
	}
	return nil
}

// describeUserError turns field errors into one readable message.
func describeUserError(err error) error {
	var fe store.FieldErrors
	if errors.As(err, &fe) {
		var b strings.Builder
		for _, f := range []string{"username", "email", "password"} {
			if msg, ok := fe[f]; ok {
				for _, line := range strings.Split(msg, "\n") { // passwords: every problem
					fmt.Fprintf(&b, "\n  %s: %s", f, line)
				}
			}
		}
		return fmt.Errorf("not saved:%s", b.String())
	}
	if errors.Is(err, store.ErrUserExists) {
		return fmt.Errorf("not saved: %w", err)
	}
	return err
}

func manageImport(ctx context.Context, m *manageCtx, fs *flag.FlagSet, update, dryRun bool, sheet string) error {
	if fs.NArg() != 1 {
		return usageErr("students import takes exactly one FILE.csv or FILE.xlsx (or - for standard input)")
	}
	var r io.Reader = m.e.stdin
	path := fs.Arg(0)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open the file: %w", err)
		}
		defer f.Close()
		r = f
	}
	parsed, err := store.ParseStudents(r, store.ParseOptions{Name: path, Sheet: sheet})
	if err != nil {
		if path == "-" {
			path = "standard input"
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	if parsed.Encoding == store.EncodingWindows1252 {
		fmt.Fprintf(m.e.stderr, "note: the file is not UTF-8; it was read as Windows-1252. %s\n", store.MsgSaveAsUTF8)
	}
	if sheet != "" && parsed.Format != store.FormatXLSX {
		fmt.Fprintf(m.e.stderr, "note: --sheet %s was not used: the file is CSV, not an .xlsx workbook\n", sheet)
	}
	if len(parsed.Ignored) > 0 {
		fmt.Fprintf(m.e.stderr, "note: ignored %s (not a student field): %s\n",
			plural(len(parsed.Ignored), "column", "columns"), strings.Join(parsed.Ignored, ", "))
	}
	for _, n := range parsed.Notes {
		fmt.Fprintf(m.e.stderr, "note: %s\n", n)
	}
	lineWord := "line"
	if parsed.Format == store.FormatXLSX {
		lineWord = fmt.Sprintf("sheet %q row", parsed.Sheet)
	}
	mode := store.ImportAdd
	if update {
		mode = store.ImportUpdate
	}
	plan, err := m.store.PlanImport(ctx, parsed.Rows, parsed.Lines, parsed.Errors, mode)
	if err != nil {
		return fmt.Errorf("import into tenant %q: %w", m.tenant.Name, err)
	}
	if path != "-" {
		plan.File = filepath.Base(path) // for the history
	}
	if len(plan.Errors) > 0 {
		exists := 0
		for _, re := range plan.Errors {
			hint := ""
			if re.Exists {
				exists++
				hint = " (--update changes it)"
			}
			fmt.Fprintf(m.e.stderr, "%s %d: %s%s\n", lineWord, re.Line, re.Msg, hint)
		}
		next := "fix them and run the import again"
		if exists == len(plan.Errors) {
			next = "to change the students already there, run the import again with --update (--dry-run first shows what would change)"
		}
		return fmt.Errorf("%s, %s fine; nothing was imported: %s", plural(len(plan.Errors), "bad row", "bad rows"),
			plural(plan.Valid(), "row", "rows"), next)
	}
	if dryRun {
		fmt.Fprintf(m.e.stdout, "Dry run for tenant %s: %d new, %d changed, %d unchanged; nothing was written.\n",
			m.tenant.Name, len(plan.New), len(plan.Changed), plan.Unchanged)
		return nil
	}
	res, err := m.store.ApplyImport(ctx, plan, store.CommandLine) // its history entry included
	if err != nil {
		return fmt.Errorf("import into tenant %q: %w", m.tenant.Name, err)
	}
	if update {
		fmt.Fprintf(m.e.stdout, "Imported into tenant %s: %d new, %d updated, %d unchanged.\n", m.tenant.Name, res.Added, res.Updated, plan.Unchanged)
		return nil
	}
	fmt.Fprintf(m.e.stdout, "Imported %d students into tenant %s.\n", res.Added, m.tenant.Name)
	return nil
}

func manageExport(ctx context.Context, m *manageCtx, fs *flag.FlagSet, o store.ExportOptions, output string) error {
	if err := noArgs(fs); err != nil {
		return err
	}
	switch o.Format = strings.ToLower(o.Format); {
	case o.Format == "" && strings.EqualFold(filepath.Ext(output), ".xlsx"):
		o.Format = store.ExportXLSX
	case o.Format == "":
		o.Format = store.ExportCSV
	case o.Format != store.ExportCSV && o.Format != store.ExportXLSX:
		return usageErr("--format %s: say csv or xlsx", o.Format)
	}
	if output == "" || output == "-" {
		if o.Format == store.ExportXLSX && isTerminal(m.e.stdout) {
			return usageErr("an .xlsx workbook is not for a terminal: add -o FILE.xlsx (or redirect: > FILE.xlsx)")
		}
		w := bufio.NewWriter(m.e.stdout)
		if err := m.store.ExportStudents(ctx, w, o); err != nil {
			return fmt.Errorf("export tenant %q: %w", m.tenant.Name, err)
		}
		return w.Flush()
	}
	// Written beside the file and renamed over it once complete, so that
	// a failed export leaves no half-written file.
	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
	if err != nil {
		return fmt.Errorf("export tenant %q: %w", m.tenant.Name, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	err = m.store.ExportStudents(ctx, w, o)
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), output)
	}
	if err != nil {
		return fmt.Errorf("export tenant %q to %s: %w", m.tenant.Name, output, err)
	}
	return nil
}

// prompter asks questions on the terminal, or reads answers line by line
// from a non-terminal standard input (scripts).
type prompter struct {
	e  *env
	in *bufio.Reader
}

func newPrompter(e *env) *prompter { return &prompter{e: e, in: bufio.NewReader(e.stdin)} }

func (p *prompter) line(prompt string) (string, error) {
	fmt.Fprint(p.e.stderr, prompt)
	s, err := p.in.ReadString('\n')
	if err == io.EOF && s == "" {
		fmt.Fprintln(p.e.stderr)
		return "", &noAnswerError{prompt: strings.TrimSuffix(strings.TrimSpace(prompt), ":"), terminal: p.terminal()}
	}
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read answer: %w", err)
	}
	return strings.TrimSpace(s), nil
}

// terminal reports whether answers come from a terminal (else from a
// pipe or file, line by line).
func (p *prompter) terminal() bool {
	f, ok := p.e.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *prompter) secret(prompt string) (string, error) {
	if f, ok := p.e.stdin.(*os.File); ok && p.terminal() {
		fmt.Fprint(p.e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(p.e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	s, err := p.line(prompt)
	if err == nil && !isTerminal(p.e.stderr) {
		fmt.Fprintln(p.e.stderr)
	}
	return s, err
}

// noAnswerError: standard input ended before a question was answered
// (a pipe or file with fewer lines than questions, or Ctrl-D).
type noAnswerError struct {
	prompt   string
	terminal bool
}

func (e *noAnswerError) Error() string {
	if e.terminal {
		return fmt.Sprintf("no answer to %q (input closed); nothing was changed", e.prompt)
	}
	return fmt.Sprintf("standard input ended before an answer to %q: it is not a terminal, so every question is answered "+
		"by the next line of it; nothing was changed", e.prompt)
}

// errPasswordMismatch: the password and its repetition differ.
var errPasswordMismatch = errors.New("the two passwords did not match; nothing was changed")

func (p *prompter) newPassword() (string, error) {
	pw, err := p.secret("Password: ")
	if err != nil {
		return "", err
	}
	again, err := p.secret("Password (again): ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errPasswordMismatch
	}
	return pw, nil
}
