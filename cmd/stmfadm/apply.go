package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
)

// exitChanged is apply's status when it changed the configuration (or,
// with --dry-run, would change it); 0 means there was nothing to change.
const exitChanged = 3

// errChanged reports that apply changed (or would change) something.
var errChanged = errors.New("changed")

const exportHelp = `Prints the whole configuration as one YAML document: defaults, target portal groups,
targets, initiators, host and target groups, logical units (by GUID, with their backing
store and properties), views (with their LUN numbers) and ALUA states. Everything is sorted
by name (LUs and views by GUID), so the same configuration always gives the same document
and it diffs cleanly in git. CHAP and RADIUS secrets are never printed: an object with a
secret names it with a *-secret-ref key (the object's name, or "radius"), to be looked up
in the secrets file "stmfadm apply --secrets" reads.

EXAMPLES:
   stmfadm export > /etc/costar/stmf.yaml
   stmfadm export -o /etc/costar/stmf.yaml && git -C /etc/costar diff`

const applyHelp = `Makes the running configuration match a file written by "stmfadm export" (or by hand):
computes the difference, prints the plan as the stmfadm/itadm commands that make it, and
applies it as one transaction. Each step is checked by the same rules as the command it
names; if any step fails, every step before it is undone and nothing is saved.

  - LUN numbers and GUIDs are honoured exactly; a view whose LUN differs is removed and
    added again with the file's LUN. Entry numbers are stmfd's business.
  - LU data is never touched: an LU the configuration lacks is imported from its backing
    store (import-lu); it is created (create-lu, with the file's GUID and size) only when
    the file says "create: true" and the backing store does not exist. LUs are never moved,
    shrunk, or given other create-only properties (block-size, vid, pid, serial, thin).
  - Targets whose target group membership changes are taken offline around the change
    and brought back online (the plan shows offline-target and online-target).
  - Without --prune nothing is deleted; with it, what the file omits is removed (LUs with
    delete-lu -k: backing stores stay; views, members, groups, iSCSI targets, initiators,
    portal groups; ALUA groups go back to active-optimized). Secrets are never removed.
  - Secrets come from --secrets FILE, a YAML map of secret-ref: secret. A reference missing
    there keeps a secret already set.
  - Sessions see REPORTED LUNS DATA HAS CHANGED only where their LUN map changed.

The plan is computed from a generation of the running configuration (shown in the plan's
first line). apply refuses with "configuration changed" when another change came in between
the plan and the apply; --generation pins it to the generation an earlier --dry-run showed.

Exit status: 0 no change, 3 changed (with --dry-run: changes pending), 1 failed (nothing was
changed), 2 bad command line.

EXAMPLES:
   stmfadm apply -f /etc/costar/stmf.yaml --dry-run
   stmfadm apply -f /etc/costar/stmf.yaml --secrets /etc/costar/secrets.yaml
   stmfadm apply -f /etc/costar/stmf.yaml --prune --generation 3f9c0a1b2c3d4e5f
   stmfadm export | ssh standby stmfadm apply -f -`

// addApplyCommands adds export and apply to stmfadm.
func addApplyCommands(app *cli.App, e *env) {
	app.Commands = append(app.Commands,
		&cli.Command{
			Name:        "export",
			Usage:       "print the whole configuration as YAML",
			Flags:       []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of standard output"}},
			Description: exportHelp,
			Action:      e.export,
		},
		&cli.Command{
			Name:  "apply",
			Usage: "make the running configuration match a YAML file (plan, then one transaction)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "configuration `FILE` (- for standard input; required)"},
				&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan only"},
				&cli.BoolFlag{Name: "prune", Usage: "delete what the file omits"},
				&cli.StringFlag{Name: "secrets", Usage: "YAML `FILE` of secret-ref: secret"},
				&cli.StringFlag{Name: "generation", Usage: "apply only if the running configuration is still this `GENERATION`"},
			},
			Description: applyHelp,
			Action:      e.apply,
		})
}

// MarshalConfig renders a Config as export prints it.
func marshalConfig(c api.Config) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// parseConfig reads a Config strictly: unknown keys are errors, so a typo
// is not silently a setting that does nothing.
func parseConfig(data []byte) (api.Config, error) {
	var c api.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return c, fmt.Errorf("empty document")
		}
		return c, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("more than one YAML document")
	}
	return c, nil
}

