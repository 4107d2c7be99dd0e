package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
)

// COMSTAR's usage lines.
var usageLines = map[string]string{
	"create-target":    "itadm create-target [-a radius|chap|none|default] [-s] [-S chap-secret-path] [-u chap-username] [-n target-node-name] [-l alias] [-t tpg-name[,tpg-name,...]]",
	"modify-target":    "itadm modify-target [-a radius|chap|none|default] [-s] [-S chap-secret-path] [-u chap-username] [-n new-target-node-name] [-l alias] [-t tpg-name[,tpg-name,...]] target-node-name",
	"delete-target":    "itadm delete-target [-f] target-node-name",
	"list-target":      "itadm list-target [-v] [target-node-name]",
	"create-tpg":       "itadm create-tpg tpg-name IP-address[:port] [IP-address[:port]] [...]",
	"list-tpg":         "itadm list-tpg [-v] [tpg-name]",
	"delete-tpg":       "itadm delete-tpg [-f] tpg-name",
	"create-initiator": "itadm create-initiator [-s] [-S chap-secret-path] [-u chap-username] initiator-node-name",
	"modify-initiator": "itadm modify-initiator [-s] [-S chap-secret-path] [-u chap-username] initiator-node-name",
	"list-initiator":   "itadm list-initiator [-v] [initiator-node-name]",
	"delete-initiator": "itadm delete-initiator initiator-node-name",
	"modify-defaults":  "itadm modify-defaults [-a radius|chap|none] [-r IP-address[:port]] [-d] [-D radius-secret-path] [-i enable|disable] [-I IP-address[:port][,IP-address[:port]]]",
	"list-defaults":    "itadm list-defaults",
}

func usageLine(sub string) string { return usageLines[sub] }

const itadmDescription = `Every change is made by stmfd and is durable before the command returns.
CHAP secrets (12 to 255 characters) are prompted for twice (-s) or read
from a file (-S); they are never shown, only "set" or "unset". Output and
messages are COMSTAR's; list commands also take -o json. A failed command
prints "itadm <subcommand> failed with error <errno>" and exits with errno.

EXAMPLES:
   itadm create-target -n iqn.2026-11.org.example:storage -l storage
   itadm create-tpg fast 192.0.2.10:3260 [2001:db8::10]:3260
   itadm modify-target -t fast -a chap iqn.2026-11.org.example:storage
   itadm create-initiator -S /root/esx1.secret iqn.1998-01.com.vmware:esx1
   itadm list-target -v
   itadm modify-defaults -a chap`

