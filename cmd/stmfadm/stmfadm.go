package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
	"github.com/costar-project/costar/config"
)

const stmfadmDescription = `Every change is made by stmfd and is durable before the command returns.
Output formats and messages are COMSTAR's; every list command also takes -o json.
Exit status: 0 success, 1 the operation failed, 2 bad command line.

EXAMPLES:
   stmfadm create-lu -s 10g -p alias=vm-100-disk-0 /dev/zvol/tank/vm-100-disk-0
   stmfadm create-hg esx
   stmfadm add-hg-member -g esx iqn.1998-01.com.vmware:esx1 wwn.2100001B32AABBCC
   stmfadm add-view -h esx -n 3 600144F0C0A80101000067A1B2C30001
   stmfadm list-view -l 600144F0C0A80101000067A1B2C30001
   stmfadm list-lu -v
   stmfadm list-target -v
   stmfadm list-lu -o json`

func stmfadmApp(e *env) *cli.App {
	hostGroups, targetGroups := api.HostGroup, api.TargetGroup
	groupFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "group-name", Aliases: []string{"g"}, Usage: "group to change (required)"}
	}
	verbose := func() cli.Flag { return &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show details"} }
	propFlag := func() cli.Flag {
		return &cli.StringSliceFlag{Name: "lu-prop", Aliases: []string{"p"}, Usage: "logical-unit-property=value (repeatable)"}
	}
	sizeFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "size", Aliases: []string{"s"}, Usage: "size in bytes, or with a K/M/G/T/P suffix"}
	}
	luName := func() cli.Flag {
		return &cli.StringFlag{Name: "lu-name", Aliases: []string{"l"}, Usage: "GUID of the logical unit (required)"}
	}
	return &cli.App{
		Name:        "stmfadm",
		Usage:       "manage logical units, host and target groups, views and targets (COMSTAR)",
		Description: stmfadmDescription,
		Commands: []*cli.Command{
			{
				Name: "create-lu", Usage: "create a logical unit", ArgsUsage: "lu-file",
				Flags: []cli.Flag{propFlag(), sizeFlag()},
				Description: "Creates an LU on a file or block device (a zvol); its GUID is printed.\n" +
					"Valid properties for -p (names are case-insensitive):\n" +
					"     alias    - alias for logical unit (up to 255 chars)\n" +
					"     blk      - block size in bytes in 2^n (512..65536)\n" +
					"     guid     - 32 ascii hex characters in NAA format\n" +
					"     host-id  - host identifier to be used for GUID generation (8 hex characters)\n" +
					"     meta     - separate meta data file name\n" +
					"     mgmt-url - Management URL address\n" +
					"     oui      - organizational unique identifier (6 hex characters)\n" +
					"     pid      - product identifier (up to 16 chars)\n" +
					"     serial   - serial number (up to 252 chars)\n" +
					"     vid      - vendor identifier (up to 8 chars)\n" +
					"     wcd      - write cache disabled (true, false)\n" +
					"     wp       - write protect (true, false)\n" +
					"     thin     - thin provisioned: UNMAP frees space (true, false; costar)\n" +
					"     soft-threshold - thin LUs: warn initiators at this % of the backing\n" +
					"                file system in use (0-100, 0 = off; costar)\n" +
					"     preallocation - off, falloc (reserve the file space) or full (also write zeroes):\n" +
					"                the part of the file create-lu makes; thick LUs on files (costar)\n" +
					"     qos-iops - at most this many data commands per second, summed over\n" +
					"                every initiator (0 = unlimited; costar)\n" +
					"     qos-mbps - at most this many MiB/s read and written (0 = unlimited; costar)\n\n" +
					"Long creates show progress on stderr (a bar on a terminal; --progress prints lines);\n" +
					"Ctrl-C cancels and stmfd undoes the create.\n\n" +
					"EXAMPLES:\n   stmfadm create-lu -s 20G /var/lib/costar/lu0.img\n" +
					"   stmfadm create-lu -p thin=true -p soft-threshold=85 -s 100G /srv/lu1.img\n" +
					"   stmfadm create-lu -p preallocation=full -s 500G /srv/db.img\n" +
					"   stmfadm create-lu -p wcd=false -p guid=600144f0c0a80101000067a1b2c30001 /dev/zvol/tank/vm-100-disk-0",
				Action: e.createLU,
			},
			{
				Name: "modify-lu", Usage: "change a logical unit's size or properties", ArgsUsage: "lu-name | -f file",
				Flags: []cli.Flag{propFlag(), sizeFlag(),
					&cli.BoolFlag{Name: "file", Aliases: []string{"f"}, Usage: "the operand is the LU's data or meta file"}},
				Description: "Valid properties for -p: alias, mgmt-url, wcd (true, false), wp (true, false),\n" +
					"soft-threshold, qos-iops, qos-mbps (0 = unlimited; costar).\n" +
					"A new size takes effect at once; initiators see CAPACITY DATA HAS CHANGED.\n" +
					"QoS limits apply at once: commands over the limit wait their turn, none fails.\n\n" +
					"EXAMPLES:\n   stmfadm modify-lu -s 40G 600144F0C0A80101000067A1B2C30001\n" +
					"   stmfadm modify-lu -p alias=db -p wcd=true 600144F0C0A80101000067A1B2C30001\n" +
					"   stmfadm modify-lu -p qos-iops=2000 -p qos-mbps=200 600144F0C0A80101000067A1B2C30001",
				Action: e.modifyLU,
			},
			{
				Name: "import-lu", Usage: "register a logical unit from the metadata stored with it", ArgsUsage: "file",
				Description: "EXAMPLE:\n   stmfadm import-lu /dev/zvol/tank/vm-100-disk-0",
				Action:      e.importLU,
			},
			{
				Name: "delete-lu", Usage: "deregister logical units (their data stays)", ArgsUsage: "lu-name...",
				Flags:       []cli.Flag{&cli.BoolFlag{Name: "keep-views", Aliases: []string{"k"}, Usage: "keep the view entries; they apply again when the GUID returns"}},
				Description: "EXAMPLE:\n   stmfadm delete-lu -k 600144F0C0A80101000067A1B2C30001",
				Action:      e.deleteLU,
			},
			{
				Name: "list-lu", Usage: "list logical units", ArgsUsage: "[lu-name...]",
				Flags:       []cli.Flag{verbose(), cliutil.OutputFlag()},
				Description: "EXAMPLES:\n   stmfadm list-lu -v\n   stmfadm list-lu -o json 600144F0C0A80101000067A1B2C30001",
				Action:      e.listLU,
			},
			{Name: "online-lu", Usage: "bring a logical unit online (after offline-lu it also clears a remembered write-back failure)", ArgsUsage: "lu-name", Action: e.onlineLU(true)},
			{Name: "offline-lu", Usage: "take a logical unit offline (its views stay)", ArgsUsage: "lu-name", Action: e.onlineLU(false)},
			{
				Name: "create-hg", Usage: "create a host group", ArgsUsage: "group-name",
				Description: "Group names are case-sensitive and may not start with '*'.\n\nEXAMPLE:\n   stmfadm create-hg esx",
				Action:      e.createGroup(hostGroups),
			},
			{Name: "create-tg", Usage: "create a target group", ArgsUsage: "group-name", Action: e.createGroup(targetGroups)},
			{Name: "delete-hg", Usage: "delete a host group no view uses", ArgsUsage: "group-name", Action: e.deleteGroup(hostGroups)},
			{Name: "delete-tg", Usage: "delete a target group no view uses", ArgsUsage: "group-name", Action: e.deleteGroup(targetGroups)},
			{
				Name: "add-hg-member", Usage: "add initiators to a host group", ArgsUsage: "member...",
				Flags: []cli.Flag{groupFlag()},
				Description: "Members are iqn.<name>, eui.<16 hex> or wwn.<16 hex>; each belongs to one host group.\n\n" +
					"EXAMPLE:\n   stmfadm add-hg-member -g esx iqn.1998-01.com.vmware:esx1 wwn.2100001B32AABBCC",
				Action: e.member(hostGroups, true),
			},
			{
				Name: "add-tg-member", Usage: "add targets to a target group (targets must be offline)", ArgsUsage: "member...",
				Flags:  []cli.Flag{groupFlag()},
				Action: e.member(targetGroups, true),
			},
			{Name: "remove-hg-member", Usage: "remove initiators from a host group", ArgsUsage: "member...", Flags: []cli.Flag{groupFlag()}, Action: e.member(hostGroups, false)},
			{Name: "remove-tg-member", Usage: "remove targets from a target group (targets must be offline)", ArgsUsage: "member...", Flags: []cli.Flag{groupFlag()}, Action: e.member(targetGroups, false)},
			{Name: "list-hg", Usage: "list host groups", ArgsUsage: "[group-name...]", Flags: []cli.Flag{verbose(), cliutil.OutputFlag()}, Action: e.listGroups(hostGroups)},
			{Name: "list-tg", Usage: "list target groups", ArgsUsage: "[group-name...]", Flags: []cli.Flag{verbose(), cliutil.OutputFlag()}, Action: e.listGroups(targetGroups)},
			{
				Name: "add-view", Usage: "make a logical unit visible", ArgsUsage: "lu-name",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "lun", Aliases: []string{"n"}, Usage: "logical unit number (default: the lowest free in every map the view joins)"},
					&cli.StringFlag{Name: "host-group", Aliases: []string{"h"}, Usage: "host group (default: all hosts)"},
					&cli.StringFlag{Name: "target-group", Aliases: []string{"t"}, Usage: "target group (default: all targets)"},
				},
				Description: "A view entry is comprised of three elements; the logical unit number, the target\n" +
					"group name and the host group name. Views of one LU may not overlap.\n\n" +
					"EXAMPLES:\n   stmfadm add-view 600144F0C0A80101000067A1B2C30001\n" +
					"   stmfadm add-view -n 3 -h esx -t fast 600144F0C0A80101000067A1B2C30001",
				Action: e.addView,
			},
			{
				Name: "list-view", Usage: "list the view entries of a logical unit", ArgsUsage: "[entry...]",
				Flags:       []cli.Flag{luName(), cliutil.OutputFlag()},
				Description: "EXAMPLE:\n   stmfadm list-view -l 600144F0C0A80101000067A1B2C30001",
				Action:      e.listView,
			},
			{
				Name: "remove-view", Usage: "remove view entries of a logical unit", ArgsUsage: "[entry...]",
				Flags:       []cli.Flag{luName(), &cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "remove every view entry of the LU"}},
				Description: "EXAMPLES:\n   stmfadm remove-view -l 600144F0C0A80101000067A1B2C30001 0 2\n   stmfadm remove-view -a -l 600144F0C0A80101000067A1B2C30001",
				Action:      e.removeView,
			},
			{Name: "list-target", Usage: "list targets (-v: with their sessions)", ArgsUsage: "[target...]", Flags: []cli.Flag{verbose(), cliutil.OutputFlag()}, Action: e.listTarget},
			{Name: "online-target", Usage: "bring a target online", ArgsUsage: "target", Action: e.onlineTarget(true)},
			{Name: "offline-target", Usage: "take a target offline (ends its sessions)", ArgsUsage: "target", Action: e.onlineTarget(false)},
			{Name: "list-state", Usage: "show the state of the framework", Flags: []cli.Flag{cliutil.OutputFlag()}, Action: e.listState},
		},
	}
}