func (e *env) export(c *cli.Context) error {
	if _, err := operands(c, 0, 0, ""); err != nil {
		return err
	}
	res, err := e.client.ExportConfig(c.Context)
	if err != nil {
		e.unexpected(err, "")
		return errFailed
	}
	out, err := marshalConfig(res.Config)
	if err != nil {
		e.errorf("export: %v", err)
		return errFailed
	}
	if path := c.String("output"); path != "" {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			e.errorf("export: %v", err)
			return errFailed
		}
		return nil
	}
	_, err = e.stdout.Write(out)
	return err
}

func (e *env) readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(e.stdin, 16<<20))
	}
	return os.ReadFile(path)
}

// readSecrets reads the secrets file and keeps the secrets cfg refers to.
func (e *env) readSecrets(path string, cfg api.Config) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		e.errorf("warning: %s can be read by other users (chmod 600 it)", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var all map[string]string
	if err := yaml.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("%s: a map of secret-ref: secret is expected", path)
	}
	refs := []string{}
	if d := cfg.Defaults; d != nil {
		refs = append(refs, d.RadiusSecretRef)
	}
	for _, t := range cfg.Targets {
		refs = append(refs, t.ChapSecretRef)
	}
	for _, in := range cfg.Initiators {
		refs = append(refs, in.ChapSecretRef)
	}
	out := map[string]string{}
	for _, r := range refs {
		if s, ok := all[r]; ok && r != "" {
			out[r] = s
		}
	}
	return out, nil
}

func (e *env) apply(c *cli.Context) error {
	if _, err := operands(c, 0, 0, ""); err != nil {
		return err
	}
	path := c.String("file")
	if path == "" {
		return cliutil.Usagef("%s: -f, --file is required", c.Command.Name)
	}
	data, err := e.readInput(path)
	if err != nil {
		e.errorf("apply: %v", err)
		return errFailed
	}
	cfg, err := parseConfig(data)
	if err != nil {
		e.errorf("apply: %s: %v", path, err)
		return errFailed
	}
	secrets, err := e.readSecrets(c.String("secrets"), cfg)
	if err != nil {
		e.errorf("apply: %v", err)
		return errFailed
	}
	req := api.ApplyRequest{Config: cfg, Secrets: secrets, DryRun: true, Prune: c.Bool("prune"), Generation: c.String("generation")}
	plan, err := e.client.ApplyConfig(c.Context, req)
	if err != nil {
		return e.applyFailed(err)
	}
	if len(plan.Steps) == 0 {
		fmt.Fprintf(e.stdout, "# generation %s: no change\n", plan.Generation)
		return nil
	}
	fmt.Fprintf(e.stdout, "# generation %s: %d %s\n", plan.Generation, len(plan.Steps), plural(len(plan.Steps), "step", "steps"))
	for _, s := range plan.Steps {
		fmt.Fprintln(e.stdout, s)
	}
	if c.Bool("dry-run") {
		fmt.Fprintln(e.stdout, "# dry run: nothing applied")
		return errChanged
	}
	req.DryRun, req.Generation = false, plan.Generation
	res, err := e.client.ApplyConfig(c.Context, req)
	if err != nil {
		return e.applyFailed(err)
	}
	if !slices.Equal(res.Steps, plan.Steps) { // cannot happen with the same generation; say so if it does
		e.errorf("apply: the daemon applied a different plan:\n%s", strings.Join(res.Steps, "\n"))
	}
	fmt.Fprintf(e.stdout, "# applied; generation %s\n", res.NewGeneration)
	return errChanged
}

func (e *env) applyFailed(err error) error {
	if e.unreachable(err) {
		return errFailed
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		e.errorf("apply: %v", err)
		return errFailed
	}
	switch {
	case ae.Code == api.CodeStateChanged:
		e.errorf("apply: configuration changed: %s", ae.Message)
	case ae.Subject != "":
		e.errorf("apply: %s: %s", ae.Subject, ae.Message)
	default:
		e.errorf("apply: %s", ae.Message)
	}
	return errFailed
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