func itadmApp(e *env) *cli.App {
	auth := func(values string) cli.Flag {
		return &cli.StringFlag{Name: "auth-method", Aliases: []string{"a"}, Usage: values}
	}
	secret := func() []cli.Flag {
		return []cli.Flag{
			&cli.BoolFlag{Name: "chap-secret", Aliases: []string{"s"}, Usage: "prompt for the CHAP secret (twice)"},
			&cli.StringFlag{Name: "chap-secret-file", Aliases: []string{"S"}, Usage: "read the CHAP secret from a file"},
			&cli.StringFlag{Name: "chap-user", Aliases: []string{"u"}, Usage: "CHAP user name (none: unset)"},
		}
	}
	targetFlags := func(nameUsage string) []cli.Flag {
		return append(secret(),
			auth("radius, chap, none or default (follow the defaults)"),
			&cli.StringFlag{Name: "node-name", Aliases: []string{"n"}, Usage: nameUsage},
			&cli.StringFlag{Name: "alias", Aliases: []string{"l"}, Usage: "target alias (none: unset)"},
			&cli.StringFlag{Name: "tpg-tag", Aliases: []string{"t"}, Usage: "tpg-name[,tpg-name,...] (default: the default portal group)"},
		)
	}
	verbose := func() cli.Flag { return &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show details"} }
	force := func(usage string) cli.Flag { return &cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: usage} }
	return &cli.App{
		Name:        "itadm",
		Usage:       "manage iSCSI targets, portal groups, initiators and defaults (COMSTAR)",
		Description: itadmDescription,
		Commands: []*cli.Command{
			{Name: "create-target", Usage: "create an iSCSI target", ArgsUsage: "[target-node-name]", Flags: targetFlags("target node name (default: a generated IQN)"), Action: e.createTarget,
				Description: "EXAMPLE:\n   itadm create-target -n iqn.2026-11.org.example:storage -t fast -a chap -s"},
			{Name: "modify-target", Usage: "change an iSCSI target", ArgsUsage: "target-node-name", Flags: targetFlags("new target node name"), Action: e.modifyTarget,
				Description: "EXAMPLE:\n   itadm modify-target -l storage -t default iqn.2026-11.org.example:storage"},
			{Name: "delete-target", Usage: "delete an iSCSI target", ArgsUsage: "target-node-name", Flags: []cli.Flag{force("take the target offline first")}, Action: e.deleteTarget},
			{Name: "list-target", Usage: "list iSCSI targets", ArgsUsage: "[target-node-name]", Flags: []cli.Flag{verbose(), cliutil.OutputFlag()}, Action: e.listTarget},
			{Name: "create-tpg", Usage: "create a target portal group", ArgsUsage: "tpg-name IP-address[:port]...", Action: e.createTPG,
				Description: "A numeric name 2..65535 is also the portal group tag.\n\nEXAMPLE:\n   itadm create-tpg 2 192.0.2.10 192.0.2.11:3261"},
			{Name: "list-tpg", Usage: "list target portal groups", ArgsUsage: "[tpg-name]", Flags: []cli.Flag{verbose(), cliutil.OutputFlag()}, Action: e.listTPG},
			{Name: "delete-tpg", Usage: "delete a target portal group", ArgsUsage: "tpg-name", Flags: []cli.Flag{force("also remove it from the targets using it")}, Action: e.deleteTPG},
			{Name: "create-initiator", Usage: "create an initiator context (per-initiator CHAP)", ArgsUsage: "initiator-node-name", Flags: secret(), Action: e.initiator(true),
				Description: "EXAMPLE:\n   itadm create-initiator -u esx1 -s iqn.1998-01.com.vmware:esx1"},
			{Name: "modify-initiator", Usage: "change an initiator context", ArgsUsage: "initiator-node-name", Flags: secret(), Action: e.initiator(false)},
			{Name: "list-initiator", Usage: "list initiator contexts", ArgsUsage: "[initiator-node-name]", Flags: []cli.Flag{verbose(), cliutil.OutputFlag()}, Action: e.listInitiator},
			{Name: "delete-initiator", Usage: "delete an initiator context", ArgsUsage: "initiator-node-name", Action: e.deleteInitiator},
			{Name: "modify-defaults", Usage: "change the default properties", Action: e.modifyDefaults, Flags: []cli.Flag{
				auth("radius, chap or none"),
				&cli.StringFlag{Name: "radius-server", Aliases: []string{"r"}, Usage: "IP-address[:port] (none: unset)"},
				&cli.BoolFlag{Name: "radius-secret", Aliases: []string{"d"}, Usage: "prompt for the RADIUS secret (twice)"},
				&cli.StringFlag{Name: "radius-secret-file", Aliases: []string{"D"}, Usage: "read the RADIUS secret from a file"},
				&cli.StringFlag{Name: "isns", Aliases: []string{"i"}, Usage: "enable or disable"},
				&cli.StringFlag{Name: "isns-server", Aliases: []string{"I"}, Usage: "IP-address[:port][,...] (none: unset)"},
			}},
			{Name: "list-defaults", Usage: "show the default properties", Flags: []cli.Flag{cliutil.OutputFlag()}, Action: e.listDefaults},
		},
	}
}

// optString returns a string option's value, or nil when not given.
func optString(c *cli.Context, name string) *string {
	if !c.IsSet(name) {
		return nil
	}
	v := c.String(name)
	return &v
}

// oneOperand returns the single operand (or "" when optional and absent).
func oneOperand(c *cli.Context, required bool) (string, error) {
	a := c.Args().Slice()
	switch {
	case len(a) > 1:
		return "", cliutil.Usagef("%s: too many operands", c.Command.Name)
	case len(a) == 0 && required:
		return "", cliutil.Usagef("%s: operand required", c.Command.Name)
	case len(a) == 0:
		return "", nil
	}
	return a[0], nil
}