// propError prints COMSTAR's message for a bad -p argument.
func (e *env) propError(err error, modify bool) {
	pe, ok := api.AsPropError(err)
	if !ok {
		e.errorf("%v", err)
		return
	}
	switch pe.Reason {
	case api.ReasonSpecifier:
		if modify {
			e.errorf("%s: invalid property specifier- prop=val", pe.Arg)
		} else {
			e.errorf("%s: invalid property specifier - prop=val", pe.Arg)
		}
	case api.ReasonUnknown:
		e.errorf("invalid property specified: %s", pe.Prop)
	case api.ReasonBlockSize:
		e.errorf("invalid block size")
	default:
		e.errorf("unable to set %s: %s", pe.Prop, pe.Reason)
	}
}

// luError prints COMSTAR's message for a failed LU call about operand.
func (e *env) luError(err error, operand string) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		e.unexpected(err, "")
		return
	}
	switch ae.Code {
	case api.CodeFileInUse:
		name := operand
		if abs, _ := filepath.Abs(operand); ae.Subject != "" && ae.Subject != abs && ae.Subject != operand {
			name = ae.Subject
		}
		e.errorf("filename %s: in use", name)
	case api.CodeGUIDInUse:
		e.errorf("guid in use")
	case api.CodeInvalidBlockSize:
		e.errorf("invalid block size")
	case api.CodeMetaFile:
		e.errorf("meta file error")
		e.detail(err)
	case api.CodeDataFile:
		e.errorf("data file error")
		e.detail(err)
	case api.CodeInvalidSize:
		e.errorf("invalid size")
		e.detail(err)
	case api.CodeInvalidPropLen:
		e.errorf("unable to set %s: invalid length", ae.Subject)
	case api.CodeInvalidProp:
		e.errorf("unable to set %s: bad format", ae.Subject)
	case api.CodePropNotModify:
		e.errorf("invalid property for modify")
	case api.CodeLUNotFound:
		e.errorf("%s: not found", operand)
	case api.CodeInvalidGUID:
		e.errorf("%s: must be 32 hexadecimal digits long", operand)
	case api.CodeBusy:
		e.errorf("resource busy")
	case api.CodeCancelled:
		e.errorf("cancelled; nothing was changed")
	case api.CodeNotSupported:
		e.errorf("could not set property: %s: %s", orDash(ae.Subject), ae.Message)
	default:
		e.unexpected(err, "")
	}
}

