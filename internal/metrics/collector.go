// Package metrics exports stmfd's counters to Prometheus. Nothing here
// counts: a custom collector reads stmf's and the iSCSI port provider's
// snapshots at scrape time, so the I/O path pays for its atomic adds only.
package metrics

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/portprovider/iscsi"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// MaxSessionSeries caps the sessions exported one by one; the rest still
// count in their LU's and target port's totals.
const MaxSessionSeries = 256

// Sources are what a scrape reads. Every field but Stats may be nil.
type Sources struct {
	Stats   func() stmf.Stats                // stmf's task counters
	Aliases func() map[stmf.GUID]string      // LU aliases
	ISCSI   func() iscsi.Stats               // the iSCSI port provider's counters
	ALUA    func() map[uint16]stmf.ALUAState // target port group states
}

// latencyKinds are the kinds with a latency histogram: the service times
// an administrator asks about, and a bounded series count per LU.
var latencyKinds = [...]stmf.Kind{stmf.KindRead, stmf.KindWrite, stmf.KindFlush}

// aluaStates are exported one series each (1 for the group's state).
var aluaStates = [...]stmf.ALUAState{stmf.ALUAActiveOptimized, stmf.ALUAActiveNonOptimized,
	stmf.ALUAStandby, stmf.ALUAUnavailable, stmf.ALUATransitioning}

// collector turns snapshots into metrics.
type collector struct {
	src Sources
	d   descs
}

type descs struct {
	luCommands, luRead, luWritten, luStatus, luSense, luMiscompare, luInFlight, luLatency *prometheus.Desc
	portCommands, portRead, portWritten, portStatus, portInFlight                         *prometheus.Desc
	sessCommands, sessRead, sessWritten, sessStatus, sessInFlight                         *prometheus.Desc
	logins, loginFailures, sessions, digest, r2ts, nopTimeouts, tmfs                      *prometheus.Desc
	iniLogins, iniLoginFailures                                                           *prometheus.Desc
	isessDigest, isessR2Ts, isessTMFs                                                     *prometheus.Desc
	alua                                                                                  *prometheus.Desc
}