// targetRequest collects the options create-target and modify-target share.
func (e *env) targetRequest(c *cli.Context) (api.TargetRequest, error) {
	req := api.TargetRequest{
		Alias:    optString(c, "alias"),
		Auth:     optString(c, "auth-method"),
		ChapUser: optString(c, "chap-user"),
	}
	if c.IsSet("tpg-tag") {
		tags := strings.Split(c.String("tpg-tag"), ",")
		req.TPGs = &tags
	}
	s, err := e.secretOption(c.Bool("chap-secret"), c.String("chap-secret-file"), "Enter CHAP secret: ")
	req.ChapSecret = s
	return req, err
}

func (e *env) createTarget(c *cli.Context) error {
	op, err := oneOperand(c, false)
	if err != nil {
		return err
	}
	name := op
	if c.IsSet("node-name") {
		name = c.String("node-name")
	}
	if name != "" && !api.HasISCSIPrefix(name) {
		return e.fail(errEINVAL, "Invalid name %s", name)
	}
	req, err := e.targetRequest(c)
	if err != nil {
		return err
	}
	req.Name = name
	t, err := e.client.CreateTarget(c.Context, req)
	if err != nil {
		var ae *api.Error
		errors.As(err, &ae)
		switch api.CodeOf(err) {
		case api.CodeInvalidName:
			return e.fail(errEINVAL, "Invalid name %s", name)
		case api.CodeInvalidISCSIName:
			return e.fail(errEFAULT, "Invalid iSCSI name %s", name)
		case api.CodeTargetExists:
			return e.fail(errEEXIST, "iSCSI target %s already configured", name)
		case api.CodeTPGNotFound:
			return e.fail(errGeneric, "Invalid tpg-tag %s, tag not defined", ae.Subject)
		case api.CodeInvalidAuth:
			fmt.Fprintf(e.stderr, "Error setting target properties, %d\n", errEINVAL)
			return e.fail(errEINVAL, "\t%s: must be none, chap, radius or default", ae.Subject)
		}
		return e.apiFailure(err)
	}
	fmt.Fprintf(e.stdout, "Target %s successfully created\n", t.Name)
	return nil
}

func (e *env) modifyTarget(c *cli.Context) error {
	op, err := oneOperand(c, true)
	if err != nil {
		return err
	}
	req, err := e.targetRequest(c)
	if err != nil {
		return err
	}
	req.Name = op
	req.NewName = c.String("node-name")
	t, err := e.client.ModifyTarget(c.Context, req)
	if err != nil {
		var ae *api.Error
		errors.As(err, &ae)
		switch api.CodeOf(err) {
		case api.CodeTargetNotFound:
			return e.fail(errEINVAL, "Target %s not found", op)
		case api.CodeInvalidISCSIName:
			return e.fail(errGeneric, "Invalid iSCSI name %s", req.NewName)
		case api.CodeTargetExists:
			return e.fail(errGeneric, "A target with name %s already exists", req.NewName)
		case api.CodeTPGNotFound:
			return e.fail(errGeneric, "Invalid tpg-name %s: not defined", ae.Subject)
		case api.CodeInvalidAuth:
			fmt.Fprintf(e.stderr, "Error setting target properties: %d\n", errEINVAL)
			return e.fail(errEINVAL, "\t%s: must be none, chap, radius or default", ae.Subject)
		}
		return e.apiFailure(err)
	}
	fmt.Fprintf(e.stdout, "Target %s successfully modified\n", t.Name)
	return nil
}

func (e *env) deleteTarget(c *cli.Context) error {
	op, err := oneOperand(c, true)
	if err != nil {
		return err
	}
	err = e.client.DeleteTarget(c.Context, op, c.Bool("force"))
	if err == nil {
		return nil
	}
	switch api.CodeOf(err) {
	case api.CodeTargetOnline:
		return e.fail(errEBUSY, "The target is online or busy. Use the -f (force) option, or 'stmfadm offline-target %s'", op)
	case api.CodeTargetNotFound:
		return e.fail(errGeneric, "Target %s not found", op)
	default:
		return e.apiFailure(err)
	}
}

