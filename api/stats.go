package api

// Statistics: the per-LU task counters stmf keeps (stmfadm list-stats, a
// costar extension: COMSTAR had kstat). Read-only.

// MethodGetStats returns the counters of the selected LUs.
const MethodGetStats = "GetStats"

// GetStatsRequest selects LUs by GUID or alias; none selects every LU.
type GetStatsRequest struct {
	LUs []string `json:"lus,omitempty"`
}

// Stats is one snapshot of the counters. Counters only grow while the
// daemon runs (they restart with it, and when an LU is registered again);
// rates come from the difference of two snapshots over TimeNs.
type Stats struct {
	TimeNs int64 `json:"time_ns"` // when the snapshot was taken, Unix nanoseconds
	// LatencyBoundsNs are the inclusive upper bounds of the latency
	// buckets but the last, which counts everything slower.
	LatencyBoundsNs []int64   `json:"latency_bounds_ns"`
	LUs             []LUStats `json:"lus"` // in creation order
}

// LUStats are one LU's counters. Maps are keyed by command kind (read,
// write, unmap, ats, xcopy, flush, other) and sense key name.
type LUStats struct {
	GUID                string               `json:"guid"`
	Alias               string               `json:"alias,omitempty"`
	Commands            map[string]uint64    `json:"commands"` // finished, by kind
	InFlight            uint64               `json:"in_flight"`
	BytesRead           uint64               `json:"bytes_read"`
	BytesWritten        uint64               `json:"bytes_written"`
	CheckCondition      uint64               `json:"check_condition"`
	ReservationConflict uint64               `json:"reservation_conflict"`
	Busy                uint64               `json:"busy"`
	TaskSetFull         uint64               `json:"task_set_full"`
	Aborted             uint64               `json:"aborted"`
	ATSMiscompares      uint64               `json:"ats_miscompares"`
	SenseKeys           map[string]uint64    `json:"sense_keys,omitempty"` // non-zero only
	Latency             map[string]Histogram `json:"latency"`              // by kind
}

// Histogram is a latency histogram over Stats.LatencyBoundsNs.
type Histogram struct {
	Buckets []uint64 `json:"buckets"` // per bucket, not cumulative
	SumNs   int64    `json:"sum_ns"`
}