func (e *env) parseProps(c *cli.Context) (api.LUProps, bool) {
	var props api.LUProps
	for _, p := range c.StringSlice("lu-prop") {
		if _, err := api.ParseLUProp(&props, p); err != nil {
			e.propError(err, false)
			return props, false
		}
	}
	return props, true
}

func (e *env) parseSize(c *cli.Context) (uint64, bool) {
	if !c.IsSet("size") {
		return 0, true
	}
	n, err := parseSizeArg(c.String("size"))
	if err != nil {
		e.errorf("s: size param invalid")
		return 0, false
	}
	return n, true
}

// parseSizeArg parses a -s size (K/M/G/T/P suffixes, powers of 1024).
func parseSizeArg(s string) (uint64, error) {
	n, err := config.ParseSize(s)
	if err == nil && n == 0 {
		err = errors.New("size must be positive")
	}
	return n, err
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func (e *env) createLU(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "lu file")
	if err != nil {
		return err
	}
	props, ok := e.parseProps(c)
	if !ok {
		return errFailed
	}
	size, ok := e.parseSize(c)
	if !ok {
		return errFailed
	}
	var lu api.LU
	req := api.CreateLURequest{DataFile: absPath(ops[0]), Size: size, Props: props}
	if err := e.longCall(c, "creating LU on "+req.DataFile, api.MethodCreateLU, req, &lu); err != nil {
		e.luError(err, ops[0])
		return errFailed
	}
	fmt.Fprintf(e.stdout, "Logical unit created: %s\n", lu.GUID)
	return nil
}