func (e *env) listTarget(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	op, err := oneOperand(c, false)
	if err != nil {
		return err
	}
	targets, err := e.client.ListTargets(c.Context)
	if err != nil {
		return e.apiFailure(err)
	}
	// itadm is the iSCSI port provider's: other protocols' targets are
	// stmfadm's to list.
	targets = slices.DeleteFunc(targets, func(t api.Target) bool { return t.Protocol != "" && t.Protocol != api.ProtocolISCSI })
	defs, err := e.client.GetDefaults(c.Context)
	if err != nil {
		return e.apiFailure(err)
	}
	if op != "" {
		name := op
		if cn, ok := api.CanonicalISCSIName(op); ok {
			name = cn
		}
		i := slices.IndexFunc(targets, func(t api.Target) bool { return t.Name == name })
		if i < 0 {
			return e.fail(errGeneric, "Target %s not found!\n", op)
		}
		targets = targets[i : i+1]
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, targets)
	}
	writeTargets(e.stdout, targets, defs, c.Bool("verbose"))
	return nil
}

// writeTargets prints itadm list-target.
func writeTargets(w io.Writer, targets []api.Target, defs api.Defaults, verbose bool) {
	gauth := defs.Auth
	if gauth == "" {
		gauth = "none"
	}
	galias := defs.Alias
	if galias == "" {
		galias = "-"
	}
	for i, t := range targets {
		if i == 0 {
			fmt.Fprintf(w, "%-61s%-9s%-9s\n", "TARGET NAME", "STATE", "SESSIONS")
		}
		fmt.Fprintf(w, "%-61s", t.Name)
		if len(t.Name) > 60 {
			io.WriteString(w, "\t")
		}
		state := "offline"
		if t.Online {
			state = "online"
		}
		fmt.Fprintf(w, "%-9s%-9d", state, len(t.Sessions))
		if !verbose {
			io.WriteString(w, "\n")
			continue
		}
		auth, fromDefaults := t.Auth, ""
		if auth == "" {
			auth, fromDefaults = gauth, "(defaults)"
		}
		alias := t.Alias
		if alias == "" {
			alias = galias
		}
		chapu := t.ChapUser
		if chapu == "" {
			chapu = "-"
		}
		chaps := "unset"
		if t.ChapSecretSet {
			chaps = "set"
		}
		fmt.Fprintf(w, "\n\t%-20s\t%s\n\t%-20s\t%s %s\n\t%-20s\t%s\n\t%-20s\t%s\n\t%-20s\t",
			"alias:", alias, "auth:", auth, fromDefaults, "targetchapuser:", chapu, "targetchapsecret:", chaps, "tpg-tags:")
		if len(t.TPGs) == 0 {
			io.WriteString(w, "default")
		}
		for j, tag := range t.TPGs {
			if j > 0 {
				io.WriteString(w, ",")
			}
			fmt.Fprintf(w, "%s = %d", tag.TPG, tag.Tag)
		}
		io.WriteString(w, "\n")
	}
}

func (e *env) createTPG(c *cli.Context) error {
	a := c.Args().Slice()
	if len(a) == 0 {
		return cliutil.Usagef("create-tpg: operand required")
	}
	name, addrs := a[0], a[1:]
	if len(name) > api.MaxTPGNameLen {
		return e.fail(errEINVAL, "Target Portal Group name must be no longer than %d characters.", api.MaxTPGNameLen)
	}
	if len(addrs) == 0 {
		return e.fail(errEINVAL, "Error, no portal addresses specified")
	}
	err := e.client.CreateTPG(c.Context, api.TPG{Name: name, Portals: addrs})
	if err == nil {
		return nil
	}
	var ae *api.Error
	errors.As(err, &ae)
	switch api.CodeOf(err) {
	case api.CodeTPGExists:
		return e.fail(errGeneric, "Target Portal Group %s already exists", name)
	case api.CodePortalInUse:
		return e.fail(errEEXIST, "Portal %s already in use", asGiven(addrs, ae.Subject))
	case api.CodeInvalidPortal:
		return e.fail(errEINVAL, "Invalid portal address %s", asGiven(addrs, ae.Subject))
	case api.CodeInvalidTPGName:
		return e.fail(errEINVAL, "Target Portal Group name must be no longer than %d characters.", api.MaxTPGNameLen)
	}
	return e.apiFailure(err)
}

