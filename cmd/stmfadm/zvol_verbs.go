package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
	"github.com/costar-project/costar/lu/zvol"
)

// ZFS volume support beyond COMSTAR: create-lu -p zvol=, snapshot-lu,
// clone-lu, import-lu -p guid=, delete-lu --destroy-zvol.

const zfsCreateHelp = "\n\nZFS volumes (beyond COMSTAR):\n" +
	"   -p zvol=<pool/name> with -s <size> and no lu-file creates a sparse zvol and the LU on it\n" +
	"   in one step; with zvol=, blk= is the zvol's volblocksize (512..131072) and the LU keeps\n" +
	"   512-byte logical blocks. The LU's identity is kept in the zvol (ZFS property org.costar:lu).\n" +
	"   EXAMPLE:\n   stmfadm create-lu -p zvol=tank/vm-101-disk-0 -p blk=16384 -s 32G -p alias=vm101"

// addZFSCommands adds the ZFS verbs to stmfadm and extends create-lu,
// import-lu and delete-lu with their ZFS options.
func addZFSCommands(app *cli.App, e *env) {
	for _, c := range app.Commands {
		switch c.Name {
		case "create-lu":
			orig := c.Action
			c.ArgsUsage = "lu-file | -p zvol=<pool/name> -s size"
			c.Description += zfsCreateHelp
			c.Action = func(ctx *cli.Context) error {
				if hasProp(ctx.StringSlice("lu-prop"), "zvol") {
					return e.createZvolLU(ctx)
				}
				return orig(ctx)
			}
		case "import-lu":
			orig := c.Action
			c.Flags = append(c.Flags, &cli.StringSliceFlag{Name: "lu-prop", Aliases: []string{"p"},
				Usage: "guid=<32 hex digits> (the GUID a copied zvol gets) or alias=<text> (zvol LUs)"})
			c.Description = "Registers an LU from the metadata stored with its data (in the file, its meta file, or\n" +
				"the zvol's org.costar:lu property). A zvol that is a clone, or a copy received under another\n" +
				"name, is another LU: it gets a new GUID unless -p guid= gives one.\n\n" +
				"EXAMPLES:\n   stmfadm import-lu /dev/zvol/tank/vm-100-disk-0\n" +
				"   stmfadm import-lu -p guid=600144F0C0A80101000067A1B2C30001 /dev/zvol/backup/vm-100-disk-0"
			c.Action = func(ctx *cli.Context) error {
				if len(ctx.StringSlice("lu-prop")) > 0 {
					return e.importZvolLU(ctx)
				}
				return orig(ctx)
			}
		case "delete-lu":
			orig := c.Action
			c.Flags = append(c.Flags, &cli.BoolFlag{Name: "destroy-zvol",
				Usage: "also destroy the LU's zvol (zfs destroy; refused while it has snapshots)"})
			c.Description += "\n   stmfadm delete-lu --destroy-zvol 600144F0C0A80101000067A1B2C30001"
			c.Action = func(ctx *cli.Context) error {
				if ctx.Bool("destroy-zvol") {
					return e.destroyLUs(ctx)
				}
				return orig(ctx)
			}
		}
	}
	propFlag := &cli.StringSliceFlag{Name: "lu-prop", Aliases: []string{"p"}, Usage: "property=value (repeatable)"}
	app.Commands = append(app.Commands,
		&cli.Command{
			Name: "snapshot-lu", Usage: "take a ZFS snapshot of a zvol LU", ArgsUsage: "lu-name snapshot-name",
			Description: "Takes zfs snapshot <pool/vol>@<snapshot-name> of the LU's zvol and records the LU's\n" +
				"metadata on it, so clones of the snapshot are recognised.\n\n" +
				"EXAMPLE:\n   stmfadm snapshot-lu 600144F0C0A80101000067A1B2C30001 before-upgrade",
			Action: e.snapshotLU,
		},
		&cli.Command{
			Name: "clone-lu", Usage: "make a new LU on a clone of a zvol LU's snapshot", ArgsUsage: "lu-name@snapshot | pool/vol@snapshot",
			Flags: []cli.Flag{propFlag},
			Description: "Clones the snapshot to a new zvol (default name <volume>-<snapshot>) and creates an LU on it\n" +
				"with a new GUID, ready for add-view. Properties: zvol=<pool/name> (the new zvol), alias, guid,\n" +
				"mgmt-url, pid, serial, vid, wcd, wp. The block size follows the source LU.\n\n" +
				"EXAMPLE:\n   stmfadm clone-lu -p alias=test-db 600144F0C0A80101000067A1B2C30001@before-upgrade",
			Action: e.cloneLU,
		},
	)
}