func (e *env) modifyLU(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "lu-name")
	if err != nil {
		return err
	}
	req := api.ModifyLURequest{}
	if c.Bool("file") {
		req.File = absPath(ops[0])
	} else {
		if len(ops[0]) != 32 {
			e.errorf("%s: must be 32 hexadecimal digits", ops[0])
			return errFailed
		}
		req.GUID = ops[0]
	}
	for _, p := range c.StringSlice("lu-prop") {
		name, val, hasVal := strings.Cut(p, "=")
		switch {
		case !slices.Contains(api.LUPropNames(), strings.ToLower(name)):
			e.errorf("invalid property specified: %s", name)
			return errFailed
		case (!hasVal || val == "") && !strings.EqualFold(name, "mgmt-url"):
			e.errorf("%s: invalid property specifier- prop=val", p)
			return errFailed
		case !api.IsModifiableLUProp(name):
			e.errorf("invalid property for modify")
			return errFailed
		}
		if _, err := api.ParseLUProp(&req.Props, name+"="+val); err != nil {
			e.propError(err, true)
			return errFailed
		}
	}
	if req.Size, err = e.sizeArg(c); err != nil {
		return err
	}
	if req.Size == 0 && req.Props.IsEmpty() {
		return nil
	}
	if err := e.longCall(c, "modifying LU "+ops[0], api.MethodModifyLU, req, nil); err != nil {
		e.luError(err, ops[0])
		return errFailed
	}
	return nil
}

// sizeArg is parseSize returning errFailed.
func (e *env) sizeArg(c *cli.Context) (uint64, error) {
	n, ok := e.parseSize(c)
	if !ok {
		return 0, errFailed
	}
	return n, nil
}

