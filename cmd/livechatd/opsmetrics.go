package main

import "github.com/prometheus/client_golang/prometheus"

// registerOpsMetrics exports what the binary knows about itself:
// livechat_build_info, so a dashboard shows which build each instance
// runs and an upgrade is visible as a change, and livechat_ready, /readyz
// as a metric, for an alert when an instance stops accepting clients.
func registerOpsMetrics(reg prometheus.Registerer, d *instance) {
	b := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "livechat_build_info",
		Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion,
		},
	})
	g.Set(1)
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "livechat_ready",
		Help: "1 while the client listeners accept connections (what /readyz answers 200 to), 0 while starting and draining.",
	}, func() float64 {
		if d.srv != nil && d.srv.Ready() { // d.srv is set before the operator endpoint serves
			return 1
		}
		return 0
	})
	reg.MustRegister(g, ready)
}
