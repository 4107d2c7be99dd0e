package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/costar-project/costar/internal/progress"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/filestore"
	"github.com/costar-project/costar/lu/backing/zvolstore"
	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/stmf"
)

// Which backing store an LU gets: the daemon builds the store (a file or
// block device, or a zvol) and hands it to the device server (lu.New,
// lu.Open), which never asks which one it has.

// fileLU describes a new LU on a file or block device.
type fileLU struct {
	cfg                lu.Config
	dataFile, metaFile string
	prealloc           string // filestore.PreallocFalloc, PreallocFull or ""
	// deferJournal (cluster mode): the WRITE ATOMIC journal is replayed on
	// takeover (lu.Device.SetFence), never when a standby opens the LU.
	deferJournal bool
}

// createFileLU makes a new LU on a file or block device. discard undoes
// it (closes the LU, removes the file it made or cuts a grown one back).
func createFileLU(ctx context.Context, f fileLU, gen *lu.GUIDGenerator, log *slog.Logger) (d *lu.Device, discard func(), err error) {
	if err := f.cfg.Normalize(); err != nil {
		return nil, nil, err
	}
	st, err := filestore.Create(ctx, filestore.Options{DataFile: f.dataFile, MetaFile: f.metaFile, Size: f.cfg.Size,
		BlockSize: f.cfg.BlockSize, Preallocation: f.prealloc, DeferJournalReplay: f.deferJournal, Log: log})
	if err != nil {
		return nil, nil, err
	}
	progress.Phase(ctx, "writing the LU's metadata to "+f.dataFile)
	d, err = lu.New(ctx, st, f.cfg, gen, log)
	if err != nil {
		st.Discard()
		return nil, nil, err
	}
	return d, func() {
		d.Close()
		st.Discard()
	}, nil
}

// importFileLU opens the LU of a file or block device (see filestore.Open);
// deferJournal as in fileLU.
func importFileLU(ctx context.Context, dataFile, metaFile string, expect stmf.GUID, deferJournal bool, log *slog.Logger) (*lu.Device, error) {
	open := filestore.Open
	if deferJournal {
		open = filestore.OpenDeferred
	}
	st, err := open(ctx, dataFile, metaFile, log)
	if err != nil {
		return nil, err
	}
	d, err := lu.Open(ctx, st, lu.OpenOptions{Log: log, Expect: expect})
	if err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// createZvolLU makes a new LU on existing volume name; cfg.Size 0 takes
// the volsize, a larger size grows the volume, a smaller one is refused.
// The LU is thin provisioned.
func createZvolLU(ctx context.Context, z zvol.ZFS, name string, cfg lu.Config, gen *lu.GUIDGenerator, log *slog.Logger) (*lu.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.SoftThreshold != 0 {
		return nil, errors.New("lu: a soft threshold applies to LUs on files; a zvol's space belongs to its pool")
	}
	cfg.Thin = true
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	st, err := zvolstore.Create(ctx, z, name, cfg.Size, cfg.BlockSize, log)
	if err != nil {
		return nil, err
	}
	cfg.Size = 0 // the volsize (grown above when asked)
	d, err := lu.New(ctx, st, cfg, gen, log)
	if err != nil {
		st.Discard(ctx)
		return nil, err
	}
	return d, nil
}

// importZvolLU opens the LU stored on volume name. The LU's own zvol keeps
// its GUID and a copy (clone, received under another name) gets a new
// one, unless o.GUID names it; with o.Expect set (the daemon reopening a
// configured LU) the zvol must hold that LU as its own, else nothing is
// written. A zvol without the property but with an in-band header (an LU
// made before zvol metadata) is opened from the header.
func importZvolLU(ctx context.Context, z zvol.ZFS, name string, o lu.OpenOptions, gen *lu.GUIDGenerator, log *slog.Logger) (*lu.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := zvolstore.Open(ctx, z, name, log)
	if errors.Is(err, zvol.ErrNoMetadata) {
		d, herr := importFileLU(ctx, z.Device(name), "", stmf.GUID{}, false, log) // a device has no journal
		if herr == nil {
			if !o.Expect.IsZero() && d.GUID() != o.Expect {
				d.Close()
				return nil, fmt.Errorf("lu: zvol %s holds LU %s, not %s", name, d.GUID(), o.Expect)
			}
			log.Warn("zvol LU with an in-band metadata header (made before zvol metadata); its data starts at 64 KiB",
				"zvol", name, "guid", d.GUID())
			return d, nil
		}
		if !errors.Is(herr, backing.ErrNoMeta) {
			return nil, herr
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	found := st.Found()
	m := found.Meta
	opts := o
	opts.Log, opts.Gen = log, gen
	opts.Copy = found.Relation == zvol.Copy
	// Record what changed (a new GUID, the new name after a rename or a
	// copy, the dataset guid of a received copy, overrides).
	opts.Save = true
	d, err := lu.Open(ctx, st, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	log.Info("zvol LU opened", "guid", d.GUID(), "zvol", name, "relation", found.Relation,
		"stored_guid", m.GUID, "stored_zvol", m.Zvol, "from", found.From)
	return d, nil
}