func (e *env) importLU(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "file name")
	if err != nil {
		return err
	}
	var lu api.LU
	req := api.ImportLURequest{File: absPath(ops[0])}
	if err := e.longCall(c, "importing "+req.File, api.MethodImportLU, req, &lu); err != nil {
		e.luError(err, ops[0])
		return errFailed
	}
	fmt.Fprintf(e.stdout, "Logical unit imported: %s\n", lu.GUID)
	return nil
}

func (e *env) deleteLU(c *cli.Context) error {
	ops, err := operands(c, 1, -1, "lu-name")
	if err != nil {
		return err
	}
	return e.deleteLUs(c, ops)
}

// deleteLUs deletes each GUID operand, reporting each failure.
func (e *env) deleteLUs(c *cli.Context, ops []string) error {
	failed := 0
	for _, op := range ops {
		if !api.IsGUID(op) {
			e.errorf("%s: must be 32 hexadecimal digits long", op)
			failed++
			continue
		}
		err := e.client.DeleteLU(c.Context, api.DeleteLURequest{GUID: op, KeepViews: c.Bool("keep-views")})
		if err != nil {
			failed++
			if api.IsCode(err, api.CodeLUNotFound) {
				e.errorf("%s: not found", strings.ToLower(op))
			} else {
				e.luError(err, op)
			}
		}
	}
	return failIf(failed)
}

// pickLUs selects the LUs named by GUID operands (all without operands),
// printing COMSTAR's complaint for each bad or unknown one.
// pick returns the elements of all that the operands name, in operand
// order, or all of them when there are no operands. Each operand that
// names nothing is reported as "<op>: not found" and counted in failed.
func pick[T any](e *env, all []T, ops []string, names func(T, string) bool) (out []T, failed int) {
	if len(ops) == 0 {
		return all, 0
	}
	out = []T{}
	for _, op := range ops {
		i := slices.IndexFunc(all, func(x T) bool { return names(x, op) })
		if i < 0 {
			e.errorf("%s: not found", op)
			failed++
			continue
		}
		out = append(out, all[i])
	}
	return out, failed
}

func (e *env) pickLUs(all []api.LU, ops []string) ([]api.LU, int) {
	if len(ops) == 0 {
		return all, 0
	}
	var out []api.LU
	failed := 0
	for _, op := range ops {
		if !api.IsGUID(op) {
			e.errorf("%s: must be 32 hexadecimal digits long", op)
			failed++
			continue
		}
		i := slices.IndexFunc(all, func(l api.LU) bool { return strings.EqualFold(l.GUID, op) })
		if i < 0 {
			e.errorf("%s: not found", op)
			failed++
			continue
		}
		out = append(out, all[i])
	}
	return out, failed
}

func (e *env) listLU(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	all, err := e.client.ListLUs(c.Context)
	if err != nil {
		e.unexpected(err, "")
		return errFailed
	}
	lus, failed := e.pickLUs(all, c.Args().Slice())
	if asJSON {
		if lus == nil {
			lus = []api.LU{}
		}
		if err := cliutil.WriteJSON(e.stdout, lus); err != nil {
			return err
		}
		return failIf(failed)
	}
	for _, lu := range lus {
		writeLU(e.stdout, lu, c.Bool("verbose"))
	}
	return failIf(failed)
}

func (e *env) onlineLU(online bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		ops, err := operands(c, 1, 1, "lu-name")
		if err != nil {
			return err
		}
		if len(ops[0]) != 32 {
			e.errorf("%s: must be 32 hexadecimal digits long", ops[0])
			return errFailed
		}
		if online {
			err = e.client.OnlineLU(c.Context, ops[0])
		} else {
			err = e.client.OfflineLU(c.Context, ops[0])
		}
		if err != nil {
			e.luError(err, ops[0])
			return errFailed
		}
		return nil
	}
}

func (e *env) createGroup(kind api.GroupKind) cli.ActionFunc {
	return e.groupAction(func(c *cli.Context, name string) error { return e.client.CreateGroup(c.Context, kind, name) },
		map[api.Code]string{api.CodeGroupExists: "already exists", api.CodeInvalidGroupName: "invalid group name"})
}

func (e *env) deleteGroup(kind api.GroupKind) cli.ActionFunc {
	return e.groupAction(func(c *cli.Context, name string) error { return e.client.DeleteGroup(c.Context, kind, name) },
		map[api.Code]string{api.CodeGroupNotFound: "not found", api.CodeGroupInUse: "group is in use by existing view entry"})
}

