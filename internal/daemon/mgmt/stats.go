package mgmt

import (
	"context"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// GetStats answers stmfadm list-stats: a snapshot of stmf's task counters
// for the configured LUs named by GUID or alias (every LU when none is
// named). An LU that is configured but not open reports zeros.
func (m *Manager) GetStats(_ context.Context, r api.GetStatsRequest) (api.Stats, error) {
	snap := m.fw.Stats()
	now := time.Now()
	m.mu.RLock()
	type named struct{ guid, alias string }
	all := make([]named, 0, len(m.state.LUs))
	for _, rec := range m.state.LUs {
		g, _ := stmf.ParseGUID(rec.GUID)
		n := named{guid: rec.GUID}
		if d, ok := m.open[g]; ok {
			n.alias = d.Info().Alias
		}
		all = append(all, n)
	}
	m.mu.RUnlock()

	pick := all
	if len(r.LUs) > 0 {
		pick = pick[:0:0]
		for _, want := range r.LUs {
			found := false
			for _, n := range all {
				if n.alias == want || equalGUID(n.guid, want) {
					pick = append(pick, n)
					found = true
				}
			}
			if !found {
				return api.Stats{}, api.Errorf(api.CodeLUNotFound, want, "no LU with GUID or alias %q", want)
			}
		}
	}
	out := api.Stats{TimeNs: now.UnixNano(), LUs: make([]api.LUStats, 0, len(pick))}
	for _, b := range stmf.LatencyBounds() {
		out.LatencyBoundsNs = append(out.LatencyBoundsNs, int64(b))
	}
	for _, n := range pick {
		g, _ := stmf.ParseGUID(n.guid)
		out.LUs = append(out.LUs, luStats(n.guid, n.alias, snap.LUs[g]))
	}
	return out, nil
}

func equalGUID(a, b string) bool {
	ga, err1 := stmf.ParseGUID(a)
	gb, err2 := stmf.ParseGUID(b)
	return err1 == nil && err2 == nil && ga == gb
}

// luStats renders one LU's snapshot for the API.
func luStats(guid, alias string, s stmf.Snapshot) api.LUStats {
	out := api.LUStats{
		GUID: guid, Alias: alias,
		Commands: make(map[string]uint64, stmf.NumKinds), Latency: make(map[string]api.Histogram, stmf.NumKinds),
		InFlight: s.InFlight, BytesRead: s.BytesRead, BytesWritten: s.BytesWritten,
		CheckCondition: s.CheckCondition, ReservationConflict: s.ReservationConflict, Busy: s.Busy,
		TaskSetFull: s.TaskSetFull, Aborted: s.Aborted, ATSMiscompares: s.ATSMiscompares,
	}
	for k := range stmf.NumKinds {
		out.Commands[k.String()] = s.Commands[k]
		h := s.Latency[k]
		out.Latency[k.String()] = api.Histogram{Buckets: h.Buckets[:], SumNs: int64(h.Sum)}
	}
	for k, n := range s.SenseKeys {
		if n != 0 {
			if out.SenseKeys == nil {
				out.SenseKeys = map[string]uint64{}
			}
			out.SenseKeys[scsi.SenseKey(k).String()] = n
		}
	}
	return out
}

// LUAliases returns the alias of every open LU, for the metrics exporter.
func (m *Manager) LUAliases() map[stmf.GUID]string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[stmf.GUID]string, len(m.open))
	for g, d := range m.open {
		out[g] = d.Info().Alias
	}
	return out
}