// hasProp reports whether a -p list sets name (case-insensitive).
func hasProp(props []string, name string) bool {
	return slices.ContainsFunc(props, func(p string) bool {
		n, _, _ := strings.Cut(p, "=")
		return strings.EqualFold(n, name)
	})
}

// splitZvolProps parses -p arguments: zvol= (and, with allowBlk, blk= as
// the volblocksize) are returned apart; extra names other properties the
// command accepts besides create-lu's.
func (e *env) splitZvolProps(props []string, allowBlk bool, allowed []string) (lp api.LUProps, dataset string, volBlk uint32, ok bool) {
	for _, p := range props {
		name, val, _ := strings.Cut(p, "=")
		switch lname := strings.ToLower(name); {
		case lname == "zvol":
			if val == "" {
				e.errorf("%s: invalid property specifier - prop=val", p)
				return lp, "", 0, false
			}
			if err := zvol.ValidVolumeName(val); err != nil {
				e.errorf("unable to set zvol: %v", err)
				return lp, "", 0, false
			}
			dataset = val
		case lname == "blk" && allowBlk:
			var n uint64
			if _, err := fmt.Sscan(val, &n); err != nil || n > 1<<31 || !api.ValidVolBlockSize(uint32(n)) {
				e.errorf("invalid block size")
				e.errorf("detail: with zvol=, blk= is the zvol's volblocksize: a power of two from 512 to 131072")
				return lp, "", 0, false
			}
			volBlk = uint32(n)
		default:
			if allowed != nil && !slices.Contains(allowed, lname) {
				e.errorf("invalid property specified: %s", name)
				return lp, "", 0, false
			}
			if _, err := api.ParseLUProp(&lp, p); err != nil {
				e.propError(err, false)
				return lp, "", 0, false
			}
		}
	}
	return lp, dataset, volBlk, true
}

func (e *env) createZvolLU(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return cliutil.Usagef("create-lu: -p zvol= creates the zvol; give no lu-file (%s)", strings.Join(c.Args().Slice(), " "))
	}
	props, dataset, volBlk, ok := e.splitZvolProps(c.StringSlice("lu-prop"), true, nil)
	if !ok {
		return errFailed
	}
	if props.MetaFile != "" {
		e.errorf("meta file error")
		e.errorf("detail: a zvol LU keeps its metadata in the zvol; meta= does not apply")
		return errFailed
	}
	if !c.IsSet("size") {
		return cliutil.Usagef("create-lu: -p zvol= needs -s <size>")
	}
	size, ok := e.parseSize(c)
	if !ok {
		return errFailed
	}
	req := api.CreateZvolLURequest{Zvol: dataset, Size: size, VolBlockSize: volBlk, Props: props}
	var lu api.LU
	what := fmt.Sprintf("creating sparse zvol %s (%s) and its LU", dataset, humanSize(size))
	if err := e.longCall(c, what, api.MethodCreateZvolLU, req, &lu); err != nil {
		e.zfsError(err, dataset)
		return errFailed
	}
	fmt.Fprintf(e.stdout, "Logical unit created: %s\n", lu.GUID)
	return nil
}

func (e *env) importZvolLU(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "file name")
	if err != nil {
		return err
	}
	req := api.ImportZvolLURequest{File: absPath(ops[0])}
	for _, p := range c.StringSlice("lu-prop") {
		name, val, ok := strings.Cut(p, "=")
		if !ok || val == "" {
			e.errorf("%s: invalid property specifier - prop=val", p)
			return errFailed
		}
		var lp api.LUProps
		if _, err := api.ParseLUProp(&lp, p); err != nil {
			e.propError(err, false)
			return errFailed
		}
		switch strings.ToLower(name) {
		case "guid":
			req.GUID = lp.GUID
		case "alias":
			req.Alias = lp.Alias
		default:
			e.errorf("invalid property specified: %s", name)
			e.errorf("detail: import-lu takes guid= and alias=")
			return errFailed
		}
	}
	var lu api.LU
	if err := e.longCall(c, "importing "+ops[0], api.MethodImportZvolLU, req, &lu); err != nil {
		e.zfsError(err, ops[0])
		return errFailed
	}
	fmt.Fprintf(e.stdout, "Logical unit imported: %s\n", lu.GUID)
	return nil
}