// groupAction runs call on the single group-name operand and prints
// "<name>: <message>" for the API error codes in msgs.
func (e *env) groupAction(call func(c *cli.Context, name string) error, msgs map[api.Code]string) cli.ActionFunc {
	return func(c *cli.Context) error {
		ops, err := operands(c, 1, 1, "group-name")
		if err != nil {
			return err
		}
		err = call(c, ops[0])
		if err == nil {
			return nil
		}
		if msg, ok := msgs[api.CodeOf(err)]; ok {
			e.errorf("%s: %s", ops[0], msg)
		} else {
			e.unexpected(err, ops[0])
		}
		return errFailed
	}
}

// member is add-hg-member, add-tg-member, remove-hg-member, remove-tg-member.
func (e *env) member(kind api.GroupKind, add bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		if !c.IsSet("group-name") {
			return cliutil.Usagef("%s: -g, --group-name is required", c.Command.Name)
		}
		group := c.String("group-name")
		ops, err := operands(c, 1, -1, "group member")
		if err != nil {
			return err
		}
		failed := 0
		for _, op := range ops {
			if add {
				err = e.client.AddGroupMember(c.Context, kind, group, op)
			} else {
				err = e.client.RemoveGroupMember(c.Context, kind, group, op)
			}
			if err == nil {
				continue
			}
			failed++
			switch api.CodeOf(err) {
			case api.CodeInvalidDeviceID:
				e.errorf("%s: unrecognized device id", op)
			case api.CodeMemberExists:
				e.errorf("%s: already exists", op)
			case api.CodeMemberNotFound:
				e.errorf("%s: not found", op)
			case api.CodeGroupNotFound:
				e.errorf("%s: not found", group)
			case api.CodeTargetOnline:
				e.errorf("STMF target must be offline")
			default:
				e.unexpected(err, op)
			}
		}
		return failIf(failed)
	}
}

func (e *env) listGroups(kind api.GroupKind) cli.ActionFunc {
	return func(c *cli.Context) error {
		asJSON, err := cliutil.JSONOutput(c)
		if err != nil {
			return err
		}
		all, err := e.client.ListGroups(c.Context, kind)
		if err != nil {
			e.unexpected(err, "")
			return errFailed
		}
		groups, failed := pick(e, all, c.Args().Slice(), func(g api.Group, op string) bool { return g.Name == op })
		if asJSON {
			if err := cliutil.WriteJSON(e.stdout, groups); err != nil {
				return err
			}
			return failIf(failed)
		}
		for _, g := range groups {
			writeGroup(e.stdout, kind, g, c.Bool("verbose"))
		}
		return failIf(failed)
	}
}

func (e *env) addView(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "lu-name")
	if err != nil {
		return err
	}
	if len(ops[0]) != 32 {
		e.errorf("%s: must be 32 hexadecimal digits", ops[0])
		return errFailed
	}
	req := api.AddViewRequest{GUID: ops[0], HostGroup: c.String("host-group"), TargetGroup: c.String("target-group")}
	if c.IsSet("lun") {
		n, err := strconv.Atoi(c.String("lun"))
		switch {
		case err != nil || n < 0:
			e.errorf("%s: invalid logical unit number", c.String("lun"))
			return errFailed
		case n > api.MaxLUN:
			e.errorf("%d: Logical unit number must be less than 16384", n)
			return errFailed
		}
		req.LUN = &n
	}
	if _, err = e.client.AddView(c.Context, req); err == nil {
		return nil
	}
	switch api.CodeOf(err) {
	case api.CodeViewConflict:
		e.errorf("view entry exists")
	case api.CodeLUNInUse:
		e.errorf("LUN already in use")
	case api.CodeInvalidHostGroup:
		e.errorf("invalid host group")
	case api.CodeInvalidTgtGroup:
		e.errorf("invalid target group")
	case api.CodeInvalidLUN:
		e.errorf("%s: Logical unit number must be less than 16384", c.String("lun"))
	case api.CodeInvalidGUID:
		e.errorf("%s: must be 32 hexadecimal digits", ops[0])
	default:
		e.unexpected(err, ops[0])
	}
	return errFailed
}