// asGiven returns the address among addrs the daemon's canonical form
// portal stands for, as the user wrote it.
func asGiven(addrs []string, portal string) string {
	for _, a := range addrs {
		if c, err := api.CanonicalPortal(a); a == portal || (err == nil && c == portal) {
			return a
		}
	}
	return portal
}

func (e *env) listTPG(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	op, err := oneOperand(c, false)
	if err != nil {
		return err
	}
	tpgs, err := e.client.ListTPGs(c.Context)
	if err != nil {
		return e.apiFailure(err)
	}
	if op != "" {
		i := slices.IndexFunc(tpgs, func(t api.TPG) bool { return t.Name == op })
		if i < 0 {
			return e.fail(errGeneric, "Target Portal Group %s not found!\n", op)
		}
		tpgs = tpgs[i : i+1]
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, tpgs)
	}
	writeTPGs(e.stdout, tpgs, c.Bool("verbose"))
	return nil
}

// writeTPGs prints itadm list-tpg.
func writeTPGs(w io.Writer, tpgs []api.TPG, verbose bool) {
	for i, t := range tpgs {
		if i == 0 {
			fmt.Fprintf(w, "%-30s%-9s\n", "TARGET PORTAL GROUP", "PORTAL COUNT")
		}
		fmt.Fprintf(w, "%-30s", t.Name)
		if len(t.Name) > 30 {
			io.WriteString(w, "\t")
		}
		fmt.Fprintf(w, "%-9d", len(t.Portals))
		if verbose {
			io.WriteString(w, "\n    portals:")
			if len(t.Portals) == 0 {
				io.WriteString(w, "\t<none>")
			} else {
				io.WriteString(w, "\t"+strings.Join(t.Portals, ","))
			}
		}
		io.WriteString(w, "\n")
	}
}

func (e *env) deleteTPG(c *cli.Context) error {
	op, err := oneOperand(c, true)
	if err != nil {
		return err
	}
	err = e.client.DeleteTPG(c.Context, op, c.Bool("force"))
	if err == nil {
		return nil
	}
	switch api.CodeOf(err) {
	case api.CodeTPGNotFound:
		return e.fail(errGeneric, "Target portal group %s does not exist.", op)
	case api.CodeTPGInUse:
		return e.fail(errEBUSY, "Target portal group associated with one or more targets.  Cannot delete.")
	default:
		return e.apiFailure(err)
	}
}

// initiator is create-initiator and modify-initiator.
func (e *env) initiator(create bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		op, err := oneOperand(c, true)
		if err != nil {
			return err
		}
		if create && !api.HasISCSIPrefix(op) {
			return e.fail(errEINVAL, "Invalid name %s", op)
		}
		req := api.InitiatorRequest{Name: op, ChapUser: optString(c, "chap-user")}
		if req.ChapSecret, err = e.secretOption(c.Bool("chap-secret"), c.String("chap-secret-file"), "Enter CHAP secret: "); err != nil {
			return err
		}
		if create {
			err = e.client.CreateInitiator(c.Context, req)
		} else {
			err = e.client.ModifyInitiator(c.Context, req)
		}
		if err == nil {
			return nil
		}
		switch api.CodeOf(err) {
		case api.CodeInvalidName:
			return e.fail(errEINVAL, "Invalid name %s", op)
		case api.CodeInvalidISCSIName:
			return e.fail(errEFAULT, "Invalid iSCSI name %s", op)
		case api.CodeInitiatorExists:
			return e.fail(errEINVAL, "Initiator %s already exists", op)
		case api.CodeInitiatorNotFound:
			return e.fail(errENOENT, "Error, initiator %s not found.", op)
		default:
			return e.apiFailure(err)
		}
	}
}

func (e *env) listInitiator(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	op, err := oneOperand(c, false)
	if err != nil {
		return err
	}
	inis, err := e.client.ListInitiators(c.Context)
	if err != nil {
		return e.apiFailure(err)
	}
	if op != "" {
		name := op
		if cn, ok := api.CanonicalISCSIName(op); ok {
			name = cn
		}
		i := slices.IndexFunc(inis, func(in api.Initiator) bool { return in.Name == name })
		if i < 0 {
			return e.fail(errGeneric, "Initiator %s not found!", op)
		}
		inis = inis[i : i+1]
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, inis)
	}
	writeInitiators(e.stdout, inis)
	return nil
}