func newCollector(src Sources) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("costar_"+name, help, labels, nil)
	}
	lu := []string{"guid", "alias"}
	port := []string{"target", "port"}
	sess := []string{"initiator_port", "target_port"}
	isess := []string{"target", "initiator", "isid", "tsih"}
	return &collector{src: src, d: descs{
		luCommands:   d("lu_commands_total", "SCSI commands finished by the LU, by kind.", append(lu, "kind")...),
		luRead:       d("lu_read_bytes_total", "Bytes read from the LU (Data-In of GOOD commands).", lu...),
		luWritten:    d("lu_written_bytes_total", "Bytes written to the LU (Data-Out of GOOD commands).", lu...),
		luStatus:     d("lu_status_total", "Commands the LU finished with a status other than GOOD.", append(lu, "status")...),
		luSense:      d("lu_check_conditions_total", "CHECK CONDITIONs by sense key (only keys seen).", append(lu, "sense_key")...),
		luMiscompare: d("lu_ats_miscompares_total", "COMPARE AND WRITE (ATS) commands answered MISCOMPARE.", lu...),
		luInFlight:   d("lu_commands_in_flight", "Commands submitted to the LU and not finished.", lu...),
		luLatency:    d("lu_latency_seconds", "Service time from submission to completion, by kind (read, write, flush).", append(lu, "kind")...),

		portCommands: d("target_port_commands_total", "SCSI commands finished through the target port, by kind.", append(port, "kind")...),
		portRead:     d("target_port_read_bytes_total", "Bytes read through the target port.", port...),
		portWritten:  d("target_port_written_bytes_total", "Bytes written through the target port.", port...),
		portStatus:   d("target_port_status_total", "Commands finished with a status other than GOOD through the target port (task_aborted: aborted by a TMF).", append(port, "status")...),
		portInFlight: d("target_port_commands_in_flight", "Commands in flight through the target port.", port...),

		sessCommands: d("session_commands_total", "SCSI commands finished on a live session (I_T nexus), by kind.", append(sess, "kind")...),
		sessRead:     d("session_read_bytes_total", "Bytes read on a live session.", sess...),
		sessWritten:  d("session_written_bytes_total", "Bytes written on a live session.", sess...),
		sessStatus:   d("session_status_total", "Commands finished with a status other than GOOD on a live session (task_aborted: aborted by a TMF).", append(sess, "status")...),
		sessInFlight: d("session_commands_in_flight", "Commands in flight on a live session.", sess...),

		logins:        d("iscsi_logins_total", "iSCSI logins that reached full feature phase (target \"\": discovery).", "target"),
		loginFailures: d("iscsi_login_failures_total", "Failed iSCSI logins by reason (target \"\": discovery, unknown targets, timeouts).", "target", "reason"),
		sessions:      d("iscsi_sessions", "Live iSCSI sessions.", "target"),
		digest:        d("iscsi_digest_errors_total", "Header and data digest errors received.", "target"),
		r2ts:          d("iscsi_r2ts_total", "R2Ts sent.", "target"),
		nopTimeouts:   d("iscsi_nop_timeouts_total", "Connections dropped because a NOP-In ping went unanswered.", "target"),
		tmfs:          d("iscsi_tmfs_total", "Task management functions received, by function.", "target", "function"),

		iniLogins:        d("iscsi_initiator_logins_total", "iSCSI logins by initiator name (capped; beyond: \"(other)\").", "initiator"),
		iniLoginFailures: d("iscsi_initiator_login_failures_total", "Failed iSCSI logins by initiator name and reason (capped).", "initiator", "reason"),

		isessDigest: d("iscsi_session_digest_errors_total", "Digest errors on a live iSCSI session.", isess...),
		isessR2Ts:   d("iscsi_session_r2ts_total", "R2Ts sent on a live iSCSI session.", isess...),
		isessTMFs:   d("iscsi_session_tmfs_total", "TMFs received on a live iSCSI session, by function.", append(isess, "function")...),

		alua: d("alua_state", "1 for the asymmetric access state of a target port group, 0 for the others.", "tpg", "state"),
	}}
}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.d.luCommands, c.d.luRead, c.d.luWritten, c.d.luStatus, c.d.luSense, c.d.luMiscompare, c.d.luInFlight, c.d.luLatency,
		c.d.portCommands, c.d.portRead, c.d.portWritten, c.d.portStatus, c.d.portInFlight,
		c.d.sessCommands, c.d.sessRead, c.d.sessWritten, c.d.sessStatus, c.d.sessInFlight,
		c.d.logins, c.d.loginFailures, c.d.sessions, c.d.digest, c.d.r2ts, c.d.nopTimeouts, c.d.tmfs,
		c.d.iniLogins, c.d.iniLoginFailures, c.d.isessDigest, c.d.isessR2Ts, c.d.isessTMFs, c.d.alua,
	} {
		ch <- d
	}
}

// Collect reads the snapshots and sends their metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	var aliases map[stmf.GUID]string
	if c.src.Aliases != nil {
		aliases = c.src.Aliases()
	}
	for g, s := range st.LUs {
		c.collectLU(ch, &s, g.String(), aliases[g])
	}
	for name, s := range st.Ports {
		target, _, _ := strings.Cut(name, ",t,")
		c.collectPort(ch, &s, target, name)
	}
	for i, s := range st.Sessions {
		if i >= MaxSessionSeries {
			break
		}
		c.collectSession(ch, &s)
	}
	if c.src.ISCSI != nil {
		c.collectISCSI(ch, c.src.ISCSI())
	}
	if c.src.ALUA != nil {
		for tpg, state := range c.src.ALUA() {
			tag := strconv.Itoa(int(tpg))
			for _, s := range aluaStates {
				v := 0.0
				if s == state {
					v = 1
				}
				name, _ := api.CanonicalALUAState(s.String()) // stmfadm's names
				ch <- prometheus.MustNewConstMetric(c.d.alua, prometheus.GaugeValue, v, tag, name)
			}
		}
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

// statuses are a snapshot's non-GOOD status counters with their labels.
func statuses(s *stmf.Snapshot) [5]struct {
	name string
	n    uint64
} {
	return [5]struct {
		name string
		n    uint64
	}{
		{"check_condition", s.CheckCondition}, {"reservation_conflict", s.ReservationConflict},
		{"busy", s.Busy}, {"task_set_full", s.TaskSetFull}, {"task_aborted", s.Aborted},
	}
}

func (c *collector) collectLU(ch chan<- prometheus.Metric, s *stmf.Snapshot, guid, alias string) {
	for k := range stmf.NumKinds {
		counter(ch, c.d.luCommands, s.Commands[k], guid, alias, k.String())
	}
	counter(ch, c.d.luRead, s.BytesRead, guid, alias)
	counter(ch, c.d.luWritten, s.BytesWritten, guid, alias)
	for _, st := range statuses(s) {
		counter(ch, c.d.luStatus, st.n, guid, alias, st.name)
	}
	for k, n := range s.SenseKeys {
		if n != 0 {
			counter(ch, c.d.luSense, n, guid, alias, scsi.SenseKey(k).String())
		}
	}
	counter(ch, c.d.luMiscompare, s.ATSMiscompares, guid, alias)
	gauge(ch, c.d.luInFlight, s.InFlight, guid, alias)
	for _, k := range latencyKinds {
		ch <- constHistogram(c.d.luLatency, &s.Latency[k], guid, alias, k.String())
	}
}

// constHistogram maps stmf's fixed buckets onto a Prometheus histogram:
// cumulative counts at each bound in seconds; the last bucket (slower
// than 10 s) is only in the count (+Inf).
func constHistogram(d *prometheus.Desc, h *stmf.Histogram, labels ...string) prometheus.Metric {
	bounds := stmf.LatencyBounds()
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += h.Buckets[i]
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count(), h.Sum.Seconds(), buckets, labels...)
}

