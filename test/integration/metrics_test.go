package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/test/harness"
)

// metricsAddr waits for stmfd's log line naming the metrics listener.
func metricsAddr(ctx context.Context, t *testing.T, d *harness.Daemon) string {
	t.Helper()
	re := regexp.MustCompile(`msg="metrics: serving /metrics".* addr=(\S+)`)
	for {
		if m := re.FindStringSubmatch(d.Log()); m != nil {
			return m[1]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stmfd never logged its metrics address; log:\n%s", d.LogTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, err
}

// prometheus is a Prometheus server this test started on loopback.
type prometheus struct {
	url string
	cmd *exec.Cmd
}

// startPrometheus runs Debian's prometheus with temp storage, scraping
// target every second, and waits until the scrape is up.
func startPrometheus(ctx context.Context, t *testing.T, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"+
		"scrape_configs:\n  - job_name: stmfd\n    static_configs:\n      - targets: ['%s']\n", target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + harness.FreePortOn(t, "127.0.0.1")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { // stop the process we started, by its PID
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheus{url: "http://" + addr, cmd: cmd}
	p.waitFor(ctx, t, `up{job="stmfd"}`, func(v float64) bool { return v == 1 }, "the stmfd scrape to be up")
	return p
}

// query runs an instant query and returns the value of each series by
// its label set (rendered "k=v,k=v", sorted as Prometheus sends them).
func (p *prometheus) query(ctx context.Context, q string) (map[string]float64, error) {
	b, err := httpGet(ctx, p.url+"/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s (%v)", q, b, err)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, s.Value)
		}
		var ls []string
		for k, val := range s.Metric {
			ls = append(ls, k+"="+val)
		}
		out[strings.Join(ls, ",")] = v
	}
	return out, nil
}