// writeInitiators prints itadm list-initiator.
func writeInitiators(w io.Writer, inis []api.Initiator) {
	for i, in := range inis {
		if i == 0 {
			fmt.Fprintf(w, "%-61s%-10s%-7s\n", "INITIATOR NAME", "CHAPUSER", "SECRET")
		}
		fmt.Fprintf(w, "%-61s", in.Name)
		if len(in.Name) > 60 {
			io.WriteString(w, "\t")
		}
		user := in.ChapUser
		if user == "" {
			user = "<none>"
		}
		fmt.Fprintf(w, "%-15s", user)
		if len(user) >= 15 {
			io.WriteString(w, "\t")
		}
		secret := "unset"
		if in.ChapSecretSet {
			secret = "set"
		}
		fmt.Fprintf(w, "%-4s\n", secret)
	}
}

func (e *env) deleteInitiator(c *cli.Context) error {
	op, err := oneOperand(c, true)
	if err != nil {
		return err
	}
	err = e.client.DeleteInitiator(c.Context, op)
	if err == nil {
		return nil
	}
	switch api.CodeOf(err) {
	case api.CodeInitiatorNotFound:
		return e.fail(errGeneric, "Initiator %s not found", op)
	default:
		return e.apiFailure(err)
	}
}

func (e *env) modifyDefaults(c *cli.Context) error {
	req := api.DefaultsRequest{Auth: optString(c, "auth-method"), RadiusServer: optString(c, "radius-server")}
	if c.IsSet("isns") {
		v := c.String("isns")
		var on bool
		switch {
		case v != "" && strings.HasPrefix("enable", v):
			on = true
		case v != "" && strings.HasPrefix("disable", v):
		default:
			return cliutil.Usagef("invalid value for -i")
		}
		req.ISNS = &on
	}
	if c.IsSet("isns-server") {
		servers := strings.Split(c.String("isns-server"), ",")
		if len(servers) > 8 {
			return cliutil.Usagef("Too many iSNS servers specified, maximum of 8 allowed")
		}
		req.ISNSServers = &servers
	}
	s, err := e.secretOption(c.Bool("radius-secret"), c.String("radius-secret-file"), "Enter RADIUS secret: ")
	if err != nil {
		return err
	}
	req.RadiusSecret = s
	if req == (api.DefaultsRequest{}) {
		return e.fail(errEINVAL, "Error, no properties specified")
	}
	err = e.client.ModifyDefaults(c.Context, req)
	if err == nil {
		return nil
	}
	var ae *api.Error
	errors.As(err, &ae)
	switch api.CodeOf(err) {
	case api.CodeInvalidAuth, api.CodeMissingProp, api.CodeInvalidArgument:
		fmt.Fprintf(e.stderr, "Error setting global properties: %d\n", errEINVAL)
		return e.fail(errEINVAL, "\t%s: %s", ae.Subject, ae.Message)
	}
	return e.apiFailure(err)
}

func (e *env) listDefaults(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	d, err := e.client.GetDefaults(c.Context)
	if err != nil {
		return e.apiFailure(err)
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, d)
	}
	writeDefaults(e.stdout, d)
	return nil
}

// writeDefaults prints itadm list-defaults.
func writeDefaults(w io.Writer, d api.Defaults) {
	none := func(s string) string {
		if s == "" {
			return "<none>"
		}
		return s
	}
	rsecret, isns, servers := "unset", "disabled", "<none>"
	if d.RadiusSecretSet {
		rsecret = "set"
	}
	if d.ISNS {
		isns = "enabled"
	}
	if len(d.ISNSServers) > 0 {
		servers = strings.Join(d.ISNSServers, ",")
	}
	fmt.Fprintf(w, "%s:\n\n", "iSCSI Target Default Properties")
	fmt.Fprintf(w, "%-15s\t%s\n%-15s\t%s\n%-15s\t%s\n%-15s\t%s\n%-15s\t%s\n%-15s\t%s\n",
		"alias:", none(d.Alias), "auth:", none(d.Auth), "radiusserver:", none(d.RadiusServer),
		"radiussecret:", rsecret, "isns:", isns, "isnsserver:", servers)
}