func (e *env) destroyLUs(c *cli.Context) error {
	ops, err := operands(c, 1, -1, "lu-name")
	if err != nil {
		return err
	}
	failed := 0
	for _, op := range ops {
		if !api.IsGUID(op) {
			e.errorf("%s: must be 32 hexadecimal digits long", op)
			failed++
			continue
		}
		req := api.DestroyLURequest{GUID: op, KeepViews: c.Bool("keep-views")}
		if err := e.longCall(c, "deleting LU "+strings.ToUpper(op)+" and destroying its zvol", api.MethodDestroyLU, req, nil); err != nil {
			failed++
			if api.IsCode(err, api.CodeLUNotFound) {
				e.errorf("%s: not found", strings.ToLower(op))
			} else {
				e.zfsError(err, op)
			}
		}
	}
	return failIf(failed)
}

func (e *env) snapshotLU(c *cli.Context) error {
	ops, err := operands(c, 2, 2, "lu-name snapshot-name")
	if err != nil {
		return err
	}
	if !api.IsGUID(ops[0]) {
		e.errorf("%s: must be 32 hexadecimal digits long", ops[0])
		return errFailed
	}
	if err := zvol.ValidSnapshotName(ops[1]); err != nil {
		e.errorf("%s: invalid snapshot name: %v", ops[1], err)
		return errFailed
	}
	var snap api.Snapshot
	if err := e.longCall(c, "snapshotting the zvol of LU "+strings.ToUpper(ops[0]), api.MethodSnapshotLU,
		api.SnapshotLURequest{GUID: ops[0], Name: ops[1]}, &snap); err != nil {
		e.zfsError(err, ops[0])
		return errFailed
	}
	fmt.Fprintf(e.stdout, "Snapshot created: %s\n", snap.Name)
	return nil
}

func (e *env) cloneLU(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "lu-name@snapshot")
	if err != nil {
		return err
	}
	if _, vol, snap, err := api.SplitCloneSource(ops[0]); err != nil {
		e.errorf("%v", err)
		return errFailed
	} else if err := zvol.ValidSnapshotName(snap); err != nil {
		e.errorf("%s: invalid snapshot name: %v", ops[0], err)
		return errFailed
	} else if vol != "" {
		if err := zvol.ValidVolumeName(vol); err != nil {
			e.errorf("%s: %v", ops[0], err)
			return errFailed
		}
	}
	allowed := []string{"alias", "guid", "mgmt-url", "pid", "serial", "vid", "wcd", "wp"}
	props, dataset, _, ok := e.splitZvolProps(c.StringSlice("lu-prop"), false, allowed)
	if !ok {
		return errFailed
	}
	req := api.CloneLURequest{Source: ops[0], Zvol: dataset, Props: props}
	var lu api.LU
	if err := e.longCall(c, "cloning "+ops[0]+" to a new zvol and LU", api.MethodCloneLU, req, &lu); err != nil {
		e.zfsError(err, ops[0])
		return errFailed
	}
	fmt.Fprintf(e.stdout, "Logical unit created: %s\n", lu.GUID)
	if lu.DataFile != "" {
		fmt.Fprintf(e.stdout, "Data File: %s\n", lu.DataFile)
	}
	return nil
}

// zfsError prints a failed ZFS call: ZFS's own failure with the command
// and its stderr, the rest as luError does.
func (e *env) zfsError(err error, operand string) {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeZFS {
		e.errorf("zfs error")
		e.detail(err)
		return
	}
	e.luError(err, operand)
}

// humanSize prints a byte count the way -s takes it.
func humanSize(n uint64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"P", 50}, {"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.s)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