// viewsOf fetches an LU's views for list-view / remove-view, printing
// COMSTAR's complaints; ok is false when the command must stop.
func (e *env) viewsOf(c *cli.Context, guid string) ([]api.View, bool) {
	if len(guid) != 32 {
		e.errorf("%s: must be 32 hexadecimal digits long", guid)
		return nil, false
	}
	views, err := e.client.ListViews(c.Context, guid)
	switch {
	case api.IsCode(err, api.CodeInvalidGUID):
		e.errorf("%s: must be 32 hexadecimal digits long", guid)
		return nil, false
	case err != nil:
		e.unexpected(err, strings.ToLower(guid))
		return nil, false
	case len(views) == 0:
		e.errorf("%s: no views found", strings.ToLower(guid))
		return nil, false
	}
	return views, true
}

func (e *env) listView(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	if !c.IsSet("lu-name") {
		return cliutil.Usagef("list-view: -l, --lu-name is required")
	}
	guid := c.String("lu-name")
	views, ok := e.viewsOf(c, guid)
	if !ok {
		return errFailed
	}
	failed := 0
	if ops := c.Args().Slice(); len(ops) > 0 {
		var picked []api.View
		for _, op := range ops {
			n, err := strconv.Atoi(op)
			i := slices.IndexFunc(views, func(v api.View) bool { return err == nil && v.Entry == n })
			if i < 0 {
				e.errorf("%s, %s: not found", strings.ToLower(guid), op)
				failed++
				continue
			}
			picked = append(picked, views[i])
		}
		views = picked
	}
	if asJSON {
		if views == nil {
			views = []api.View{}
		}
		if err := cliutil.WriteJSON(e.stdout, views); err != nil {
			return err
		}
		return failIf(failed)
	}
	for _, v := range views {
		writeView(e.stdout, v)
	}
	return failIf(failed)
}

func (e *env) removeView(c *cli.Context) error {
	ops := c.Args().Slice()
	all := c.Bool("all")
	if !all && len(ops) == 0 {
		e.errorf("no view entries specified")
		return errFailed
	}
	if !c.IsSet("lu-name") {
		e.errorf("logical unit (-l) not specified")
		return errFailed
	}
	guid := c.String("lu-name")
	views, ok := e.viewsOf(c, guid)
	if !ok {
		return errFailed
	}
	sguid := strings.ToLower(guid)
	var entries []int
	failed := 0
	if all {
		for _, v := range views {
			entries = append(entries, v.Entry)
		}
	} else {
		for _, op := range ops {
			n, err := strconv.Atoi(op)
			if err != nil || n < 0 {
				e.errorf("%s: invalid input", op)
				failed++
				continue
			}
			entries = append(entries, n)
		}
	}
	for _, n := range entries {
		err := e.client.RemoveView(c.Context, guid, n)
		switch {
		case err == nil:
		case api.IsCode(err, api.CodeViewNotFound):
			e.errorf("%s: %d: not found", sguid, n)
			failed++
		default:
			e.unexpected(err, sguid)
			failed++
		}
	}
	return failIf(failed)
}

func (e *env) listTarget(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	all, err := e.client.ListTargets(c.Context)
	if err != nil {
		e.unexpected(err, "")
		return errFailed
	}
	targets, failed := pick(e, all, c.Args().Slice(), func(t api.Target, op string) bool {
		if cn, ok := api.CanonicalDeviceID(op); ok {
			op = cn
		}
		return t.Name == op
	})
	if asJSON {
		if err := cliutil.WriteJSON(e.stdout, targets); err != nil {
			return err
		}
		return failIf(failed)
	}
	for _, t := range targets {
		writeTarget(e.stdout, t, c.Bool("verbose"), time.Local)
	}
	return failIf(failed)
}

func (e *env) onlineTarget(online bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		ops, err := operands(c, 1, 1, "target")
		if err != nil {
			return err
		}
		if online {
			err = e.client.OnlineTarget(c.Context, ops[0])
		} else {
			err = e.client.OfflineTarget(c.Context, ops[0])
		}
		if err == nil {
			return nil
		}
		switch api.CodeOf(err) {
		case api.CodeInvalidDeviceID:
			e.errorf("%s: unrecognized device id", ops[0])
		case api.CodeTargetNotFound:
			e.errorf("%s: not found", ops[0])
		case api.CodeBusy:
			e.errorf("resource busy")
		default:
			e.unexpected(err, ops[0])
		}
		return errFailed
	}
}

func (e *env) listState(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	st, err := e.client.GetState(c.Context)
	if err != nil {
		e.unexpected(err, "")
		return errFailed
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, st)
	}
	writeState(e.stdout, st)
	return nil
}
