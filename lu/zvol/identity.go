package zvol

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Relation says how a zvol relates to the LU whose metadata it carries.
type Relation int

const (
	// Same: the zvol is the LU's own (same name), after a reboot, a zpool
	// export/import, or `zfs send -p | zfs recv` to the same name on
	// another host. The LU keeps its GUID.
	Same Relation = iota
	// Renamed: `zfs rename` (the name differs but the dataset guid is
	// the one recorded). The LU keeps its GUID; the new name is recorded.
	Renamed
	// Copy: a clone, or a copy received under another name. It holds the
	// same data but is another LU: it gets a new GUID unless the
	// administrator gives one (import-lu -p guid=).
	Copy
)

func (r Relation) String() string {
	switch r {
	case Same:
		return "same"
	case Renamed:
		return "renamed"
	case Copy:
		return "copy"
	}
	return fmt.Sprintf("Relation(%d)", int(r))
}

// Classify decides the relation of volume v to metadata m read from v's
// own property:
//
//   - m.Zvol == v.Name: Same;
//   - names differ, m.ZvolGUID == v.GUID (both known): Renamed;
//   - otherwise: Copy (zfs clone -o, or zfs send -p | zfs recv under
//     another name: both make a dataset with a new guid).
//
// Metadata found only on a clone's origin snapshot (see Load) is always a
// Copy.
func Classify(m *Meta, v Volume) Relation {
	switch {
	case m.Zvol == v.Name:
		return Same
	case m.ZvolGUID != 0 && m.ZvolGUID == v.GUID:
		return Renamed
	}
	return Copy
}

// Found is the metadata Load found for a volume.
type Found struct {
	Meta     *Meta
	Raw      string // the PropLU value as read
	PR       []byte // persistent reservation state (nil when none, and always for a Copy)
	PRRaw    string // the volume's own PropPR value as read ("" when not set)
	HasPR    bool   // the volume has a PropPR of its own (a Copy's came from its source)
	From     string // dataset the metadata was read from: the volume, or its origin snapshot
	Relation Relation
}

// Load reads the LU metadata of volume v: its own PropLU, or, for a clone
// made with plain `zfs clone` (no property of its own), that of the origin
// snapshot (which shows the value of the volume it was taken from, or
// the one snapshot-lu stored on it). It fails with ErrNoMetadata (wrapped)
// when neither holds any, and with the reason when the metadata cannot be
// decoded.
func Load(ctx context.Context, z ZFS, v Volume) (*Found, error) {
	s, ok, err := z.UserProp(ctx, v.Name, PropLU)
	if err != nil {
		return nil, err
	}
	if ok {
		m, err := DecodeMeta(s)
		if err != nil {
			return nil, fmt.Errorf("%w (volume %s)", err, v.Name)
		}
		f := &Found{Meta: m, Raw: s, From: v.Name, Relation: Classify(m, v)}
		ps, ok, err := z.UserProp(ctx, v.Name, PropPR)
		if err != nil {
			return nil, err
		}
		if ok {
			f.HasPR, f.PRRaw = true, ps
			if f.Relation != Copy {
				if f.PR, err = DecodePR(ps); err != nil {
					return nil, fmt.Errorf("%w (volume %s)", err, v.Name)
				}
			}
		}
		return f, nil
	}
	if v.Origin != "" && strings.Contains(v.Origin, "@") {
		s, ok, err := z.UserProp(ctx, v.Origin, PropLU)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err == nil && ok {
			m, err := DecodeMeta(s)
			if err != nil {
				return nil, fmt.Errorf("%w (origin snapshot %s of %s)", err, v.Origin, v.Name)
			}
			return &Found{Meta: m, Raw: s, From: v.Origin, Relation: Copy}, nil
		}
	}
	return nil, fmt.Errorf("zvol: volume %s: %w (property %s is not set)", v.Name, ErrNoMetadata, PropLU)
}
