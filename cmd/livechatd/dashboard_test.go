package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The shipped Grafana dashboard and Prometheus alert rules, relative to
// this package.
var (
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "livechat.json")
	alertsFile    = filepath.Join("..", "..", "deploy", "prometheus", "livechat-alerts.yml")
)

// The dashboard is valid for Grafana's schema as far as import and
// provisioning depend on it, and every query, and every alert rule, names
// only metrics a live daemon exports.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs := checkDashboard(t, data)
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}

	page := exercisedMetrics(t)
	exported := map[string]string{} // name -> type
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(page, -1) {
		exported[m[1]] = m[2]
	}
	exists := func(name string) bool {
		if _, ok := exported[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] == "histogram" {
				return true
			}
		}
		return false
	}
	metricName := regexp.MustCompile(`\b(?:livechat|process|go)_[a-z0-9_]*[a-z0-9]\b`)
	check := func(where, text string) int {
		n := 0
		for _, name := range metricName.FindAllString(text, -1) {
			n++
			if !exists(name) {
				t.Errorf("%s uses %s, which the daemon does not export", where, name)
			}
		}
		return n
	}
	refs := 0
	for _, e := range exprs {
		refs += check("dashboard query "+e, e)
	}
	if refs < 40 {
		t.Errorf("only %d metric references in the dashboard's queries", refs)
	}
	var ruleRefs int
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.Contains(line, "description:") || strings.Contains(line, "summary:") {
			continue // comments and prose name keys and commands, not series
		}
		ruleRefs += check(alertsFile+": "+strings.TrimSpace(line), line)
	}
	if ruleRefs < 10 {
		t.Errorf("only %d metric references in the alert rules", ruleRefs)
	}
	t.Logf("%d queries with %d metric references, %d in the alert rules, all exported", len(exprs), refs, ruleRefs)

	// PromQL syntax, when promtool is at hand (.ci/run installs it): the
	// queries as recording rules, with Grafana's variables filled in.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: the queries' PromQL syntax is not checked")
		return
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(e)
		js, _ := json.Marshal(e)
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", i, js)
	}
	path := filepath.Join(t.TempDir(), "queries.yml")
	os.WriteFile(path, []byte(b.String()), 0o600)
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

// checkDashboard checks the structure Grafana relies on and returns every
// PromQL expression in the dashboard: panel targets, annotations and
// template variable queries.
func checkDashboard(t *testing.T, data []byte) []string {
	t.Helper()
	type target struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		ID      int                      `json:"id"`
		Type    string                   `json:"type"`
		Title   string                   `json:"title"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []target                 `json:"targets"`
		Field   *struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard uid %q (1-40 characters), title %q, schemaVersion %d (36 or later)", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{"__rate_interval": true}
	var exprs []string
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			// Grafana's label_values(METRIC, LABEL) is no PromQL; its
			// selector is.
			if m := regexp.MustCompile(`^label_values\((.+), *\w+\)$`).FindStringSubmatch(q.Query); m != nil {
				q.Query = m[1]
			}
			exprs = append(exprs, q.Query)
		}
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("template variables %v, want datasource and instance", vars)
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			exprs = append(exprs, a.Expr)
		}
	}

	ids := map[int]bool{}
	var cells [][24]bool // occupied grid cells by row, to find overlaps
	knownTypes := []string{"row", "timeseries", "stat", "gauge", "table", "text", "bargauge", "heatmap"}
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("%s: id missing or used twice", where)
		}
		ids[p.ID] = true
		if !slices.Contains(knownTypes, p.Type) || p.Title == "" {
			t.Errorf("%s: type %q, title %q", where, p.Type, p.Title)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v is off the 24-column grid", where, g)
		}
		for y := g.Y; y < g.Y+g.H; y++ {
			for len(cells) <= y {
				cells = append(cells, [24]bool{})
			}
			for x := g.X; x < min(g.X+g.W, 24); x++ {
				if cells[y][x] {
					t.Errorf("%s overlaps another panel at (%d, %d)", where, x, y)
				}
				cells[y][x] = true
			}
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 || len(p.Panels) > 0 {
				t.Errorf("%s: an expanded row holds no targets or panels", where)
			}
			continue
		}
		if p.Field == nil || p.Field.Defaults.Unit == "" {
			t.Errorf("%s: no unit", where)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: target %+v needs an expr and its own refId", where, tg)
			}
			refs[tg.RefID] = true
			if tg.Datasource.Type != "prometheus" || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: target datasource %+v, want the $datasource variable", where, tg.Datasource)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, e := range exprs {
		for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(e, -1) {
			if !vars[m[1]] {
				t.Errorf("query %q uses $%s, which the dashboard does not define", e, m[1])
			}
		}
	}
	return exprs
}
