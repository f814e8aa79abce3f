// Command go_push is the Go client the integration tests push with: it
// registers a counter (two series), a gauge, a histogram and a summary in a
// fresh registry and pushes them with client_golang's push package, the way
// a batch job would. The metrics and values are those of the captured
// fixture tests/fixtures/go_push.bin, so one expectation serves both.
//
// It builds offline against the Debian-packaged client_golang:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build -o go_push ./tests/clients/go_push
//
// Usage:
//
//	go_push -url http://127.0.0.1:9091 -job JOB [-instance go1] [-steps push,add,delete] [-format protobuf|text]
//
// Each step is one client call: push = Pusher.Push (PUT), add = Pusher.Add
// (POST), delete = Pusher.Delete (DELETE; the client accepts only 202).
// Prints "<step>: ok" per step; exits 1 with the client's error otherwise.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

func buildRegistry() *prometheus.Registry {
	registry := prometheus.NewRegistry()

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "go_push_requests_total",
		Help: "A counter.",
	}, []string{"path"})
	requests.WithLabelValues("/a").Add(3)
	requests.WithLabelValues("/b").Add(5)

	temperature := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "go_push_temperature_celsius",
		Help: "A gauge.",
	})
	temperature.Set(21.5)

	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "go_push_latency_seconds",
		Help:    "A histogram.",
		Buckets: []float64{0.1, 0.5, 1},
	})
	for _, seconds := range []float64{0.05, 0.2, 0.7, 2} {
		latency.Observe(seconds)
	}

	size := prometheus.NewSummary(prometheus.SummaryOpts{
		Name:       "go_push_size_bytes",
		Help:       "A summary.",
		Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001},
	})
	for _, bytes := range []float64{100, 200, 300} {
		size.Observe(bytes)
	}

	registry.MustRegister(requests, temperature, latency, size)
	return registry
}

func main() {
	url := flag.String("url", "", "base URL of the Pushgateway-compatible endpoint (required)")
	job := flag.String("job", "", "job name of the group (required)")
	instance := flag.String("instance", "go1", "value of the instance grouping label")
	steps := flag.String("steps", "push", "comma-separated client calls: push, add, delete")
	format := flag.String("format", "protobuf", "body format: protobuf (the client default) or text")
	flag.Parse()
	if *url == "" || *job == "" {
		fmt.Fprintln(os.Stderr, "go_push: -url and -job are required")
		os.Exit(2)
	}

	pusher := push.New(*url, *job).Gatherer(buildRegistry()).Grouping("instance", *instance)
	switch *format {
	case "protobuf":
	case "text":
		pusher = pusher.Format(expfmt.FmtText)
	default:
		fmt.Fprintf(os.Stderr, "go_push: unknown -format %q\n", *format)
		os.Exit(2)
	}

	for _, step := range strings.Split(*steps, ",") {
		var err error
		switch step {
		case "push":
			err = pusher.Push()
		case "add":
			err = pusher.Add()
		case "delete":
			err = pusher.Delete()
		default:
			fmt.Fprintf(os.Stderr, "go_push: unknown step %q\n", step)
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
			os.Exit(1)
		}
		fmt.Printf("%s: ok\n", step)
	}
}