// one runs a query that must return exactly one series.
func (p *prometheus) one(ctx context.Context, q string) (float64, error) {
	m, err := p.query(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(m) != 1 {
		return 0, fmt.Errorf("query %s: %d series (%v), want 1", q, len(m), m)
	}
	for _, v := range m {
		return v, nil
	}
	return 0, nil
}

// waitFor polls a single-series query until ok(value) or 20 s pass
// (several scrape intervals: the data has to be scraped first).
func (p *prometheus) waitFor(ctx context.Context, t *testing.T, q string, ok func(float64) bool, what string) float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var v float64
	var err error
	for {
		v, err = p.one(ctx, q)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s: %s = %v (%v)", what, q, v, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// demoGUID is the GUID of the demo LU, the only one.
func demoGUID(t *testing.T, d *harness.Daemon) string {
	t.Helper()
	var lus []struct {
		GUID string `json:"guid"`
	}
	if err := json.Unmarshal([]byte(d.OK("stmfadm", "list-lu", "-o", "json")), &lus); err != nil || len(lus) != 1 {
		t.Fatalf("list-lu -o json: %v %+v", err, lus)
	}
	return lus[0].GUID
}

// TestPrometheusScrapesStmfd runs a known qemu-io workload against the demo
// LU and checks, through a real Prometheus server's query API, that the
// reads and writes counted are the ones issued and that the latency
// histograms hold every command; promtool checks the exposition.
func TestPrometheusScrapesStmfd(t *testing.T) {
	harness.RequireTools(t, "prometheus", "promtool")
	harness.RequireQemuISCSI(t)
	ctx := harness.Context(t, testTimeout)
	d := startDaemon(ctx, t, harness.TempDir(t, "stmfd-metrics"), "--demo-size", "64M", "--metrics-listen", "127.0.0.1:0")
	addr := metricsAddr(ctx, t, d)

	scrape, err := httpGet(ctx, "http://"+addr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	check := exec.CommandContext(ctx, "promtool", "check", "metrics")
	check.Stdin = strings.NewReader(string(scrape))
	if out, err := check.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	prom := startPrometheus(ctx, t, addr)
	guid := demoGUID(t, d)
	lu := fmt.Sprintf(`guid="%s",alias="demo"`, guid)
	base := func(kind string) float64 {
		return prom.waitFor(ctx, t, fmt.Sprintf(`costar_lu_commands_total{%s,kind="%s"}`, lu, kind),
			func(float64) bool { return true }, "the LU's "+kind+" counter")
	}
	reads0, writes0 := base("read"), base("write")

	// N reads and M writes of 4 KiB each: qemu-io sends one command per
	// request, and nothing else of those kinds.
	const reads, writes = 60, 24
	var cmds []string
	for i := range writes {
		cmds = append(cmds, fmt.Sprintf("write -P 0x5a %d 4k", i*4096))
	}
	for i := range reads {
		cmds = append(cmds, fmt.Sprintf("read %d 4k", (i%writes)*4096))
	}
	if out, err := qemuIO(ctx, t, demoURL(d), cmds...); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	// A login refused for an unknown target, from a known initiator name.
	const stranger = "iqn.2026-11.org.costar:stranger"
	if err := exec.CommandContext(ctx, "iscsi-inq", "-i", stranger, d.URL("iqn.2026-11.org.costar:nope", 0)).Run(); err == nil {
		t.Errorf("iscsi-inq to an unknown target succeeded")
	}

	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	prom.waitFor(ctx, t, fmt.Sprintf(`costar_lu_commands_total{%s,kind="read"}`, lu), eq(reads0+reads), "reads counted == issued")
	prom.waitFor(ctx, t, fmt.Sprintf(`costar_lu_commands_total{%s,kind="write"}`, lu), eq(writes0+writes), "writes counted == issued")
	prom.waitFor(ctx, t, fmt.Sprintf(`sum(costar_iscsi_initiator_login_failures_total{initiator="%s",reason="no_access"})`, stranger),
		eq(1), "the refused login counted for its initiator")
	for _, kind := range []string{"read", "write", "flush"} {
		n, err := prom.one(ctx, fmt.Sprintf(`costar_lu_commands_total{%s,kind="%s"}`, lu, kind))
		if err != nil {
			t.Fatal(err)
		}
		h, err := prom.one(ctx, fmt.Sprintf(`costar_lu_latency_seconds_count{%s,kind="%s"}`, lu, kind))
		if err != nil || h != n {
			t.Errorf("%s latency histogram count %v, want %v commands (%v)", kind, h, n, err)
		}
		inf, err := prom.one(ctx, fmt.Sprintf(`costar_lu_latency_seconds_bucket{%s,kind="%s",le="+Inf"}`, lu, kind))
		if err != nil || inf != n {
			t.Errorf("%s +Inf bucket %v, want %v (%v)", kind, inf, n, err)
		}
	}
	checkDashboard(ctx, t, prom)
	checkREADMEQueries(ctx, t, prom)
	for q, ok := range map[string]func(float64) bool{
		fmt.Sprintf(`costar_lu_read_bytes_total{%s}`, lu):                                              func(v float64) bool { return v >= reads*4096 },
		fmt.Sprintf(`costar_lu_written_bytes_total{%s}`, lu):                                           eq(writes * 4096),
		fmt.Sprintf(`histogram_quantile(0.99, costar_lu_latency_seconds_bucket{%s,kind="write"})`, lu): func(v float64) bool { return v > 0 && v <= 10 },
		fmt.Sprintf(`costar_lu_commands_in_flight{%s}`, lu):                                            eq(0),
		fmt.Sprintf(`sum(costar_iscsi_logins_total{target="%s"})`, demoIQN):                            func(v float64) bool { return v >= 2 },
		`costar_alua_state{tpg="1",state="active-optimized"}`:                                          eq(1),
		fmt.Sprintf(`sum(costar_target_port_commands_total{target="%s",kind="read"})`, demoIQN):        eq(reads0 + reads),
		`go_goroutines{job="stmfd"}`:                                                                   func(v float64) bool { return v > 0 },
	} {
		v, err := prom.one(ctx, q)
		if err != nil || !ok(v) {
			t.Errorf("%s = %v (%v)", q, v, err)
		}
	}
}

// checkDashboard runs every query of contrib/grafana's dashboard against
// Prometheus: each must parse and find series (the names are real).
func checkDashboard(ctx context.Context, t *testing.T, prom *prometheus) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "contrib", "grafana", "costar-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$lu", ".*")
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q := vars.Replace(tg.Expr)
			m, err := prom.query(ctx, q)
			if err != nil || len(m) == 0 {
				t.Errorf("dashboard panel %q: %s: %d series (%v)", p.Title, q, len(m), err)
			}
		}
	}
}

// checkREADMEQueries runs the README's PromQL examples (its promql
// block): each must find series after the workload.
func checkREADMEQueries(ctx context.Context, t *testing.T, prom *prometheus) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "```promql\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || strings.TrimSpace(block) == "" {
		t.Fatal("README.md has no promql block")
	}
	for _, q := range strings.Split(strings.TrimSpace(block), "\n") {
		m, err := prom.query(ctx, q)
		if err != nil || len(m) == 0 {
			t.Errorf("README example %s: %d series (%v)", q, len(m), err)
		}
	}
}