func (c *collector) collectPort(ch chan<- prometheus.Metric, s *stmf.Snapshot, target, port string) {
	for k := range stmf.NumKinds {
		counter(ch, c.d.portCommands, s.Commands[k], target, port, k.String())
	}
	counter(ch, c.d.portRead, s.BytesRead, target, port)
	counter(ch, c.d.portWritten, s.BytesWritten, target, port)
	for _, st := range statuses(s) {
		counter(ch, c.d.portStatus, st.n, target, port, st.name)
	}
	gauge(ch, c.d.portInFlight, s.InFlight, target, port)
}

func (c *collector) collectSession(ch chan<- prometheus.Metric, s *stmf.SessionStats) {
	for k := range stmf.NumKinds {
		counter(ch, c.d.sessCommands, s.Commands[k], s.InitiatorPort, s.TargetPort, k.String())
	}
	counter(ch, c.d.sessRead, s.BytesRead, s.InitiatorPort, s.TargetPort)
	counter(ch, c.d.sessWritten, s.BytesWritten, s.InitiatorPort, s.TargetPort)
	for _, st := range statuses(&s.Snapshot) {
		counter(ch, c.d.sessStatus, st.n, s.InitiatorPort, s.TargetPort, st.name)
	}
	gauge(ch, c.d.sessInFlight, s.InFlight, s.InitiatorPort, s.TargetPort)
}

func (c *collector) collectISCSI(ch chan<- prometheus.Metric, st iscsi.Stats) {
	for name, t := range st.Targets {
		counter(ch, c.d.logins, t.Logins, name)
		for r, n := range t.Failures {
			counter(ch, c.d.loginFailures, n, name, iscsi.LoginFailure(r).String())
		}
		gauge(ch, c.d.sessions, uint64(t.Sessions), name)
		counter(ch, c.d.digest, t.DigestErrors, name)
		counter(ch, c.d.r2ts, t.R2Ts, name)
		counter(ch, c.d.nopTimeouts, t.NOPTimeouts, name)
		for f, n := range t.TMFs {
			counter(ch, c.d.tmfs, n, name, iscsi.TMFName(f))
		}
	}
	for name, l := range st.Initiators {
		counter(ch, c.d.iniLogins, l.Logins, name)
		for r, n := range l.Failures {
			counter(ch, c.d.iniLoginFailures, n, name, iscsi.LoginFailure(r).String())
		}
	}
	for i, s := range st.Sessions {
		if i >= MaxSessionSeries {
			break
		}
		l := []string{s.Target, s.Initiator, fmt.Sprintf("%x", s.ISID[:]), strconv.Itoa(int(s.TSIH))}
		counter(ch, c.d.isessDigest, s.DigestErrors, l...)
		counter(ch, c.d.isessR2Ts, s.R2Ts, l...)
		for f, n := range s.TMFs {
			counter(ch, c.d.isessTMFs, n, append(l, iscsi.TMFName(f))...)
		}
	}
}
